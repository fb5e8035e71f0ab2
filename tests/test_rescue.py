"""`rescue` against real Dovecot servers: with MOVE, without MOVE (COPY + UID EXPUNGE), and
without UIDPLUS (COPY only), the capabilities hidden with `imap_capability`.

Each mailbox holds, in Junk, a genuine password mail (the one to move) between neighbours
that must not change: ordinary spam, a spoof of the password mail, and a message the user had
marked \\Deleted (a plain EXPUNGE or CLOSE would remove it). Every test compares full
snapshots of the mailbox (flags and bytes of every message of every folder) before and after,
and reads Dovecot's mail_log for every change the server made.
"""

from __future__ import annotations

import os
import subprocess
import sys

import mailfactory
import pytest
from dovecot import DovecotServer
from reliability import cli, imap_account, report, rows, run_scan, sqlite_url, write_config
from tcpproxy import TcpProxy

GENUINE = mailfactory.build("password_registration", institution="さくら病院")
SPOOF = mailfactory.build(
    "password_registration", institution="さくら病院", sender="info@g-rnis.net"
)
SPAM = mailfactory.build("unrelated", subject="激安セール")
MARKED_DELETED = mailfactory.build("unrelated", subject="ごみ箱行き")


@pytest.fixture(scope="module")
def no_move_server():
    with DovecotServer(hide_capabilities=("MOVE",)) as server:
        yield server


@pytest.fixture(scope="module")
def no_uidplus_server():
    with DovecotServer(hide_capabilities=("MOVE", "UIDPLUS")) as server:
        yield server


@pytest.fixture(params=["move", "copy+expunge", "copy"])
def kind(request):
    return request.param


@pytest.fixture
def server(kind, request):
    name = {"move": "dovecot_server", "copy+expunge": "no_move_server"}.get(
        kind, "no_uidplus_server"
    )
    return request.getfixturevalue(name)


class Mailbox:
    """A user with the junk folder described above, its config and a database."""

    def __init__(self, server: DovecotServer, tmp, port: int | None = None, **account) -> None:
        self.server = server
        self.user = server.new_user("rescue", folders=("Archive",))
        server.append(self.user, "INBOX", mailfactory.build("unrelated"))
        self.spam = server.append(self.user, "Junk", SPAM)
        self.genuine = server.append(self.user, "Junk", GENUINE)
        self.spoof = server.append(self.user, "Junk", SPOOF)
        self.deleted = server.append(self.user, "Junk", MARKED_DELETED, flags=[b"\\Deleted"])
        self.db = sqlite_url(tmp / "db.sqlite3")
        self.tmp = tmp
        self.config = self.config_for(port or server.imap_port, **account)

    def config_for(self, port: int, name: str = "config", **account):
        acct = imap_account(self.server, self.user, self.tmp, port, name="sakura", **account)
        return write_config(self.tmp / f"{name}.toml", self.db, [acct])

    def scan(self):
        outcome = run_scan(self.config)  # in-process: the CLI's own start-up is tested elsewhere
        assert outcome.status == "ok", outcome.accounts[0].error

    def rescue_cut_off(self, after: bytes) -> None:
        """`rescue --all --yes` through a proxy that drops the connection after `after`."""
        with TcpProxy(self.server.imap_port, cut_server_after=after) as proxy:
            result = cli(self.config_for(proxy.port, "proxied"), "rescue", "--all", "--yes")
        assert proxy.cuts == 1
        assert result.returncode == 4, result.stdout + result.stderr
        assert "connection to 127.0.0.1" in result.stderr and "lost" in result.stderr

    def snapshot(self):
        return self.server.mailbox_snapshot(self.user)

    def log_mark(self) -> tuple[int, int]:
        """Where the mail_log stands: (changes logged, sessions ended)."""
        return len(self.server.mail_log_changes(self.user)), self._sessions()

    def changes_since(self, mark: tuple[int, int], sessions: int) -> list[tuple[str, str, int]]:
        """The changes Dovecot logged after `mark`, once `sessions` more sessions ended.

        Dovecot's log process writes a moment after the IMAP reply; each session's mail_log
        lines come before its own "Disconnected" line, so waiting for those is a barrier.
        """
        self.server.wait_for_logout(self.user, count=mark[1] + sessions)
        return self.server.mail_log_changes(self.user)[mark[0] :]

    def _sessions(self) -> int:
        pattern = rf"imap\({self.user.name}\)<.*: Disconnected: "
        return len(self.server.wait_for_log(pattern, count=0))

    def rescues(self):
        return rows(
            self.db,
            "SELECT from_folder, from_uid, to_folder, to_uid, method, status, who, "
            "finished_at IS NOT NULL FROM rescues ORDER BY id",
        )

    def institution(self) -> dict:
        (item,) = report(self.config)["institutions"]
        return item


