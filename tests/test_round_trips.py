"""A rescan asks the server only about what changed (issue #11), against a real Dovecot.

Each test runs on Dovecot as it is (LIST-STATUS, CONDSTORE), with LIST-STATUS hidden (STATUS
commands sent in one write instead), and with CONDSTORE/QRESYNC hidden too. Dovecot's rawlog
records the commands each session sent after login.
"""

from __future__ import annotations

from pathlib import Path

import mailfactory
import pytest
from dovecot import DovecotServer
from test_imap import Run, Writes, account_toml, recording_opener, write_config

DEEP = "Archive/2024/経理課"
FOLDERS = ("Archive", "Archive/2024", DEEP, "Suppliers")
HIDDEN = {
    "all": (),
    "no-list-status": ("LIST-STATUS",),
    "no-list-status-no-condstore": ("LIST-STATUS", "CONDSTORE", "QRESYNC"),
}


@pytest.fixture(scope="module", params=list(HIDDEN))
def server(request, dovecot_server):
    """A Dovecot with rawlog whose CAPABILITY leaves out the extensions named by the param."""
    probe = dovecot_server.connect(dovecot_server.new_user("caps"))
    caps = [c.decode() for c in probe.capabilities()]
    probe.logout()
    hidden = HIDDEN[request.param]
    override = " ".join(c for c in caps if c not in hidden) if hidden else None
    with DovecotServer(imap_capability=override, rawlog=True) as server:
        server.list_status = "LIST-STATUS" not in hidden
        yield server


def mailbox(server: DovecotServer, prefix: str):
    user = server.new_user(prefix, quota_kib=10240, folders=FOLDERS)
    uids = {
        "inbox": server.append(user, "INBOX", mailfactory.build("password_registration")),
        "junk": server.append(user, "Junk", mailfactory.build("account_notice")),
        "deep": server.append(user, DEEP, mailfactory.build("user_confirmation")),
    }
    for folder in ("INBOX", "Suppliers", DEEP, "Archive"):
        server.append(user, folder, mailfactory.build("unrelated"))
    return user, uids


def report(run: Run) -> tuple:
    """What a report is made of: every stored message where it is (or was), and the paths."""
    account = run.config.accounts[0].name
    stored = sorted((m.folder, m.type, m.present, m.sha256) for m in run.repo.messages(account))
    return stored, run.paths()


def fresh_report(server: DovecotServer, user, tmp: Path) -> tuple:
    """The report of one scan into a new database: what the incremental runs must match."""
    tmp.mkdir()
    run = Run(write_config(tmp, account_toml(server, user, tmp)))
    assert run.scan().accounts[0].ok
    return report(run)


def last_session(server: DovecotServer, user, scans: int) -> list[str]:
    server.wait_for_logout(user.name, count=scans)
    return server.session_commands(user)[-1]


def listing(server: DovecotServer, folders: int) -> list[str]:
    """The commands that ask for every folder's state: LIST-STATUS, or LIST and STATUSes."""
    return ["LIST"] if server.list_status else ["LIST"] + ["STATUS"] * folders


def test_unchanged_rescan_is_the_folder_list_and_logout(server, tmp_path):
    user, _ = mailbox(server, "unchanged")
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    first = run.scan().accounts[0]
    assert (first.fetched, first.stored) == (3, 3), first.error
    before = report(run)
    log_before = len(server.mail_log_lines(user.name))
    again = run.scan().accounts[0]
    assert (again.ok, again.fetched, again.stored) == (True, 0, 0)
    scanned = len(again.folders)
    assert scanned == 2 + len(FOLDERS)  # INBOX, Junk and the others: every one looked at
    assert last_session(server, user, 2) == listing(server, scanned) + ["LOGOUT"]
    assert report(run) == before
    assert server.mail_log_lines(user.name)[log_before:] == []  # read-only still


