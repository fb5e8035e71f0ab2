"""Mailboxes as real servers keep them (issue #16), against a real Dovecot.

A Gmail-like layout (`/` separator, `[Gmail]/…` folders with their SPECIAL-USE flags, a label
folder, the same message in several folders), folders deleted, renamed and recreated between
scans, message-count quotas, and forwarded copies of the secretariat's mail.
"""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage

import mailfactory
import pytest
from dovecot import DEFAULT_JUNK_NAMES, DovecotServer
from test_imap import Run, account_toml, cli, write_config

ALL = "[Gmail]/すべてのメール"
SENT = "[Gmail]/送信済みメール"
TRASH = "[Gmail]/ゴミ箱"
SPAM = "[Gmail]/迷惑メール"
STARRED = "[Gmail]/スター付き"
DRAFTS = "[Gmail]/下書き"
LABEL = "G-MIS関係"
GMAIL_FOLDERS = (ALL, SENT, TRASH, STARRED, DRAFTS, LABEL)
FORWARDER = "jimu@sakura-hospital.example"
PW_SUBJECT = mailfactory.SUBJECTS["password_registration"]


@pytest.fixture(scope="module")
def gmail():
    """A Dovecot that flags the [Gmail]/… folders as Gmail does (\\All, \\Sent, \\Trash …)."""
    special = {
        ALL: "\\All",
        SENT: "\\Sent",
        TRASH: "\\Trash",
        STARRED: "\\Flagged",
        DRAFTS: "\\Drafts",
    }
    with DovecotServer(junk_names=DEFAULT_JUNK_NAMES, special_use=special) as srv:
        yield srv


def forward_attached(original: bytes, subject: str, sender: str = FORWARDER) -> bytes:
    """A colleague's forward with the original attached (message/rfc822), as Outlook does."""
    msg = EmailMessage()
    msg["From"] = f"さくら病院 事務 <{sender}>"
    msg["To"] = "it@sakura-hospital.example"
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="sakura-hospital.example")
    msg.set_content("届いたメールを転送します。\n")
    msg.add_attachment(email.message_from_bytes(original, policy=email.policy.default))
    return msg.as_bytes(policy=email.policy.SMTP)


def forward_inline(marker: str, header: tuple[str, str], subject: str, login_id: str) -> bytes:
    """A forward with the original quoted in the text below a marker line (Gmail, Outlook)."""
    original = mailfactory.build("password_registration", login_id=login_id, body="text")
    text = email.message_from_bytes(original, policy=email.policy.default).get_content()
    msg = EmailMessage()
    msg["From"] = f"さくら病院 事務 <{FORWARDER}>"
    msg["To"] = "it@sakura-hospital.example"
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="sakura-hospital.example")
    label, inner_subject = header
    msg.set_content(
        f"ご確認ください。\n\n{marker}\n差出人: 厚生労働省G-MIS事務局 <info@g-mis.net>\n"
        f"送信日時: 2023年6月1日 10:00\n{label}: {inner_subject}\n\n{text}"
    )
    return msg.as_bytes(policy=email.policy.SMTP)


def gmail_user(srv: DovecotServer, prefix: str, **kw):
    return srv.new_user(prefix, junk_name=SPAM, folders=GMAIL_FOLDERS, **kw)


