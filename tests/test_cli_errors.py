"""Errors that say what to do, through the command line run in-process (click's CliRunner):
each asserts the exact message and exit code a user or cron sees."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mailfactory
import pytest
from click.testing import CliRunner

from gmis_mailscan import config as config_module
from gmis_mailscan.cli import main
from gmis_mailscan.config import ENV_CONFIG
from gmis_mailscan.store.db import connect, head_revision, stored_revision, upgrade

REPO = Path(__file__).resolve().parent.parent
INBOX_PASSWORD = REPO / "examples" / "mail" / "inbox-password"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Each test in an empty directory with no config named and no user config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", tmp_path / "etc" / "config.toml")
    return tmp_path


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result


def local_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///db/scan.sqlite3"\n\n[[accounts]]\nname = "box"\n'
        f'maildir = "{INBOX_PASSWORD}"\n{extra}',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("typo", "key", "message"),
    [
        ('user_name = "jimu"', "accounts[0].user_name", "unknown key; did you mean 'username'?"),
        (
            'pasword_env = "PW"',
            "accounts[0].pasword_env",
            "unknown key; did you mean 'password_env'?",
        ),  # fmt: skip
    ],
)
def test_a_misspelt_key_is_named_before_the_key_it_leaves_missing(tmp_path, typo, key, message):
    good = {"user_name": 'username = "jimu"', "pasword_env": 'password_env = "PW"'}
    other = [v for k, v in good.items() if k not in typo][0]
    path = tmp_path / "c.toml"
    path.write_text(f'[[accounts]]\nname = "m"\nhost = "h"\n{typo}\n{other}\n', encoding="utf-8")
    result = run("-c", str(path), "report", code=2)
    assert result.stderr == f"gmis-mailscan: {path}: {key}: {message}\n"


def test_an_unknown_key_suggests_the_closest_known_one(tmp_path):
    path = local_config(tmp_path, "[scan]\nbatchsize = 5\n")
    result = run("-c", str(path), "report", code=2)
    assert result.stderr == (
        f"gmis-mailscan: {path}: scan.batchsize: unknown key; did you mean 'batch_size'?\n"
    )


def test_mark_refuses_an_unknown_account_and_lists_the_known_ones():
    run("scan", "--maildir", str(INBOX_PASSWORD), "--name", "local")
    result = run("mark", "lcoal", "--login-done", code=2)
    assert result.stderr == (
        "gmis-mailscan: no account named 'lcoal'; did you mean 'local'? (known: local)\n"
    )
    assert "lcoal" not in run("report", "--format", "json").stdout  # no phantom account


def test_mark_refuses_an_account_not_in_the_config(tmp_path):
    path = local_config(tmp_path)
    result = run("-c", str(path), "mark", "nobody", "--login-done", code=2)
    assert result.stderr == f"gmis-mailscan: {path}: no account named 'nobody' (known: box)\n"


def test_mark_refuses_two_answers_at_once(tmp_path):
    path = local_config(tmp_path)
    result = run("-c", str(path), "mark", "box", "--url-unreachable", "--login-done", code=2)
    assert result.stderr == (
        "gmis-mailscan: give one of --login-done, --url-unreachable, --cannot-login, --clear, "
        "--list, not --login-done and --url-unreachable\n"
    )
    assert not (tmp_path / "db").exists()  # refused before anything was opened


def test_no_help_text_points_to_documents_users_do_not_have():
    for command in ([], ["mark"], ["scan"], ["report"], ["doctor"], ["init"], ["classify"]):
        text = run(*command, "--help").output
        assert "SPEC" not in text and "§" not in text, command


def test_init_refuses_to_overwrite_unless_forced(in_tmp):
    run("init")
    (in_tmp / "config.toml").write_text("edited", encoding="utf-8")
    result = run("init", code=2)
    assert result.stderr == (
        "gmis-mailscan: config.toml exists; not overwriting it (init --force replaces it)\n"
    )
    assert (in_tmp / "config.toml").read_text(encoding="utf-8") == "edited"
    assert run("init", "--force").stdout.startswith("wrote config.toml")
    assert "[[accounts]]" in (in_tmp / "config.toml").read_text(encoding="utf-8")


def test_a_missing_config_says_where_it_looked_and_what_to_do(in_tmp):
    result = run("doctor", code=2)
    assert result.stderr == (
        f"gmis-mailscan: config.toml: file not found (nor {in_tmp}/xdg/gmis-mailscan/config.toml"
        f", {in_tmp}/etc/config.toml): write one with `gmis-mailscan init`, or give --config PATH\n"
    )


@pytest.mark.parametrize("where", ["cwd", "xdg", "etc"])
def test_config_discovery_and_doctor_names_the_file(in_tmp, where):
    places = {
        "cwd": in_tmp / "config.toml",
        "xdg": in_tmp / "xdg" / "gmis-mailscan" / "config.toml",
        "etc": in_tmp / "etc" / "config.toml",
    }
    chosen = places[where]
    chosen.parent.mkdir(parents=True, exist_ok=True)
    local_config(in_tmp)
    if where != "cwd":
        (in_tmp / "config.toml").rename(chosen)
    later = list(places.values())[list(places).index(where) + 1 :]
    for other in later:  # a file further down the list is not read
        other.parent.mkdir(parents=True, exist_ok=True)
        other.write_text("not = [valid", encoding="utf-8")
    out = run("doctor").stdout
    assert out.splitlines()[0] == f"config: {chosen}"


def test_doctor_does_not_create_the_database(in_tmp):
    local_config(in_tmp)
    out = run("doctor").stdout
    database = in_tmp / "db" / "scan.sqlite3"
    assert out.splitlines()[1] == (
        f"database: sqlite:///{database}: not created yet (the first scan creates it)"
    )
    assert "box: 接続OK (maildir " in out
    assert not (in_tmp / "db").exists()


def test_doctor_does_not_upgrade_an_old_database(in_tmp):
    local_config(in_tmp)
    database = in_tmp / "db" / "scan.sqlite3"
    engine = connect(f"sqlite:///{database}", migrate=False)
    upgrade(engine, "0002")
    out = run("doctor").stdout
    assert out.splitlines()[1] == (
        f"database: sqlite:///{database}: schema revision 0002; the next scan or `db upgrade` "
        f"brings it to {head_revision()}"
    )
    assert stored_revision(engine) == "0002"
    engine.dispose()


# Start-up: commands that need no schema change must not import Alembic.
PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("IMPORTED", *sorted(
    m for m in ("alembic", "sqlalchemy") if m in sys.modules), file=sys.stderr))
sys.argv[0] = "gmis-mailscan"
runpy.run_module("gmis_mailscan", run_name="__main__", alter_sys=True)
"""


