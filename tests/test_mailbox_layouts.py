"""Mailboxes as real servers keep them (issue #16), against a real Dovecot.

A Gmail-like layout (`/` separator, `[Gmail]/…` folders with their SPECIAL-USE flags, a label
folder, the same message in several folders), folders deleted, renamed and recreated between
scans, message-count quotas, and forwarded copies of the secretariat's mail.
"""

from __future__ import annotations

import json

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