def test_new_mail_in_a_deep_folder_opens_only_that_folder(server, tmp_path):
    user, _ = mailbox(server, "deepnew")
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    run.scan()
    server.append(user, DEEP, mailfactory.build("password_registration", login_id="kgs-ume02"))
    again = run.scan().accounts[0]
    assert (again.fetched, again.stored) == (1, 1), again.error
    commands = last_session(server, user, 2)
    assert commands.count("EXAMINE") == 1 and "GETQUOTAROOT" in commands  # usage may move
    assert "UID SEARCH" in commands and commands.count("UID FETCH") == 1
    assert report(run) == fresh_report(server, user, tmp_path / "fresh")
    run.scan()  # the folder's new state was stored: nothing to open any more
    assert last_session(server, user, 4) == listing(server, len(again.folders)) + ["LOGOUT"]


def _expunge(server: DovecotServer, user, folder: str, uid: int) -> None:
    client = server.connect(user)
    client.select_folder(folder)
    client.delete_messages([uid])
    client.expunge()
    client.logout()


def _present(run: Run, folder: str) -> dict[str, bool]:
    account = run.config.accounts[0].name
    return {m.type: m.present for m in run.repo.messages(account) if m.folder == folder}


def test_mail_gone_from_a_folder_is_noticed(server, tmp_path):
    user, uids = mailbox(server, "gone")
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    run.scan()
    _expunge(server, user, "Junk", uids["junk"])  # MESSAGES went down
    assert run.scan().accounts[0].ok
    assert _present(run, "Junk") == {"account_notice": False}
    assert "EXAMINE" in last_session(server, user, 3)


def test_mail_gone_while_new_mail_keeps_the_count_is_noticed(server, tmp_path):
    """One known message expunged, one new: MESSAGES is the same, UIDNEXT moved by one."""
    user, uids = mailbox(server, "swapped")
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    run.scan()
    _expunge(server, user, "INBOX", uids["inbox"])
    server.append(user, "INBOX", mailfactory.build("unrelated"))
    again = run.scan().accounts[0]
    assert (again.fetched, again.stored) == (0, 0)  # the new one is not G-MIS-looking
    assert _present(run, "INBOX") == {"password_registration": False}
    server.wait_for_logout(user.name, count=3)
    assert "UID SEARCH" in server.session_commands(user)[-1]


def test_uidvalidity_change_rescans_that_folder_without_duplicates(server, tmp_path):
    user, _ = mailbox(server, "renumbered")
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    run.scan()
    count = run.repo.message_count()
    server.change_uidvalidity(user, DEEP, renumber=True)
    again = run.scan().accounts[0]
    assert again.ok and again.stored == 0 and run.repo.message_count() == count
    assert dict((n, f) for n, _, f in again.folders)[DEEP] == 1  # fetched again, stored once
    assert last_session(server, user, 2).count("EXAMINE") == 1
    assert report(run) == fresh_report(server, user, tmp_path / "fresh")


def test_every_command_goes_in_one_write(server, tmp_path):
    """No split sends: IMAPClient alone writes a command's text and its CRLF separately."""
    from gmis_mailscan.scan import scan

    user, _ = mailbox(server, "onewrite")
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    sockets: list[Writes] = []
    opener = recording_opener(sockets)

    for scans in (1, 2):
        server.append(user, DEEP, mailfactory.build("password_registration"))
        assert scan(run.config, run.rules, run.repo, opener=opener).accounts[0].ok
        (writes,) = [s.writes for s in sockets[-1:]]
        commands = last_session(server, user, scans)
        assert all(w.endswith(b"\r\n") for w in writes)
        assert sum(w.count(b"\r\n") for w in writes) == len(commands)  # whole lines only
        if server.list_status or scans == 2:  # EXAMINE + SEARCH, or the STATUSes, together
            assert len(writes) < len(commands)
        assert "CAPABILITY" not in commands  # the login answer said them


