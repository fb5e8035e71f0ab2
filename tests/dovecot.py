"""A real, private Dovecot IMAP server on loopback for the test suite.

Why: the scanner talks IMAP to real servers (modified UTF-7 names, SPECIAL-USE,
QUOTA, UIDVALIDITY changes, TLS).  Mocks would only confirm our own assumptions,
so tests run against a throw-away Dovecot 2.3 instance instead.

Everything lives in one short temp dir (unix socket paths are limited to 108
bytes): config, TLS material, passwd-files, the users' Maildirs and the logs.
``stop()`` kills the process group and removes the dir.  Start-up takes well under
a second, so a test that needs a special config can afford its own instance.

Usage::

    with DovecotServer() as srv:
        alice = srv.add_user("alice", "secret", quota_kib=1024)
        uid = srv.append(alice, "INBOX", b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
        with srv.connect(alice) as imap:  # implicit TLS, verified against srv.ca_file
            ...

or import the session fixture into a conftest (``from dovecot import dovecot_server``)
and create a fresh user per test with ``dovecot_server.new_user(...)``.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import grp
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from email.header import Header
from email.utils import format_datetime, make_msgid
from pathlib import Path
from types import TracebackType
from typing import Literal

import pytest
from imapclient import IMAPClient

__all__ = [
    "DEFAULT_JUNK_NAMES",
    "DovecotServer",
    "DovecotUnavailable",
    "QuotaUsage",
    "User",
    "dovecot_available",
    "dovecot_server",
    "make_message",
]

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

#: Folder names that get ``\Junk`` SPECIAL-USE in the config.  Dovecot 2.3 cannot define
#: mailboxes per user, so every name here is flagged for every user *if it exists*;
#: ``add_user`` creates only the one junk folder the test asked for.  For a junk-looking
#: folder *without* the flag (name-only detection) start a server with other junk_names.
DEFAULT_JUNK_NAMES: tuple[str, ...] = (
    "Junk",
    "Spam",
    "迷惑メール",
    "Junk E-mail",
    "[Gmail]/迷惑メール",
    "[Gmail]/Spam",
)

#: Events the mail_log plugin records: everything that would change a mailbox.
MAIL_LOG_EVENTS = (
    "delete",
    "undelete",
    "expunge",
    "copy",
    "mailbox_delete",
    "mailbox_rename",
    "flag_change",
    "save",
)
_MAIL_LOG_RE = re.compile(r": Info: (?:" + "|".join(MAIL_LOG_EVENTS) + r"): ")
_MAIL_LOG_CHANGE_RE = re.compile(
    r": Info: (" + "|".join(MAIL_LOG_EVENTS) + r"): box=(.*?), uid=(\d+),"
)
_APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
_SESSION_FLAGS = frozenset({"\\Recent"})  # per-session state, not stored in the mailbox

TlsMode = Literal["imaps", "starttls", "plain"]


class DovecotUnavailable(RuntimeError):
    """Dovecot binaries are missing or the server did not come up."""


def dovecot_available() -> bool:
    """True when both ``dovecot`` and ``doveadm`` are installed."""
    return os.access(DOVECOT, os.X_OK) and os.access(DOVEADM, os.X_OK)


@dataclass(frozen=True)
class User:
    """A mailbox owner in the passwd-file."""

    name: str
    password: str
    home: Path
    junk_name: str | None
    quota_kib: int | None
    folders: tuple[str, ...] = ()
    quota_messages: int | None = None  # a MESSAGE (count) limit, alone or beside STORAGE

    @property
    def maildir(self) -> Path:
        """Root Maildir (= INBOX) of this user."""
        return self.home / "Maildir"


@dataclass(frozen=True)
class QuotaUsage:
    """Storage usage as Dovecot's quota plugin counts it (KiB, like IMAP QUOTA)."""

    storage_kib: int
    storage_limit_kib: int | None
    messages: int

    @property
    def percent(self) -> float | None:
        """Usage in % of the limit, None when unlimited."""
        if not self.storage_limit_kib:
            return None
        return 100.0 * self.storage_kib / self.storage_limit_kib


