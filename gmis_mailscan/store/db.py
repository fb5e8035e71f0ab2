"""Opening the database: engine settings, schema migrations, and the one-scan-at-a-time lock."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
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
    deadline = time.monotonic() + wait_seconds
    with path.open("a") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.2)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
