"""config.toml → Config: the example loads; every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gmis_mailscan.config import (
    DEFAULT_CONFIG,
    ENV_CONFIG,
    PasswordSource,
    config_path,
    load_config,
)
from gmis_mailscan.tomlcheck import TomlError

REPO = Path(__file__).resolve().parent.parent

ACCOUNT = """
[[accounts]]
name = "sakura"
host = "mail.example.jp"
username = "jimu@example.jp"
password_env = "SAKURA_PASSWORD"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads():
    config = load_config(REPO / "config.example.toml")
    assert config.database_url == f"sqlite:///{REPO / 'gmis-mailscan.sqlite3'}"
    assert config.quota_full_ratio == 0.9
    assert (config.batch_size, config.timeout, config.concurrency) == (50, 30.0, 20)
    assert (config.quota_max_age, config.search_connections) == (3600, 0)
    [account] = config.accounts
    assert account.name == "sakura-hospital"
    assert config.accounts_by_name == {"sakura-hospital": account}
    assert account.imap.host == "mail.sakura-hospital.example.jp"
    assert (account.imap.port, account.imap.security) == (993, "tls")
    assert account.imap.password == PasswordSource(env="GMIS_SAKURA_PASSWORD")
    assert account.imap.folders is None  # "auto"
    assert account.institution == "さくら病院"
    assert account.address == "鹿児島県鹿屋市札元1丁目1番1号"


def test_examples_config_loads():
    config = load_config(REPO / "examples" / "config.toml")
    assert len(config.accounts) == 8
    mbox = config.accounts_by_name["mbox-export"].local
    assert mbox.kind == "mbox"
    assert mbox.path == REPO / "examples" / "mail" / "mbox-export" / "INBOX.mbox"
    assert mbox.junk_paths == (REPO / "examples" / "mail" / "mbox-export" / "Junk.mbox",)


def test_minimal_account_defaults(tmp_path):
    config = load_config(write(tmp_path, ACCOUNT))
    imap = config.accounts[0].imap
    assert (imap.port, imap.security, imap.auth, imap.ca_file) == (993, "tls", "password", None)
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'gmis-mailscan.sqlite3'}"


@pytest.mark.parametrize(
    "security,port", [("tls", 993), ("starttls", 143), ("plain", 143)], ids=str
)
def test_default_port_follows_security(tmp_path, security, port):
    config = load_config(write(tmp_path, ACCOUNT + f'security = "{security}"\n'))
    assert config.accounts[0].imap.port == port


ERROR_CASES = [
    # (name, config text, key named, words in the reason)
    ("missing name", ACCOUNT.replace('name = "sakura"\n', ""), "accounts[0].name", "missing"),
    (
        "missing username",
        ACCOUNT.replace('username = "jimu@example.jp"\n', ""),
        "accounts[0].username",
        "missing",
    ),
    (
        "missing host",
        ACCOUNT.replace('host = "mail.example.jp"\n', ""),
        "accounts[0].host",
        "missing",
    ),
    ("empty name", ACCOUNT.replace('"sakura"', '" "'), "accounts[0].name", "must not be empty"),
    ("port not an integer", ACCOUNT + 'port = "abc"\n', "accounts[0].port", "expected an integer"),
    ("port a boolean", ACCOUNT + "port = true\n", "accounts[0].port", "expected an integer"),
    ("port out of range", ACCOUNT + "port = 70000\n", "accounts[0].port", "port number"),
    ("name not a string", ACCOUNT.replace('"sakura"', "7"), "accounts[0].name", "a string"),
    ("unknown account key", ACCOUNT + "colour = 1\n", "accounts[0].colour", "unknown key"),
    ("unknown top-level table", "[databse]\nurl = 'x'\n" + ACCOUNT, "databse", "unknown key"),
    ("unknown scan key", "[scan]\nbatchsize = 5\n" + ACCOUNT, "scan.batchsize", "unknown key"),
    (
        "sender in the config",
        "[scan]\nsender = 'x@g-mis.net'\n" + ACCOUNT,
        "scan.sender",
        "rules/gmis.toml [sender] address",
    ),
    (
        "bad security",
        ACCOUNT + 'security = "ssl"\n',
        "accounts[0].security",
        "expected one of tls, starttls, plain",
    ),
    (
        "plain-text password",
        ACCOUNT + 'password = "hunter2"\n',
        "accounts[0].password",
        "passwords are not written in the config",
    ),
    (
        "two password sources",
        ACCOUNT + 'password_file = "secret.txt"\n',
        "accounts[0].password_env",
        "exactly one of",
    ),
    (
        "no password source",
        ACCOUNT.replace('password_env = "SAKURA_PASSWORD"\n', ""),
        "accounts[0].password_env",
        "exactly one of",
    ),
    (
        "password file missing",
        ACCOUNT.replace("password_env", "password_file"),
        "accounts[0].password_file",
        "cannot read",
    ),
    ("duplicate account names", ACCOUNT + ACCOUNT, "accounts[1].name", "duplicate account name"),
    (
        "quota ratio above 1",
        "[scan]\nquota_full_ratio = 1.5\n" + ACCOUNT,
        "scan.quota_full_ratio",
        "(0, 1]",
    ),
    (
        "quota ratio zero",
        "[scan]\nquota_full_ratio = 0\n" + ACCOUNT,
        "scan.quota_full_ratio",
        "(0, 1]",
    ),
    (
        "quota ratio negative",
        "[scan]\nquota_full_ratio = -0.5\n" + ACCOUNT,
        "scan.quota_full_ratio",
        "(0, 1]",
    ),
    (
        "quota ratio a string",
        '[scan]\nquota_full_ratio = "90%"\n' + ACCOUNT,
        "scan.quota_full_ratio",
        "expected a number",
    ),
    ("batch size zero", "[scan]\nbatch_size = 0\n" + ACCOUNT, "scan.batch_size", "positive"),
    ("url not a string", "[database]\nurl = 5\n" + ACCOUNT, "database.url", "a string"),
    (
        "folders not a list",
        ACCOUNT + 'folders = "INBOX"\n',
        "accounts[0].folders",
        "expected",
    ),
    (
        "folders with a number",
        ACCOUNT + 'folders = ["INBOX", 3]\n',
        "accounts[0].folders",
        "list of strings",
    ),
    ("account not a table", "accounts = [1]\n", "accounts[0]", "expected a table"),
    (
        "maildir and host",
        ACCOUNT + 'maildir = "mail"\n',
        "accounts[0].host",
        "either IMAP (host) or maildir",
    ),
    (
        "maildir and mbox",
        '[[accounts]]\nname = "x"\nmaildir = "m"\nmbox = "b"\n',
        "accounts[0].mbox",
        "only one of",
    ),
    (
        "oauth2 without token command",
        ACCOUNT.replace('password_env = "SAKURA_PASSWORD"\n', 'auth = "oauth2"\n'),
        "accounts[0].token_command",
        "missing",
    ),
    (
        "dkim not a boolean",
        '[verify]\ndkim = "yes"\n' + ACCOUNT,
        "verify.dkim",
        "true or false",
    ),
]