def report(tmp_path, srv, user, **over) -> list[dict]:
    config = write_config(tmp_path, account_toml(srv, user, tmp_path, **over))
    done = cli(config, "scan")
    assert done.returncode == 0, done.stderr
    out = cli(config, "report", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["institutions"]


# 3. message-count quotas ---------------------------------------------------------------------


def test_mailbox_full_by_message_count_alone_gives_method1(gmail, tmp_path):
    user = gmail_user(gmail, "msgquota", quota_messages=10)
    for _ in range(9):
        gmail.append(user, "INBOX", mailfactory.build("unrelated"))
    run = Run(write_config(tmp_path, account_toml(gmail, user, tmp_path)))
    assert run.scan().accounts[0].quota_ratio == pytest.approx(0.9)
    (assessment,) = run.assessments()
    assert (assessment.decision.row, assessment.decision.path) == (7, "method1")
    assert (assessment.quota.messages, assessment.quota.message_limit) == (9, 10)
    assert assessment.quota.limit_kib is None


def test_message_count_beside_storage_either_one_full_is_full(gmail, tmp_path):
    user = gmail_user(gmail, "bothquota", quota_kib=100_000, quota_messages=4)
    for _ in range(3):
        gmail.append(user, "INBOX", mailfactory.build("unrelated"))
    run = Run(write_config(tmp_path, account_toml(gmail, user, tmp_path)))
    assert run.scan().accounts[0].quota_ratio == pytest.approx(0.75)  # storage far below
    assert run.paths() == {user.name: "register"}
    gmail.append(user, "INBOX", mailfactory.build("unrelated"))
    assert run.scan().accounts[0].quota_ratio == pytest.approx(1.0)
    (assessment,) = run.assessments()
    assert assessment.decision.path == "method1"
    assert assessment.quota.limit_kib == 100_000 and assessment.quota.used_kib < 1000


# 1. archived mail counts ---------------------------------------------------------------------


def test_gmail_folders_roles_and_what_is_read(gmail, tmp_path):
    user = gmail_user(gmail, "gmroles")
    run = Run(write_config(tmp_path, account_toml(gmail, user, tmp_path)))
    roles = {name: role for name, role, _ in run.scan().accounts[0].folders}
    assert roles == {
        "INBOX": "inbox",
        SPAM: "junk",
        ALL: "archive",
        SENT: "sent",
        TRASH: "other",  # deleted mail was received
        LABEL: "other",
    }  # drafts and starred (copies) are not read


def test_archived_password_mail_is_received_not_register(gmail, tmp_path):
    """Archived in Gmail = only in すべてのメール: row 5, never 'apply for a new account'."""
    user = gmail_user(gmail, "archived")
    gmail.append(user, ALL, mailfactory.build("password_registration"))
    (item,) = report(tmp_path, gmail, user)
    assert (item["row"], item["path"], item["login_id"]) == (5, "method4", "kgs-sakura01")
    assert [(e["folder"], e["folder_role"]) for e in item["evidence"]] == [(ALL, "other")]
    assert not item["warnings"]


def test_same_message_in_inbox_label_and_all_mail_is_one_message(gmail, tmp_path):
    user = gmail_user(gmail, "labels")
    pw = mailfactory.build("password_registration")
    for folder in ("INBOX", LABEL, ALL):
        gmail.append(user, folder, pw)
    run = Run(write_config(tmp_path, account_toml(gmail, user, tmp_path)))
    outcome = run.scan().accounts[0]
    assert (outcome.fetched, outcome.stored) == (3, 1)
    assert run.repo.message_count() == 1
    (assessment,) = run.assessments()
    assert sorted(m.folder for m in assessment.evidence) == [LABEL, "INBOX"]  # not \All
    assert assessment.decision.path == "method4" and not assessment.warnings


def test_gmail_all_mail_excludes_spam_and_trash(gmail, tmp_path):
    """Spam is in no other folder (not in すべてのメール): still method2; Trash is received."""
    spam_user = gmail_user(gmail, "gmspam")
    gmail.append(spam_user, SPAM, mailfactory.build("password_registration"))
    gmail.append(spam_user, ALL, mailfactory.build("unrelated"))
    (tmp_path / "spam").mkdir()
    (item,) = report(tmp_path / "spam", gmail, spam_user)
    assert (item["row"], item["path"]) == (4, "method2")
    assert [e["folder_role"] for e in item["evidence"]] == ["junk"]
    trash_user = gmail_user(gmail, "gmtrash")
    gmail.append(trash_user, TRASH, mailfactory.build("password_registration"))
    (item,) = report(tmp_path, gmail, trash_user)
    assert (item["row"], item["path"]) == (5, "method4")
    assert [(e["folder"], e["folder_role"]) for e in item["evidence"]] == [(TRASH, "other")]


def test_spoof_reusing_the_message_id_in_all_mail_is_not_merged(gmail, tmp_path):
    user = gmail_user(gmail, "gmspoof")
    gmail.append(user, "INBOX", mailfactory.build("password_registration", message_id="<x@g>"))
    spoof = mailfactory.build("password_registration", message_id="<x@g>", sender="info@g-rnis.net")
    gmail.append(user, ALL, spoof)
    run = Run(write_config(tmp_path, account_toml(gmail, user, tmp_path)))
    run.scan()
    assert run.repo.message_count() == 2
    (assessment,) = run.assessments()
    assert assessment.decision.path == "method4"
    assert [(m.folder, m.genuine) for m in assessment.evidence] == [("INBOX", True), (ALL, False)]
    assert any("suspicious" in w for w in assessment.warnings)


# 5. forwarded copies -------------------------------------------------------------------------


def test_forward_found_only_in_gmail_sent_is_review_not_register(gmail, tmp_path):
    user = gmail_user(gmail, "gmsent")
    fwd = forward_attached(
        mailfactory.build("password_registration", login_id="kgs-fwd01"), f"Fwd: {PW_SUBJECT}"
    )
    for folder in (SENT, ALL):  # Gmail keeps sent mail in すべてのメール too
        gmail.append(user, folder, fwd)
    reply = mailfactory.build(
        "password_registration", subject_prefix="RE: ", sender=FORWARDER, display_name="事務"
    )
    for folder in (SENT, ALL):  # a reply, not a forward: neither evidence nor a spoof
        gmail.append(user, folder, reply)
    gmail.append(user, DRAFTS, fwd)
    (item,) = report(tmp_path, gmail, user)
    assert (item["row"], item["state"], item["path"]) == (10, "forwarded_copy", "review")
    assert [(e["folder"], e["genuine"]) for e in item["evidence"]] == [(SENT, False)]
    (reason,) = item["reasons"]
    assert f"in {SENT}" in reason and FORWARDER in reason and "kgs-fwd01" in reason
    assert PW_SUBJECT in reason
    fields = item["evidence"][0]["fields"]
    assert (fields["login_id"], fields["forwarded_subject"]) == ("kgs-fwd01", PW_SUBJECT)
    assert item["login_id"] is None  # a forward never says what the account is
    assert "forwarded_copy" in [r["code"] for r in item["evidence"][0]["reasons"]]


@pytest.mark.parametrize(
    "build",
    [
        lambda: forward_attached(
            mailfactory.build("password_registration", login_id="kgs-fwd02"),
            f"転送: {PW_SUBJECT}",
        ),
        lambda: forward_inline(
            "---------- Forwarded message ---------",
            ("Subject", PW_SUBJECT),
            f"Fwd: {PW_SUBJECT}",
            "kgs-fwd02",
        ),
        lambda: forward_inline(
            "-----元のメッセージ-----", ("件名", PW_SUBJECT), f"FW: {PW_SUBJECT}", "kgs-fwd02"
        ),
        lambda: forward_inline(
            "-----Original Message-----", ("Subject", PW_SUBJECT), f"{PW_SUBJECT}", "kgs-fwd02"
        ),
    ],
    ids=["attached", "gmail-inline", "outlook-ja-inline", "outlook-en-inline"],
)
def test_forwarded_copy_in_inbox_is_review_with_forwarder_subject_login_id(gmail, tmp_path, build):
    user = gmail_user(gmail, "fwdinbox")
    gmail.append(user, "INBOX", build())
    (item,) = report(tmp_path, gmail, user)
    assert (item["row"], item["path"]) == (10, "review")
    (reason,) = item["reasons"]
    assert FORWARDER in reason and "kgs-fwd02" in reason and PW_SUBJECT in reason
    assert item["evidence"][0]["fields"]["forwarded_by"] == FORWARDER
    assert item["evidence"][0]["genuine"] is False


def test_forward_beside_the_genuine_mail_is_no_warning(gmail, tmp_path):
    user = gmail_user(gmail, "fwdgenuine")
    gmail.append(user, SPAM, mailfactory.build("password_registration"))
    gmail.append(
        user,
        "INBOX",
        forward_attached(mailfactory.build("password_registration"), f"FW: {PW_SUBJECT}"),
    )
    (item,) = report(tmp_path, gmail, user)
    assert (item["row"], item["path"]) == (4, "method2")  # the forward is not in INBOX's favour
    assert not item["warnings"]


# 2. folders that disappear or change name ----------------------------------------------------


def _imap(srv: DovecotServer, user, action: str, *args: str) -> None:
    with srv.connect(user) as client:
        getattr(client, action)(*args)


def test_deleted_folder_mail_still_counts_with_a_warning(gmail, tmp_path):
    user = gmail_user(gmail, "delfolder")
    gmail.append(user, LABEL, mailfactory.build("password_registration"))
    config = write_config(tmp_path, account_toml(gmail, user, tmp_path))
    assert cli(config, "scan").returncode == 0
    _imap(gmail, user, "delete_folder", LABEL)
    assert cli(config, "scan").returncode == 0
    (item,) = json.loads(cli(config, "report", "--format", "json").stdout)["institutions"]
    assert item["path"] == "method4"  # received once: never "register again"
    assert [(e["folder"], e["present"]) for e in item["evidence"]] == [(LABEL, False)]
    assert any("no longer in the mailbox" in w for w in item["warnings"])


def test_renamed_folder_keeps_one_location(gmail, tmp_path):
    user = gmail_user(gmail, "renfolder")
    gmail.append(user, LABEL, mailfactory.build("password_registration"))
    gmail.append(user, LABEL, mailfactory.build("user_confirmation", institution="あおば病院"))
    run = Run(write_config(tmp_path, account_toml(gmail, user, tmp_path)))
    run.scan()
    _imap(gmail, user, "rename_folder", LABEL, "G-MIS/2023年")
    outcome = run.scan().accounts[0]
    assert outcome.stored == 0 and run.repo.message_count() == 2
    for assessment in run.assessments():
        assert [(m.folder, m.present) for m in assessment.evidence] == [("G-MIS/2023年", True)]
        assert not assessment.warnings


def test_namespace_change_inbox_junk_to_junk_is_the_same_junk_mail(gmail, tmp_path):
    """A server moving its folders out of INBOX (INBOX.Junk → Junk): each mail once, still junk."""
    user = gmail.new_user("nschange", junk_name=None, folders=("INBOX/Junk",))
    gmail.append(user, "INBOX/Junk", mailfactory.build("password_registration"))
    run = Run(write_config(tmp_path, account_toml(gmail, user, tmp_path)))
    run.scan()
    (before,) = run.assessments()
    assert [(m.folder, m.folder_role) for m in before.evidence] == [("INBOX/Junk", "junk")]
    _imap(gmail, user, "rename_folder", "INBOX/Junk", "Junk")
    run.scan()
    (after,) = run.assessments()
    assert [(m.folder, m.folder_role, m.present) for m in after.evidence] == [
        ("Junk", "junk", True)
    ]
    assert after.decision.path == "method2" and not after.warnings


def test_folder_deleted_then_recreated_with_the_mail_again(gmail, tmp_path):
    """Recreated under the same name (a new UIDVALIDITY): scanned anew, the warning goes."""
    user = gmail_user(gmail, "recreate")
    pw = mailfactory.build("password_registration")
    gmail.append(user, LABEL, pw)
    run = Run(write_config(tmp_path, account_toml(gmail, user, tmp_path)))
    run.scan()
    _imap(gmail, user, "delete_folder", LABEL)
    run.scan()
    (gone,) = run.assessments()
    assert [m.present for m in gone.evidence] == [False]
    _imap(gmail, user, "create_folder", LABEL)
    gmail.append(user, LABEL, mailfactory.build("unrelated"))
    gmail.append(user, LABEL, pw)  # UID 2 of the new folder; UID 1 of the old one is gone
    outcome = run.scan().accounts[0]
    assert (outcome.fetched, outcome.stored) == (1, 0)
    (back,) = run.assessments()
    assert [(m.folder, m.uid, m.present) for m in back.evidence] == [(LABEL, 2, True)]
    assert back.decision.path == "method4" and not back.warnings
