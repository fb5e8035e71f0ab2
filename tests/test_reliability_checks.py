"""The reliability tests' database check (reliability.check_store_consistent) catches what its
docstring promises, also when it is given no expected UIDs (a Maildir or killed run)."""

from __future__ import annotations

import sqlite3

import pytest
from reliability import check_store_consistent, sqlite_url

SCHEMA = """
CREATE TABLE folders (account_id INTEGER, name TEXT, last_uid INTEGER);
CREATE TABLE messages (id INTEGER PRIMARY KEY, account_id INTEGER, dedup_key TEXT);
CREATE TABLE locations (account_id INTEGER, folder TEXT, locator TEXT, message_pk INTEGER);
INSERT INTO folders VALUES (1, 'INBOX', 2);
INSERT INTO messages VALUES (1, 1, 'mid:a'), (2, 1, 'mid:b');
INSERT INTO locations VALUES (1, 'INBOX', 'uid:1', 1), (1, 'INBOX', 'uid:2', 2);
"""


@pytest.mark.parametrize(
    "damage,message",
    [
        ("", None),
        ("DELETE FROM locations WHERE message_pk = 2", "messages without a location"),
        ("INSERT INTO messages VALUES (3, 1, 'mid:a');"
         "INSERT INTO locations VALUES (1, 'INBOX', 'uid:3', 3)", "duplicate messages"),
        ("INSERT INTO locations VALUES (1, 'INBOX', 'uid:2', 2)", "stored twice"),
        ("INSERT INTO locations VALUES (1, 'Junk', 'uid:9', 2)", "without the folder's state"),
    ],
)  # fmt: skip
def test_checks_without_expected_uids(tmp_path, damage, message):
    db = tmp_path / "db.sqlite3"
    con = sqlite3.connect(db)
    con.executescript(SCHEMA + damage)
    con.commit()
    con.close()
    if message is None:
        check_store_consistent(sqlite_url(db), None)
        return
    with pytest.raises(AssertionError, match=message):
        check_store_consistent(sqlite_url(db), None)


def test_a_batch_stored_in_part_is_caught(tmp_path):
    db = tmp_path / "db.sqlite3"
    con = sqlite3.connect(db)
    con.executescript(SCHEMA)
    con.close()
    with pytest.raises(AssertionError, match="stored in part"):
        check_store_consistent(sqlite_url(db), {"INBOX": {1}})  # uid 2 <= last_uid, unexpected