@pytest.mark.parametrize(
    "text,key,why", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_config_error_names_file_and_key(tmp_path, text, key, why):
    path = write(tmp_path, text)
    with pytest.raises(TomlError) as info:
        load_config(path)
    error = info.value
    assert (error.file, error.key) == (str(path), key)
    assert str(error).startswith(f"{path}: {key}: ")
    assert why in error.why
    assert "\n" not in str(error)


def test_plain_text_password_is_never_echoed(tmp_path):
    path = write(tmp_path, ACCOUNT + 'password = "hunter2-Secret"\n')
    with pytest.raises(TomlError) as info:
        load_config(path)
    assert "hunter2-Secret" not in str(info.value)


def test_invalid_toml(tmp_path):
    path = write(tmp_path, ACCOUNT + "port = \n")
    with pytest.raises(TomlError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: not valid TOML: ")
    assert "line 7" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(TomlError) as info:
        load_config(tmp_path / "nope.toml")
    assert str(info.value) == f"{tmp_path / 'nope.toml'}: file not found"


SQLITE_CASES = [
    # (name, url in the config, url loaded; {base} is the config's folder)
    ("relative", "sqlite:///data/scan.db", "sqlite:///{base}/data/scan.db"),
    ("relative file", "sqlite:///scan.db", "sqlite:///{base}/scan.db"),
    ("absolute", "sqlite:////var/lib/gmis/scan.db", "sqlite:////var/lib/gmis/scan.db"),
    ("memory", "sqlite:///:memory:", "sqlite:///:memory:"),
    ("memory, short", "sqlite://", "sqlite://"),
    (
        "postgresql untouched",
        "postgresql+psycopg://gmis@db.example/gmis",
        "postgresql+psycopg://gmis@db.example/gmis",
    ),
]


@pytest.mark.parametrize(
    "url,expected", [c[1:] for c in SQLITE_CASES], ids=[c[0] for c in SQLITE_CASES]
)
def test_sqlite_relative_url_resolved_against_the_config_folder(tmp_path, url, expected):
    folder = tmp_path / "etc"
    folder.mkdir()
    config = load_config(write(folder, f'[database]\nurl = "{url}"\n' + ACCOUNT))
    assert config.database_url == expected.format(base=folder.resolve())


def test_sqlite_relative_url_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, '[database]\nurl = "sqlite:///scan.db"\n' + ACCOUNT)
    monkeypatch.chdir(tmp_path)
    assert load_config(Path("etc/config.toml")).database_url == (
        f"sqlite:///{folder.resolve()}/scan.db"
    )
    assert path.exists()


def test_relative_paths_resolved_against_the_config_folder(tmp_path):
    text = ACCOUNT.replace(
        'password_env = "SAKURA_PASSWORD"', 'password_file = "secrets/pw"\nca_file = "ca.pem"'
    )
    text += '\n[[accounts]]\nname = "disk"\nmaildir = "mail/box"\njunk_paths = ["j.mbox"]\n'
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("not read by load_config\n")
    config = load_config(write(tmp_path, text))
    imap = config.accounts[0].imap
    base = tmp_path.resolve()
    assert imap.password == PasswordSource(file=base / "secrets" / "pw")
    assert imap.ca_file == base / "ca.pem"
    local = config.accounts_by_name["disk"].local
    assert (local.kind, local.path, local.junk_paths) == (
        "maildir",
        base / "mail/box",
        (base / "j.mbox",),
    )


def test_config_path_precedence(monkeypatch):
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    assert config_path(None) == DEFAULT_CONFIG
    monkeypatch.setenv(ENV_CONFIG, "/etc/gmis.toml")
    assert config_path(None) == Path("/etc/gmis.toml")
    assert config_path("given.toml") == Path("given.toml")
