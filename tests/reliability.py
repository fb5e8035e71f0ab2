"""Helpers shared by the reliability tests (bad mail, dropped connections, kills, overlap).

Each of those tests runs a real scan (in-process or through the CLI), then checks the
database with plain SQL and compares the final JSON report with that of a run that never
failed. The report minus its timestamps (`generated_at`, `last_scan`) is the final state a
user sees, so "the same report" is the acceptance criterion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from gmis_mailscan import report as report_doc
from gmis_mailscan.config import load_config
from gmis_mailscan.report import formats
from gmis_mailscan.rules import load_rules
from gmis_mailscan.scan import scan
from gmis_mailscan.status import assess_all
from gmis_mailscan.store.db import connect
from gmis_mailscan.store.repo import Repo

REPO_ROOT = Path(__file__).resolve().parent.parent
_RULES = load_rules()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def write_config(
    path: Path,
    database_url: str,
    accounts: list[dict],
    *,
    scan: dict | None = None,
    raw: str = "",
) -> Path:
    """A config.toml with [database], [scan] and one [[accounts]] table per dict."""
    lines = ["[database]", f"url = {json.dumps(database_url)}", ""]
    if scan:
        lines.append("[scan]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in scan.items()]
        lines.append("")
    for account in accounts:
        lines.append("[[accounts]]")
        lines += [
            f"{key} = {json.dumps(value, ensure_ascii=False)}"
            for key, value in account.items()
            if value is not None
        ]
        lines.append("")
    path.write_text("\n".join(lines) + raw, encoding="utf-8")
    return path


def imap_account(server, user, tmp: Path, port: int, name: str = "acct", **over) -> dict:
    """Plain IMAP on loopback (allowed by the scanner), password in a file."""
    pw_file = tmp / f"{name}.password"
    pw_file.write_text(user.password + "\n")
    account = {
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "security": "plain",
        "username": user.name,
        "password_file": str(pw_file),
    }
    account.update(over)
    return account


def run_scan(config_path: Path):
    """One in-process scan, as `gmis-mailscan scan` runs it (without the lock)."""
    config = load_config(config_path)
    repo = Repo(connect(config.database_url))
    try:
        outcome = scan(config, _RULES, repo)
        assess_all(config, _RULES, repo)
        return outcome
    finally:
        repo.engine.dispose()


def report(config_path: Path) -> dict:
    """The JSON report (`report --format json`) without its timestamps."""
    config = load_config(config_path)
    repo = Repo(connect(config.database_url))
    try:
        doc = report_doc.build(assess_all(config, _RULES, repo), _RULES, repo.last_run())
    finally:
        repo.engine.dispose()
    return normalized(json.loads(formats.to_json(doc)))


def normalized(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("generated_at", "last_scan")}


def cli(config: Path | None, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """`python -m gmis_mailscan [--config CONFIG] ARGS`, output captured as text."""
    command = [sys.executable, "-m", "gmis_mailscan"]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        cwd=kw.pop("cwd", None),
        env={**os.environ, **kw.pop("env", {})},
    )


def cli_popen(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gmis_mailscan", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def reap(procs: list[subprocess.Popen], timeout: float) -> None:
    """Kill what is still running of `procs` (a test that failed half-way) and wait for all."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=timeout)


def rows(database_url: str, sql: str) -> list[tuple]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def check_store_consistent(database_url: str, expected_uids: dict[str, set[int]] | None) -> None:
    """The database holds whole batches only, and nothing twice.

    IMAP with one account (`expected_uids` given: folder -> UIDs of its G-MIS mails): the
    stored UIDs of each folder are exactly those <= the folder's remembered last_uid (a batch
    is stored with its folder state, or neither is), and a folder without state has no
    messages. Always: no location stored twice, every message has a location, no message
    stored twice.
    """
    last_uid = {
        (account, name): uid
        for account, name, uid in rows(
            database_url, "SELECT account_id, name, last_uid FROM folders"
        )
    }
    stored: dict[tuple[int, str], list] = {}
    for account, folder, locator in rows(
        database_url, "SELECT account_id, folder, locator FROM locations"
    ):
        stored.setdefault((account, folder), []).append(locator)
    for key, locators in stored.items():
        assert len(locators) == len(set(locators)), f"{key}: stored twice: {sorted(locators)}"
        assert key in last_uid, f"{key}: messages stored without the folder's state"
    if expected_uids is not None:
        _check_whole_batches(last_uid, stored, expected_uids)
    orphans = rows(
        database_url,
        "SELECT id FROM messages m WHERE NOT EXISTS "
        "(SELECT 1 FROM locations l WHERE l.message_pk = m.id)",
    )
    assert orphans == [], f"messages without a location: {orphans}"
    dup = rows(
        database_url,
        "SELECT account_id, dedup_key, COUNT(*) FROM messages "
        "GROUP BY account_id, dedup_key HAVING COUNT(*) > 1",
    )
    assert dup == [], f"duplicate messages: {dup}"


def _check_whole_batches(
    last_uid: dict[tuple[int, str], int],
    stored: dict[tuple[int, str], list],
    expected_uids: dict[str, set[int]],
) -> None:
    accounts = {a for a, _ in last_uid} | {a for a, _ in stored}
    assert len(accounts) <= 1, "expected_uids is for one account"
    for account in accounts:
        for folder in {f for a, f in stored} | set(expected_uids):
            if (account, folder) not in last_uid:
                continue
            last = last_uid[(account, folder)]
            uids = {int(loc[4:]) for loc in stored.get((account, folder), [])}
            want = {u for u in expected_uids.get(folder, set()) if u <= last}
            assert uids == want, (
                f"{folder}: last_uid={last} but stored UIDs {sorted(uids)} "
                f"instead of {sorted(want)}: a batch was stored in part"
            )
