"""The record of rescue moves (store/rescues.py) on SQLite and a real PostgreSQL."""

from __future__ import annotations

import pytest
from test_store import message, store, where

from gmis_mailscan.config import Account
from gmis_mailscan.store.db import connect
from gmis_mailscan.store.repo import Repo
from gmis_mailscan.store.rescues import RescueLog, Target


@pytest.fixture
def repo(database_url):
    engine = connect(database_url)
    repo = Repo(engine)
    repo.sync_account(Account("acc"))
    yield repo
    engine.dispose()


def test_a_move_is_started_then_finished_with_the_new_location(repo):
    msg = message("m1@g-mis.net", "迷惑メール", "junk", uid=7)
    store(repo, "迷惑メール", [msg], uidvalidity=11, last_uid=7)
    log = RescueLog(repo)
    key = dict(sha256=msg.sha256, folder="迷惑メール", uidvalidity=11, uid=7)
    args = dict(message_id=msg.message_id, to_folder="INBOX", method="move", who="it@pc")
    first = log.start("acc", **key, **args)
    # A run cut off before finishing: the next one finds and reuses the record.
    assert log.unfinished("acc", msg.sha256, "迷惑メール", 11, 7) == first
    assert log.start("acc", **key, **args) == first
    assert [r.status for r in log.rescues("acc")] == ["started"]
    assert where(repo) == [("m1@g-mis.net", "迷惑メール", "uid:7")]

    log.finish(first, Target("INBOX", "inbox", 5), 42, original_gone=True, status="moved")

    (done,) = log.rescues("acc")
    assert (done.status, done.from_folder, done.from_uid, done.to_folder, done.to_uid) == (
        "moved",
        "迷惑メール",
        7,
        "INBOX",
        42,
    )
    assert done.who == "it@pc" and done.finished_at is not None
    assert log.unfinished("acc", msg.sha256, "迷惑メール", 11, 7) is None
    # Known in its new folder only: no duplicate, not "removed".
    assert where(repo) == [("m1@g-mis.net", "INBOX", "uid:42")]
    assert all(m.present for m in repo.messages("acc"))
    # The scan that later finds it there under the same UID changes nothing.
    store(repo, "INBOX", [message("m1@g-mis.net", "INBOX", "inbox", uid=42)], 5, 42)
    assert where(repo) == [("m1@g-mis.net", "INBOX", "uid:42")]


def test_a_copy_without_uidplus_keeps_both_locations(repo):
    msg = message("m2@g-mis.net", "Junk", "junk", uid=3)
    store(repo, "Junk", [msg], uidvalidity=9, last_uid=3)
    log = RescueLog(repo)
    rid = log.start(
        "acc", sha256=msg.sha256, message_id=msg.message_id, folder="Junk", uidvalidity=9,
        uid=3, to_folder="INBOX", method="copy", who="it@pc",
    )  # fmt: skip
    log.finish(rid, Target("INBOX", "inbox", 5), 8, original_gone=False, status="copied")
    assert sorted(where(repo)) == [
        ("m2@g-mis.net", "INBOX", "uid:8"),
        ("m2@g-mis.net", "Junk", "uid:3"),
    ]
    assert [r.status for r in log.rescues("acc")] == ["copied"]
