"""IMAP scanning against the real Dovecot started by tests/dovecot.py (no IMAP mock)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import inprocess
import mailfactory
import pytest
from dovecot import DovecotServer

from gmis_mailscan.config import load_config
from gmis_mailscan.rules import load_rules
from gmis_mailscan.scan import open_source, scan
from gmis_mailscan.sources.imap import search_criteria
from gmis_mailscan.status import assess_all
from gmis_mailscan.store.db import connect
from gmis_mailscan.store.repo import Repo

TOKEN = "ImapTestTokenQx7pL2mN9vR4tY8wZ1aB"


def account_toml(server: DovecotServer, user, tmp: Path, **over) -> str:
    """One [[accounts]] table for a Dovecot user; the password in a file beside the config."""
    pw_file = tmp / f"{user.name}.password"
    pw_file.write_text(over.pop("password", user.password) + "\n")
    values = {
        "name": user.name,
        "host": "127.0.0.1",
        "port": server.imaps_port,
        "security": "tls",
        "username": user.name,
        "password_file": str(pw_file),
        "ca_file": str(server.ca_file),
    }
    values.update(over)
    lines = ["[[accounts]]"]
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def write_config(tmp: Path, *accounts: str, extra: str = "") -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp}/db.sqlite3"\n{extra}\n' + "".join(accounts)
    )
    return path


class Run:
    """Config + rules + repo for one test, and helpers to scan and read the outcome."""

    def __init__(self, config_path: Path):
        self.config = load_config(config_path)
        self.rules = load_rules()
        self.repo = Repo(connect(self.config.database_url))

    def scan(self):
        return scan(self.config, self.rules, self.repo)

    def paths(self) -> dict[str, str]:
        return {a.account: a.decision.path for a in assess_all(self.config, self.rules, self.repo)}

    def assessments(self):
        return assess_all(self.config, self.rules, self.repo)


class Writes:
    """A socket that records each write (sendall) before passing it on."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self.writes: list[bytes] = []

    def sendall(self, data) -> None:
        self.writes.append(bytes(data))
        self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def recording_opener(sockets: list[Writes]):
    """A scan's source opener whose IMAP connections record their writes in `sockets`."""

    def opener(account, config, rules):
        source = open_source(account, config, rules)
        sockets.append(Writes(source.client._imap.sock))
        source.client._imap.sock = sockets[-1]
        return source

    return opener


