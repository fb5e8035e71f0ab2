"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, parsed back.

Plain, STARTTLS (required before AUTH) or implicit TLS, with the test CA's certificate that
tests/dovecot.py made (SAN 127.0.0.1 and localhost); AUTH with one user and password when
asked. stop() and start() again keep the port, so a config written once stays valid while
the server is down.
"""

from __future__ import annotations

import email
import socket
import ssl
import threading
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Keep:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, _server, _session, envelope) -> str:
        self.server._received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        return "250 OK"


class SmtpServer:
    host = "127.0.0.1"

    def __init__(
        self,
        tls_dir: Path | None = None,
        *,
        security: str = "plain",
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.security = security
        self.auth = auth
        self.port = free_port()
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.auth_attempts: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._context = None
        self.ca_file = tls_dir / "ca.pem" if tls_dir else None
        if security != "plain":
            assert tls_dir is not None, "TLS needs the test CA's certificate"
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [email.message_from_bytes(m, policy=default) for m in self.raw]  # type: ignore[misc]

    def _received(self, mail_from: str, rcpt: list[str], content: bytes) -> None:
        with self._lock:
            self.envelopes.append((mail_from, rcpt))
            self.raw.append(content)

    def _authenticate(self, _server, _session, _envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.auth_attempts.append((mechanism, login))
        return AuthResult(success=(login, password) == self.auth)

    def start(self) -> SmtpServer:
        kwargs: dict = {}
        if self.security == "starttls":
            kwargs.update(tls_context=self._context, require_starttls=True)
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        self._controller = Controller(
            _Keep(self),
            hostname=self.host,
            port=self.port,
            ssl_context=self._context if self.security == "tls" else None,
            server_hostname="localhost",
            **kwargs,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
