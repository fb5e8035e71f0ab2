"""Opening the database: engine settings, schema migrations, and the one-scan-at-a-time lock.

Alembic is imported only when the schema must be created or upgraded: importing it costs more
than most commands take, and an up-to-date database is recognised by one plain query.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from ..resources import data_path

MIGRATIONS_DIR = data_path("migrations")
MIGRATION_LOCK_WAIT = 120.0  # seconds; a migration takes well under one
_REVISION_LINE = re.compile(r"^(revision|down_revision)\b[^=]*=\s*(.+?)\s*$", re.MULTILINE)

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig


class DatabaseError(RuntimeError):
    """The database cannot be opened or upgraded; str() says which and why."""


def connect(url: str, *, migrate: bool = True, accounts_at_once: int = 4) -> Engine:
    """An engine for `url`, schema upgraded to the latest migration unless told otherwise.

    On a database server each account scanned at once holds a connection for its lock (see
    account_lock) and takes another to write: the pool keeps room for both, for
    `accounts_at_once` accounts ([scan] concurrency), and opens them only when needed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"[database] url is not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # A server's connection may have been closed under the pool (a restart, an idle timeout):
    # checked before use. A SQLite file has no such connection, and the check costs a query.
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=2 * accounts_at_once + 1)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        try:
            head = head_revision()  # None: the files show no single head, Alembic decides
            if head is None or stored_revision(engine) != head:
                _upgrade_or_explain(engine, parsed)
        except SQLAlchemyError as exc:  # unreachable, locked, not ours
            engine.dispose()
            raise DatabaseError(f"cannot open database {parsed!r}: {_reason(exc)}") from None
    return engine


def _upgrade_or_explain(engine: Engine, parsed: URL) -> None:
    from alembic.util import CommandError

    try:
        upgrade(engine)
    except CommandError as exc:  # the migration files do not fit the database
        engine.dispose()
        reason = " ".join(str(exc).split())
        raise DatabaseError(f"cannot open database {parsed!r}: {reason}") from None


def _reason(exc: SQLAlchemyError) -> str:
    why = exc.orig if isinstance(exc, DBAPIError) else exc
    return " ".join(str(why).split())


def stored_revision(engine: Engine) -> str | None:
    """The schema revision recorded in alembic_version, by plain SQL; None without one."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


def head_revision() -> str | None:
    """The newest migration, read from migrations/versions/ without importing Alembic; None
    unless the files form one line (then Alembic, which upgrade() asks, decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for file in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(file.read_text(encoding="utf-8")))
        if "revision" not in found:
            return None
        revisions.add(found["revision"].strip("\"'"))
        parents.add(found.get("down_revision", "None").strip("\"'"))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def describe(url: str) -> str:
    """The database and its schema revision, for `doctor`: read only, creates nothing."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"[database] url is not a database URL: {url!r}") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).exists():
            return f"{shown}: not created yet (the first scan creates it)"
    engine = create_engine(url)
    try:
        current = stored_revision(engine)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot open database {shown}: {_reason(exc)}") from None
    finally:
        engine.dispose()
    head = head_revision()
    if current is None:
        return f"{shown}: no schema yet (the first scan creates it)"
    if current == head:
        return f"{shown}: schema revision {current} (up to date)"
    return f"{shown}: schema revision {current}; the next scan or `db upgrade` brings it to {head}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL: readers never block the scan, and a killed writer leaves the file consistent."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may have to wait
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; a no-op when it is there already.

    Two processes opening a new (or older) database at once, as overlapping cron runs do,
    must not both migrate it: the second would fail on tables the first just created. So the
    check and the migration run under a lock (an advisory lock held by the transaction on
    PostgreSQL, a lock file beside the database on SQLite).
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic_config()
    with _migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7426002)"))
        script = ScriptDirectory.from_config(cfg)
        current = current_revision(conn)
        if current == script.get_current_head():
            return
        if current is not None and current not in {r.revision for r in script.walk_revisions()}:
            raise DatabaseError(
                f"database {engine.url!r} has schema revision {current!r}, unknown to this "
                "gmis-mailscan (made by a newer version?): upgrade gmis-mailscan"
            )
        if conn.dialect.name == "sqlite":
            # pysqlite runs DDL outside any transaction: a run killed while migrating left a
            # half-built schema that every later run refused ("table accounts already
            # exists"). One explicit transaction makes the migration all or nothing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with _file_lock(Path(database + ".migrate.lock"), MIGRATION_LOCK_WAIT) as got:
        if not got:
            raise DatabaseError(
                f"{database}: another process has been upgrading the schema for over "
                f"{MIGRATION_LOCK_WAIT:.0f} s"
            )
        yield


def current_revision(conn: Connection) -> str | None:
    """The revision as Alembic reads it (for tests and `db upgrade`, which import it anyway)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def scan_lock(engine: Engine, wait_seconds: float) -> Iterator[bool]:
    """Hold the scan lock for the duration; yields False when another scan holds it.

    Two cron runs may overlap. On SQLite an exclusive lock file beside the database makes
    them take turns. On PostgreSQL scanners share the work instead: each account is locked
    while it is scanned (account_lock), so this whole-database lock is not taken.
    """
    if engine.dialect.name == "postgresql":
        yield True
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    with _file_lock(Path(database + ".lock"), wait_seconds) as got:
        yield got


@contextmanager
def account_lock(engine: Engine, account: str, wait_seconds: float) -> Iterator[bool]:
    """Hold one account's scan lock; yields False when another scanner kept it throughout.

    A PostgreSQL advisory lock keyed by the account name, so it covers scanners on other
    machines pointed at the same database. On SQLite scan_lock already lets one scan in.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = {"name": account}
    with engine.connect() as conn:
        got = _pg_lock(conn, wait_seconds, "7426003, hashtext(:name)", key)
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(7426003, hashtext(:name))"), key)
                conn.commit()


def _pg_lock(conn, wait_seconds: float, key: str, params: dict) -> bool:
    deadline = time.monotonic() + wait_seconds
    while True:
        got = conn.execute(text(f"SELECT pg_try_advisory_lock({key})"), params).scalar()
        conn.commit()
        if got or time.monotonic() >= deadline:
            return bool(got)
        time.sleep(0.5)


@contextmanager
def _file_lock(path: Path, wait_seconds: float) -> Iterator[bool]:
    """An exclusive lock file (flock on POSIX, LockFileEx on Windows) held for the duration."""
    lock = FileLock(path)
    try:
        lock.acquire(timeout=wait_seconds, poll_interval=0.2)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
