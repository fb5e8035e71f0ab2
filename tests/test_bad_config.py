"""A mistake in config.toml or in a rules folder, through the command line (as cron meets it).

Each mistake must give exactly one line on stderr that names the file and the key, exit code
2 (cli.py), nothing on stdout and no traceback: cron mails that line to whoever can fix it.
The commands run in-process (tests/inprocess.py); the valid baseline runs as cron runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import inprocess
import pytest
from reliability import REPO_ROOT
from reliability import cli as subprocess_cli

VALID = """\
[database]
url = "sqlite:///{tmp}/db.sqlite3"

[scan]
batch_size = 10
timeout = 5
{scan_extra}
[[accounts]]
name = "main"
host = "127.0.0.1"
port = 143
security = "plain"
username = "jimu"
password_file = "{tmp}/password"
{account_extra}"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (id, edit of the valid config, key named in the message, words of the reason)
CASES = [
    ("missing username", lambda t: _edit(t, 'username = "jimu"\n', ""), "accounts[0].username",
     "required key is missing"),
    ("missing name", lambda t: _edit(t, 'name = "main"\n', ""), "accounts[0].name",
     "required key is missing"),
    ("missing host and source", lambda t: _edit(t, 'host = "127.0.0.1"\n', ""),
     "accounts[0].host", "required key is missing"),
    ("port not an integer", lambda t: _edit(t, "port = 143", 'port = "143"'), "accounts[0].port",
     "expected an integer"),
    ("port out of range", lambda t: _edit(t, "port = 143", "port = 99999"), "accounts[0].port",
     "expected a port number"),
    ("batch_size not an integer", lambda t: _edit(t, "batch_size = 10", 'batch_size = "10"'),
     "scan.batch_size", "expected an integer"),
    ("batch_size zero", lambda t: _edit(t, "batch_size = 10", "batch_size = 0"),
     "scan.batch_size", "positive"),
    ("timeout a boolean", lambda t: _edit(t, "timeout = 5", "timeout = true"), "scan.timeout",
     "expected an integer"),
    ("database url not a string", lambda t: _edit(t, 'url = "sqlite', 'url = 5 # "'),
     "database.url", "expected a string"),
    ("folders not a list", lambda t: t.replace("{account_extra}", "folders = 3"),
     "accounts[0].folders", "expected"),
    ("security unknown", lambda t: _edit(t, 'security = "plain"', 'security = "ssl"'),
     "accounts[0].security", "expected one of tls, starttls, plain"),
    ("unknown key in [scan]", lambda t: t.replace("{scan_extra}", "batchsize = 5"),
     "scan.batchsize", "unknown key"),
    ("unknown key in an account", lambda t: t.replace("{account_extra}", 'hots = "x"'),
     "accounts[0].hots", "unknown key"),
    ("unknown table", lambda t: t + '\n[databse]\nurl = "x"\n', "databse", "unknown key"),
    ("password written in the config", lambda t: t.replace("{account_extra}", 'password = "s"'),
     "accounts[0].password", "passwords are not written in the config"),
    ("two password sources",
     lambda t: t.replace("{account_extra}", 'password_env = "GMIS_PW"'),
     "accounts[0].password_env", "give exactly one of"),
    ("password_file does not exist",
     lambda t: _edit(t, '{tmp}/password"', '{tmp}/no-such-file"'),
     "accounts[0].password_file", "No such file or directory"),
    ("password_file unreadable (a folder)",
     lambda t: _edit(t, '{tmp}/password"', '{tmp}"'),
     "accounts[0].password_file", "cannot read"),
    ("quota ratio out of range", lambda t: t.replace("{scan_extra}", "quota_full_ratio = 90"),
     "scan.quota_full_ratio", "expected a number in (0, 1]"),
    ("negative quota age", lambda t: t.replace("{scan_extra}", "quota_max_age_minutes = -5"),
     "scan.quota_max_age_minutes", "expected a number >= 0"),
    ("negative search connections",
     lambda t: t.replace("{scan_extra}", "search_connections = -1"),
     "scan.search_connections", "expected 0 or a positive integer"),
    ("duplicate account name",
     lambda t: t + '\n[[accounts]]\nname = "main"\nmaildir = "{tmp}"\n',
     "accounts[1].name", "duplicate account name"),
]  # fmt: skip