def _assert_only_genuine_left_junk(before, after, box: Mailbox, kind: str) -> int:
    """INBOX gained exactly the genuine mail (byte-identical); Junk lost only it (or, without
    UIDPLUS, kept it with $NotJunk); nothing else changed. Returns the new UID."""
    new = set(after["INBOX"]) - set(before["INBOX"])
    assert len(new) == 1, f"INBOX gained {sorted(new)}"
    (new_uid,) = new
    flags, data = after["INBOX"][new_uid]
    assert data == GENUINE  # byte-identical
    assert flags == before["Junk"][box.genuine][0] | {"$NotJunk"}
    assert {u: v for u, v in after["INBOX"].items() if u != new_uid} == before["INBOX"]
    junk_before = dict(before["Junk"])
    if kind == "copy":  # no UIDPLUS: the original stays, told not to be junk
        junk_before[box.genuine] = (junk_before[box.genuine][0] | {"$NotJunk"}, GENUINE)
    else:
        del junk_before[box.genuine]
    assert after["Junk"] == junk_before
    assert after["Junk"][box.spoof][1] == SPOOF
    assert after["Junk"][box.deleted] == (frozenset({"\\Deleted"}), MARKED_DELETED)
    assert {f: v for f, v in after.items() if f not in ("INBOX", "Junk")} == {
        f: v for f, v in before.items() if f not in ("INBOX", "Junk")
    }
    return new_uid