def cli(config: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """In-process (tests/inprocess.py): these tests check only output and exit code."""
    return inprocess.run(["--config", str(config), *args], env=env)


@pytest.fixture
def server(dovecot_server):
    return dovecot_server


def test_search_criteria_is_one_nested_or(rules):
    crit = search_criteria(rules)
    assert crit[:3] == ["OR", "FROM", "g-mis"]
    flat = json.dumps(crit)
    assert all(term in flat for term in rules.server_search_from + rules.server_search_subject)


def test_password_mail_only_in_japanese_junk_folder_gives_method2(server, tmp_path):
    user = server.new_user("junkjp", quota_kib=10240, junk_name="迷惑メール")
    server.append(user, "INBOX", mailfactory.build("unrelated"))
    server.append(user, "迷惑メール", mailfactory.build("password_registration", token=TOKEN))
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    outcome = run.scan()
    account = outcome.accounts[0]
    assert account.ok, account.error
    assert ("迷惑メール", "junk", 1) in account.folders
    assert run.paths() == {user.name: "method2"}


def test_junk_found_by_name_without_the_flag(tmp_path):
    """A server that flags nothing: 迷惑メール and [Gmail]/Spam are junk by name alone."""
    with DovecotServer(junk_names=()) as bare:
        user = bare.new_user("noflag", junk_name=None, folders=("迷惑メール", "Archive"))
        flags = {name: f for f, _, name in bare.connect(user).list_folders()}
        assert b"\\Junk" not in flags["迷惑メール"]
        bare.append(user, "迷惑メール", mailfactory.build("password_registration"))
        bare.append(user, "Archive", mailfactory.build("unrelated"))
        run = Run(write_config(tmp_path, account_toml(bare, user, tmp_path)))
        account = run.scan().accounts[0]
        assert account.ok, account.error
        roles = {name: role for name, role, _ in account.folders}
        assert roles == {"INBOX": "inbox", "迷惑メール": "junk", "Archive": "other"}
        assert run.paths() == {user.name: "method2"}


def test_auto_folders_skip_drafts_read_sent_for_forwards_only(server, tmp_path):
    """A filter may file the mail under 'G-MIS'; a forwarded copy in Sent is not evidence."""
    user = server.new_user("filtered", folders=("G-MIS", "Sent", "Drafts", "送信済みアイテム"))
    server.append(user, "G-MIS", mailfactory.build("password_registration"))
    forwarded = mailfactory.build(
        "password_registration",
        subject_prefix="Fwd: ",
        sender="jimu@sakura-hospital.example",
        display_name="さくら病院 事務",
    )
    for folder in ("Sent", "Drafts", "送信済みアイテム"):
        server.append(user, folder, forwarded)
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    account = run.scan().accounts[0]
    roles = {name: role for name, role, _ in account.folders}
    assert roles == {
        "G-MIS": "other",
        "INBOX": "inbox",
        "Junk": "junk",
        "Sent": "sent",
        "送信済みアイテム": "sent",
    }
    (assessment,) = run.assessments()
    assert assessment.decision.path == "method4"
    assert not assessment.warnings  # a forward is no warning, and it never counts
    assert [(m.folder, m.genuine) for m in assessment.evidence if not m.genuine] == [
        ("Sent", False),
        ("送信済みアイテム", False),
    ]


def test_nearly_full_mailbox_without_gmis_mail_gives_method1(server, tmp_path):
    user = server.new_user("full", quota_kib=1024)
    server.append(user, "INBOX", mailfactory.build("unrelated"))
    usage = server.fill_to_percent(user, 95)
    assert usage.percent >= 90
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    assert run.scan().accounts[0].quota_ratio >= 0.9
    (assessment,) = run.assessments()
    assert assessment.decision.path == "method1"
    assert assessment.quota.limit_kib == 1024


def test_quota_unknown_without_a_limit_gives_register(server, tmp_path):
    user = server.new_user("nolimit")
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    assert run.scan().accounts[0].quota_ratio is None
    (assessment,) = run.assessments()
    assert (assessment.decision.path, assessment.quota) == ("register", None)
    assert "unknown" in " ".join(assessment.decision.reasons)


def test_scan_changes_no_flag_and_rescan_fetches_nothing(server, tmp_path):
    user = server.new_user("readonly", quota_kib=10240)
    server.append(user, "INBOX", mailfactory.build("password_registration", token=TOKEN))
    server.append(user, "INBOX", mailfactory.build("unrelated"), flags=(b"\\Flagged",))
    server.append(user, "Junk", mailfactory.build("account_notice"))
    before = server.flags_snapshot(user)
    log_before = len(server.mail_log_lines(user.name))
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    first = run.scan().accounts[0]
    assert (first.fetched, first.stored) == (2, 2)
    second = run.scan().accounts[0]
    assert (second.fetched, second.stored) == (0, 0)
    server.wait_for_logout(user.name, count=2)
    assert server.flags_snapshot(user) == before
    assert before["INBOX"] and all(b"\\Seen" not in f for f in before["INBOX"].values())
    assert server.mail_log_lines(user.name)[log_before:] == []  # no flag_change, expunge, copy
    assert run.paths() == {user.name: "method4"}


def test_rescan_after_new_mail_fetches_exactly_the_new_ones(server, tmp_path):
    user = server.new_user("incremental")
    for _ in range(3):
        server.append(user, "INBOX", mailfactory.build("other"))
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    assert run.scan().accounts[0].fetched == 3
    for _ in range(2):
        server.append(user, "INBOX", mailfactory.build("unrelated"))
    server.append(user, "INBOX", mailfactory.build("password_registration"))
    again = run.scan().accounts[0]
    assert (again.fetched, again.stored) == (1, 1)
    assert run.paths() == {user.name: "method4"}


def test_uidvalidity_change_rescans_without_duplicates(server, tmp_path):
    user = server.new_user("uidv")
    server.append(user, "INBOX", mailfactory.build("password_registration"))
    server.append(user, "INBOX", mailfactory.build("other"))
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    assert run.scan().accounts[0].stored == 2
    server.change_uidvalidity(user, "INBOX", renumber=True)
    again = run.scan().accounts[0]
    assert (again.fetched, again.stored) == (2, 0)
    assert run.repo.message_count() == 2
    locations = [m.locator for m in run.repo.messages(user.name)]
    assert len(locations) == 2 and len(set(locations)) == 2
    assert run.scan().accounts[0].fetched == 0


def test_message_moved_from_junk_to_inbox_is_the_same_message(server, tmp_path):
    user = server.new_user("moved")
    mail = mailfactory.build("password_registration")
    uid = server.append(user, "Junk", mail)
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    run.scan()
    assert run.paths() == {user.name: "method2"}
    client = server.connect(user)  # staff follow 対応方法2 ①: move it to the inbox
    client.select_folder("Junk")
    client.move([uid], "INBOX")
    client.logout()
    assert run.scan().accounts[0].stored == 0
    assert run.repo.message_count() == 1
    assert [(m.folder, m.folder_role) for m in run.repo.messages(user.name)] == [("INBOX", "inbox")]
    assert run.paths() == {user.name: "method4"}


def test_starttls_and_plain_on_loopback(server, tmp_path):
    a = server.new_user("starttls")
    b = server.new_user("plain")
    server.append(a, "INBOX", mailfactory.build("user_confirmation"))
    server.append(b, "INBOX", mailfactory.build("user_confirmation"))
    config = write_config(
        tmp_path,
        account_toml(server, a, tmp_path, security="starttls", port=server.imap_port),
        account_toml(server, b, tmp_path, security="plain", port=server.imap_port, ca_file=None),
    )
    run = Run(config)
    outcome = run.scan()
    assert [a.error for a in outcome.accounts] == [None, None]
    assert set(run.paths().values()) == {"none"}


def test_untrusted_certificate_refused_unless_ca_file_given(server, tmp_path):
    user = server.new_user("tlsca")
    config = write_config(tmp_path, account_toml(server, user, tmp_path, ca_file=None))
    result = cli(config, "scan")
    assert result.returncode == 4
    assert "certificate" in result.stderr and "ca_file" in result.stderr
    config = write_config(tmp_path, account_toml(server, user, tmp_path))
    assert cli(config, "scan").returncode == 0


def test_plain_imap_to_a_remote_host_is_refused(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[[accounts]]\nname = "remote"\nhost = "mail.example.invalid"\nport = 143\n'
        'security = "plain"\nusername = "u"\npassword_env = "NOPE"\n'
    )
    result = cli(config, "scan")
    assert result.returncode == 4
    assert "plain" in result.stderr and "loopback" in result.stderr


def test_wrong_password_for_one_of_two_accounts_is_a_partial_failure(server, tmp_path):
    good = server.new_user("good")
    bad = server.new_user("bad")
    server.append(good, "INBOX", mailfactory.build("password_registration", token=TOKEN))
    config = write_config(
        tmp_path,
        account_toml(server, good, tmp_path),
        account_toml(server, bad, tmp_path, password="WrongSecret-123"),
    )
    result = cli(config, "scan")
    assert result.returncode == 3, result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith(f"{bad.name}:")]
    assert "login refused" in line
    assert "WrongSecret-123" not in result.stdout + result.stderr
    report = json.loads(cli(config, "report", "--format", "json").stdout)
    items = {i["account"]: i for i in report["institutions"]}
    assert items[good.name]["path"] == "method4"
    assert any("login refused" in w for w in items[bad.name]["warnings"])
    assert report["last_scan"]["status"] == "partial"