def test_first_scan_opens_and_searches_the_folders_in_flights(server, tmp_path, monkeypatch):
    """INBOX opened and searched in one write before the list; the other 10 folders in flights
    of 4 (EXAMINE + UID SEARCH), GETQUOTAROOT on the last; then one write fetching the matches
    of four folders. Dovecot's rawlog holds the same commands, and the mailbox is unchanged."""
    from gmis_mailscan.scan import scan
    from gmis_mailscan.sources import imap

    monkeypatch.setattr(imap, "FLIGHT_FOLDERS", 4)
    many = tuple(f"Dept{i:02d}" for i in range(9))
    user = server.new_user("flights", quota_kib=10240, folders=many)
    server.append(user, "INBOX", mailfactory.build("password_registration"))
    for folder in ("Dept03", "Dept07", "Junk"):
        server.append(user, folder, mailfactory.build("account_notice", institution=folder))
        server.append(user, folder, mailfactory.build("unrelated"))
    before = server.mailbox_snapshot(user)
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    sockets: list[Writes] = []
    opener = recording_opener(sockets)

    outcome = scan(run.config, run.rules, run.repo, opener=opener).accounts[0]
    assert (outcome.ok, outcome.fetched, outcome.stored) == (True, 4, 4), outcome.error
    assert outcome.quota_ratio is not None
    writes = [w.decode("utf-8", "replace") for w in sockets[0].writes]
    names = [[_name(line) for line in w.splitlines()] for w in writes]
    assert names[0] == ["EXAMINE", "UID SEARCH"] and " EXAMINE INBOX\r\n" in writes[0]
    listed = 1 if server.list_status else 2  # LIST-STATUS, or LIST and a write of STATUSes
    assert names[1] == ["LIST"] and all(n == "STATUS" for w in names[2 : 1 + listed] for n in w)
    searches, fetches = writes[1 + listed : -2], writes[-2]
    assert [w.count(" EXAMINE ") for w in searches] == [4, 4, 2]  # Dept00-08 and Junk
    assert [w.count(" UID SEARCH ") for w in searches] == [4, 4, 2]
    assert ["GETQUOTAROOT" in w for w in searches] == [False, False, True]
    assert fetches.count(" UID FETCH ") == 4 and fetches.count("BODY.PEEK[]") == 4
    assert fetches.count(" EXAMINE ") == 4 and "STORE" not in "".join(writes)
    assert names[-1] == ["LOGOUT"]
    assert last_session(server, user, 1) == [n for w in names for n in w]
    stored = [(folder, kind, present) for folder, kind, present, _ in report(run)[0]]
    assert stored == [
        ("Dept03", "account_notice", True),
        ("Dept07", "account_notice", True),
        ("INBOX", "password_registration", True),
        ("Junk", "account_notice", True),
    ]
    assert server.mailbox_snapshot(user) == before


def _name(line: str) -> str:
    """A command line's name as session_commands gives it ("UID SEARCH", "EXAMINE")."""
    words = line.split()
    return " ".join(words[1:3] if words[1] == "UID" else words[1:2]).upper()


def test_quota_is_asked_after_a_big_folder_not_before(server, tmp_path, monkeypatch):
    """A folder of several search windows is opened alone, after the flights: GETQUOTAROOT
    then waits until it is read (on Dovecot every open after GETQUOTAROOT is slower)."""
    from gmis_mailscan.scan import scan
    from gmis_mailscan.sources import imap

    monkeypatch.setattr(imap, "SEARCH_WINDOW", 2)
    user = server.new_user("bigfolder", quota_kib=10240, folders=("Big", "Small"))
    for n in range(5):
        server.append(user, "Big", mailfactory.build("account_notice", institution=f"病院{n}"))
    server.append(user, "Small", mailfactory.build("user_confirmation"))
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    sockets: list[Writes] = []
    outcome = scan(run.config, run.rules, run.repo, opener=recording_opener(sockets)).accounts[0]
    assert (outcome.ok, outcome.fetched) == (True, 6), outcome.error
    assert outcome.quota_ratio is not None
    lines = b"".join(sockets[0].writes).decode().splitlines()
    names = [_name(line) for line in lines]
    big = [i for i, line in enumerate(lines) if line.endswith(' EXAMINE "Big"')]
    assert len(big) == 1 and names.count("GETQUOTAROOT") == 1
    assert big[0] < names.index("GETQUOTAROOT") == len(names) - 2  # then LOGOUT
    assert names[big[0] + 1 :].count("UID SEARCH") == 3  # windows 1:2, 3:4, 5:*
