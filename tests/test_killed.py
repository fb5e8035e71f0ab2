"""SIGKILL the scanner while it writes: the SQLite database stays sound, nothing is lost.

`python -m gmis_mailscan scan` runs over a Maildir of 120 G-MIS mails (and 30 others) with
batch_size = 2, and is killed with SIGKILL at ten moments: while it creates the schema, right
after the run started, and after k stored messages for eight values of k (polled by counting
rows through a separate SQLite connection). After each kill the database passes
`PRAGMA integrity_check`, holds no half-stored message, and the next run completes with the
same message count and the same JSON report as a run that was never interrupted.
"""

from __future__ import annotations

import fcntl
import signal
import sqlite3
import time
from pathlib import Path

import mailfactory
import pytest
from reliability import check_store_consistent, cli, cli_popen, report, sqlite_url, write_config

INSTITUTIONS = 40
KILL_AFTER_MESSAGES = (1, 12, 24, 36, 48, 60, 75, 90)  # of 120 G-MIS mails
KILL_POINTS = ("migrating", "run started", *(f"{k} stored" for k in KILL_AFTER_MESSAGES))
POLL_SECONDS = 60  # bound on waiting for one kill point


def _write_maildir(root: Path) -> int:
    """INBOX and a Junk folder (Maildir++), 3 G-MIS mails per institution; returns G-MIS count."""
    folders = {"INBOX": root, "Junk": root / ".Junk"}
    for path in folders.values():
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
    n = 0
    charsets = ("utf-8", "iso-2022-jp", "shift_jis", "cp932")
    for i in range(INSTITUTIONS):
        name = f"テスト病院{i:02d}"
        charset = charsets[i % 4]
        mails = [
            ("Junk" if i % 3 == 0 else "INBOX", "password_registration"),
            ("INBOX", "account_notice" if i % 2 else "user_confirmation"),
            ("Junk" if i % 5 == 0 else "INBOX", "other"),
        ]
        for folder, kind in mails:
            data = mailfactory.build(
                kind, institution=name, login_id=f"kgs-t{i:02d}", charset=charset
            )
            (folders[folder] / "new" / f"{1700000000 + n}.M{n}P1.test").write_bytes(data)
            n += 1
        if i % 4 == 0:
            for j in range(3):
                other = mailfactory.build("unrelated", institution=name)
                (folders["INBOX"] / "new" / f"1800000000.M{i}-{j}P1.test").write_bytes(other)
    return n


@pytest.fixture(scope="module")
def maildir(tmp_path_factory):
    root = tmp_path_factory.mktemp("killed") / "Maildir"
    assert _write_maildir(root) == 3 * INSTITUTIONS
    return root


def _config(tmp: Path, maildir: Path) -> tuple[Path, Path]:
    db = tmp / "db.sqlite3"
    config = write_config(
        tmp / "config.toml",
        sqlite_url(db),
        [{"name": "hospital", "maildir": str(maildir)}],
        scan={"batch_size": 2},
    )
    return config, db


@pytest.fixture(scope="module")
def uninterrupted(maildir, tmp_path_factory):
    config, db = _config(tmp_path_factory.mktemp("clean"), maildir)
    result = cli(config, "scan")
    assert result.returncode == 0, result.stderr
    count = _count(db, "messages")
    assert count == 3 * INSTITUTIONS
    return count, report(config)


def _count(db: Path, table: str) -> int | None:
    """Rows in `table`, read through a connection of our own; None while it cannot be read."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(db, timeout=0.05)
        try:
            return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # no such table yet, or busy: look again
        return None


def _migrating(db: Path) -> bool:
    """Is a scanner inside its schema migration: holding the migration lock beside the
    database and the database's write lock (the migration's one BEGIN IMMEDIATE)?"""
    lock = Path(f"{db}.migrate.lock")
    if not Path(f"{db}-wal").exists() or not lock.exists():
        return False  # not yet switched to WAL: a probe now would break the switch
    with lock.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: upgrade() is running
        else:
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:  # "database is locked": the migration is writing
        return True
    finally:
        con.close()


def _tables(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [
            name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
    finally:
        con.close()


def _reached(point: str, db: Path) -> bool:
    if point == "migrating":
        return _migrating(db)
    if point == "run started":
        return (_count(db, "scan_runs") or 0) >= 1
    return (_count(db, "messages") or 0) >= int(point.split()[0])


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_then_next_run_loses_and_doubles_nothing(point, maildir, uninterrupted, tmp_path):
    count, good = uninterrupted
    config, db = _config(tmp_path, maildir)
    proc = cli_popen(config, "scan")
    deadline = time.monotonic() + POLL_SECONDS
    try:
        while not _reached(point, db) and proc.poll() is None:
            assert time.monotonic() < deadline, f"kill point {point!r} never reached"
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the scan finished before {point!r}: {stderr}"
    if point == "migrating":  # killed inside the migration: all of it undone, nothing half-built
        assert _tables(db) == [], "the kill landed after the migration had committed"

    if db.exists():
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            con.close()
        if (_count(db, "messages") or 0) > 0:
            check_store_consistent(sqlite_url(db), None)

    result = cli(config, "scan")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert _count(db, "messages") == count
    assert _count(db, "locations") == count
    con = sqlite3.connect(db)
    try:
        statuses = {s for (s,) in con.execute("SELECT status FROM scan_runs")}
    finally:
        con.close()
    assert "running" not in statuses  # the killed run is marked interrupted, the last one ok
    check_store_consistent(sqlite_url(db), None)
    assert report(config) == good