def test_password_from_env_and_command(server, tmp_path):
    a = server.new_user("envpw")
    b = server.new_user("cmdpw")
    config = write_config(
        tmp_path,
        account_toml(server, a, tmp_path, password_file=None, password_env="GMIS_TEST_PW"),
        account_toml(
            server, b, tmp_path, password_file=None, password_command=f"echo {b.password}"
        ),
    )
    result = cli(config, "scan", env={"GMIS_TEST_PW": a.password})
    assert result.returncode == 0, result.stderr
    missing = cli(config, "scan", env={"GMIS_TEST_PW": ""})
    assert missing.returncode == 3
    assert "GMIS_TEST_PW is not set" in missing.stderr


def test_doctor_lists_folders_roles_quota_and_capabilities(server, tmp_path):
    user = server.new_user("doctor", quota_kib=2048, junk_name="迷惑メール")
    server.append(user, "INBOX", mailfactory.build("unrelated"))
    config = write_config(tmp_path, account_toml(server, user, tmp_path))
    result = cli(config, "doctor", "--lang", "en")
    assert result.returncode == 0, result.stderr
    assert "folder 'INBOX': inbox" in result.stdout
    assert "folder '迷惑メール': junk" in result.stdout
    assert "of 2048 KiB" in result.stdout
    assert "QUOTA" in result.stdout and "SPECIAL-USE" in result.stdout
    assert server.flags_snapshot(user)["INBOX"]  # the message is still there, untouched


