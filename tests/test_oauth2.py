"""OAuth2 (XOAUTH2) login against the real Dovecot of tests/dovecot.py.

Only the OAuth2 provider is faked: a tiny HTTP server on 127.0.0.1 acting as the RFC 7662
token introspection endpoint that Dovecot's oauth2 passdb asks (``introspection_mode =
post``).  Everything else is real: Dovecot checks the token with that endpoint, the
scanner runs as ``python -m gmis_mailscan`` and gets its token from ``token_command``.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import mailfactory
import pytest
from dovecot import DovecotServer, User
from imapclient.exceptions import LoginError


class FakeProvider:
    """Token introspection endpoint: knows which token belongs to which user."""

    path = "/introspect"

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}  # token -> username
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []  # method, path, form
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode("utf-8"))
                with provider._lock:
                    provider.requests.append(("POST", self.path, form))
                    user = provider.tokens.get(form.get("token", [""])[0])
                ok = self.path == provider.path and user is not None
                answer = {"active": True, "username": user} if ok else {"active": False}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # Dovecot must use POST here
                with provider._lock:
                    provider.requests.append(("GET", self.path, {}))
                self.send_error(405)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the request line may carry a token: keep it out of the test output

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{self.path}"

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def issue(self, user: User) -> str:
        token = f"ya29.test-{secrets.token_urlsafe(24)}"
        with self._lock:
            self.tokens[token] = user.name
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            del self.tokens[token]

    def seen(self, token: str) -> int:
        """How many introspection requests asked about ``token`` (as RFC 7662 POST form)."""
        with self._lock:
            return sum(
                1
                for method, path, form in self.requests
                if (method, path) == ("POST", self.path) and form.get("token") == [token]
            )


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def server(provider: FakeProvider) -> Iterator[DovecotServer]:
    with DovecotServer(oauth2_introspection_url=provider.url) as srv:
        yield srv


def oauth2_account(server: DovecotServer, user: User, token_command: str, **over) -> str:
    values = {
        "name": user.name,
        "host": "127.0.0.1",
        "port": server.imaps_port,
        "security": "tls",
        "username": user.name,
        "auth": "oauth2",
        "token_command": token_command,
        "ca_file": str(server.ca_file),
        **over,
    }
    lines = ["[[accounts]]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def write_config(tmp: Path, *accounts: str) -> Path:
    path = tmp / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp}/db.sqlite3"\n\n' + "".join(accounts))
    return path


def printf_token(token: str) -> str:
    return f"printf %s {shlex.quote(token)}"


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gmis_mailscan", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def report(config: Path) -> tuple[dict, subprocess.CompletedProcess]:
    result = cli(config, "report", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result


def database_bytes(tmp: Path) -> bytes:
    """The SQLite database with its journal/WAL files, as stored on disk."""
    files = sorted(tmp.glob("db.sqlite3*"))
    assert tmp / "db.sqlite3" in files
    return b"".join(f.read_bytes() for f in files)


def failure_line(result: subprocess.CompletedProcess, account: str) -> str:
    """The one stderr line ``<account>: FAILED: …`` (besides the log line and the summary)."""
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith(f"{account}: ")]
    return line


def test_dovecot_checks_tokens_with_the_provider(server, provider):
    """The server side itself: XOAUTH2 goes to the provider, PLAIN stays on the passwd-file."""
    user = server.new_user("direct")
    token = provider.issue(user)
    with server.connect() as client:
        caps = client.capabilities()
        assert b"AUTH=XOAUTH2" in caps and b"AUTH=OAUTHBEARER" in caps
        client.oauth2_login(user.name, token)
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    assert provider.seen(token) == 1
    # The password is no token, and the token is no password.
    with server.connect() as client, pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        client.oauth2_login(user.name, user.password)
    with server.connect() as client, pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        client.login(user.name, token)
    assert provider.seen(token) == 1  # LOGIN checks the passwd-file only
    assert provider.seen(user.password) == 1  # asked, and refused by the provider
    with server.connect(user) as client:  # PLAIN login still works next to OAuth2
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0


def test_scan_with_token_command_reads_the_mailbox(server, provider, tmp_path):
    user = server.new_user("oauth", quota_kib=10240)
    server.append(user, "INBOX", mailfactory.build("password_registration"))
    server.append(user, "INBOX", mailfactory.build("unrelated"))
    token = provider.issue(user)
    config = write_config(tmp_path, oauth2_account(server, user, printf_token(token)))

    scanned = cli(config, "scan")
    assert scanned.returncode == 0, scanned.stderr
    assert provider.seen(token) == 1
    server.wait_for_log(rf"imap-login: Info: Login: user=<{user.name}>, method=XOAUTH2, ")

    doc, reported = report(config)
    (item,) = doc["institutions"]
    assert item["account"] == user.name
    assert item["path"] == "method4"  # the registration mail sits in the inbox
    assert not any("login refused" in w for w in item["warnings"])
    assert doc["last_scan"]["status"] == "ok"

    outputs = scanned.stdout + scanned.stderr + reported.stdout + reported.stderr
    assert token not in outputs
    assert token.encode() not in database_bytes(tmp_path)
    assert user.name.encode() in database_bytes(tmp_path)  # the search would have found it
    assert server.error_log_lines() == []


@pytest.mark.parametrize("case", ["revoked", "never issued", "another user's"])
def test_refused_token_is_one_clear_line_and_exit_4(server, provider, tmp_path, case):
    user = server.new_user("refused")
    server.append(user, "INBOX", mailfactory.build("password_registration"))
    if case == "revoked":
        token = provider.issue(user)
        config = write_config(tmp_path, oauth2_account(server, user, printf_token(token)))
        assert cli(config, "scan").returncode == 0  # valid until the provider revokes it
        provider.revoke(token)
    else:
        owner = user if case == "never issued" else server.new_user("owner")
        token = provider.issue(owner)
        if case == "never issued":
            provider.revoke(token)
        config = write_config(tmp_path, oauth2_account(server, user, printf_token(token)))
    asked = provider.seen(token)

    result = cli(config, "scan")
    assert result.returncode == 4, result.stderr
    assert provider.seen(token) == asked + 1  # Dovecot asked the provider, which said no
    line = failure_line(result, user.name)
    assert line.startswith(f"{user.name}: FAILED: login refused for {user.name} at 127.0.0.1: ")
    assert "AUTHENTICATIONFAILED" in line
    assert token not in result.stdout + result.stderr

    doc, reported = report(config)
    (item,) = doc["institutions"]
    assert any("login refused" in w for w in item["warnings"])
    assert doc["last_scan"]["status"] == "failed"
    assert token not in reported.stdout + reported.stderr
    assert token.encode() not in database_bytes(tmp_path)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("exit 7", "token_command: command exited with status 7"),
        ("printf %s {token} >&2; exit 1", "token_command: command exited with status 1"),
        ("true", "token_command: command printed nothing"),
        ("/nonexistent/oauth2-token --account x", "token_command: command exited with status 127"),
    ],
)
def test_failing_token_command_is_named_and_nothing_is_sent(
    server, provider, tmp_path, command, message
):
    user = server.new_user("tokencmd")
    token = provider.issue(user)  # valid: only the command's failure can stop the login
    config = write_config(tmp_path, oauth2_account(server, user, command.format(token=token)))
    before = len(provider.requests)

    result = cli(config, "scan")
    assert result.returncode == 4, result.stderr
    line = failure_line(result, user.name)
    assert line == f"{user.name}: FAILED: {message}"
    assert token not in result.stdout + result.stderr  # not even from the command's stderr
    assert len(provider.requests) == before  # no login was attempted
    assert token.encode() not in database_bytes(tmp_path)
