"""State history, `history` command and exit code 6, through the CLI on the example Maildirs,
and history across the migration from the previous head with data in it (SQLite and
PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import datetime

from reliability import REPO_ROOT, cli, write_config
from test_migrations import (
    _as_the_application_sees_it,
    _check_first_release_data,
    first_release_db,  # noqa: F401  (fixture)
)

from gmis_mailscan.config import Account, Config
from gmis_mailscan.rules import load_rules
from gmis_mailscan.status import assess_all
from gmis_mailscan.store.db import upgrade
from gmis_mailscan.store.repo import Repo

MAIL = REPO_ROOT / "examples" / "mail"


def _maildir_config(tmp_path, *names):
    accounts = [{"name": n, "maildir": str(tmp_path / n)} for n in names]
    for n in names:
        shutil.copytree(MAIL / n, tmp_path / n)
    return write_config(tmp_path / "config.toml", f"sqlite:///{tmp_path / 'db.sqlite3'}", accounts)


def _history(config, *args):
    result = cli(config, "history", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_scan_records_changes_once_and_mark_is_a_change(tmp_path):
    config = _maildir_config(tmp_path, "inbox-password", "spoof-only")
    assert cli(config, "-q", "scan").returncode == 0
    first = _history(config)
    assert [(h["account"], h["from_path"], h["to_path"]) for h in first] == [
        ("inbox-password", None, "method4"),
        ("spoof-only", None, "review"),
    ]
    entry = first[0]
    assert entry["institution"] == "きりしま記念病院" and entry["scan_run"] == 1
    assert datetime.fromisoformat(entry["at"]).utcoffset() is not None
    assert "ログインIDが判明: kgs-kirishima-21" in entry["reason"]["ja"]
    assert "login ID found: kgs-kirishima-21" in entry["reason"]["en"]
    assert "new_suspicious_mail" in [c["code"] for c in first[1]["changes"]]

    assert cli(config, "-q", "scan").returncode == 0  # nothing changed: nothing added
    assert cli(config, "report", "-f", "json").returncode == 0
    assert _history(config) == first

    assert cli(config, "mark", "inbox-password", "--login-done").returncode == 0
    marked = _history(config, "inbox-password")[-1]
    assert (marked["from_state"], marked["to_state"]) == (
        "password_mail_received",
        "login_completed",
    )
    assert (marked["to_path"], marked["cause"], marked["scan_run"]) == ("none", "mark", None)
    assert len(_history(config)) == 3
    assert _history(config, "spoof-only") == first[1:]
    assert _history(config, "--since", "2999-01-01") == []
    table = cli(config, "history", "inbox-password", "--lang", "en")
    assert table.returncode == 0 and "method4 → none" in table.stdout
    bad = cli(config, "history", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_exit_code_6_when_someone_must_act(tmp_path):
    config = _maildir_config(tmp_path / "a", "existing")
    quiet_ok = cli(config, "-q", "scan", "--exit-code")
    assert (quiet_ok.returncode, quiet_ok.stdout) == (0, "")
    config = _maildir_config(tmp_path, "existing", "no-mail")
    act = cli(config, "-q", "scan", "--exit-code")
    assert act.returncode == 6, act.stderr
    assert "no-mail" in act.stdout and "新規ユーザ登録申請" in act.stdout  # the report

    report = cli(config, "-q", "report", "--exit-code")
    assert report.returncode == 6 and "新規ユーザ登録申請" in report.stdout
    out = tmp_path / "report.csv"
    to_file = cli(config, "-q", "report", "--exit-code", "-f", "csv", "-o", str(out))
    assert (to_file.returncode, to_file.stdout) == (6, "")
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert {r["アカウント"]: r["対応コード"] for r in rows}["no-mail"] == "register"
    assert cli(config, "report").returncode == 0  # without --exit-code: 0 as before

    # Staff marked the only account with an open path as done: nothing to act on, no output.
    config = _maildir_config(tmp_path / "b", "inbox-password")
    assert cli(config, "-q", "scan", "--exit-code").returncode == 6
    assert cli(config, "mark", "inbox-password", "--login-done").returncode == 0
    calm_report = cli(config, "-q", "report", "--exit-code")
    assert (calm_report.returncode, calm_report.stdout) == (0, "")


def test_a_new_suspicious_mail_is_a_new_warning(tmp_path):
    config = _maildir_config(tmp_path, "existing")
    assert cli(config, "-q", "scan", "--exit-code").returncode == 0
    (spoof,) = (MAIL / "spoof-only" / "cur").glob("1699232400.M4P1.example*")  # g-rnis.net
    shutil.copy(spoof, tmp_path / "existing" / "cur" / "spoof:2,S")
    again = cli(config, "-q", "scan", "--exit-code")
    assert again.returncode == 6, again.stderr  # path still none, but a new warning
    last = _history(config)[-1]
    assert last["from_path"] == last["to_path"] == "none"
    assert {c["code"] for c in last["changes"]} == {"new_suspicious_mail", "new_warning"}
    assert cli(config, "-q", "scan", "--exit-code").returncode == 0  # no longer new


def test_history_survives_the_migration_from_the_previous_head(first_release_db):  # noqa: F811
    engine = first_release_db
    upgrade(engine, "0004")  # the head before this migration, with data in it
    upgrade(engine)
    _check_first_release_data(_as_the_application_sees_it(engine))
    repo = Repo(engine)
    assert repo.history() == []
    config = Config(
        path=None,
        database_url=str(engine.url),
        accounts=(Account("sakura", institution="さくら病院"), Account("branch")),
    )
    assess_all(config, load_rules(), repo)
    changes = repo.history()
    # Only the institution not stored before is new; the stored one did not change.
    assert [(c.account, c.institution, c.from_state, c.to_state) for c in changes] == [
        ("sakura", "医療法人①髙木病院～本院", None, "existing_account"),
        ("branch", None, None, "no_mail"),
    ]
    assess_all(config, load_rules(), repo)
    assert repo.history() == changes