def cli(config: Path, *args: str):
    return inprocess.run(["--config", str(config), *args])


def _write(tmp: Path, text: str) -> Path:
    (tmp / "password").write_text("secret\n")
    path = tmp / "config.toml"
    text = text.replace("{scan_extra}", "").replace("{account_extra}", "")
    path.write_text(text.replace("{tmp}", str(tmp)), encoding="utf-8")
    return path


def _assert_one_clear_line(result, file: Path, key: str, why: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert str(file) in line, line
    assert key in line, line
    assert why in line, line


@pytest.mark.parametrize("edit,key,why", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_mistake_gives_one_line_and_exit_2(edit, key, why, tmp_path):
    config = _write(tmp_path, edit(VALID))
    _assert_one_clear_line(cli(config, "scan"), config, f": {key}: ", why)


def test_valid_config_is_accepted(tmp_path):
    """The baseline above is valid: only the edits make it fail (an unreachable server: 4)."""
    config = _write(tmp_path, VALID.replace("port = 143", "port = 9"))
    result = subprocess_cli(config, "scan")
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["report"], ["doctor"], ["mark", "main", "--list"]])
def test_every_command_reports_config_mistakes_the_same_way(command, tmp_path):
    config = _write(tmp_path, VALID.replace("{scan_extra}", "batchsize = 5"))
    _assert_one_clear_line(cli(config, *command), config, ": scan.batchsize: ", "unknown key")


def test_invalid_toml_names_the_file_and_line(tmp_path):
    config = _write(tmp_path, _edit(VALID, "[scan]", "[scan"))
    _assert_one_clear_line(cli(config, "scan"), config, "not valid TOML", "line 4")


def test_missing_config_file_is_named(tmp_path):
    config = tmp_path / "nope.toml"
    _assert_one_clear_line(cli(config, "scan"), config, "file not found", "")


def test_database_url_that_is_no_url(tmp_path):
    config = _write(tmp_path, _edit(VALID, 'url = "sqlite:///{tmp}/db.sqlite3"', 'url = "dbfile"'))
    _assert_one_clear_line(cli(config, "scan"), config, "[database] url", "not a database URL")


def _rules_copy(tmp: Path) -> Path:
    rules = tmp / "myrules"
    shutil.copytree(REPO_ROOT / "rules", rules)
    return rules


def test_rules_dir_with_a_broken_regex(tmp_path):
    rules = _rules_copy(tmp_path)
    gmis = rules / "gmis.toml"
    text = gmis.read_text(encoding="utf-8")
    broken = _edit(text, "(?P<value>[A-Za-z0-9][A-Za-z0-9._@+\\-]*)']", "(?P<value>[A-Za-z0-9']")
    gmis.write_text(broken, encoding="utf-8")
    config = _write(tmp_path, VALID.replace("{scan_extra}", 'rules_dir = "myrules"'))
    result = cli(config, "scan")
    _assert_one_clear_line(
        result, gmis, ": fields.login_id.patterns[0]: ", "bad regular expression"
    )
    # `classify` reads the same rules: the same line
    mail = tmp_path / "m.eml"
    mail.write_bytes(b"From: a@b\r\nSubject: x\r\n\r\nbody\r\n")
    again = cli(config, "classify", str(mail))
    assert again.returncode == 2 and again.stderr == result.stderr


def test_rules_dir_with_a_pattern_without_its_value_group(tmp_path):
    rules = _rules_copy(tmp_path)
    gmis = rules / "gmis.toml"
    text = gmis.read_text(encoding="utf-8")
    gmis.write_text(_edit(text, "申請番号\\s*:\\s*(?P<value>", "申請番号\\s*:\\s*("), "utf-8")
    config = _write(tmp_path, VALID.replace("{scan_extra}", 'rules_dir = "myrules"'))
    _assert_one_clear_line(
        cli(config, "scan"), gmis, ": fields.application_number.patterns[0]: ", "named 'value'"
    )


def test_rules_dir_that_does_not_exist(tmp_path):
    config = _write(tmp_path, VALID.replace("{scan_extra}", 'rules_dir = "nowhere"'))
    _assert_one_clear_line(cli(config, "scan"), tmp_path / "nowhere", "rules folder", "not found")