def imported(*args: str, cwd: Path) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr.strip().splitlines()[-1].split()[1:]


def test_light_commands_do_not_import_alembic(in_tmp):
    mail = next((INBOX_PASSWORD / "cur").glob("*M4P1*"))
    assert imported("--help", cwd=in_tmp) == []
    assert imported("init", "elsewhere.toml", cwd=in_tmp) == []
    assert imported("classify", str(mail), cwd=in_tmp) == []
    assert imported("scan", "--maildir", str(INBOX_PASSWORD), cwd=in_tmp) == [
        "alembic",
        "sqlalchemy",
    ]  # a new database: the schema is created
    assert imported("report", cwd=in_tmp) == ["sqlalchemy"]  # up to date: one plain query


# Security and port that do not match, against the real Dovecot: named, and quickly.
def imap_config(tmp_path: Path, server, user, **values) -> Path:
    password = tmp_path / "password"
    password.write_text(user.password, encoding="utf-8")
    lines = [
        f'[database]\nurl = "sqlite:///{tmp_path}/db.sqlite3"\n\n[[accounts]]\nname = "box"',
        f'host = "127.0.0.1"\nusername = "{user.name}"\npassword_file = "{password}"',
        f'ca_file = "{server.ca_file}"',
        *(f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in values.items()),
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tls_on_the_plain_port_is_named(tmp_path, dovecot_server):
    user = dovecot_server.new_user("tlsplain")
    port = dovecot_server.imap_port
    path = imap_config(tmp_path, dovecot_server, user, security="tls", port=port)
    result = run("-c", str(path), "scan", code=4)
    assert result.stderr == (
        f'box: FAILED: port {port} answered in plain text: use security = "starttls" or port '
        '993 with "tls"\nscan failed: see the lines above\n'
    )


@pytest.mark.parametrize("security", ["starttls", "plain"])
def test_starttls_or_plain_on_the_tls_port_is_named_before_the_timeout(
    tmp_path, dovecot_server, security
):
    user = dovecot_server.new_user("starttlsport")
    port = dovecot_server.imaps_port
    path = imap_config(tmp_path, dovecot_server, user, security=security, port=port)
    text = path.read_text(encoding="utf-8").replace(  # the mismatch must not wait for this
        "[[accounts]]", "[scan]\ntimeout = 600\n\n[[accounts]]"
    )
    path.write_text(text, encoding="utf-8")
    result = run("-c", str(path), "doctor", "--lang", "en", code=4)
    assert result.stderr == (
        f'box: FAILED: port {port} expects TLS at once: use security = "tls" or port 143 with '
        '"starttls"\n'
    )


def test_a_missing_folder_is_a_warning_listing_the_folders_there_are(
    tmp_path, dovecot_server, caplog
):
    user = dovecot_server.new_user("nofolder", junk_name="迷惑メール", folders=("Archive",))
    token = "MissingFolderTokenQx7pL2mN9vR4tY8"
    dovecot_server.append(user, "INBOX", mailfactory.build("password_registration", token=token))
    path = imap_config(tmp_path, dovecot_server, user, port=dovecot_server.imaps_port)
    path.write_text(
        path.read_text(encoding="utf-8") + 'folders = ["INBOX", "Junk", "Archive"]\n',
        encoding="utf-8",
    )
    result = run("-c", str(path), "scan")  # exit 0: the account was scanned
    assert result.stdout.startswith("box: 1 fetched, 1 new; folders: INBOX (inbox) 1, Archive")
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (
        "box: folder 'Junk' not found on the server, which has: INBOX, Archive, 迷惑メール (fix "
        'the account\'s folders, or remove it for "auto"); its other folders are read'
    )
    item = json.loads(run("-c", str(path), "report", "--format", "json").stdout)["institutions"]
    assert [i["path"] for i in item] == ["method4"]
    assert "'Archive'" in run("-c", str(path), "doctor").stdout  # exit 0: listed, not failed


def test_migrations_without_one_head_are_left_to_alembic(tmp_path, monkeypatch):
    """The plain-SQL shortcut must not take "no head found" for "up to date"."""
    from gmis_mailscan.store import db

    migrations = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    head = db.head_revision()
    (migrations / "versions" / "9999_branch.py").write_text(
        f'revision = "9999"\ndown_revision = {head!r}\n', encoding="utf-8"
    )
    (migrations / "versions" / "9998_branch.py").write_text(
        f'revision = "9998"\ndown_revision = {head!r}\n', encoding="utf-8"
    )
    monkeypatch.setattr(db, "MIGRATIONS_DIR", migrations)
    assert db.head_revision() is None
    with pytest.raises(db.DatabaseError, match="ultiple head"):
        connect(f"sqlite:///{tmp_path / 'new.sqlite3'}")