def test_explicit_folder_list_and_unknown_folder(server, tmp_path, caplog):
    user = server.new_user("folders", folders=("Archive",))
    server.append(user, "Archive", mailfactory.build("password_registration"))
    run = Run(
        write_config(tmp_path, account_toml(server, user, tmp_path, folders=["INBOX", "Archive"]))
    )
    assert run.scan().accounts[0].ok
    assert run.paths() == {user.name: "method4"}  # "other" folder: not junk
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path, folders=["Nope"])))
    assert run.scan().accounts[0].ok  # a warning (issue 10): the account's other folders count
    assert any("'Nope' not found" in r.getMessage() for r in caplog.records)


def test_deleted_password_mail_still_counts_after_login(server, tmp_path):
    """Staff log in, then delete the mail: the answer must not turn into 'apply anew'."""
    user = server.new_user("deleted")
    uid = server.append(user, "INBOX", mailfactory.build("password_registration"))
    config = write_config(tmp_path, account_toml(server, user, tmp_path))
    assert cli(config, "scan").returncode == 0
    assert cli(config, "mark", user.name, "--login-done").returncode == 0
    client = server.connect(user)
    client.select_folder("INBOX")
    client.delete_messages([uid])
    client.expunge()
    client.logout()
    assert cli(config, "scan").returncode == 0
    (item,) = json.loads(cli(config, "report", "--format", "json").stdout)["institutions"]
    assert (item["state"], item["path"], item["login_id"]) == (
        "login_completed",
        "none",
        "kgs-sakura01",
    )
    assert item["evidence"][0]["present"] is False
    assert any("no longer in the mailbox" in w for w in item["warnings"])
    assert cli(config, "mark", user.name, "--clear").returncode == 0
    (item,) = json.loads(cli(config, "report", "--format", "json").stdout)["institutions"]
    assert item["path"] == "method4"  # received once; the mail cannot be resent


def test_inbox_is_read_before_the_folder_list(server, tmp_path):
    """On Dovecot the first open of a big INBOX after a LIST costs ~60 ms; before it, ~1 ms."""
    user = server.new_user("inboxfirst")
    server.append(user, "INBOX", mailfactory.build("password_registration"))
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    sockets: list[Writes] = []
    account = scan(run.config, run.rules, run.repo, opener=recording_opener(sockets)).accounts[0]
    assert account.ok, account.error
    lines = b"".join(sockets[0].writes).decode().splitlines()
    commands = [line.split()[1].upper() for line in lines]
    assert "LIST" in commands and "EXAMINE" in commands
    assert commands.index("EXAMINE") < commands.index("LIST")
    assert lines[commands.index("EXAMINE")].endswith(" EXAMINE INBOX")
    assert [name for name, _, _ in account.folders] == ["INBOX", "Junk"]


def test_quota_reading_is_kept_while_no_folder_changes(server, tmp_path):
    """GETQUOTAROOT is asked again after a change (a new message), not on an idle rescan."""
    user = server.new_user("quotakept", quota_kib=1024)
    server.append(user, "INBOX", mailfactory.build("unrelated"))
    server.fill_to_percent(user, 95)
    run = Run(write_config(tmp_path, account_toml(server, user, tmp_path)))
    assert run.scan().accounts[0].quota_ratio >= 0.9
    checked = run.repo.account(user.name).quota_checked_at
    server.set_quota(user, 100 * 1024)  # the limit raised, no message in or out
    again = run.scan().accounts[0]
    assert again.quota_ratio >= 0.9  # the reading of the unchanged mailbox was kept
    assert run.repo.account(user.name).quota_checked_at == checked
    server.append(user, "INBOX", mailfactory.build("unrelated"))  # the mailbox changed
    assert run.scan().accounts[0].quota_ratio < 0.1
    assert run.repo.account(user.name).quota_checked_at > checked
    assert run.paths() == {user.name: "register"}


