"""Two scans started together on one database (cron overlap), on SQLite and on PostgreSQL.

Both `python -m gmis_mailscan scan` processes start at the same moment on a new database, so
they also race to create the schema. They read the real Dovecot through tests/tcpproxy.py,
which holds the server's bytes back (pause) until the test has seen what the other process
did: the scan that got the lock cannot finish early, so the overlap is certain, not timed.

* without [scan] lock_timeout the other scan exits at once with code 5 (cli.py) and one line;
* with lock_timeout it waits, and scans (finding nothing new) when the first one is done.

Either way: no duplicate rows, and the report equals that of a single scan. On PostgreSQL the
lock is an advisory lock, so it holds for scanners on different machines too.
"""

from __future__ import annotations

import time

import mailfactory
import pytest
from reliability import (
    check_store_consistent,
    cli_popen,
    imap_account,
    reap,
    report,
    rows,
    run_scan,
    sqlite_url,
    write_config,
)
from tcpproxy import TcpProxy

WAIT = 60  # seconds: bound on every wait below (nothing here is expected to take long)


@pytest.fixture(scope="module")
def mailbox(dovecot_server):
    server = dovecot_server
    user = server.new_user("overlap")
    expected = {
        "INBOX": {
            server.append(user, "INBOX", mailfactory.build("user_confirmation")),
            server.append(user, "INBOX", mailfactory.build("other", institution="みどり医院")),
            server.append(
                user, "INBOX", mailfactory.build("account_notice", institution="ひかり診療所")
            ),
        },
        "Junk": {
            server.append(
                user, "Junk", mailfactory.build("password_registration", institution="みどり医院")
            )
        },
    }
    server.append(user, "INBOX", mailfactory.build("unrelated"))
    return server, user, expected


@pytest.fixture(scope="module")
def single_run_report(mailbox, tmp_path_factory):
    server, user, _ = mailbox
    tmp = tmp_path_factory.mktemp("single")
    config = write_config(
        tmp / "config.toml",
        sqlite_url(tmp / "db.sqlite3"),
        [imap_account(server, user, tmp, server.imap_port)],
    )
    assert run_scan(config).status == "ok"
    return report(config)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "shared.sqlite3")
    return request.getfixturevalue("postgres_url")


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _start_two(mailbox, tmp_path, database, proxy, **scan):
    server, user, _ = mailbox
    config = write_config(
        tmp_path / "config.toml",
        database,
        [imap_account(server, user, tmp_path, proxy.port)],
        scan={"timeout": WAIT, **scan},
    )
    proxy.pause()  # the scan holding the lock cannot get past the IMAP greeting
    procs = [cli_popen(config, "scan"), cli_popen(config, "scan")]
    return config, procs


def _finish(proc) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=WAIT)
    return proc.returncode, out, err


def _check_result(config, database, mailbox, single_run_report) -> None:
    _, _, expected = mailbox
    check_store_consistent(database, expected)
    assert rows(database, "SELECT COUNT(*) FROM messages") == [(4,)]
    assert rows(database, "SELECT COUNT(*) FROM accounts") == [(1,)]
    assert rows(database, "SELECT COUNT(*) FROM folders") == [(2,)]
    assert report(config) == single_run_report


def test_second_scan_exits_with_code_5(mailbox, single_run_report, database, tmp_path):
    with TcpProxy(mailbox[0].imap_port) as proxy:
        config, procs = _start_two(mailbox, tmp_path, database, proxy)
        try:
            _wait_for(lambda: any(p.poll() is not None for p in procs), "one scan to give up")
            loser = next(p for p in procs if p.poll() is not None)
            winner = next(p for p in procs if p is not loser)
            code, out, err = _finish(loser)
            assert code == 5, (out, err)
            assert err.strip().splitlines() == [
                "gmis-mailscan: another scan is running on this database; try again later"
            ]
            assert winner.poll() is None  # still held at the greeting by the proxy
            proxy.resume()
            code, out, err = _finish(winner)
            assert code == 0, err
        finally:
            proxy.resume()
            reap(procs, WAIT)
    assert proxy.connections == 1  # the scan that gave up never touched the mailbox
    _check_result(config, database, mailbox, single_run_report)


def test_with_lock_timeout_the_second_scan_waits_then_runs(
    mailbox, single_run_report, database, tmp_path
):
    with TcpProxy(mailbox[0].imap_port) as proxy:
        config, procs = _start_two(mailbox, tmp_path, database, proxy, lock_timeout=WAIT)
        try:
            _wait_for(lambda: proxy.connections >= 1, "the first scan to connect")
            assert [p.poll() for p in procs] == [None, None]  # one scans, the other waits
            assert proxy.connections == 1
            proxy.resume()
            results = [_finish(p) for p in procs]
        finally:
            proxy.resume()
            reap(procs, WAIT)
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = sorted(out for _, out, _ in results)
    assert "0 fetched, 0 new" in outputs[0] and "4 fetched, 4 new" in outputs[1], outputs
    assert proxy.connections == 2  # each scanned in turn
    _check_result(config, database, mailbox, single_run_report)
