"""Proves the private Dovecot test server behaves like the real servers the scanner meets."""

# The imported fixture is used as a test argument of the same name, which F811 misreads.
# ruff: noqa: F811

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

import pytest
from dovecot import (
    DovecotServer,
    dovecot_available,
    dovecot_server,  # noqa: F401  (session fixture)
    make_message,
)
from imapclient import IMAPClient
from imapclient.exceptions import LoginError


def test_dovecot_is_installed() -> None:
    """The README promises these tests fail, never skip, without Dovecot: say what to do."""
    assert dovecot_available(), "dovecot-imapd is not installed: apt-get install dovecot-imapd"


JUNK_WIRE_NAME = b"&j,dg0TDhMPww6w-"  # 迷惑メール in modified UTF-7


def test_imaps_login_trusts_only_the_test_ca(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user()
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    with IMAPClient(srv.host, srv.imaps_port, ssl=True, ssl_context=ctx, timeout=10) as client:
        client.login(user.name, user.password)
        caps = client.capabilities()
        assert b"QUOTA" in caps and b"SPECIAL-USE" in caps
        assert client._imap.sock.version() in ("TLSv1.2", "TLSv1.3")

    # The system trust store does not know our CA: verification must fail.
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(
            srv.host, srv.imaps_port, ssl=True, ssl_context=ssl.create_default_context(), timeout=10
        )


def test_starttls_on_the_plain_port(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user()
    with IMAPClient(srv.host, srv.imap_port, ssl=False, timeout=10) as client:
        assert b"STARTTLS" in client.capabilities()
        client.starttls(ssl.create_default_context(cafile=str(srv.ca_file)))
        assert isinstance(client._imap.sock, ssl.SSLSocket)
        client.login(user.name, user.password)
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0


def test_junk_special_use_and_japanese_name(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    plain = srv.new_user(folders=["Archive", "Spam Reports/2024"])
    japanese = srv.new_user(junk_name="迷惑メール")

    with srv.connect(plain) as client:
        listing = {name: flags for flags, _sep, name in client.list_folders()}
    assert b"\\Junk" in listing["Junk"]
    assert b"\\Junk" not in listing["Archive"]
    assert b"\\Junk" not in listing["Spam Reports/2024"]
    assert "迷惑メール" not in listing and "Spam" not in listing

    with srv.connect(japanese) as client:
        listing = {name: flags for flags, _sep, name in client.list_folders()}
        assert b"\\Junk" in listing["迷惑メール"]
        assert "Junk" not in listing
        client.folder_encode = False  # look at the wire form
        raw = {name: flags for flags, _sep, name in client.list_folders()}
        assert b"\\Junk" in raw[JUNK_WIRE_NAME]
        client.folder_encode = True
        assert client.find_special_folder(b"\\Junk") == "迷惑メール"


def test_quota_root_reports_limit_and_fill(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user(quota_kib=2000)

    def imap_quota() -> tuple[int, int]:
        with srv.connect(user) as client:
            roots, quotas = client.get_quota_root("INBOX")
        assert roots.quota_roots == ["User quota"]
        (storage,) = [q for q in quotas if q.resource == "STORAGE"]
        return storage.usage, storage.limit

    assert imap_quota() == (0, 2000)
    usage = srv.fill_to_percent(user, 95)
    assert 1895 <= usage.storage_kib <= 1905, usage
    used, limit = imap_quota()
    assert limit == 2000 and used == usage.storage_kib
    assert 94.5 <= used * 100 / limit <= 95.5

    srv.fill(user, "Junk", 100 * 1024)
    assert imap_quota()[0] == used + 100

    # Limits can change at runtime; the passwd-file is re-read.
    srv.set_quota(user, 4000)
    assert imap_quota() == (used + 100, 4000)


def test_user_without_quota_has_no_quota_root(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user()
    assert srv.quota(user).storage_limit_kib is None
    with srv.connect(user) as client:
        assert b"QUOTA" in client.capabilities()
        # Dovecot answers "OK No quota" without any QUOTAROOT line (imapclient 3/4's
        # get_quota_root() then raises IndexError), so go one level down to look.
        typ, (roots, quotas) = client._imap.getquotaroot("INBOX")
    assert typ == "OK" and roots == [None] and quotas == [None]


def test_append_and_fetch_roundtrip(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user(folders=["Archive"])
    msg = make_message("ご請求書", "本文\n日本語\n", from_addr="info@example.jp")
    when = dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    uid = srv.append(user, "Archive", msg, flags=[b"\\Flagged"], date=when)

    with srv.connect(user) as client:
        client.select_folder("Archive", readonly=True)
        data = client.fetch([uid], ["BODY.PEEK[]", "FLAGS", "INTERNALDATE", "RFC822.SIZE"])[uid]
    assert data[b"BODY[]"] == msg
    assert set(data[b"FLAGS"]) - {b"\\Recent"} == {b"\\Flagged"}
    assert data[b"RFC822.SIZE"] == len(msg)
    assert data[b"INTERNALDATE"].replace(tzinfo=None) == when.astimezone().replace(tzinfo=None)
    assert srv.flags_snapshot(user)["Archive"] == {uid: frozenset({"\\Flagged"})}


@pytest.mark.parametrize("renumber", [False, True])
def test_change_uidvalidity(dovecot_server: DovecotServer, renumber: bool) -> None:
    srv = dovecot_server
    user = srv.new_user()
    for i in range(3):
        srv.append(user, "INBOX", make_message(f"m{i}"))
    srv.write_maildir_files(user, "INBOX", [make_message("bulk")])

    def state() -> tuple[int, list[int], list[bytes]]:
        with srv.connect(user) as client:
            info = client.select_folder("INBOX", readonly=True)
            uids = client.search("ALL")
            subjects = [
                d[b"BODY[HEADER.FIELDS (SUBJECT)]"]
                for _u, d in sorted(
                    client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]).items()
                )
            ]
        return info[b"UIDVALIDITY"], uids, subjects

    before = state()
    assert before[1] == [1, 2, 3, 4]
    new_validity = srv.change_uidvalidity(user, "INBOX", renumber=renumber)
    after = state()
    assert after[0] == new_validity != before[0]
    assert after[2] == before[2]  # same messages, same order
    assert after[1] == [1, 2, 3, 4]  # renumbered from 1, or kept: both look alike here
    assert srv.uidvalidity(user, "INBOX") == new_validity


def test_change_uidvalidity_renumber_gives_new_uids(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user()
    for i in range(4):
        srv.append(user, "INBOX", make_message(f"m{i}"))
    with srv.connect(user) as client:
        client.select_folder("INBOX")
        client.delete_messages([1, 2])
        client.expunge()
        assert client.search("ALL") == [3, 4]
    srv.change_uidvalidity(user, "INBOX")
    with srv.connect(user) as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search("ALL") == [3, 4]  # UIDs kept under the new UIDVALIDITY
    srv.change_uidvalidity(user, "INBOX", renumber=True)
    with srv.connect(user) as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search("ALL") == [1, 2]  # rebuilt: numbered again from 1


def test_wrong_password_is_rejected_and_leaves_no_penalty(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user()
    for name, password in [(user.name, "wrong"), (user.name, "wrong"), ("no-such-user", "x")]:
        with srv.connect(tls="imaps") as client:
            with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
                client.login(name, password)
    with srv.connect(user) as client:  # no penalty left behind
        client.noop()


def test_users_added_back_to_back_can_log_in(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    for _ in range(4):
        user = srv.new_user()
        with srv.connect(user, tls="plain") as client:
            client.noop()


def test_readonly_scan_changes_nothing_but_store_is_logged(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user(folders=["Archive"])
    uid = srv.append(user, "INBOX", make_message("seen me?"))
    srv.write_maildir_files(user, "INBOX", [make_message(f"new {i}") for i in range(3)])
    srv.write_maildir_files(user, "Archive", [make_message("old")], flags="S")
    snap = srv.flags_snapshot(user)
    assert snap["INBOX"] == {1: frozenset(), 2: frozenset(), 3: frozenset(), 4: frozenset()}
    assert snap["Archive"] == {1: frozenset({"\\Seen"})}
    log_before = srv.mail_log_lines(user)
    assert len(log_before) == 1 and ": save: " in log_before[0]  # the APPEND

    with srv.connect(user) as client:
        for folder in ("INBOX", "Archive", "Junk"):
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if uids:
                fetched = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
                assert all(b"BODY[]" in d for d in fetched.values())
    srv.wait_for_logout(user, count=2)  # the append session + this one
    assert srv.flags_snapshot(user) == snap
    assert srv.mail_log_lines(user) == log_before

    with srv.connect(user) as client:
        client.select_folder("INBOX")
        client.add_flags([uid], [b"\\Seen"])
    srv.wait_for_logout(user, count=3)
    new_lines = srv.mail_log_lines(user)[len(log_before) :]
    assert len(new_lines) == 1
    assert ": flag_change: box=INBOX, uid=1," in new_lines[0] and "\\Seen" in new_lines[0]
    assert srv.flags_snapshot(user)["INBOX"][uid] == frozenset({"\\Seen"})


def test_bulk_maildir_files_keep_order_and_bypass_quota(dovecot_server: DovecotServer) -> None:
    srv = dovecot_server
    user = srv.new_user(quota_kib=100)
    n = 3000
    written = srv.write_maildir_files(
        user, "INBOX", (make_message(f"bulk {i}", message_id=f"<b{i}@t>") for i in range(n))
    )
    assert written == n
    with srv.connect(user) as client:
        info = client.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == n
        ids = client.fetch([1, 1500, n], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    assert b"<b0@t>" in ids[1][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
    assert b"<b1499@t>" in ids[1500][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
    assert b"<b2999@t>" in ids[n][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
    srv.recalc_quota(user)
    usage = srv.quota(user)
    assert usage.messages == n and usage.storage_kib > 100  # over quota: files bypass it


def test_stop_kills_everything_and_removes_the_dir() -> None:
    srv = DovecotServer()
    with srv:
        assert srv._proc is not None
        base, port, pid = srv.base, srv.imaps_port, srv._proc.pid
        assert base.is_dir() and len(str(base / "run" / "auth-userdb")) < 100
        user = srv.add_user("carol", "pw")
        client = srv.connect(user)  # left open on purpose
    assert not base.exists()
    assert not Path(f"/proc/{pid}").exists()
    leftovers = [
        proc
        for proc in Path("/proc").iterdir()
        if proc.name.isdigit() and _pgid(proc) == pid  # master's process group
    ]
    assert leftovers == []
    with pytest.raises(OSError):
        socket.create_connection((srv.host, port), timeout=2).close()
    with pytest.raises(Exception):  # noqa: B017  (server side is gone)
        client.noop()


def _pgid(proc: Path) -> int | None:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return None
    state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
    return None if state == "Z" else int(pgrp)  # a zombie is dead, only not yet reaped
