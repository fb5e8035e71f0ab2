"""Dropped and stalled IMAP connections, cut at bytes spread over a whole session.

A TCP proxy (tests/tcpproxy.py) sits between the scanner and the real Dovecot's plain port
(plain IMAP is allowed on loopback). A clean session through it is recorded first; then, for
cut points spread over that session (greeting, LOGIN, LIST, EXAMINE, SEARCH, in the middle of
a pipelined flight of EXAMINE + SEARCH, in the middle of FETCH literals,
between batches), a scan runs through a proxy that drops the connection at
that byte. Each time:

* the run ends with a one-line error for the account (exit 4 through the CLI), no traceback;
* the database holds whole batches only (checked with SQL: see reliability.py);
* a following clean scan reaches exactly the JSON report of a run that never failed.

Seven G-MIS mails in two folders with batch_size = 2 make four batches, so cuts land inside
and between batches. A stalled (half-open) connection is ended by the [scan] timeout.
"""

from __future__ import annotations

import threading

import mailfactory
import pytest
from reliability import (
    check_store_consistent,
    cli,
    imap_account,
    report,
    run_scan,
    sqlite_url,
    write_config,
)
from tcpproxy import TcpProxy

from gmis_mailscan.sources import imap as imap_source

SERVER_CUTS = 25  # cut points in the bytes the server sends
CLIENT_CUTS = 3  # cut points in the bytes the scanner sends
SCAN = {"batch_size": 2, "timeout": 3}


@pytest.fixture(scope="module")
def mailbox(dovecot_server):
    """A Dovecot user with 7 G-MIS mails (4 in INBOX, 3 in Junk) and one unrelated mail."""
    server = dovecot_server
    user = server.new_user("dropped")
    build = mailfactory.build
    inbox = [
        build("password_registration", institution="あおば病院", login_id="kgs-aoba01"),
        build("account_notice", institution="みどり医院", charset="iso-2022-jp"),
        build("other", institution="あおば病院", charset="shift_jis", cte="8bit"),
        build("user_confirmation", institution="さくら病院", body="text"),
    ]
    junk = [
        build("password_registration", institution="みどり医院", login_id="kgs-midori2"),
        build("password_registration", institution="ひかり診療所", sender="info@g-rnis.net"),
        build("user_confirmation", institution="つばさ病院", charset="cp932", cte="base64"),
    ]
    server.append(user, "INBOX", build("unrelated"))
    expected = {
        "INBOX": {server.append(user, "INBOX", m) for m in inbox},
        "Junk": {server.append(user, "Junk", m) for m in junk},
    }
    return server, user, expected


@pytest.fixture(scope="module")
def baseline(mailbox, tmp_path_factory):
    """The report of a scan that never failed, and a clean session recorded by the proxy."""
    server, user, expected = mailbox
    tmp = tmp_path_factory.mktemp("baseline")
    direct = _config(tmp, "direct", server, user, server.imap_port)
    outcome = run_scan(direct)
    assert outcome.status == "ok", outcome.accounts[0].error
    assert outcome.accounts[0].stored == 7
    good = report(direct)
    with TcpProxy(server.imap_port) as proxy:
        through = _config(tmp, "proxied", server, user, proxy.port)
        assert run_scan(through).status == "ok"
    assert report(through) == good  # the proxy itself changes nothing
    return good, bytes(proxy.server_stream), proxy.sent["client"]


def _config(tmp, name, server, user, port, **scan):
    db = sqlite_url(tmp / f"{name}.sqlite3")
    account = imap_account(server, user, tmp, port)
    return write_config(tmp / f"{name}.toml", db, [account], scan={**SCAN, **scan})


def _phases(stream: bytes) -> dict[str, int]:
    """Where each phase of the recorded session begins (server side, in bytes)."""
    fetches = [i - 3 for i in range(len(stream)) if stream.startswith(b" FETCH (", i)]
    assert len(fetches) == 7  # "* n FETCH (" once per message, batches of 2: 1-2, 3-4, 5-6, 7
    return {
        "greeting": 0,
        "login": stream.index(b"CAPABILITY", stream.index(b"\r\n") + 2),
        "LIST": stream.index(b"* LIST"),
        "EXAMINE": stream.index(b"* FLAGS"),
        "SEARCH": stream.index(b"* SEARCH"),
        # Junk is opened and searched in one flight after the list (ImapSource.fetch_many)
        "flight EXAMINE": (flight := stream.index(b"* FLAGS", stream.index(b"* LIST"))),
        "flight SEARCH": stream.index(b"* SEARCH", flight),
        "FETCH batch 1": fetches[0],
        "FETCH batch 2": fetches[2],
        "Junk folder": fetches[4],
        "LOGOUT": stream.index(b"* BYE"),
    }


def _server_cuts(stream: bytes) -> list[int]:
    """SERVER_CUTS points: one inside each phase, the rest evenly over the session."""
    phases = _phases(stream)
    end = phases["LOGOUT"]  # a cut in the logout answer loses nothing: not a failure
    points = {
        0,  # before the greeting
        phases["login"] + 10,
        phases["LIST"] + 10,
        phases["EXAMINE"] + 5,
        phases["SEARCH"] + 5,
        phases["flight EXAMINE"] + 5,  # mid-pipeline: the answers to come are lost
        phases["flight SEARCH"] + 3,
        phases["FETCH batch 1"] + 2000,  # inside the first message literal
        phases["FETCH batch 2"],  # batch 1 complete, nothing of batch 2 yet
        phases["Junk folder"] + 3000,
    }
    n_even = SERVER_CUTS - len(points)
    for i in range(n_even):
        point = end * (i + 1) // (n_even + 1)
        while point in points:
            point += 1
        points.add(point)
    return sorted(points)


