"""Two scanners on one PostgreSQL share the accounts instead of taking turns (issue #11).

Two `gmis-mailscan scan` processes start together over the same 10 accounts on one real
PostgreSQL, one account at a time each ([scan] concurrency = 1). Each account is locked
while it is scanned (an advisory lock keyed by the account), so one scanner skips an account
the other holds or has scanned since it began. A TCP proxy holds the server's bytes back
until both scanners are inside an account, so both are certain to scan some.
"""

from __future__ import annotations

import re
import time

import mailfactory
import pytest
from reliability import (
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

ACCOUNTS = 10
WAIT = 60


@pytest.fixture(scope="module")
def mailboxes(dovecot_server):
    server = dovecot_server
    users = []
    for n in range(ACCOUNTS):
        user = server.new_user("shared")
        kind = ("password_registration", "account_notice", "user_confirmation")[n % 3]
        server.append(user, "INBOX", mailfactory.build(kind, institution=f"病院{n}"))
        server.append(user, "INBOX", mailfactory.build("unrelated"))
        users.append(user)
    return server, users


def _config(tmp, name, url, mailboxes, port, **over):
    server, users = mailboxes
    accounts = [imap_account(server, u, tmp, port, name=u.name, **over) for u in users]
    return write_config(tmp / f"{name}.toml", url, accounts, scan={"concurrency": 1})


def _round(config, proxy) -> list[set[str]]:
    """Both scanners over every account; the accounts each one scanned itself."""
    proxy.pause()
    before = proxy.connections  # the proxy counts every connection since it started
    procs = [cli_popen(config, "scan"), cli_popen(config, "scan")]
    try:
        deadline = time.monotonic() + WAIT
        while proxy.connections < before + 2:  # each scanner inside an account of its own
            assert time.monotonic() < deadline, "both scanners should have connected"
            assert all(p.poll() is None for p in procs)
            time.sleep(0.01)
        proxy.resume()
        results = [p.communicate(timeout=WAIT) + (p.returncode,) for p in procs]
    finally:
        proxy.resume()
        reap(procs, WAIT)
    assert [code for _, _, code in results] == [0, 0], results
    scanned = []
    for out, _, _ in results:
        lines = out.splitlines()
        mine = {line.split(":")[0] for line in lines if re.search(r": \d+ fetched, ", line)}
        other = {line.split(":")[0] for line in lines if "by another scanner" in line}
        assert len(mine) + len(other) == ACCOUNTS and not mine & other, out
        scanned.append(mine)
    return scanned


def test_two_scanners_share_ten_accounts(mailboxes, postgres_url, tmp_path):
    server, users = mailboxes
    # TLS, so that a held greeting is simply waited for: on a plain or STARTTLS port a
    # greeting slower than 3 s makes the scanner open a second connection to ask whether
    # the port speaks TLS, which this test would count as the other scanner's.
    tls = {"security": "tls", "ca_file": str(server.ca_file)}
    with TcpProxy(server.imaps_port) as proxy:
        shared = _config(tmp_path, "shared", postgres_url, mailboxes, proxy.port, **tls)
        for round_ in (1, 2):
            first, second = _round(shared, proxy)
            assert first and second, "both scanners scan some accounts"
            assert first | second == {u.name for u in users} and not first & second
            assert proxy.connections == ACCOUNTS * round_  # each account scanned once
    assert rows(postgres_url, "SELECT COUNT(*) FROM messages") == [(ACCOUNTS,)]
    url = sqlite_url(tmp_path / "direct.sqlite3")
    direct = _config(tmp_path, "direct", url, mailboxes, server.imap_port)
    assert run_scan(direct).status == "ok"
    assert report(shared) == report(direct)


def test_twenty_accounts_at_once_each_hold_their_lock(mailboxes, postgres_url, tmp_path):
    """[scan] concurrency = 20 on PostgreSQL: 20 accounts inside their lock at the same time
    (a connection each) still find connections to write with. A pool of SQLAlchemy's default
    size (15 at most) would leave them all waiting for one another."""
    server, users = mailboxes
    tls = {"security": "tls", "ca_file": str(server.ca_file)}
    with TcpProxy(server.imaps_port) as proxy:
        accounts = [
            imap_account(server, u, tmp_path, proxy.port, name=f"{u.name}-{i}", **tls)
            for i in (1, 2)
            for u in users
        ]
        config = write_config(
            tmp_path / "twenty.toml", postgres_url, accounts, scan={"concurrency": 20}
        )
        proxy.pause()
        proc = cli_popen(config, "scan")
        try:
            deadline = time.monotonic() + WAIT
            while proxy.connections < 2 * ACCOUNTS:  # all 20 locked and connecting at once
                assert time.monotonic() < deadline, f"{proxy.connections} of 20 connected"
                assert proc.poll() is None
                time.sleep(0.01)
            proxy.resume()
            out, err = proc.communicate(timeout=WAIT)
        finally:
            proxy.resume()
            reap([proc], WAIT)
    assert proc.returncode == 0, err
    assert len(re.findall(r": 1 fetched, ", out)) == 2 * ACCOUNTS, out
