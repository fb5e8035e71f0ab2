"""A database made by the first migration upgrades to the latest with its data intact.

On SQLite and on a real PostgreSQL (the `database_url` fixture): the schema is created at
revision 0001 only, filled with realistic rows by plain SQL (what a 0.1 installation wrote:
accounts, scan runs, folder states, messages, locations, staff answers, institutions), then
upgraded to head. Every row must read back the same through the application's own Repo, the
columns added later must hold their defaults, and the upgraded database must be usable
(assessing it fills the new columns). Downgrading to 0001 and upgrading again keeps the data.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from reliability import cli, rows, write_config
from sqlalchemy import inspect, text

from gmis_mailscan.config import Account, Config
from gmis_mailscan.rules import load_rules
from gmis_mailscan.status import assess_all
from gmis_mailscan.store.db import MIGRATIONS_DIR, connect, current_revision, upgrade
from gmis_mailscan.store.repo import Repo

T0 = datetime(2023, 11, 6, 1, 0, 0, 123456)
T1 = datetime(2023, 11, 27, 9, 30, 15, 654321)
TABLES = ("accounts", "scan_runs", "folders", "messages", "locations", "staff_answers")

ROWS = {
    "accounts": [
        dict(id=1, name="sakura", institution="さくら病院", address="鹿児島県鹿屋市札元1丁目1番1号",
             quota_used_kib=900, quota_limit_kib=1000, quota_checked_at=T1, last_scan_at=T1,
             last_error=None),
        dict(id=2, name="branch", institution=None, address=None, quota_used_kib=None,
             quota_limit_kib=None, quota_checked_at=None, last_scan_at=T1,
             last_error="login refused for branch at mail.example: [AUTHENTICATIONFAILED]"),
    ],
    "scan_runs": [
        dict(id=1, started_at=T0, finished_at=T0, status="ok", fetched=3, stored=3,
             errors="[]"),
        dict(id=2, started_at=T1, finished_at=T1, status="partial", fetched=0, stored=0,
             errors=json.dumps(["branch: login refused"])),
    ],
    "folders": [
        dict(id=1, account_id=1, name="INBOX", role="inbox", uidvalidity=1700000000,
             last_uid=12, updated_at=T1),
        dict(id=2, account_id=1, name="迷惑メール", role="junk", uidvalidity=1700000001,
             last_uid=3, updated_at=T1),
    ],
    "messages": [
        dict(id=1, account_id=1, dedup_key="mid:20231106.1@g-mis.net",
             message_id="20231106.1@g-mis.net", sha256="a" * 64, size=5123,
             subject="【厚生労働省G-MIS事務局】G-MISのご利用準備完了に伴うパスワード登録のご依頼",
             from_address="info@g-mis.net", date=T0, type="password_registration",
             rule="password_registration",
             fields=json.dumps({"institution": "さくら病院", "login_id": "kgs-sakura01",
                                "password_url": "https://www.med-login.mhlw.go.jp/login?c=***"},
                               ensure_ascii=False),
             genuine=True, reasons="[]", warnings="[]", parse_error=None, first_run_id=1,
             created_at=T0),
        dict(id=2, account_id=1, dedup_key="mid:20231106.2@g-mis.net",
             message_id="20231106.2@g-mis.net", sha256="b" * 64, size=4321,
             subject="【厚生労働省G-MIS事務局】報告機関内でのG-MISご利用者の確認依頼",
             from_address="info@g-mis.net", date=T0, type="user_confirmation",
             rule="user_confirmation",
             fields=json.dumps({"institution": "医療法人①髙木病院～本院", "login_id": "kgs-takagi",
                                "application_number": "A20230601-0042"}, ensure_ascii=False),
             genuine=True, reasons="[]", warnings="[]", parse_error=None, first_run_id=1,
             created_at=T0),
        dict(id=3, account_id=1, dedup_key="sha256:" + "c" * 64, message_id=None,
             sha256="c" * 64, size=0, subject=None, from_address=None, date=None,
             type="unparseable", rule=None, fields="{}", genuine=None, reasons="[]",
             warnings="[]", parse_error="empty message", first_run_id=1, created_at=T0),
    ],
    "locations": [
        dict(id=1, message_pk=1, account_id=1, folder="迷惑メール", role="junk", uid=3,
             locator="uid:3", seen_at=T0),
        dict(id=2, message_pk=2, account_id=1, folder="INBOX", role="inbox", uid=11,
             locator="uid:11", seen_at=T0),
        dict(id=3, message_pk=3, account_id=1, folder="INBOX", role="inbox", uid=12,
             locator="uid:12", seen_at=T0),
    ],
    "staff_answers": [
        dict(id=1, account_id=1, institution=None, answer="url_unreachable", note="IT 山田",
             recorded_at=T0, withdrawn_at=T1),
        dict(id=2, account_id=1, institution="さくら病院", answer="login_done", note=None,
             recorded_at=T1, withdrawn_at=None),
    ],
    "institutions": [
        dict(id=1, account_id=1, key="さくら病院", name="さくら病院", login_id="kgs-sakura01",
             application_number=None, address="鹿児島県鹿屋市札元1丁目1番1号",
             state="login_completed", path="none", updated_at=T1),
    ],
}  # fmt: skip


def _alembic() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


HEAD = ScriptDirectory.from_config(_alembic()).get_current_head()


def _downgrade(engine, revision: str) -> None:
    cfg = _alembic()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _revision(engine) -> str | None:
    with engine.connect() as conn:
        return current_revision(conn)


def _insert_first_release_data(engine) -> None:
    with engine.begin() as conn:
        for table in (*TABLES, "institutions"):
            for row in ROWS[table]:
                columns = ", ".join(f'"{c}"' for c in row)
                values = ", ".join(f":{c}" for c in row)
                conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)
        if engine.dialect.name == "postgresql":  # ids given explicitly: move the sequences on
            for table in (*TABLES, "institutions"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 100)"))


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar()
            for t in (*TABLES, "institutions")
        }


def _as_the_application_sees_it(engine) -> dict:
    repo = Repo(engine)
    return {
        "accounts": repo.accounts(),
        "messages": {a: repo.messages(a) for a in ("sakura", "branch")},
        "answers": repo.answers("sakura", include_withdrawn=True),
        "folders": {f: repo.folder_state("sakura", f) for f in ("INBOX", "迷惑メール")},
        "institutions": [
            (i.key, i.name, i.login_id, i.address, i.state, i.path)
            for i in repo.institutions("sakura")
        ],
        "last_run": repo.last_run(),
    }


def _check_first_release_data(seen: dict) -> None:
    """What the plain-SQL rows must look like through the Repo of the current version."""
    accounts = {a.name: a for a in seen["accounts"]}
    assert accounts["sakura"].institution == "さくら病院"
    assert (accounts["sakura"].quota.used_kib, accounts["sakura"].quota.limit_kib) == (900, 1000)
    assert accounts["sakura"].last_scan_at == T1
    assert accounts["branch"].quota is None and "login refused" in accounts["branch"].last_error
    messages = seen["messages"]["sakura"]
    assert [(m.type, m.folder, m.folder_role, m.uid) for m in messages] == [
        ("unparseable", "INBOX", "inbox", 12),
        ("password_registration", "迷惑メール", "junk", 3),
        ("user_confirmation", "INBOX", "inbox", 11),
    ]
    assert messages[0].parse_error == "empty message"
    assert messages[1].fields["login_id"] == "kgs-sakura01" and messages[1].genuine is True
    assert messages[1].date == T0
    assert messages[2].fields["institution"] == "医療法人①髙木病院～本院"
    assert seen["messages"]["branch"] == []
    assert [(a.answer, a.institution, a.note, a.withdrawn_at) for a in seen["answers"]] == [
        ("url_unreachable", None, "IT 山田", T1),
        ("login_done", "さくら病院", None, None),
    ]
    assert seen["folders"]["INBOX"].uidvalidity == 1700000000
    assert seen["folders"]["INBOX"].last_uid == 12
    assert seen["folders"]["迷惑メール"].known == frozenset({"uid:3"})
    assert seen["institutions"] == [
        ("さくら病院", "さくら病院", "kgs-sakura01", "鹿児島県鹿屋市札元1丁目1番1号",
         "login_completed", "none"),
    ]  # fmt: skip
    assert seen["last_run"]["status"] == "partial"
    assert seen["last_run"]["errors"] == ["branch: login refused"]


@pytest.fixture
def first_release_db(database_url):
    engine = connect(database_url, migrate=False)
    upgrade(engine, "0001")
    assert _revision(engine) == "0001"
    assert "row" not in {c["name"] for c in inspect(engine).get_columns("institutions")}
    _insert_first_release_data(engine)
    yield engine
    engine.dispose()


def test_upgrade_from_0001_keeps_the_data_and_defaults_new_columns(first_release_db):
    engine = first_release_db
    before = _counts(engine)
    upgrade(engine)
    assert _revision(engine) == HEAD != "0001"
    assert _counts(engine) == before
    _check_first_release_data(_as_the_application_sees_it(engine))
    with engine.connect() as conn:
        row, reasons = conn.execute(text('SELECT "row", reasons FROM institutions')).one()
        removed = conn.execute(text("SELECT removed_at FROM locations")).scalars().all()
    assert row is None  # 0002: not known for states decided before it
    assert (json.loads(reasons) if isinstance(reasons, str) else reasons) == []
    assert removed == [None, None, None]  # 0003: every location is still there


def test_upgraded_database_is_usable(first_release_db):
    engine = first_release_db
    upgrade(engine)
    config = Config(
        path=None,
        database_url=str(engine.url),
        accounts=(Account("sakura", institution="さくら病院"), Account("branch")),
    )
    repo = Repo(engine)
    assessments = {a.institution: a for a in assess_all(config, load_rules(), repo)}
    assert assessments["さくら病院"].decision.path == "none"  # staff said login is done
    assert assessments["医療法人①髙木病院～本院"].decision.state == "existing_account"
    saved = {i.key: i for i in repo.institutions("sakura")}
    assert saved["さくら病院"].row == 2 and saved["さくら病院"].reasons  # new columns filled
    repo.add_answer("branch", "cannot_login", None, "after the upgrade")
    assert [a.note for a in repo.answers("branch")] == ["after the upgrade"]


def test_downgrade_to_0001_and_upgrade_again_keeps_the_data(first_release_db):
    engine = first_release_db
    upgrade(engine)
    before = _counts(engine)
    _downgrade(engine, "0001")
    assert _revision(engine) == "0001"
    assert _counts(engine) == before
    assert "row" not in {c["name"] for c in inspect(engine).get_columns("institutions")}
    upgrade(engine)
    assert _revision(engine) == HEAD
    assert _counts(engine) == before
    _check_first_release_data(_as_the_application_sees_it(engine))


def test_every_step_upgrades_and_downgrades(database_url):
    """Each migration on its own, up and down, on an empty database."""
    engine = connect(database_url, migrate=False)
    try:
        script = ScriptDirectory.from_config(_alembic())
        steps = [r.revision for r in reversed(list(script.walk_revisions()))]
        assert steps[0] == "0001" and steps[-1] == HEAD
        for step in steps:
            upgrade(engine, step)
            assert _revision(engine) == step
        for previous in reversed(steps[:-1]):
            _downgrade(engine, previous)
            assert _revision(engine) == previous
        _downgrade(engine, "base")
        assert _revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_database_from_a_newer_version_is_refused_with_one_line(database_url, tmp_path):
    """A schema revision this version does not know (a newer gmis-mailscan wrote it): exit 2
    with one line naming the config and the revision, and the database is left alone."""
    engine = connect(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    config = write_config(tmp_path / "config.toml", database_url, [])
    result = cli(config, "report", "--format", "json")
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(config) in line and "'9999'" in line and "newer version" in line
    assert rows(database_url, "SELECT version_num FROM alembic_version") == [("9999",)]