def test_quota_asked_every_scan_with_max_age_zero(server, tmp_path):
    user = server.new_user("quotaalways", quota_kib=1024)
    server.fill_to_percent(user, 95)
    config = write_config(
        tmp_path, account_toml(server, user, tmp_path), extra="[scan]\nquota_max_age_minutes = 0"
    )
    run = Run(config)
    assert run.scan().accounts[0].quota_ratio >= 0.9
    server.set_quota(user, 100 * 1024)
    assert run.scan().accounts[0].quota_ratio < 0.1
    assert run.paths() == {user.name: "register"}


def test_status_lines_read_as_imapclient_reads_them():
    """parse_statuses' fast path for the usual line agrees with imapclient's parser, and a
    name sent as a literal still goes through the latter."""
    from imapclient.imap_utf7 import decode
    from imapclient.response_parser import parse_response

    from gmis_mailscan.sources import FolderStatus
    from gmis_mailscan.sources.imap import parse_statuses

    lines = [
        b'"Dept01/2016" (UIDNEXT 68 UIDVALIDITY 1796288410 MESSAGES 66)',
        b"INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 5)",
        b'"a\\"b\\\\c" (uidnext 2 uidvalidity 3 messages 1)',
        b"&j,dg0TDhMPww6w- (UIDNEXT 2 UIDVALIDITY 3 MESSAGES 1)",
        b"2024 (UIDNEXT 9 UIDVALIDITY 3 MESSAGES 8)",
        b"Partial (UIDNEXT 9)",  # incomplete: left out, the folder is opened
    ]
    literal = [(b"{7}", b"Sp ace)"), b" (UIDNEXT 4 UIDVALIDITY 3 MESSAGES 2)"]
    parsed = parse_response(lines)
    reference = {}
    for name, items in zip(parsed[::2], parsed[1::2], strict=True):
        values = {bytes(k).upper(): v for k, v in zip(items[::2], items[1::2], strict=True)}
        if len(values) == 3:
            key = decode(name) if isinstance(name, bytes) else str(name)
            reference[key] = FolderStatus(
                values[b"UIDVALIDITY"], values[b"UIDNEXT"], values[b"MESSAGES"]
            )
    assert parse_statuses(lines) == reference
    assert reference == {
        "Dept01/2016": FolderStatus(1796288410, 68, 66),
        "INBOX": FolderStatus(5, 1, 0),
        'a"b\\c': FolderStatus(3, 2, 1),
        "迷惑メール": FolderStatus(3, 2, 1),
        "2024": FolderStatus(3, 9, 8),
    }
    assert parse_statuses(lines + literal)["Sp ace)"] == FolderStatus(3, 4, 2)


def test_list_lines_read_as_imapclient_reads_them():
    """parse_listing's fast path gives what IMAPClient.list_folders gives, literal or not."""
    from imapclient import IMAPClient

    from gmis_mailscan.sources.imap import parse_listing

    lines = [
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasNoChildren \\Junk) "/" "&j,dg0TDhMPww6w-"',
        b'(\\HasChildren \\Noselect) "." "Dept\\\\01 \\"x\\""',
        b"() NIL 2024",
        b'(\\Sent) "/" "Sent Items"',
    ]
    literal = [(b'(\\HasNoChildren) "/" {7}', b"Sp ace)"), b""]
    reference = IMAPClient.__new__(IMAPClient)  # its LIST reading needs no connection
    reference.folder_encode = True
    for given in (lines, lines + literal):
        expected = [(f, d, str(n)) for f, d, n in reference._proc_folder_list(list(given))]
        assert parse_listing(list(given)) == expected
    assert [n for _, _, n in parse_listing(lines)] == [
        "INBOX",
        "迷惑メール",
        'Dept\\01 "x"',
        "2024",
        "Sent Items",
    ]