def _assert_recovers(tmp, mailbox, good) -> None:
    server, user, expected = mailbox
    db = sqlite_url(tmp / "cut.sqlite3")
    check_store_consistent(db, expected)
    direct = _config(tmp, "cut", server, user, server.imap_port)
    outcome = run_scan(direct)
    assert outcome.status == "ok", outcome.accounts[0].error
    check_store_consistent(db, expected)
    assert report(direct) == good


def test_cut_points_cover_every_phase_of_the_session(baseline):
    _, stream, _ = baseline
    phases = _phases(stream)
    cuts = _server_cuts(stream)
    assert len(cuts) == SERVER_CUTS
    bounds = sorted(phases.items(), key=lambda kv: kv[1])
    for (name, start), (_, stop) in zip(bounds, bounds[1:], strict=False):
        assert any(start <= c < stop for c in cuts), f"no cut point in {name}"


@pytest.mark.parametrize("index", range(SERVER_CUTS))
def test_server_side_cut_then_clean_run_gives_the_same_report(index, mailbox, baseline, tmp_path):
    server, user, _ = mailbox
    good, stream, _ = baseline
    cut = _server_cuts(stream)[index]
    with TcpProxy(server.imap_port, cut_server=cut) as proxy:
        config = _config(tmp_path, "cut", server, user, proxy.port)
        if index % 6 == 0:  # a few through the CLI, as cron runs it
            result = cli(config, "scan")
            assert result.returncode == 4, (cut, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
            (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("acct:")]
            assert "FAILED" in line and ("lost" in line or "no answer" in line), line
        else:
            outcome = run_scan(config)
            assert outcome.status == "failed", f"cut at byte {cut} went unnoticed"
            error = outcome.accounts[0].error
            assert error and "\n" not in error and "Traceback" not in error
            assert "lost" in error or "no answer" in error, error
    assert proxy.cuts == 1
    _assert_recovers(tmp_path, mailbox, good)


@pytest.mark.parametrize("share", [0.05, 0.4, 0.8])
def test_client_side_cut_then_clean_run_gives_the_same_report(share, mailbox, baseline, tmp_path):
    server, user, _ = mailbox
    good, _, client_bytes = baseline
    cut = int(client_bytes * share)
    with TcpProxy(server.imap_port, cut_client=cut) as proxy:
        outcome = run_scan(_config(tmp_path, "cut", server, user, proxy.port))
    assert outcome.status == "failed"
    assert "lost" in outcome.accounts[0].error
    _assert_recovers(tmp_path, mailbox, good)


def test_half_open_connection_ends_with_the_configured_timeout(mailbox, baseline, tmp_path):
    """The server stops answering in the middle of a FETCH but keeps the socket open."""
    server, user, _ = mailbox
    good, stream, _ = baseline
    cut = _phases(stream)["FETCH batch 2"] + 1000
    with TcpProxy(server.imap_port, cut_server=cut, mode="hang") as proxy:
        config = _config(tmp_path, "cut", server, user, proxy.port, timeout=1)
        result = cli(config, "scan", timeout=60)
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("acct:")]
    assert "no answer from 127.0.0.1" in line and "within 1 s ([scan] timeout)" in line
    _assert_recovers(tmp_path, mailbox, good)


def test_cuts_with_extra_search_connections_then_clean_run(
    mailbox, baseline, tmp_path, monkeypatch
):
    """[scan] search_connections = 2, each folder searched in windows of 2 UIDs: a cut may hit
    the scan's own connection or an extra one (then the search fails and so does the run, or,
    during its login, the search stays on the first connection). Either way the database
    holds whole batches, no search thread is left, and a clean run gives the same report."""
    monkeypatch.setattr(imap_source, "SEARCH_WINDOW", 2)
    server, user, _ = mailbox
    good, _, _ = baseline
    with TcpProxy(server.imap_port) as proxy:
        clean = _config(tmp_path, "clean", server, user, proxy.port, search_connections=2)
        assert run_scan(clean).status == "ok"
    assert report(clean) == good
    assert proxy.connections == 4  # its own, 2 for INBOX (3 windows), 1 for Junk (2 windows)
    total = proxy.sent["server"]
    failed = 0
    for i in range(1, 13):
        run = tmp_path / f"cut{i}"
        run.mkdir()
        with TcpProxy(server.imap_port, cut_server=total * i // 13) as proxy:
            outcome = run_scan(_config(run, "cut", server, user, proxy.port, search_connections=2))
        assert proxy.cuts >= 1  # past the byte, every connection of the link is dropped
        if outcome.status != "ok":
            failed += 1
            error = outcome.accounts[0].error
            assert "\n" not in error and ("lost" in error or "no answer" in error), error
        assert not [t for t in threading.enumerate() if t.name.startswith("imap-search")]
        _assert_recovers(run, mailbox, good)
    assert failed >= 6
