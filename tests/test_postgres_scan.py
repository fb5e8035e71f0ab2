"""A whole deployment on PostgreSQL gives exactly the report it gives on SQLite.

Three real Dovecot mailboxes (a password mail only in 迷惑メール plus a spoof, an existing
account, a nearly full mailbox without G-MIS mail) are scanned through the CLI into a SQLite
file and into a real PostgreSQL database; staff answers are recorded with `mark`; the mailbox
changes (new mail, UIDVALIDITY reset) and is scanned again. After every step the JSON reports
of both backends are identical, and no message is stored twice.
"""

from __future__ import annotations

import json

import mailfactory
import pytest
from reliability import check_store_consistent, cli, imap_account, rows, sqlite_url, write_config


@pytest.fixture(scope="module")
def mailboxes(dovecot_server):
    server = dovecot_server
    junk = server.new_user("pgjunk", junk_name="迷惑メール")
    server.append(junk, "INBOX", mailfactory.build("unrelated"))
    server.append(
        junk, "INBOX", mailfactory.build("password_registration", sender="info@g-rnis.net")
    )
    server.append(
        junk, "迷惑メール", mailfactory.build("password_registration", charset="iso-2022-jp")
    )
    existing = server.new_user("pgexisting")
    server.append(existing, "INBOX", mailfactory.build("account_notice", institution="みどり医院"))
    server.append(
        existing,
        "INBOX",
        mailfactory.build("user_confirmation", institution="みどり医院", charset="cp932"),
    )
    full = server.new_user("pgfull", quota_kib=1024)
    server.append(full, "INBOX", mailfactory.build("unrelated"))
    server.fill_to_percent(full, 95)
    return server, (junk, existing, full)


def _config(tmp, name, url, mailboxes):
    server, users = mailboxes
    accounts = [
        imap_account(server, u, tmp, server.imap_port, name=u.name, institution=f"{u.name} 病院")
        for u in users
    ]
    return write_config(tmp / f"{name}.toml", url, accounts, scan={"batch_size": 3})


def _report(config) -> dict:
    result = cli(config, "report", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    return {k: v for k, v in doc.items() if k not in ("generated_at", "last_scan")}


def _scan(config) -> str:
    result = cli(config, "scan")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_scan_report_and_mark_on_postgresql_match_sqlite(mailboxes, postgres_url, tmp_path):
    server, (junk, existing, full) = mailboxes
    configs = {
        "sqlite": _config(tmp_path, "sqlite", sqlite_url(tmp_path / "db.sqlite3"), mailboxes),
        "postgresql": _config(tmp_path, "postgresql", postgres_url, mailboxes),
    }
    urls = {"sqlite": sqlite_url(tmp_path / "db.sqlite3"), "postgresql": postgres_url}

    outputs = {name: _scan(config) for name, config in configs.items()}
    assert outputs["sqlite"] == outputs["postgresql"]
    reports = {name: _report(config) for name, config in configs.items()}
    assert reports["sqlite"] == reports["postgresql"]
    paths = {i["account"]: i["path"] for i in reports["postgresql"]["institutions"]}
    assert paths == {junk.name: "method2", existing.name: "none", full.name: "method1"}

    for config in configs.values():  # staff: the URL in the mail cannot be reached
        result = cli(config, "mark", junk.name, "--url-unreachable", "--note", "IT 山田")
        assert result.returncode == 0, result.stderr
    reports = {name: _report(config) for name, config in configs.items()}
    assert reports["sqlite"] == reports["postgresql"]
    assert {i["account"]: i["path"] for i in reports["postgresql"]["institutions"]}[
        junk.name
    ] == "method3"

    # The mailbox changes: new mail, and the server renumbers a folder.
    server.append(existing, "INBOX", mailfactory.build("other", institution="みどり医院"))
    server.change_uidvalidity(existing, "INBOX", renumber=True)
    outputs = {name: _scan(config) for name, config in configs.items()}
    assert outputs["sqlite"] == outputs["postgresql"]
    assert f"{existing.name}: 3 fetched, 1 new" in outputs["postgresql"]
    assert f"{junk.name}: 0 fetched, 0 new" in outputs["postgresql"]
    reports = {name: _report(config) for name, config in configs.items()}
    assert reports["sqlite"] == reports["postgresql"]

    for url in urls.values():
        check_store_consistent(url, None)
        assert rows(url, "SELECT COUNT(*) FROM messages") == [(5,)]
    assert rows(urls["postgresql"], "SELECT version_num FROM alembic_version") == rows(
        urls["sqlite"], "SELECT version_num FROM alembic_version"
    )