def make_message(
    subject: str = "test",
    body: str = "hello\r\n",
    *,
    from_addr: str = "sender@example.org",
    to_addr: str = "user@example.org",
    date: dt.datetime | None = None,
    message_id: str | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A minimal RFC 5322 message with CRLF line ends (so size == IMAP vsize).

    A non-ASCII subject is RFC 2047 encoded; the body is sent as 8bit UTF-8.
    """
    date = date or dt.datetime.now(dt.UTC)
    headers = [
        ("From", from_addr),
        ("To", to_addr),
        ("Subject", subject if subject.isascii() else Header(subject, "utf-8").encode()),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id or make_msgid(domain="test.invalid")),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "8bit"),
        *extra_headers,
    ]
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    text = body.replace("\r\n", "\n").replace("\n", "\r\n")
    return (head + "\r\n" + text).encode("utf-8")


def _free_port() -> int:
    """Ask the kernel for a free loopback port (tiny race accepted for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vsize(data: bytes) -> int:
    """Size with every bare LF counted as CRLF: what IMAP and quota_vsizes see."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def _conf_quote(value: str) -> str:
    """Quote a string for dovecot.conf."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DovecotServer:
    """A private Dovecot instance: IMAPS + IMAP/STARTTLS on 127.0.0.1, passwd-file users.

    Runs as root (then mail is owned by ``mail_user``) or as an ordinary user (then
    everything runs under that user).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        junk_names: Sequence[str] = DEFAULT_JUNK_NAMES,
        mail_user: str = "mail",
        start_timeout: float = 30.0,
        oauth2_introspection_url: str | None = None,
        special_use: Mapping[str, str] | None = None,
        hide_capabilities: Sequence[str] = (),
        imap_capability: str | None = None,
        rawlog: bool = False,
    ) -> None:
        self.junk_names = tuple(junk_names)
        #: More SPECIAL-USE mailboxes (name → flag, e.g. ``{"[Gmail]/All Mail": "\\All"}``) for
        #: a Gmail-like layout; like the junk names they carry the flag once they exist.
        self.special_use = dict(special_use or {})
        #: Capabilities the server stops announcing after login (e.g. "MOVE", "UIDPLUS"), as
        #: on an older or stricter server.  Dovecot 2.3 can only replace the whole list
        #: (``imap_capability``), so start() reads the full one and writes it back without them.
        self.hide_capabilities = tuple(c.upper() for c in hide_capabilities)
        self._imap_capability: str | None = None
        #: Dovecot's ``imap_capability`` as given (e.g. ``"-LIST-STATUS -CONDSTORE"`` hides
        #: those two extensions from CAPABILITY; the server still understands them).
        self.imap_capability = imap_capability
        #: Record every session's client commands after login (``session_commands``).
        self.rawlog = rawlog
        #: With a URL, an OAuth2 passdb (XOAUTH2/OAUTHBEARER, RFC 7662 introspection by POST
        #: ``token=<token>``; the JSON answer must hold ``"active": true`` and ``"username"``)
        #: is added in front of the passwd-file one, which still serves PLAIN/LOGIN and the
        #: userdb.  Start the (fake) introspection endpoint before ``start()``.
        self.oauth2_introspection_url = oauth2_introspection_url
        self.mail_user = mail_user
        self.start_timeout = start_timeout
        self.base: Path = Path()
        self.imap_port = 0
        self.imaps_port = 0
        self.users: dict[str, User] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._seq = itertools.count(1)
        self._folder_paths: dict[tuple[str, str], str] = {}
        self.startup_seconds = 0.0
        self._uid = os.geteuid()
        self._gid = os.getegid()
        if self._uid == 0:  # root: mail belongs to mail_user, Dovecot drops privileges
            pw = pwd.getpwnam(mail_user)
            self._mail_uid, self._mail_gid = pw.pw_uid, pw.pw_gid
        else:  # unprivileged: everything runs as the calling user
            self._mail_uid, self._mail_gid = self._uid, self._gid

    # ------------------------------------------------------------------ paths

    @property
    def conf_path(self) -> Path:
        return self.base / "dovecot.conf"

    @property
    def ca_file(self) -> Path:
        """PEM of the self-signed CA that issued the server certificate."""
        return self.base / "tls" / "ca.pem"

    @property
    def passwd_dir(self) -> Path:
        return self.base / "users"

    @property
    def oauth2_conf_path(self) -> Path:
        """dovecot-oauth2.conf.ext (written only with ``oauth2_introspection_url``)."""
        return self.base / "dovecot-oauth2.conf.ext"

    @property
    def mail_log_path(self) -> Path:
        """Info log: mail_log plugin lines (and login/auth info) end up here."""
        return self.base / "log" / "info.log"

    @property
    def error_log_path(self) -> Path:
        return self.base / "log" / "error.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -------------------------------------------------------------- lifecycle

    def start(self) -> DovecotServer:
        """Write config + TLS material, start ``dovecot -F`` and wait for both ports."""
        if self.running:
            return self
        if not dovecot_available():
            raise DovecotUnavailable(
                "dovecot/doveadm not installed (apt-get install dovecot-imapd)"
            )
        t0 = time.monotonic()
        # Short path: base_dir holds unix sockets (108-byte limit).
        self.base = Path(tempfile.mkdtemp(prefix="dv-", dir="/tmp"))
        try:
            self._setup_dirs()
            self._make_tls()
            self.passwd_dir.mkdir(mode=0o755)
            self._pick_ports()
            if self.oauth2_introspection_url:
                self.oauth2_conf_path.write_text(self._oauth2_config(), encoding="utf-8")
                self.oauth2_conf_path.chmod(0o644)
            self.conf_path.write_text(self._config(), encoding="utf-8")
            self._spawn(t0 + self.start_timeout)
            if self.hide_capabilities:
                self._hide_capabilities(t0 + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        self.startup_seconds = time.monotonic() - t0
        return self

    def _hide_capabilities(self, deadline: float) -> None:
        """Announce the capabilities a login shows minus the hidden ones (config + reload)."""
        probe = self.add_user("capprobe", "capprobe", junk_name=None)
        with self.connect(probe, tls="plain") as client:  # logs out on leaving
            caps = [c.decode() for c in client.capabilities()]
        kept = [c for c in caps if c.upper() not in self.hide_capabilities]
        self._imap_capability = " ".join(kept)
        self.conf_path.write_text(self._config(), encoding="utf-8")
        self.doveadm("reload")
        while True:
            with self.connect(probe, tls="plain") as client:
                now = {c.decode().upper() for c in client.capabilities()}
            if not now & set(self.hide_capabilities):
                return
            if time.monotonic() > deadline:
                raise DovecotUnavailable(f"capabilities {self.hide_capabilities} still announced")
            time.sleep(0.05)

    def _pick_ports(self) -> None:
        self.imap_port, self.imaps_port = _free_port(), _free_port()
        while self.imaps_port == self.imap_port:
            self.imaps_port = _free_port()

    def _spawn(self, deadline: float) -> None:
        """Start the master on conf_path and wait until it accepts connections."""
        stderr = (self.base / "log" / "master.stderr").open("wb")
        with stderr:
            self._proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # own process group: stop() can kill it all
            )
        self._wait_ready(deadline)

    def stop(self) -> None:
        """Terminate the master and every child, then delete the temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            # Children left behind (the master normally reaps them) share the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            _wait_group_gone(proc.pid, timeout=5)
        if self.base != Path() and self.base.exists():
            shutil.rmtree(self.base, ignore_errors=True)
        self._folder_paths.clear()
        self.users.clear()
        atexit.unregister(self.stop)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _setup_dirs(self) -> None:
        # mkdtemp gives 0700; the dovecot/mail users must traverse the tree.
        self.base.chmod(0o755)
        for sub in ("run", "state", "log", "tls", "home"):
            (self.base / sub).mkdir(mode=0o755)
        if self._is_root:
            os.chown(self.base / "home", self._mail_uid, self._mail_gid)

    @property
    def _is_root(self) -> bool:
        return self._uid == 0

    def _make_tls(self) -> None:
        """Self-signed CA + server cert (SAN IP:127.0.0.1, DNS:localhost) via openssl."""
        tls = self.base / "tls"
        ext = tls / "server.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        cmds = [
            [
                "openssl", "req", "-x509", *ec, "-days", "3650", "-subj", "/CN=gmis-mailscan test CA",
                "-keyout", str(tls / "ca.key"), "-out", str(tls / "ca.pem"),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
            [
                "openssl", "req", *ec, "-subj", "/CN=localhost",
                "-keyout", str(tls / "server.key"), "-out", str(tls / "server.csr"),
            ],
            [
                "openssl", "x509", "-req", "-in", str(tls / "server.csr"), "-days", "825",
                "-CA", str(tls / "ca.pem"), "-CAkey", str(tls / "ca.key"), "-set_serial", "2",
                "-extfile", str(ext), "-out", str(tls / "server.pem"),
            ],
        ]  # fmt: skip
        for cmd in cmds:
            res = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
            if res.returncode:
                raise DovecotUnavailable(f"openssl failed: {res.stderr.decode(errors='replace')}")
        for name in ("ca.pem", "server.pem"):
            (tls / name).chmod(0o644)

    def _config(self) -> str:
        b = self.base
        mailboxes = "\n".join(
            f"    mailbox {_conf_quote(name)} {{\n"
            f"      special_use = {flag}\n"
            f"      auto = no\n"
            f"    }}"
            for name, flag in [(n, "\\Junk") for n in self.junk_names]
            + list(self.special_use.items())
        )
        if self._is_root:
            identity = (
                f"mail_uid = {self._mail_uid}\n"
                f"mail_gid = {self._mail_gid}\n"
                "first_valid_uid = 1\n"
                "first_valid_gid = 1\n"
            )
        else:
            me = pwd.getpwuid(self._uid).pw_name
            group = grp.getgrgid(self._gid).gr_name
            identity = (
                f"mail_uid = {self._uid}\n"
                f"mail_gid = {self._gid}\n"
                f"first_valid_uid = {self._uid}\n"
                f"first_valid_gid = {self._gid}\n"
                f"default_internal_user = {me}\n"
                f"default_internal_group = {group}\n"
                f"default_login_user = {me}\n"
            )
        # chroot() needs root; without it the login/anvil services must not chroot.
        no_chroot = "" if self._is_root else "\n  chroot ="
        mechanisms, oauth2_passdb, passwd_mechanisms = "plain login", "", ""
        if self.oauth2_introspection_url:
            mechanisms += " xoauth2 oauthbearer"
            # Else a token would also be tried as the passwd-file password.
            passwd_mechanisms = "\n  mechanisms = plain login"
            oauth2_passdb = (
                "passdb {\n"
                "  driver = oauth2\n"
                "  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {self.oauth2_conf_path}\n"
                "}\n"
            )
        return f"""\
# Generated by tests/dovecot.py -- private test instance, do not use in production.
instance_name = {b.name}
base_dir = {b}/run
state_dir = {b}/state
log_path = {self.error_log_path}
info_log_path = {self.mail_log_path}
protocols = imap
listen = 127.0.0.1
{identity}
ssl = yes
ssl_cert = <{b}/tls/server.pem
ssl_key = <{b}/tls/server.key
# Plain LOGIN on loopback so tests can compare plain / STARTTLS / IMAPS.
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_verbose = yes
# Wrong passwords must fail fast: no delay, and no anvil penalty.
auth_failure_delay = 0
auth_cache_size = 0

{oauth2_passdb}passdb {{
  driver = passwd-file{passwd_mechanisms}
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_dir}/%u
}}

mail_location = maildir:~/Maildir
mail_fsync = never
mail_plugins = $mail_plugins quota notify mail_log

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{mailboxes}
}}

service imap-login {{{no_chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service anvil {{{no_chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

protocol imap {{
  mail_plugins = $mail_plugins imap_quota{self._imap_extras()}
  # Many accounts of one test user scanned at once (benchmarks/wan.py: 20 accounts).
  mail_max_userip_connections = 100
}}

plugin {{
  quota = count:User quota
  quota_vsizes = yes
  mail_log_events = {" ".join(MAIL_LOG_EVENTS)}
  mail_log_fields = uid box msgid size flags
}}
"""

    def _imap_extras(self) -> str:
        extras = ""
        capability = self.imap_capability or self._imap_capability
        if capability:
            extras += f"\n  imap_capability = {capability}"
        if self.rawlog:
            extras += "\n  rawlog_dir = %h/rawlog"
        return extras

    def _oauth2_config(self) -> str:
        """dovecot-oauth2.conf.ext: validate tokens at the introspection endpoint."""
        return (
            "# Generated by tests/dovecot.py -- tokens are checked by the test's fake provider.\n"
            "introspection_mode = post\n"
            f"introspection_url = {self.oauth2_introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            "timeout_msecs = 10000\n"
        )

    def _wait_ready(self, deadline: float) -> None:
        """Block until both listeners greet, or fail with the logs attached."""
        pending = {self.imap_port: False, self.imaps_port: True}
        ctx = self.ssl_context()
        while pending:
            if self._proc is None or self._proc.poll() is not None:
                raise DovecotUnavailable(f"dovecot exited during start\n{self._diagnostics()}")
            if time.monotonic() > deadline or self._fatal_logged():
                raise DovecotUnavailable(f"dovecot did not come up\n{self._diagnostics()}")
            for port, use_tls in list(pending.items()):
                try:
                    with socket.create_connection((self.host, port), timeout=2) as sock:
                        if use_tls:
                            with ctx.wrap_socket(sock, server_hostname=self.host) as tsock:
                                greeting = tsock.recv(200)
                        else:
                            greeting = sock.recv(200)
                    if greeting.startswith(b"* OK"):
                        del pending[port]
                except OSError:
                    pass
            if pending:
                time.sleep(0.02)

    def _fatal_logged(self) -> bool:
        """A service that dies at startup is retried with growing throttles: fail fast."""
        return any(": Fatal: " in line for line in self.error_log_lines())

    def _diagnostics(self) -> str:
        parts = []
        for p in (self.base / "log" / "master.stderr", self.error_log_path):
            with contextlib.suppress(OSError):
                parts.append(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    # ----------------------------------------------------------------- doveadm

    def doveadm(
        self,
        *args: str,
        user: User | str | None = None,
        fmt: str | None = None,
        stdin_data: bytes | None = None,
    ) -> str:
        """Run ``doveadm -c <our conf> [-f fmt] <command> [-u user] <args>``; returns stdout."""
        cmd = [DOVEADM, "-c", str(self.conf_path), *(["-f", fmt] if fmt else [])]
        n = 2 if args and args[0] in _TWO_WORD_COMMANDS else 1
        cmd += args[:n]
        if user is not None:
            cmd += ["-u", _name(user)]  # must follow the (sub)command words
        cmd += args[n:]
        res = subprocess.run(
            cmd,
            input=stdin_data,
            stdin=None if stdin_data is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=300,
        )
        if res.returncode:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({res.returncode}): "
                f"{res.stderr.decode(errors='replace')}{res.stdout.decode(errors='replace')}"
            )
        return res.stdout.decode("utf-8", errors="replace")

    # ------------------------------------------------------------------- users

    def add_user(
        self,
        name: str,
        password: str,
        *,
        quota_kib: int | None = None,
        junk_name: str | None = "Junk",
        folders: Iterable[str] = (),
        quota_messages: int | None = None,
    ) -> User:
        """Add a passwd-file user at runtime, with its Maildir, junk folder and extra folders.

        ``junk_name`` must be one of ``junk_names`` (so it carries ``\\Junk``); None means the
        user has no junk folder.  ``folders`` are extra plain folders.  ``quota_kib`` becomes
        ``userdb_quota_rule=*:storage=<N>K``; None = no quota root for this user at all.
        """
        if not _NAME_RE.match(name):
            raise ValueError(f"unsupported user name {name!r}")
        if any(c in password for c in ":\n\r"):
            raise ValueError("password must not contain ':' or line breaks")
        if name in self.users:
            raise ValueError(f"user {name!r} exists")
        if junk_name is not None and junk_name not in self.junk_names:
            raise ValueError(f"junk_name {junk_name!r} not in junk_names {self.junk_names}")
        home = self.base / "home" / name
        home.mkdir(mode=0o700)
        if self.rawlog:
            (home / "rawlog").mkdir(mode=0o700)
        if self._is_root:
            os.chown(home, self._mail_uid, self._mail_gid)
            if self.rawlog:
                os.chown(home / "rawlog", self._mail_uid, self._mail_gid)
        folders = tuple(folders)
        user = User(name, password, home, junk_name, quota_kib, folders, quota_messages)
        self._write_passwd(user)
        self.users[name] = user
        # Opening INBOX creates the Maildir, so file writes can start at once.
        self.doveadm("mailbox", "status", "messages", "INBOX", user=name)
        to_create = [f for f in (junk_name, *folders) if f is not None]
        if to_create:
            self.doveadm("mailbox", "create", "-s", *to_create, user=name)
        return user

    def new_user(
        self,
        prefix: str = "user",
        *,
        quota_kib: int | None = None,
        junk_name: str | None = "Junk",
        folders: Iterable[str] = (),
        quota_messages: int | None = None,
    ) -> User:
        """``add_user`` with a fresh unique name and password (handy with the session fixture)."""
        n = next(self._seq)
        return self.add_user(
            f"{prefix}{n}",
            f"pw-{n}-{os.urandom(4).hex()}",
            quota_kib=quota_kib,
            junk_name=junk_name,
            folders=folders,
            quota_messages=quota_messages,
        )

    def set_quota(self, user: User | str, quota_kib: int | None) -> User:
        """Change a user's storage limit; applies to sessions opened afterwards."""
        updated = replace(self._user(user), quota_kib=quota_kib)
        self._write_passwd(updated)
        self.users[updated.name] = updated
        # Dovecot stats a passwd-file at most once per second: wait until it sees the change.
        want = f"*:storage={quota_kib}K" if quota_kib is not None else None
        deadline = time.monotonic() + 5
        while self._userdb_field(updated.name, "quota_rule") != want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Dovecot did not pick up the new quota of {updated.name}")
            time.sleep(0.05)
        return updated

    def _write_passwd(self, user: User) -> None:
        """One passwd-file per user (``args = .../%u``).

        Why not one shared file: Dovecot stats a passwd-file at most once per second, so
        a user appended within a second of the previous lookup stays invisible ("User
        doesn't exist").  A new user's own file has never been looked up, so it is read
        at once.
        """
        limits = [f"storage={user.quota_kib}K"] if user.quota_kib is not None else []
        if user.quota_messages is not None:
            limits.append(f"messages={user.quota_messages}")
        extra = f"userdb_quota_rule=*:{':'.join(limits)}" if limits else ""
        uid, gid = self._mail_uid, self._mail_gid
        line = f"{user.name}:{{PLAIN}}{user.password}:{uid}:{gid}::{user.home}::{extra}\n"
        tmp = self.passwd_dir / f".{user.name}.tmp"
        tmp.write_text(line)
        tmp.chmod(0o644)  # read by the auth process (user dovecot)
        target = self.passwd_dir / user.name
        with contextlib.suppress(FileNotFoundError):
            # Dovecot notices a change by whole-second mtime or size; a same-size rewrite
            # within the same second would go unseen, so move the mtime forward.
            old = int(target.stat().st_mtime)
            new = max(int(time.time()), old + 1)
            os.utime(tmp, (new, new))
        tmp.replace(target)

    def _userdb_field(self, name: str, fld: str) -> str | None:
        """One field of the userdb lookup as Dovecot's auth process answers it now."""
        out = self.doveadm("user", "-f", fld, name)
        return out.strip() or None

    def create_folder(self, user: User | str, name: str, *, subscribe: bool = True) -> None:
        """Create a plain folder (UTF-8 name; hierarchy separator is '/')."""
        self.doveadm("mailbox", "create", *(["-s"] if subscribe else []), name, user=user)

    # --------------------------------------------------------------- IMAP side

    def ssl_context(self) -> ssl.SSLContext:
        """Client context that trusts only our test CA (hostname checks stay on)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connect(
        self, user: User | str | None = None, *, tls: TlsMode = "imaps", timeout: float = 30
    ) -> IMAPClient:
        """An IMAPClient (logged in when ``user`` is given) over IMAPS, STARTTLS or plain."""
        if tls == "imaps":
            client = IMAPClient(
                self.host,
                self.imaps_port,
                ssl=True,
                ssl_context=self.ssl_context(),
                timeout=timeout,
            )
        else:
            client = IMAPClient(self.host, self.imap_port, ssl=False, timeout=timeout)
            if tls == "starttls":
                client.starttls(self.ssl_context())
        if user is not None:
            u = self._user(user)
            client.login(u.name, u.password)
        return client

    def append(
        self,
        user: User | str,
        folder: str,
        message: bytes,
        flags: Sequence[str | bytes] = (),
        date: dt.datetime | None = None,
    ) -> int:
        """IMAP APPEND (so quota applies and mail_log sees a ``save``); returns the new UID."""
        client = self.connect(user, tls="plain")
        try:
            resp = client.append(folder, message, flags=tuple(flags), msg_time=date)
        finally:
            with contextlib.suppress(Exception):
                client.logout()
        m = _APPENDUID_RE.search(resp if isinstance(resp, bytes) else str(resp).encode())
        if not m:
            raise RuntimeError(f"no APPENDUID in {resp!r}")
        return int(m.group(2))

    # ------------------------------------------------------------ file loading

    def folder_path(self, user: User | str, folder: str) -> str:
        """On-disk Maildir of a folder (asks Dovecot, so modified UTF-7 naming is right)."""
        key = (_name(user), folder)
        if key not in self._folder_paths:
            path = self.doveadm("mailbox", "path", folder, user=user).strip()
            self._folder_paths[key] = path
        return self._folder_paths[key]

    def write_maildir_files(
        self,
        user: User | str,
        folder: str,
        messages: Iterable[bytes],
        *,
        flags: str = "",
        internal_date: dt.datetime | None = None,
    ) -> int:
        """Drop messages straight into the folder's Maildir (bypasses quota, no mail_log).

        Fast bulk load: one open/write/rename per message, size hints in the file name
        so Dovecot never stats or reads the files to sync.  Without ``flags`` the files
        go to ``new/`` (unseen, \\Recent); with Maildir flag letters (e.g. "S" seen,
        "F" flagged, "RS") to ``cur/``.  UIDs are assigned in iteration order on the
        next sync.  Returns the number written.
        """
        path = self.folder_path(user, folder)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"folder {folder!r} of {_name(user)} does not exist: {path}")
        tmp_dir = os.path.join(path, "tmp")
        dest_dir = os.path.join(path, "cur" if flags else "new")
        for d in (tmp_dir, dest_dir):
            if not os.path.isdir(d):
                os.makedirs(d, mode=0o700, exist_ok=True)
                if self._is_root:
                    os.chown(d, self._mail_uid, self._mail_gid)
        suffix = ":2," + "".join(sorted(set(flags))) if flags else ""
        chown = self._is_root
        uid, gid = self._mail_uid, self._mail_gid
        mtime = internal_date.timestamp() if internal_date is not None else None
        pid = os.getpid()
        # Dovecot numbers files sorted by the name's seconds, then its M<usecs>, then the
        # name: real write times (plus a zero-padded counter for ties) keep UIDs in
        # iteration order, also behind messages Dovecot itself saved earlier.
        flags_o = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        count = 0
        for data in messages:
            seq = next(self._seq)
            secs, usecs = divmod(time.time_ns() // 1000, 1_000_000)
            base = f"{secs}.M{usecs}P{pid}Q{seq:09d}.gmistest,S={len(data)},W={_vsize(data)}"
            tmp_path = os.path.join(tmp_dir, base)
            fd = os.open(tmp_path, flags_o, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if chown:
                    os.fchown(fd, uid, gid)
            finally:
                os.close(fd)
            if mtime is not None:
                os.utime(tmp_path, (mtime, mtime))
            os.rename(tmp_path, os.path.join(dest_dir, base + suffix))
            count += 1
        return count

    # ------------------------------------------------------------------- quota

    def recalc_quota(self, user: User | str) -> None:
        """Make Dovecot recount usage after files were written behind its back."""
        self.doveadm("quota", "recalc", user=user)

    def quota(self, user: User | str) -> QuotaUsage:
        """Usage via ``doveadm quota get`` (same numbers GETQUOTAROOT reports)."""
        out = self.doveadm("quota", "get", user=user, fmt="tab")
        storage = limit = None
        messages = 0
        for row in _tab_rows(out):
            value = int(row["Value"])
            lim = None if row["Limit"] in ("-", "") else int(row["Limit"])
            if row["Type"] == "STORAGE":
                storage, limit = value, lim
            elif row["Type"] == "MESSAGE":
                messages = value
        if storage is None:
            raise RuntimeError(f"no STORAGE row in quota output: {out!r}")
        return QuotaUsage(storage, limit, messages)

    def fill(
        self, user: User | str, folder: str, n_bytes: int, *, chunk: int = 1 << 20
    ) -> QuotaUsage:
        """Add about ``n_bytes`` of mail (messages of at most ``chunk`` bytes) and recount quota."""
        messages = []
        remaining = n_bytes
        while remaining > 0:
            size = min(chunk, remaining)
            messages.append(_padded_message(size, len(messages)))
            remaining -= size
        self.write_maildir_files(user, folder, messages, flags="S")
        self.recalc_quota(user)
        return self.quota(user)

    def fill_to_percent(
        self, user: User | str, percent: float, folder: str = "INBOX"
    ) -> QuotaUsage:
        """Push the user's storage usage to ``percent`` of its quota limit."""
        usage = self.quota(user)
        if not usage.storage_limit_kib:
            raise ValueError(f"user {_name(user)} has no storage quota")
        target = int(usage.storage_limit_kib * 1024 * percent / 100)
        missing = target - usage.storage_kib * 1024
        if missing > 0:
            usage = self.fill(user, folder, missing)
        return usage

    # ---------------------------------------------------------------- UIDs etc

    def uidvalidity(self, user: User | str, folder: str) -> int:
        out = self.doveadm("mailbox", "status", "uidvalidity", folder, user=user, fmt="tab")
        return int(_tab_rows(out)[0]["uidvalidity"])

    def change_uidvalidity(self, user: User | str, folder: str, *, renumber: bool = False) -> int:
        """Give ``folder`` a new UIDVALIDITY while keeping its messages; returns it.

        Default: ``doveadm mailbox update --uid-validity`` (messages keep their UIDs
        under the new UIDVALIDITY).  ``renumber=True`` instead deletes dovecot-uidlist
        and the index files, as after a server rebuild: Dovecot then picks a new
        UIDVALIDITY and numbers the messages again from 1.
        """
        old = self.uidvalidity(user, folder)
        if renumber:
            path = Path(self.folder_path(user, folder))
            for p in path.iterdir():
                if p.name == "dovecot-uidlist" or p.name.startswith("dovecot.index"):
                    p.unlink()
            # Dovecot derives UIDVALIDITY from the clock: make sure it moves.
            new = self.uidvalidity(user, folder)
            if new == old:
                new = old + 1
                self.doveadm("mailbox", "update", "--uid-validity", str(new), folder, user=user)
            return new
        new = max(old + 1, int(time.time()))
        self.doveadm("mailbox", "update", "--uid-validity", str(new), folder, user=user)
        return self.uidvalidity(user, folder)

    def list_folders(self, user: User | str) -> list[str]:
        """Folder names (UTF-8) as Dovecot sees them."""
        return [line for line in self.doveadm("mailbox", "list", user=user).splitlines() if line]

    def flags_snapshot(self, user: User | str) -> dict[str, dict[int, frozenset[str]]]:
        """Stored flags of every message in every folder (``\\Recent`` left out).

        Taken with doveadm, i.e. outside any IMAP session, so comparing two snapshots
        proves whether a client changed anything.
        """
        snap: dict[str, dict[int, frozenset[str]]] = {f: {} for f in self.list_folders(user)}
        out = self.doveadm("fetch", "mailbox uid flags", "all", user=user, fmt="tab")
        for row in _tab_rows(out):
            flags = frozenset(row["flags"].split()) - _SESSION_FLAGS
            snap.setdefault(row["mailbox"], {})[int(row["uid"])] = flags
        return snap

    # -------------------------------------------------------------------- logs

    def mail_log_lines(self, user: User | str | None = None) -> list[str]:
        """mail_log plugin lines (save, flag_change, expunge, ...), optionally one user's."""
        try:
            text = self.mail_log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        prefix = f"({_name(user)})" if user is not None else ""
        return [line for line in text.splitlines() if _MAIL_LOG_RE.search(line) and prefix in line]

    def mail_log_changes(self, user: User | str) -> list[tuple[str, str, int]]:
        """(event, folder, UID) of each mail_log line of one user: what changed where."""
        changes = []
        for line in self.mail_log_lines(user):
            m = _MAIL_LOG_CHANGE_RE.search(line)
            if m:
                changes.append((m.group(1), m.group(2), int(m.group(3))))
        return changes

    def mailbox_snapshot(
        self, user: User | str
    ) -> dict[str, dict[int, tuple[frozenset[str], bytes]]]:
        """Every message of every folder: its stored flags and its exact bytes.

        Read with EXAMINE and BODY.PEEK[] (taking it changes nothing); ``\\Recent`` is left
        out, being per session.  Two snapshots compare whole mailboxes before and after.
        """
        snap: dict[str, dict[int, tuple[frozenset[str], bytes]]] = {}
        with self.connect(user, tls="plain") as client:
            for folder in self.list_folders(user):
                client.select_folder(folder, readonly=True)
                uids = client.search()
                data = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
                snap[folder] = {
                    uid: (
                        frozenset(f.decode() for f in item[b"FLAGS"]) - _SESSION_FLAGS,
                        bytes(item[b"BODY[]"]),
                    )
                    for uid, item in data.items()
                }
        return snap

    def wait_for_log(
        self, pattern: str, *, count: int = 1, timeout: float = 5.0, path: Path | None = None
    ) -> list[str]:
        """Wait until ``count`` log lines match the regex ``pattern``; returns them.

        Log writes go through Dovecot's log process, so they land a moment after the IMAP
        reply.  A session's own "Logged out" line is written after its mail_log lines,
        which makes ``wait_for_logout`` a reliable barrier before asserting on the log.
        """
        rx = re.compile(pattern)
        path = path or self.mail_log_path
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                text = ""
            hits = [line for line in text.splitlines() if rx.search(line)]
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} x {pattern!r} not in {path} (found {len(hits)})")
            time.sleep(0.02)

    def wait_for_logout(self, user: User | str, *, count: int = 1, timeout: float = 5.0) -> None:
        """Barrier: wait until ``count`` IMAP sessions of ``user`` have logged their logout."""
        name = re.escape(_name(user))
        self.wait_for_log(rf"imap\({name}\)<.*: Disconnected: ", count=count, timeout=timeout)

    def session_commands(self, user: User | str) -> list[list[str]]:
        """The commands (upper-cased names, UID joined: ``UID FETCH``) of each IMAP session
        of ``user`` after login, oldest session first; needs ``rawlog=True``."""
        sessions = []
        for path in sorted((self._user(user).home / "rawlog").glob("*.in"), key=_mtime):
            commands = []
            for line in path.read_bytes().split(b"\r\n"):
                words = line.decode("utf-8", "replace").split()
                if words and re.fullmatch(r"\d+\.\d+", words[0]):
                    words = words[1:]  # rawlog's timestamp of the read
                if len(words) < 2 or not re.fullmatch(r"[A-Za-z0-9.]+", words[0]):
                    continue  # a literal's bytes, a continuation, an empty line
                name = words[1].upper()
                if name == "UID" and len(words) > 2:
                    name += " " + words[2].upper()
                commands.append(name)
            sessions.append(commands)
        return sessions

    def error_log_lines(self) -> list[str]:
        """Warnings/errors Dovecot logged (a test can assert this stays empty)."""
        with contextlib.suppress(FileNotFoundError):
            return self.error_log_path.read_text(errors="replace").splitlines()
        return []

    # ----------------------------------------------------------------- helpers

    def _user(self, user: User | str) -> User:
        return user if isinstance(user, User) else self.users[user]


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """SIGKILL is delivered asynchronously: wait (bounded) until no live process is in the group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                live = True
                break
        if not live:
            return
        time.sleep(0.05)


def _name(user: User | str) -> str:
    return user.name if isinstance(user, User) else user


# doveadm commands made of two words ("mailbox create", "quota get"): -u goes after both.
_TWO_WORD_COMMANDS = frozenset({"mailbox", "quota", "flags", "acl", "metadata", "fs", "sieve"})


def _tab_rows(out: str) -> list[dict[str, str]]:
    """Parse ``doveadm -f tab`` output into dicts keyed by the header."""
    lines = [line for line in out.splitlines() if line]
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:]]


def _padded_message(size: int, n: int) -> bytes:
    """A message of exactly ``size`` bytes (CRLF, so vsize == size) for quota filling."""
    head = make_message(f"filler {n}", "", message_id=f"<filler-{n}-{time.time_ns()}@test.invalid>")
    room = max(size - len(head), 0)
    line = b"x" * 76 + b"\r\n"
    body = line * (room // len(line))
    rest = room - len(body)
    if rest >= 2:
        body += b"y" * (rest - 2) + b"\r\n"
    return head + body


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """Session-wide Dovecot; fails (never skips) when Dovecot is not installed."""
    if not dovecot_available():
        raise DovecotUnavailable(
            "dovecot-imapd is not installed: apt-get install -y dovecot-imapd (see README)"
        )
    server = DovecotServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns
