"""The store on SQLite and on a real PostgreSQL: schema by migrations, dedup, locations,
staff answers, institutions, scan runs, and the password token never written."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import mailfactory
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, select, text
from sqlalchemy.engine import make_url

from gmis_mailscan.config import Account
from gmis_mailscan.records import RawMessage, Reason, ScannedMessage
from gmis_mailscan.scan import examine
from gmis_mailscan.sources import FolderState, FolderUpdate, Quota
from gmis_mailscan.store.db import _alembic_config, connect, current_revision, upgrade
from gmis_mailscan.store.models import Base
from gmis_mailscan.store.repo import InstitutionState, Repo
from gmis_mailscan.verify import VerifyPolicy

PW = "password_registration"
TABLES = {"accounts", "folders", "messages", "locations", "staff_answers", "institutions"}
JST = timezone(timedelta(hours=9))


@pytest.fixture
def engine(database_url):
    engine = connect(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def repo(engine):
    repo = Repo(engine)
    repo.sync_account(Account("acc", institution="さくら病院", address="鹿屋市"))
    return repo


def message(
    mid: str | None,
    folder: str = "INBOX",
    role: str = "inbox",
    uid: int | None = None,
    locator: str | None = None,
    *,
    type_: str = PW,
    fields: dict[str, str] | None = None,
    date: datetime | None = None,
    data: bytes | None = None,
) -> ScannedMessage:
    data = data if data is not None else (mid or "no-id").encode()
    return ScannedMessage(
        folder=folder,
        folder_role=role,
        locator=locator or (f"uid:{uid}" if uid is not None else f"{folder}/{mid}"),
        uid=uid,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        type=type_,
        message_id=mid,
        subject="【厚生労働省G-MIS事務局】件名",
        from_address="info@g-mis.net",
        date=date,
        rule=type_,
        fields=fields if fields is not None else {"institution": "さくら病院"},
        genuine=True,
    )


def store(repo: Repo, folder: str, msgs: list[ScannedMessage], uidvalidity=None, last_uid=0):
    role = msgs[0].folder_role if msgs else "inbox"
    return repo.store_batch("acc", FolderUpdate(folder, role, uidvalidity, last_uid), msgs, None)


def where(repo: Repo) -> list[tuple[str | None, str, str]]:
    """Where each message is now (messages no folder holds any more left out)."""
    return [(m.message_id, m.folder, m.locator) for m in repo.messages("acc") if m.present]


def gone(repo: Repo) -> list[tuple[str | None, str]]:
    """Messages no scanned folder holds any more, with the folder they were last seen in."""
    return [(m.message_id, m.folder) for m in repo.messages("acc") if not m.present]


# --- schema -----------------------------------------------------------------------------


def test_migrations_create_the_schema(engine):
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as conn:
        assert current_revision(conn) == head
        assert TABLES | {"scan_runs", "alembic_version"} <= set(inspect(conn).get_table_names())
        # The migrations build exactly what the models describe.
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_upgrade_and_connect_again_are_no_ops(engine, database_url):
    upgrade(engine)
    again = connect(database_url)
    try:
        with again.connect() as conn:
            assert current_revision(conn) is not None
    finally:
        again.dispose()


def test_connect_without_migrate_leaves_an_empty_database(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", migrate=False)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) is None
            assert inspect(conn).get_table_names() == []
    finally:
        engine.dispose()


# --- messages and locations -------------------------------------------------------------


def test_rescan_adds_nothing(repo):
    batch = [message("a@g-mis.net", uid=1), message("b@g-mis.net", uid=2)]
    assert store(repo, "INBOX", batch, 7, 2) == 2
    assert store(repo, "INBOX", batch, 7, 2) == 0
    assert repo.message_count() == 2
    assert len(repo.messages("acc")) == 2


def test_same_message_in_two_folders_is_one_message(repo):
    assert store(repo, "INBOX", [message("a@g-mis.net", uid=5)], 1, 5) == 1
    assert store(repo, "Junk", [message("a@g-mis.net", "Junk", "junk", uid=9)], 2, 9) == 0
    assert repo.message_count() == 1
    assert [(m.folder, m.folder_role, m.uid) for m in repo.messages("acc")] == [
        ("INBOX", "inbox", 5),
        ("Junk", "junk", 9),
    ]


def test_one_location_per_folder(repo):
    """Two copies of one message in a folder: one location, the last one seen."""
    store(
        repo,
        "INBOX",
        [message("a@g-mis.net", locator="/m/1"), message("a@g-mis.net", locator="/m/2")],
    )
    assert where(repo) == [("a@g-mis.net", "INBOX", "/m/2")]


def test_message_without_message_id_dedups_by_content(repo):
    one = message(None, locator="/m/1", data=b"same bytes")
    assert store(repo, "INBOX", [one]) == 1
    assert (
        store(repo, "Junk", [message(None, "Junk", "junk", locator="/j/1", data=b"same bytes")])
        == 0
    )
    assert store(repo, "INBOX", [message(None, locator="/m/2", data=b"other bytes")]) == 1
    assert repo.message_count() == 2


def test_accounts_do_not_share_messages(repo):
    repo.sync_account(Account("other"))
    store(repo, "INBOX", [message("a@g-mis.net")])
    assert (
        repo.store_batch(
            "other", FolderUpdate("INBOX", "inbox", None, 0), [message("a@g-mis.net")], None
        )
        == 1
    )
    assert repo.message_count() == 2
    assert len(repo.messages("other")) == 1


def test_folder_state_remembers_uidvalidity_last_uid_and_locators(repo):
    assert repo.folder_state("acc", "INBOX") == FolderState()
    store(repo, "INBOX", [message("a", uid=3), message("b", uid=8)], 100, 8)
    assert repo.folder_state("acc", "INBOX") == FolderState(100, 8, frozenset({"uid:3", "uid:8"}))
    store(repo, "INBOX", [], 100, 5)  # last_uid never goes back within one UIDVALIDITY
    assert repo.folder_state("acc", "INBOX").last_uid == 8


def test_uidvalidity_change_marks_locations_removed_keeps_messages(repo):
    store(repo, "INBOX", [message("a", uid=5), message("b", uid=6)], 100, 6)
    store(repo, "Junk", [message("c", "Junk", "junk", uid=1)], 300, 1)
    # The server renumbered INBOX: only "a" is found again, under a new UID.
    assert store(repo, "INBOX", [message("a", uid=1)], 200, 1) == 0
    assert repo.message_count() == 3
    assert where(repo) == [("a", "INBOX", "uid:1"), ("c", "Junk", "uid:1")]
    assert gone(repo) == [("b", "INBOX")]
    assert repo.folder_state("acc", "INBOX") == FolderState(200, 1, frozenset({"uid:1"}))
    # A message found again later is the same message, not a new one.
    assert store(repo, "INBOX", [message("b", uid=2)], 200, 2) == 0
    assert repo.message_count() == 3
    assert gone(repo) == []


def test_prune_locations(repo):
    store(repo, "INBOX", [message("a", uid=1), message("b", uid=2)], 1, 2)
    assert repo.prune_locations("acc", "INBOX", {"uid:1"}) == 1
    assert where(repo) == [("a", "INBOX", "uid:1")]
    assert repo.message_count() == 2  # the message is kept, with where it was last seen
    assert gone(repo) == [("b", "INBOX")]
    assert repo.prune_locations("acc", "INBOX", {"uid:1"}) == 0
    # Moved to Junk: the same message shows up there, and only there.
    assert store(repo, "Junk", [message("b", "Junk", "junk", uid=4)], 9, 4) == 0
    assert where(repo) == [("a", "INBOX", "uid:1"), ("b", "Junk", "uid:4")]
    assert gone(repo) == []


def test_prune_folders_marks_the_mail_of_unlisted_folders_and_forgets_their_state(repo):
    store(repo, "INBOX", [message("a", uid=1)], 1, 1)
    store(repo, "Old", [message("b", "Old", "other", uid=7), message("a", "Old", uid=8)], 5, 8)
    assert repo.prune_folders("acc", {"INBOX", "New"}) == 2
    assert where(repo) == [("a", "INBOX", "uid:1")]
    assert gone(repo) == [("b", "Old")]
    assert repo.folder_state("acc", "Old") == FolderState()  # recreated: scanned from UID 1
    assert repo.folder_state("acc", "INBOX").last_uid == 1
    assert repo.prune_folders("acc", {"INBOX"}) == 0
    # Renamed Old → New: found there by Message-ID and content, one location again.
    assert store(repo, "New", [message("b", "New", "other", uid=1)], 6, 1) == 0
    assert where(repo) == [("a", "INBOX", "uid:1"), ("b", "New", "uid:1")]
    assert gone(repo) == []


def test_a_spoof_reusing_a_message_id_is_not_merged_with_the_genuine_mail(repo):
    spoof = dataclasses.replace(message("a", uid=1), genuine=False, sha256="1" * 64)
    genuine = dataclasses.replace(message("a", uid=2), genuine=True, sha256="2" * 64)
    assert store(repo, "INBOX", [spoof], 1, 1) == 1
    assert store(repo, "INBOX", [genuine], 1, 2) == 1
    assert sorted(m.genuine for m in repo.messages("acc")) == [False, True]
    assert store(repo, "INBOX", [genuine], 1, 2) == 0  # rescanning it adds nothing


def test_one_batch_with_a_known_message_a_spoof_its_genuine_mail_and_a_copy(repo):
    """A batch is looked up and written as a whole: the same outcome as message by message."""
    assert store(repo, "INBOX", [message("k", uid=1)], 1, 1) == 1
    spoof = dataclasses.replace(message("a", uid=2), genuine=False, sha256="1" * 64)
    genuine = dataclasses.replace(message("a", uid=3), genuine=True, sha256="2" * 64)
    copy = dataclasses.replace(spoof, uid=4, locator="uid:4")
    batch = [message("k", uid=1), spoof, genuine, copy]
    assert store(repo, "INBOX", batch, 1, 4) == 2
    assert repo.message_count() == 3
    stored = sorted((m.message_id, m.genuine, m.locator) for m in repo.messages("acc"))
    assert stored == [("a", False, "uid:4"), ("a", True, "uid:3"), ("k", True, "uid:1")]
    assert store(repo, "INBOX", batch, 1, 4) == 0


def test_messages_round_trip(repo):
    date = datetime(2023, 11, 6, 10, 0, tzinfo=JST)
    original = ScannedMessage(
        folder="迷惑メール",
        folder_role="junk",
        locator="uid:42",
        uid=42,
        sha256="0" * 64,
        size=1234,
        type=PW,
        message_id="x@g-mis.net",
        subject="【厚生労働省G-MIS事務局】件名",
        from_address="info@g-mis.net",
        date=date,
        rule=PW,
        fields={"institution": "医療法人①髙木病院～本院", "login_id": "kgs-1"},
        genuine=False,
        reasons=(Reason("sender_mismatch", "sender", "差出人"),),
        warnings=(Reason("mime_defects", "defects", "不備"),),
    )
    store(repo, "迷惑メール", [original], 5, 42)
    [back] = repo.messages("acc")
    assert back.date == datetime(2023, 11, 6, 1, 0)  # naive UTC on every database
    expected = {**original.__dict__, "date": back.date}
    assert back.__dict__ == expected


def test_messages_in_date_order(repo):
    late = message("late", date=datetime(2023, 12, 1, tzinfo=UTC))
    early = message("early", date=datetime(2023, 11, 1, tzinfo=UTC))
    store(repo, "INBOX", [late, early])
    assert [m.message_id for m in repo.messages("acc")] == ["early", "late"]


def test_unparseable_message_is_kept_with_its_reason(repo):
    bad = ScannedMessage(
        "INBOX", "inbox", "/m/bad", None, "f" * 64, 0, "unparseable", parse_error="empty message"
    )
    assert store(repo, "INBOX", [bad]) == 1
    [back] = repo.messages("acc")
    assert (back.type, back.parse_error, back.genuine) == ("unparseable", "empty message", None)


def test_hostile_headers_do_not_fail_the_batch(repo):
    """PostgreSQL refuses NUL in text and strings longer than a varchar: one such message
    must not make the whole batch (and so every later scan of the folder) fail."""
    long_id = "x" * 600 + "@g-mis.net"
    nul = message("nul\x00@g-mis.net", locator="/m/nul", fields={"institution": "さくら\x00病院"})
    batch = [message(long_id), nul, message("fine@g-mis.net")]
    assert store(repo, "INBOX", batch) == 3
    assert store(repo, "INBOX", batch) == 0
    stored = {m.message_id for m in repo.messages("acc")}
    assert long_id in stored and "fine@g-mis.net" in stored
    assert all("\x00" not in (m.message_id or "") for m in repo.messages("acc"))


def test_unknown_account_is_an_error(repo):
    with pytest.raises(KeyError):
        repo.store_batch("nobody", FolderUpdate("INBOX", "inbox", None, 0), [], None)
    assert repo.messages("nobody") == []


# --- accounts -----------------------------------------------------------------------------


def test_accounts_quota_and_last_scan(repo):
    [info] = repo.accounts()
    assert (info.name, info.institution, info.address) == ("acc", "さくら病院", "鹿屋市")
    assert (info.quota, info.last_scan_at, info.last_error) == (None, None, None)
    repo.set_quota("acc", Quota(950, 1000))
    repo.finish_account("acc", "LoginError: refused")
    [info] = repo.accounts()
    assert info.quota == Quota(950, 1000) and info.quota.ratio == 0.95
    assert info.last_error == "LoginError: refused"
    assert info.last_scan_at is not None
    repo.sync_account(Account("acc", institution=None, address="霧島市"))
    repo.finish_account("acc", None)
    [info] = repo.accounts()
    assert (info.institution, info.address, info.last_error) == (None, "霧島市", None)


@pytest.mark.parametrize(
    "quota, ratio",
    [(Quota(None, None, 96, 100), 0.96), (Quota(10, 1000, 45, 50), 0.9), (Quota(800, 1000), 0.8)],
)
def test_message_count_quota_round_trip(repo, quota, ratio):
    """A MESSAGE limit alone or beside STORAGE: the fuller of the two is the usage."""
    repo.set_quota("acc", quota)
    [info] = repo.accounts()
    assert info.quota == quota and info.quota.ratio == pytest.approx(ratio)


# --- staff answers ------------------------------------------------------------------------


def test_staff_answers_add_withdraw_list(repo):
    first = repo.add_answer("acc", "login_done", None, "by Sato")
    assert (first.account, first.answer, first.institution, first.note) == (
        "acc",
        "login_done",
        None,
        "by Sato",
    )
    assert first.withdrawn_at is None
    # A new answer for the same target replaces the old one, which is kept as withdrawn.
    repo.add_answer("acc", "url_unreachable", None, None)
    assert [a.answer for a in repo.answers("acc")] == ["url_unreachable"]
    history = repo.answers("acc", include_withdrawn=True)
    assert [(a.answer, a.withdrawn_at is not None) for a in history] == [
        ("login_done", True),
        ("url_unreachable", False),
    ]
    # An answer for one institution lives beside the account-wide one.
    repo.add_answer("acc", "login_done", "さくら病院", None)
    assert [(a.institution, a.answer) for a in repo.answers("acc")] == [
        (None, "url_unreachable"),
        ("さくら病院", "login_done"),
    ]
    assert repo.withdraw_answers("acc", None) == 1
    assert [(a.institution, a.answer) for a in repo.answers("acc")] == [
        ("さくら病院", "login_done")
    ]
    assert repo.withdraw_answers("acc", "さくら病院") == 1
    assert repo.withdraw_answers("acc", "さくら病院") == 0
    assert repo.answers("acc") == []
    assert len(repo.answers("acc", include_withdrawn=True)) == 3


def test_answer_for_an_account_not_scanned_yet(repo):
    repo.add_answer("later", "cannot_login", None, None)
    assert [a.answer for a in repo.answers("later")] == ["cannot_login"]
    assert repo.answers("never") == []


# --- institutions and scan runs -----------------------------------------------------------


def test_save_institutions_replaces_the_account_states(repo):
    a = InstitutionState(
        "さくら病院", "さくら病院", "kgs-1", None, "鹿屋市", "password_mail_received", "method4"
    )
    b = InstitutionState("あおば病院", "あおば病院", None, "A-1", None, "existing_account", "none")
    repo.save_institutions("acc", [a, b])
    assert repo.institutions("acc") == sorted([a, b], key=lambda s: s.key)
    done = InstitutionState(
        "さくら病院", "さくら病院", "kgs-1", None, "鹿屋市", "login_completed", "none"
    )
    repo.save_institutions("acc", [done])
    assert repo.institutions("acc") == [done]
    assert repo.institutions("nobody") == []


def test_scan_runs(repo):
    assert repo.last_run() is None
    run = repo.start_run()
    assert repo.last_run()["status"] == "running"
    assert repo.last_run()["finished_at"] is None
    repo.finish_run(run, "partial", 12, 3, ["acc: LoginError"])
    last = repo.last_run()
    assert (last["id"], last["status"], last["fetched"], last["stored"], last["errors"]) == (
        run,
        "partial",
        12,
        3,
        ["acc: LoginError"],
    )
    assert last["finished_at"] is not None
    second = repo.start_run()
    assert second != run and repo.last_run()["id"] == second
    repo.store_batch("acc", FolderUpdate("INBOX", "inbox", None, 0), [message("r")], second)


def test_a_run_left_running_is_marked_interrupted_by_the_next(repo):
    killed = repo.start_run()  # never finished: the process was killed
    repo.start_run()
    with repo.engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM scan_runs")).all())
    assert statuses[killed] == "interrupted"
    assert repo.last_run()["status"] == "running"


# --- the password token -------------------------------------------------------------------

TOKEN = "DbT0kenNeverStored0123456789abcdEF"
SPOOF_TOKEN = "SpoofT0kenNeverStored456789abcdEF"


def _every_text_value(engine) -> str:
    """Every value of every column of every table, as text."""
    metadata = MetaData()
    metadata.reflect(engine)
    out = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                out.extend(str(value) for value in row)
    return "\n".join(out)


def test_token_never_lands_in_the_database(repo, engine, rules):
    genuine = mailfactory.build(
        PW, token=TOKEN, body="alternative", cte="8bit", message_id="<t1@g-mis.net>"
    )
    spoof = mailfactory.build(
        PW, sender="info@g-rnis.net", token=SPOOF_TOKEN, cte="8bit", message_id="<t2@g-rnis.net>"
    )
    assert TOKEN.encode() in genuine and SPOOF_TOKEN.encode() in spoof
    policy = VerifyPolicy(official_hosts=rules.official_hosts)
    scanned = [
        examine(RawMessage("INBOX", "inbox", "uid:1", genuine, 1), rules, policy),
        examine(RawMessage("Junk", "junk", "uid:2", spoof, 2), rules, policy),
    ]
    assert [m.genuine for m in scanned] == [True, False]
    repo.store_batch("acc", FolderUpdate("INBOX", "inbox", 1, 1), scanned[:1], repo.start_run())
    repo.store_batch("acc", FolderUpdate("Junk", "junk", 1, 2), scanned[1:], None)

    dump = _every_text_value(engine)
    assert "login?c=***" in dump  # the masked URL is there: the dump does see the fields
    assert hashlib.sha256(TOKEN.encode()).hexdigest() in dump
    for token in (TOKEN, SPOOF_TOKEN):
        assert token not in dump

    url = make_url(str(engine.url))
    if url.get_backend_name() == "sqlite":
        engine.dispose()
        files = sorted(Path(url.database).parent.glob(Path(url.database).name + "*"))
        raw = b"".join(f.read_bytes() for f in files if f.is_file())
        assert b"login?c=***" in raw
        for token in (TOKEN, SPOOF_TOKEN):
            assert token.encode() not in raw
