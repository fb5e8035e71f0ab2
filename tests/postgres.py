"""A real, private PostgreSQL server for the test suite.

Why: the store's PostgreSQL behaviour (types, constraints, transactions) is what we ship,
so tests talk to a real server rather than mocks or SQLite. Each test session gets a
throwaway cluster (initdb in a short temp dir, free port, trust auth on 127.0.0.1 only,
fsync off) and each test can ask for its own empty database.

Wire it up in ``tests/conftest.py``::

    from postgres import postgres_server, postgres_url  # noqa: F401

Set ``GMIS_TEST_POSTGRES_URL=postgresql+psycopg://user@host:port/db`` to use an existing
server instead (e.g. a CI service container); databases are still created per test and
dropped at the end of the session.

``python tests/postgres.py`` keeps a private server up (for psql poking or a CI job) and
prints its URL until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

ENV_URL = "GMIS_TEST_POSTGRES_URL"
PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
DRIVER = "postgresql+psycopg"
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
    "or on PATH. The test suite needs a real server: run `apt-get install postgresql` "
    f"(or set {ENV_URL} to an existing server)."
)
# Only the private socket and 127.0.0.1 are accepted; nothing else can reach the cluster.
HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
# Durability is irrelevant for a throwaway cluster; these make start-up and DDL fast.
SPEED_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "'127.0.0.1'",
}


def find_bin_dir() -> Path:
    """Return the newest PostgreSQL bin dir; fail loudly (never skip) when there is none."""

    def version(bin_dir: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", bin_dir.parent.name))

    found = [
        d for d in PG_ROOT.glob("*/bin") if (d / "initdb").is_file() and (d / "pg_ctl").is_file()
    ]
    if found:
        return max(found, key=version)
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "pg_ctl").is_file():
        return Path(initdb).parent
    raise RuntimeError(INSTALL_HINT)


def free_port() -> int:
    """Ask the kernel for an unused port, so parallel sessions never collide on 5432."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _short_tmp() -> str:
    """/tmp keeps the unix socket path under the 107-byte limit and is traversable by all."""
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


class PostgresServer:
    """Throwaway PostgreSQL cluster in a temp dir; ``stop()`` kills it and deletes the dir."""

    def __init__(self, *, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.port: int | None = None
        self._base: URL | None = None
        self._admin_db = "postgres"
        self._created: list[str] = []
        self._tmp: Path | None = None
        self._bin: Path | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """initdb + pg_ctl start; returns once the server accepts TCP connections."""
        if self._base is not None:
            return self
        self._bin = find_bin_dir()
        self._tmp = Path(tempfile.mkdtemp(prefix="gmis-pg-", dir=_short_tmp()))
        atexit.register(self.stop)  # don't leak a postmaster if stop() is never reached
        try:
            self._boot(self._tmp)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Immediate shutdown (nothing worth flushing) and removal of the temp dir."""
        tmp, self._tmp = self._tmp, None
        self._base = None
        if tmp is None:
            return
        atexit.unregister(self.stop)
        try:
            if (tmp / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", tmp / "data", "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------

    def url(self, dbname: str | None = None) -> str:
        """SQLAlchemy URL (``postgresql+psycopg://...``) for ``dbname`` on this server."""
        if self._base is None:
            raise RuntimeError("PostgreSQL server is not started")
        return self._base.set(database=dbname or self._admin_db).render_as_string(
            hide_password=False
        )

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (random name by default) and return its URL.

        One database per test keeps tests isolated without restarting the server.
        """
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        with self._connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        return self.url(name)

    def _connect(self) -> psycopg.Connection:
        """Autocommit admin connection: CREATE/DROP DATABASE refuse to run in a transaction."""
        libpq_url = make_url(self.url()).set(drivername="postgresql")
        return psycopg.connect(libpq_url.render_as_string(hide_password=False), autocommit=True)

    # -- internals -------------------------------------------------------------------

    def _boot(self, tmp: Path) -> None:
        data, log = tmp / "data", tmp / "server.log"
        if os.geteuid() == 0:  # initdb/postgres refuse to run as root
            server_user = self._server_user()
            os.chown(tmp, server_user.pw_uid, server_user.pw_gid)
        self._run(
            "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        (data / "pg_hba.conf").write_text(HBA)
        settings = {**SPEED_SETTINGS, "unix_socket_directories": f"'{tmp}'"}
        with (data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        for attempt in range(3):  # free_port() can race with another process; retry
            port = free_port()
            try:
                self._run(
                    "pg_ctl", "-D", data, "-l", log, "-o", f"-p {port}",
                    "-w", "-t", str(int(self.timeout)), "start",
                )  # fmt: skip
                break
            except RuntimeError:
                if attempt == 2 or "already in use" not in _tail(log):
                    raise
        self.port = port
        self._base = URL.create(
            DRIVER, username=SUPERUSER, host="127.0.0.1", port=port, database="postgres"
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """pg_ctl -w checks the socket; also prove the TCP URL tests will use works."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with self._connect():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @staticmethod
    def _server_user() -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise RuntimeError(
                f"Tests run as root, initdb refuses root, and no '{SUPERUSER}' system user "
                "exists to run it as. `apt-get install postgresql` creates one."
            ) from None

    def _run(self, tool: str, *args: str | Path) -> None:
        assert self._bin is not None
        cmd = [str(self._bin / tool), *map(str, args)]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        # cwd="/" so the server user never trips over an untraversable cwd like /root.
        proc = subprocess.run(
            cmd, cwd="/", capture_output=True, text=True, timeout=self.timeout + 10
        )
        if proc.returncode:
            log = _tail(self._tmp / "server.log") if self._tmp else ""
            raise RuntimeError(
                f"{tool} failed (exit {proc.returncode}): {proc.stderr or proc.stdout}\n{log}"
            )


class ExternalPostgresServer(PostgresServer):
    """An existing server named by a URL (e.g. a CI service): nothing started or removed,
    but databases created through it are dropped again on ``stop()``."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        super().__init__(timeout=timeout)
        self._given = make_url(url).set(drivername=DRIVER)
        self._admin_db = self._given.database or "postgres"

    def start(self) -> Self:
        self._base, self.port = self._given, self._given.port
        self._wait_ready()  # fail fast with the connection error, not in the first test
        return self

    def stop(self) -> None:
        if self._base is None:
            return
        try:
            with self._connect() as conn:
                for name in reversed(self._created):
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )
            self._created.clear()
        finally:
            self._base = None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """The server named by GMIS_TEST_POSTGRES_URL if set, else a fresh private one."""
    url = os.environ.get(ENV_URL)
    with ExternalPostgresServer(url) if url else PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server per test session: start-up costs about a second, databases are cheap."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a fresh, empty database, so no test sees another test's rows."""
    return postgres_server.create_database()


def main() -> None:
    """Keep a private server up until Ctrl-C/SIGTERM, printing how to reach it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind so stop() runs
    started = time.monotonic()
    with PostgresServer() as server:
        print(f"started in {time.monotonic() - started:.2f}s", file=sys.stderr)
        print(f"psql -h 127.0.0.1 -p {server.port} -U {SUPERUSER}", file=sys.stderr)
        print(f"{ENV_URL}={server.url()}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
