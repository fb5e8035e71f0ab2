"""config.toml → Config: typed, validated, with errors naming the file and the key.

Every key is documented in config.example.toml. Secrets are not read here: an account only
says where its password comes from (`password_env`, `password_file`, `password_command`);
`secrets.py` reads it when connecting, so a Config can be logged or shown safely.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .tomlcheck import Table, TomlError, load_toml

ENV_CONFIG = "GMIS_MAILSCAN_CONFIG"
DEFAULT_CONFIG = Path("config.toml")
SYSTEM_CONFIG = Path("/etc/gmis-mailscan/config.toml")
LOCAL_KINDS = ("maildir", "mbox", "eml_dir", "msg_dir")
SECURITY = ("tls", "starttls", "plain")


@dataclass(frozen=True)
class PasswordSource:
    """Where a secret comes from; never the secret itself."""

    env: str | None = None
    file: Path | None = None
    command: str | None = None


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str
    username: str
    password: PasswordSource | None  # None with auth = "oauth2"
    auth: str = "password"  # "password" | "oauth2"
    token_command: str | None = None  # prints an OAuth2 access token (XOAUTH2)
    ca_file: Path | None = None
    folders: tuple[str, ...] | None = None  # None = "auto": INBOX + junk folders found


@dataclass(frozen=True)
class LocalSettings:
    kind: str  # maildir | mbox | eml_dir | msg_dir (Outlook .msg files)
    path: Path
    junk_paths: tuple[Path, ...] = ()  # mbox files / .eml or .msg folders that are junk


@dataclass(frozen=True)
class Account:
    name: str
    imap: ImapSettings | None = None
    local: LocalSettings | None = None
    junk_folders: tuple[str, ...] = ()
    institution: str | None = None
    address: str | None = None
    rescue_folder: str | None = None  # where `rescue` moves mail out of junk (default INBOX)


@dataclass(frozen=True)
class NotifySettings:
    """[notify]: where the summary mail goes (SMTP), and whether scans send it by default."""

    smtp_host: str
    smtp_port: int
    security: str  # tls | starttls | plain (loopback only)
    sender: str  # the `from` key
    to: tuple[str, ...]
    username: str | None = None
    password: PasswordSource | None = None
    ca_file: Path | None = None
    subject_prefix: str = "[gmis-mailscan]"
    lang: str = "ja"
    enabled: bool = False  # the `notify` key: scans notify without --notify
    timeout: float = 30.0


@dataclass(frozen=True)
class WatchSettings:
    """[watch]: how `gmis-mailscan watch` waits for new mail."""

    full_scan: float = 3600.0  # seconds between full scans of every account
    poll: float = 60.0  # seconds between checks of a folder that is not IDLEd on
    connections: int = 4  # IDLE connections per account at most; other folders are polled
    relogin: float = 29 * 60.0  # seconds; servers may drop an IDLE after 30 minutes
    backoff_max: float = 300.0  # seconds; the longest wait before reconnecting
    backoff_initial: float = 1.0  # seconds; the first wait, doubled on every failure


@dataclass(frozen=True)
class Config:
    path: Path | None
    database_url: str
    accounts: tuple[Account, ...]
    quota_full_ratio: float = 0.9
    quota_max_age: float = 3600.0  # seconds a quota reading of an unchanged mailbox is kept
    rules_dir: Path | None = None
    batch_size: int = 50
    timeout: float = 30.0
    concurrency: int = 20
    search_connections: int = 0  # extra IMAP connections searching a big folder
    lock_timeout: float = 0.0
    dkim: bool = False
    authserv_ids: tuple[str, ...] = ()
    report_lang: str = "ja"  # [report] lang: ja | en
    report_timezone: str | None = None  # [report] timezone (IANA name); None: the machine's
    accounts_by_name: dict[str, Account] = field(default_factory=dict, compare=False)
    notify: NotifySettings | None = None
    watch: WatchSettings = WatchSettings()


def config_path(option: str | None) -> Path:
    """--config, else $GMIS_MAILSCAN_CONFIG, else the first of config_places() that exists
    (./config.toml when none does, so that the error names the usual file)."""
    given = option or os.environ.get(ENV_CONFIG)
    if given:
        return Path(given)
    places = config_places()
    return next((p for p in places if p.is_file()), places[0])


def config_places() -> tuple[Path, ...]:
    """Where a config is looked for when none is named: the working directory, the user's
    config folder (%APPDATA% on Windows, $XDG_CONFIG_HOME or ~/.config elsewhere), /etc."""
    if os.name == "nt":
        user = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
        return DEFAULT_CONFIG, user / "gmis-mailscan" / "config.toml"
    user = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return DEFAULT_CONFIG, user / "gmis-mailscan" / "config.toml", SYSTEM_CONFIG


def default_database_url(base: Path) -> str:
    return f"sqlite:///{(base / 'gmis-mailscan.sqlite3').resolve()}"


def load_config(path: Path) -> Config:
    """Read and validate a config file; raise TomlError naming the key on any mistake."""
    top = Table(load_toml(path), path)
    base = path.resolve().parent
    database = top.table("database", {})
    url = database.get("url", str, default_database_url(base))
    scan = top.table("scan", {})
    verify = top.table("verify", {})
    report = top.table("report", {})
    accounts = tuple(_account(t, base) for t in top.tables("accounts"))
    names = [a.name for a in accounts]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise TomlError(path, f"accounts[{i}].name", f"duplicate account name {name!r}")
    ratio = scan.get("quota_full_ratio", float, 0.9)
    if not 0 < ratio <= 1:
        raise scan.error("quota_full_ratio", f"expected a number in (0, 1], got {ratio}")
    max_age = scan.get("quota_max_age_minutes", float, 60.0)
    if max_age < 0:
        raise scan.error("quota_max_age_minutes", f"expected a number >= 0, got {max_age:g}")
    rules_dir = scan.get("rules_dir", str, None)
    if "sender" in scan.data:  # one source of truth: the rules file names the sender
        raise scan.error("sender", "no longer read: the sender is rules/gmis.toml [sender] address")
    notify = _notify(top.table("notify"), base) if top.has("notify") else None
    watch = _watch(top.table("watch", {}))
    config = Config(
        path=path,
        database_url=_sqlite_relative(url, base),
        accounts=accounts,
        quota_full_ratio=ratio,
        quota_max_age=max_age * 60,
        rules_dir=_resolve(base, rules_dir) if rules_dir else None,
        batch_size=_integer(scan, "batch_size", 50),
        timeout=float(_integer(scan, "timeout", 30)),
        concurrency=_integer(scan, "concurrency", Config.concurrency),
        search_connections=_integer(scan, "search_connections", 0, zero_ok=True),
        lock_timeout=scan.get("lock_timeout", float, 0.0),
        dkim=verify.get("dkim", bool, False),
        authserv_ids=tuple(verify.str_list("authserv_ids", [])),
        report_lang=report.choice("lang", ("ja", "en"), "ja"),
        report_timezone=_timezone(report),
        accounts_by_name={a.name: a for a in accounts},
        notify=notify,
        watch=watch,
    )
    for t in (database, scan, verify, report, top):
        t.done()
    return config


def no_config() -> Config:
    """No config file: the database in the working directory, no accounts."""
    return Config(path=None, database_url=default_database_url(Path.cwd()), accounts=())


def with_local_account(
    config: Config, kind: str, path: Path, name: str, junk: tuple[Path, ...] = ()
) -> Config:
    """`config` scanning only PATH (`scan --maildir/--mbox/--eml-dir PATH`)."""
    account = Account(name, local=LocalSettings(kind, path.resolve(), junk))
    return replace(config, accounts=(account,), accounts_by_name={name: account})


def _account(t: Table, base: Path) -> Account:
    name = t.get("name", str)
    if not name.strip():
        raise t.error("name", "must not be empty")
    kinds = [k for k in LOCAL_KINDS if t.has(k)]
    if len(kinds) > 1:
        raise t.error(kinds[1], f"give only one of {', '.join(LOCAL_KINDS)}, host")
    imap = local = None
    if kinds:
        if t.has("host"):
            raise t.error("host", f"an account reads either IMAP (host) or {kinds[0]}, not both")
        junk = tuple(_resolve(base, p) for p in t.str_list("junk_paths", []))
        local = LocalSettings(kinds[0], _resolve(base, t.get(kinds[0], str)), junk)
    else:
        imap = _imap(t, base)
    account = Account(
        name=name,
        imap=imap,
        local=local,
        junk_folders=tuple(t.str_list("junk_folders", [])),
        institution=t.get("institution", str, None),
        address=t.get("address", str, None),
        rescue_folder=t.get("rescue_folder", str, None),
    )
    t.done()
    return account


def _imap(t: Table, base: Path) -> ImapSettings:
    if not t.has("host"):
        raise t.error("host", f"required key is missing (or give one of {', '.join(LOCAL_KINDS)})")
    security = t.choice("security", SECURITY, "tls")
    port = t.get("port", int, {"tls": 993}.get(security, 143))
    if not 0 < port < 65536:
        raise t.error("port", f"expected a port number, got {port}")
    auth = t.choice("auth", ("password", "oauth2"), "password")
    password = None
    token_command = None
    if auth == "oauth2":
        token_command = t.get("token_command", str)
    else:
        password = _password_source(t, base)
    folders = t.data.get("folders", "auto")
    if isinstance(folders, str) and folders != "auto":
        raise t.error("folders", f'expected "auto" or a list of folder names, got {folders!r}')
    if folders == "auto":
        t.get("folders", str, "auto")
        folder_list = None
    else:
        folder_list = tuple(t.str_list("folders"))
    ca_file = t.get("ca_file", str, None)
    return ImapSettings(
        host=t.get("host", str),
        port=port,
        security=security,
        username=t.get("username", str),
        password=password,
        auth=auth,
        token_command=token_command,
        ca_file=_resolve(base, ca_file) if ca_file else None,
        folders=folder_list,
    )


def _password_source(t: Table, base: Path) -> PasswordSource:
    given = [k for k in ("password_env", "password_file", "password_command") if t.has(k)]
    if t.has("password"):
        raise t.error(
            "password",
            "passwords are not written in the config: use password_env, password_file "
            "or password_command",
        )
    if not given:
        for key in ("password_env", "password_file", "password_command"):
            if misspelt := t.misspelt(key):
                raise misspelt
    if len(given) != 1:
        raise t.error(
            "password_env", "give exactly one of password_env, password_file, password_command"
        )
    key = given[0]
    value = t.get(key, str)
    if key == "password_env":
        return PasswordSource(env=value)
    if key == "password_file":
        path = _resolve(base, value)
        try:  # checked now so that cron fails early with exit 2; the content is read at login
            path.open("rb").close()
        except OSError as exc:
            raise t.error(key, f"cannot read {path}: {exc.strerror}") from None
        return PasswordSource(file=path)
    return PasswordSource(command=value)


def _notify(t: Table, base: Path) -> NotifySettings:
    from .sources.imap import is_loopback  # here: imap imports this module

    host = t.get("smtp_host", str)
    security = t.choice("security", SECURITY, "tls")
    if security == "plain" and not is_loopback(host):
        raise t.error(
            "security",
            f'"plain" refused for {host}: mail and password would cross the network '
            "unencrypted (plain SMTP is allowed on loopback only); use tls or starttls",
        )
    port = t.get("smtp_port", int, {"tls": 465, "starttls": 587}.get(security, 25))
    if not 0 < port < 65536:
        raise t.error("smtp_port", f"expected a port number, got {port}")
    to = tuple(t.str_list("to"))
    if not to:
        raise t.error("to", "give at least one address to mail")
    for key, addr in [("from", t.get("from", str)), *(("to", a) for a in to)]:
        if "@" not in addr or any(c in addr for c in "\r\n<>,"):
            raise t.error(
                key, f"expected one mail address like it@hospital.example.jp, got {addr!r}"
            )
    username = t.get("username", str, None)
    ca_file = t.get("ca_file", str, None)
    settings = NotifySettings(
        smtp_host=host,
        smtp_port=port,
        security=security,
        sender=t.get("from", str),
        to=to,
        username=username,
        password=_password_source(t, base) if username is not None else None,
        ca_file=_resolve(base, ca_file) if ca_file else None,
        subject_prefix=" ".join(t.get("subject_prefix", str, "[gmis-mailscan]").split()),
        lang=t.choice("lang", ("ja", "en"), "ja"),
        enabled=t.get("notify", bool, False),
        timeout=float(_integer(t, "timeout", 30)),
    )
    t.done()
    return settings


def _watch(t: Table) -> WatchSettings:
    def seconds(key: str, default: float, scale: float = 1.0) -> float:
        value = t.get(key, float, default)
        if value <= 0:
            raise t.error(key, f"expected a number > 0, got {value:g}")
        return value * scale

    settings = WatchSettings(
        full_scan=seconds("full_scan_minutes", 60.0, 60),
        poll=seconds("poll_seconds", 60.0),
        connections=_integer(t, "connections", 4, zero_ok=True),
        relogin=seconds("relogin_minutes", 29.0, 60),
        backoff_max=seconds("backoff_max_seconds", 300.0),
        backoff_initial=seconds("backoff_initial_seconds", 1.0),
    )
    t.done()
    return settings


def _integer(t: Table, key: str, default: int, *, zero_ok: bool = False) -> int:
    value = t.get(key, int, default)
    if value < 0 or (value == 0 and not zero_ok):
        wanted = "0 or a positive integer" if zero_ok else "a positive integer"
        raise t.error(key, f"expected {wanted}, got {value}")
    return value


def _timezone(t: Table) -> str | None:
    name = t.get("timezone", str, None)
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise t.error(
                "timezone", f'unknown time zone {name!r}: use a name such as "Asia/Tokyo"'
            ) from None
    return name


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _sqlite_relative(url: str, base: Path) -> str:
    """sqlite:///relative.db is relative to the config file, not to cron's working dir."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return prefix + str(base / rest)
    return url