def test_rescue_moves_exactly_the_genuine_mail(server, kind, tmp_path):
    box = Mailbox(server, tmp_path)
    box.scan()
    assert box.institution()["path"] == "method2"
    before, mark = box.snapshot(), box.log_mark()

    result = cli(box.config, "rescue", "--all", "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    after = box.snapshot()
    new_uid = _assert_only_genuine_left_junk(before, after, box, kind)
    # Dovecot's own log: the server changed the genuine mail in Junk and nothing else.
    logged = box.changes_since(mark, sessions=2)  # the rescue's session and the snapshot's
    changed = {(folder, uid) for _, folder, uid in logged}
    assert changed <= {("Junk", box.genuine), ("INBOX", new_uid)}
    assert ("Junk", box.genuine) in changed
    events = {event for event, folder, _ in logged if folder == "Junk"}
    assert ("expunge" in events) == (kind != "copy")
    # What the user reads.
    line = {"move": "(MOVE)", "copy+expunge": "(COPY+EXPUNGE)", "copy": "no UIDPLUS"}[kind]
    assert line in result.stdout
    assert "suspicious" in result.stdout and f"uid {box.spoof}" in result.stdout
    assert "password_mail_received → 対応方法4" in result.stdout
    # What the database says: the move, and the message in its new folder.
    ((src, src_uid, dst, dst_uid, method, status, who, finished),) = box.rescues()
    assert (src, src_uid, dst, dst_uid) == ("Junk", box.genuine, "INBOX", new_uid)
    assert (method, status, finished) == (kind, "copied" if kind == "copy" else "moved", 1)
    assert "@" in who
    item = box.institution()
    assert (item["path"], item["state"]) == ("method4", "password_mail_received")
    assert "迷惑メール(J)" in " ".join(item["instructions"])  # the Outlook steps of 対応方法2
    assert "info@g-mis.net" in " ".join(item["instructions"])
    genuine = [e for e in item["evidence"] if e["genuine"]]
    folders = sorted(e["folder"] for e in genuine)
    assert folders == (["INBOX", "Junk"] if kind == "copy" else ["INBOX"])
    assert all(e["present"] for e in genuine)
    assert not any("no longer in the mailbox" in w for w in item["warnings"])
    assert rows(box.db, "SELECT COUNT(*) FROM messages") == [(2,)]  # genuine + spoof, once

    # A scan afterwards agrees (no duplicate, no removed warning); a second rescue moves nothing.
    box.scan()
    assert box.institution() == item
    mark = box.log_mark()
    again = cli(box.config, "rescue", "--all", "--yes")
    assert again.returncode == 0, again.stderr
    assert "0 moved, 0 copied" in again.stdout
    assert box.snapshot() == after
    sessions = 2 if kind == "copy" else 1  # with the original still in junk it looks again
    assert box.changes_since(mark, sessions) == []
    assert len(box.rescues()) == 1


def test_dry_run_lists_and_changes_nothing(dovecot_server, tmp_path):
    box = Mailbox(dovecot_server, tmp_path)
    box.scan()
    before, mark = box.snapshot(), box.log_mark()

    result = cli(box.config, "rescue", "sakura", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert f"Junk uid {box.genuine}: would move to INBOX (MOVE)" in result.stdout
    assert "1 would move" in result.stdout and "nothing changed" in result.stdout
    assert box.snapshot() == before
    assert box.changes_since(mark, sessions=2) == []  # the rescue's session and the snapshot's
    assert box.rescues() == []
    assert box.institution()["path"] == "method2"


def test_without_a_terminal_nothing_moves_unless_yes(dovecot_server, tmp_path):
    box = Mailbox(dovecot_server, tmp_path)
    box.scan()
    before = box.snapshot()
    result = cli(box.config, "rescue", "--all")  # stdin is not a terminal
    assert result.returncode == 2
    assert "--yes" in result.stderr
    none = cli(box.config, "rescue")
    assert none.returncode == 2 and "--all" in none.stderr
    assert box.snapshot() == before
    assert box.rescues() == []


def test_message_changed_on_the_server_is_refused(dovecot_server, tmp_path):
    """The server rebuilt Junk under the same UIDVALIDITY: the genuine mail's UID now names
    another message (of another size). A stale database must not move it."""
    server = dovecot_server
    box = Mailbox(server, tmp_path)
    box.scan()
    validity = server.uidvalidity(box.user, "Junk")
    for uid in (box.spam, box.genuine):  # the two before the spoof: UIDs shift by two
        server.doveadm("expunge", "mailbox", "Junk", "uid", str(uid), user=box.user)
    server.change_uidvalidity(box.user, "Junk", renumber=True)
    server.doveadm("mailbox", "update", "--uid-validity", str(validity), "Junk", user=box.user)
    assert server.uidvalidity(box.user, "Junk") == validity
    before, mark = box.snapshot(), box.log_mark()
    # Another message, of another size, now has the genuine mail's UID.
    assert before["Junk"][box.genuine][1] == MARKED_DELETED
    assert len(MARKED_DELETED) != len(GENUINE)

    result = cli(box.config, "rescue", "--all", "--yes")

    assert result.returncode == 3
    assert f"Junk uid {box.genuine}: refused: changed on the server since the scan (size" in (
        result.stderr
    )
    assert box.snapshot() == before
    assert box.changes_since(mark, sessions=2) == []  # the rescue's session and the snapshot's
    assert box.rescues() == []


def test_destination_must_be_a_safe_existing_folder(dovecot_server, tmp_path):
    box = Mailbox(dovecot_server, tmp_path, rescue_folder="Archive")
    box.scan()
    before = box.snapshot()
    for to, why in (("Junk", "is a junk folder"), ("Nowhere", "not found on the server")):
        result = cli(box.config, "rescue", "--all", "--yes", "--to", to)
        assert result.returncode == 4, result.stdout
        assert why in result.stderr
    assert box.snapshot() == before
    # rescue_folder from the config.
    result = cli(box.config, "rescue", "--all", "--yes")
    assert result.returncode == 0, result.stderr
    after = box.snapshot()
    assert [data for _, data in after["Archive"].values()] == [GENUINE]
    assert box.genuine not in after["Junk"]
    assert box.institution()["path"] == "method4"


def test_cut_between_copy_and_expunge_is_repaired_by_the_next_run(no_move_server, tmp_path):
    box = Mailbox(no_move_server, tmp_path)
    box.scan()
    before = box.snapshot()
    box.rescue_cut_off(after=b"[COPYUID ")  # the server copied; its answer is lost
    middle = box.snapshot()  # copied, not yet expunged: in both folders, nothing lost
    assert [d for _, d in middle["INBOX"].values()].count(GENUINE) == 1
    assert middle["Junk"] == {
        **before["Junk"],
        box.genuine: (frozenset({"$NotJunk"}), GENUINE),  # set before the copy, travels with it
    }
    assert [r[5] for r in box.rescues()] == ["started"]
    # A scan in between sees it in both folders: one message, the database agrees.
    box.scan()
    assert rows(box.db, "SELECT COUNT(*) FROM messages") == [(2,)]
    assert box.institution()["path"] == "method4"

    result = cli(box.config, "rescue", "--all", "--yes")

    assert result.returncode == 0, result.stderr
    assert "(a copy was there already; original expunged by UID)" in result.stdout
    after = box.snapshot()
    new_uid = _assert_only_genuine_left_junk(before, after, box, "copy+expunge")
    ((_, _, dst, dst_uid, _, status, _, finished),) = box.rescues()
    assert (dst, dst_uid, status, finished) == ("INBOX", new_uid, "moved", 1)
    box.scan()
    item = box.institution()
    assert [e["folder"] for e in item["evidence"] if e["genuine"]] == ["INBOX"]
    assert rows(box.db, "SELECT COUNT(*) FROM messages") == [(2,)]


def test_cut_after_move_is_recorded_by_the_next_run(dovecot_server, tmp_path):
    box = Mailbox(dovecot_server, tmp_path)
    box.scan()
    before = box.snapshot()
    box.rescue_cut_off(after=b"Move completed")
    after = box.snapshot()  # MOVE is atomic: already in exactly one folder
    new_uid = _assert_only_genuine_left_junk(before, after, box, "move")

    result = cli(box.config, "rescue", "--all", "--yes")

    assert result.returncode == 0, result.stderr
    assert "the interrupted move is recorded as done" in result.stdout
    assert box.snapshot() == after
    ((_, _, dst, dst_uid, _, status, _, _),) = box.rescues()
    assert (dst, dst_uid, status) == ("INBOX", new_uid, "moved")
    item = box.institution()
    assert item["path"] == "method4"
    assert [e["folder"] for e in item["evidence"] if e["genuine"]] == ["INBOX"]
    assert not any("no longer in the mailbox" in w for w in item["warnings"])


def test_on_a_terminal_it_asks_first(dovecot_server, tmp_path):
    box = Mailbox(dovecot_server, tmp_path)
    box.scan()
    before = box.snapshot()
    declined = _on_a_terminal(box.config, "n\n")
    assert "would move to INBOX (MOVE)" in declined and "Move these messages?" in declined
    assert "nothing moved" in declined
    assert box.snapshot() == before
    accepted = _on_a_terminal(box.config, "y\n")
    assert "moved to INBOX (MOVE)" in accepted
    assert [d for _, d in box.snapshot()["INBOX"].values()].count(GENUINE) == 1


def _on_a_terminal(config, answer: str) -> str:
    """`rescue --all` with a pseudo-terminal as stdin, `answer` typed ahead; its output."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gmis_mailscan", "--config", str(config), "rescue", "--all"],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.write(master, answer.encode())
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    return out


def test_same_mail_in_two_junk_folders_lands_once(dovecot_server, tmp_path):
    """A filter filed the mail in 迷惑メール and in Spam: INBOX gets one copy, both go."""
    server = dovecot_server
    user = server.new_user("twojunk", junk_name="迷惑メール", folders=("Spam",))
    first = server.append(user, "迷惑メール", GENUINE)
    second = server.append(user, "Spam", GENUINE)
    neighbour = server.append(user, "Spam", SPAM, flags=[b"\\Deleted"])
    db = sqlite_url(tmp_path / "db.sqlite3")
    config = write_config(
        tmp_path / "config.toml", db, [imap_account(server, user, tmp_path, server.imap_port)]
    )
    assert run_scan(config).status == "ok"
    assert rows(db, "SELECT COUNT(*) FROM messages") == [(1,)]

    result = cli(config, "rescue", "--all", "--yes")

    assert result.returncode == 0, result.stderr
    assert f"迷惑メール uid {first}: moved to INBOX" in result.stdout
    assert f"Spam uid {second}: moved to INBOX" in result.stdout
    # The first is moved; the second is then the original of a copy, expunged by UID.
    assert result.stdout.count("(MOVE)") == 1
    assert result.stdout.count("(a copy was there already; original expunged by UID)") == 1
    after = server.mailbox_snapshot(user)
    assert [d for _, d in after["INBOX"].values()] == [GENUINE]
    assert after["迷惑メール"] == {}
    assert after["Spam"] == {neighbour: (frozenset({"\\Deleted"}), SPAM)}
    (item,) = report(config)["institutions"]
    assert item["path"] == "method4"
    assert [e["folder"] for e in item["evidence"]] == ["INBOX"]
