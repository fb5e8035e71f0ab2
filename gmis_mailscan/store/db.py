"""Opening the database: engine settings, schema migrations, and the one-scan-at-a-time lock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from filelock import FileLock, Timeout
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from ..resources import data_path

MIGRATIONS_DIR = data_path("migrations")
MIGRATION_LOCK_WAIT = 120.0  # seconds; a migration takes well under one


class DatabaseError(RuntimeError):
    """The database cannot be opened or upgraded; str() says which and why."""


def connect(url: str, *, migrate: bool = True) -> Engine:
    """An engine for `url`, schema upgraded to the latest migration unless told otherwise."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"[database] url is not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        try:
            upgrade(engine)
        except (SQLAlchemyError, CommandError) as exc:  # unreachable, locked, not ours
            engine.dispose()
            why = exc.orig if isinstance(exc, DBAPIError) else exc
            reason = " ".join(str(why).split())
            raise DatabaseError(f"cannot open database {parsed!r}: {reason}") from None
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL: readers never block the scan, and a killed writer leaves the file consistent."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may have to wait
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _alembic_config() -> AlembicConfig:
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


def current_revision(conn) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def scan_lock(engine: Engine, wait_seconds: float) -> Iterator[bool]:
    """Hold the scan lock for the duration; yields False when another scan holds it.

    Two cron runs may overlap. On PostgreSQL an advisory lock covers every scanner pointed at
    the same database; on SQLite an exclusive lock file beside the database does.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = _pg_lock(conn, wait_seconds)
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(7426001)"))
                    conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    with _file_lock(Path(database + ".lock"), wait_seconds) as got:
        yield got


def _pg_lock(conn, wait_seconds: float) -> bool:
    deadline = time.monotonic() + wait_seconds
    while True:
        got = conn.execute(text("SELECT pg_try_advisory_lock(7426001)")).scalar()
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
