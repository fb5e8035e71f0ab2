"""Command line: parse arguments, call one function of the library, print its result.

Exit codes (also in the README and `gmis-mailscan --help`):
  0  success
  1  unexpected error (a bug: please report it with the output)
  2  bad usage, configuration or rules (the message names the file and the key)
  3  scan partly failed: some accounts could not be scanned, the others were
  4  scan failed: no account could be scanned
  5  another scan is running on the same database (cron overlap); nothing was done
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click
from bs4 import MarkupResemblesLocatorWarning
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from . import report as report_doc
from .config import ENV_CONFIG, Config, config_path, load_config, no_config, with_local_account
from .records import RawMessage, ScannedMessage
from .report import formats
from .rules import Rules, load_rules
from .scan import Progress as ScanProgress
from .scan import ScanOutcome, describe_error, diagnose, examine, scan, verify_policy
from .sources import Folder
from .status import assess_all
from .store.db import DatabaseError, connect, current_revision, scan_lock, upgrade
from .store.repo import Repo
from .tomlcheck import TomlError

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "config.example.toml"

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_FAILED, EXIT_LOCKED = 0, 1, 2, 3, 4, 5
STAFF_ANSWERS = {
    "login_done": "login completed (ログイン完了)",
    "url_unreachable": "URL cannot be reached (URLにアクセスできない)",
    "cannot_login": "URL opened but cannot log in (ログイン方法が分からない)",
}


@dataclass
class Context:
    config_option: str | None
    quiet: bool

    def config(self, required: bool = True) -> Config:
        """The config file; without one (and not asked for one) an empty config."""
        path = config_path(self.config_option)
        if not required and not self.config_option and not path.exists():
            return no_config()
        return load_config(path)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"gmis-mailscan: {message}", err=True)
    sys.exit(code)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="\b\n" + __doc__.split("\n\n", 1)[1],  # \b: keep the lines as written
)
@click.option(
    "--config",
    "-c",
    "config_option",
    metavar="PATH",
    envvar=ENV_CONFIG,
    help="Config file (default ./config.toml, or $GMIS_MAILSCAN_CONFIG).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the report (for cron).")
@click.option("--verbose", "-v", is_flag=True, help="Log what is done to stderr.")
@click.version_option(package_name="gmis-mailscan")
@click.pass_context
def main(ctx: click.Context, config_option: str | None, quiet: bool, verbose: bool) -> None:
    """Find the G-MIS secretariat's account mails (info@g-mis.net) in INBOX and junk folders
    and report which remedy of the Ministry's flowchart applies to each institution."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # hostile mail is recorded as such; library chatter about it is cron noise
        logging.getLogger("mailparser").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)
    ctx.obj = Context(config_option, quiet)


def _rules_and_repo(config: Config, migrate: bool = True) -> tuple[Rules, Repo]:
    try:
        rules = load_rules(config.rules_dir)
        repo = Repo(connect(config.database_url, migrate=migrate))
    except TomlError as exc:
        fail(str(exc))
    except DatabaseError as exc:  # the [database] url of this config file
        fail(f"{config.path}: {exc}" if config.path else str(exc))
    return rules, repo


def _config(ctx: Context, required: bool = True) -> Config:
    try:
        return ctx.config(required)
    except TomlError as exc:
        fail(str(exc))


# scan ---------------------------------------------------------------------------------------


class _BarProgress(ScanProgress):
    """A progress bar per folder on a terminal."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], int] = {}

    def folder(self, account: str, folder: Folder) -> None:
        label = f"{account}: {folder.name} ({folder.role})"
        self.tasks[(account, folder.name)] = self.progress.add_task(label, total=None)

    def fetched(self, account: str, folder: Folder, count: int, total: int | None) -> None:
        task = self.tasks[(account, folder.name)]
        if total is not None:
            self.progress.update(task, total=total)
        self.progress.advance(task, count)


@main.command("scan")
@click.option("--account", "-a", "names", multiple=True, help="Scan only this account (repeat).")
@click.option(
    "--maildir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Scan this Maildir instead of the configured accounts.",
)
@click.option(
    "--mbox",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Scan this mbox file instead of the configured accounts.",
)
@click.option(
    "--eml-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Scan this folder of .eml files instead of the configured accounts.",
)
@click.option(
    "--junk",
    "junk",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="With --mbox/--eml-dir: an mbox file or .eml folder that is a junk folder.",
)
@click.option(
    "--name",
    default="local",
    show_default=True,
    help="Account name for --maildir/--mbox/--eml-dir.",
)
@click.pass_obj
def scan_command(ctx: Context, names, maildir, mbox, eml_dir, junk, name) -> None:
    """Read the mailboxes (read-only) and store what the G-MIS mail says.

    Exit 3 if some accounts failed, 4 if all did, 5 if another scan is running.
    """
    local = [(k, p) for k, p in (("maildir", maildir), ("mbox", mbox), ("eml_dir", eml_dir)) if p]
    if len(local) > 1:
        fail("give only one of --maildir, --mbox, --eml-dir")
    config = _config(ctx, required=not local)
    if local:
        config = with_local_account(config, local[0][0], local[0][1], name, tuple(junk))
    accounts = list(config.accounts)
    if names:
        unknown = [n for n in names if n not in config.accounts_by_name]
        if unknown:
            fail(f"{config.path}: no account named {unknown[0]!r}")
        accounts = [config.accounts_by_name[n] for n in names]
    if not accounts:
        fail(f"{config.path or 'no config'}: no [[accounts]] to scan")
    rules, repo = _rules_and_repo(config)
    with scan_lock(repo.engine, config.lock_timeout) as got:
        if not got:
            fail("another scan is running on this database; try again later", EXIT_LOCKED)
        outcome = _run_scan(ctx, config, rules, repo, accounts)
        if all(a.skipped == "held" for a in outcome.accounts):  # PostgreSQL: all taken
            fail("another scan is running on this database; try again later", EXIT_LOCKED)
        assess_all(config, rules, repo)
    _print_outcome(ctx, outcome)
    sys.exit({"ok": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}[outcome.status])


def _run_scan(ctx, config, rules, repo, accounts) -> ScanOutcome:
    if ctx.quiet or not sys.stderr.isatty():
        return scan(config, rules, repo, accounts=accounts)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        return scan(config, rules, repo, accounts=accounts, progress=_BarProgress(bar))


def _print_outcome(ctx: Context, outcome: ScanOutcome) -> None:
    for a in outcome.accounts:
        if a.skipped and not ctx.quiet:
            click.echo(f"{a.name}: scanned by another scanner on this database")
            continue
        if a.error:
            click.echo(f"{a.name}: FAILED: {a.error}", err=True)
            continue
        if ctx.quiet:
            continue
        folders = ", ".join(f"{n} ({r}) {c}" for n, r, c in a.folders)
        usage = "unknown" if a.quota_ratio is None else f"{a.quota_ratio:.0%}"
        click.echo(
            f"{a.name}: {a.fetched} fetched, {a.stored} new; folders: {folders or '-'}; "
            f"mailbox usage: {usage}"
        )
    if outcome.status != "ok":
        click.echo(f"scan {outcome.status}: see the lines above", err=True)


# report -------------------------------------------------------------------------------------


@main.command("report")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(report_doc.FORMATS),
    default="table",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@click.pass_obj
def report_command(ctx: Context, fmt: str, output: Path | None) -> None:
    """Per institution: state, remedy (対応方法), evidence, warnings and whom to call."""
    config = _config(ctx, required=False)
    rules, repo = _rules_and_repo(config)
    doc = report_doc.build(assess_all(config, rules, repo), rules, repo.last_run())
    if fmt == "table":
        console = Console(
            file=output.open("w", encoding="utf-8") if output else None,
            width=120 if output or not sys.stdout.isatty() else None,
        )
        for part in formats.to_terminal(doc):
            # Text parts are not re-wrapped: Japanese has no spaces to break at.
            console.print(part, soft_wrap=isinstance(part, str))
        return
    text = {"json": formats.to_json, "csv": formats.to_csv, "html": formats.to_html}[fmt](doc)
    if output:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    else:
        click.echo(text.rstrip("\n"))


# mark ---------------------------------------------------------------------------------------


@main.command("mark")
@click.argument("account")
@click.option(
    "--login-done",
    "answer",
    flag_value="login_done",
    help="Staff opened the URL and logged in (row 2: nothing to do).",
)
@click.option(
    "--url-unreachable",
    "answer",
    flag_value="url_unreachable",
    help="The URL in the mail cannot be reached (row 3: 対応方法3).",
)
@click.option(
    "--cannot-login",
    "answer",
    flag_value="cannot_login",
    help="The URL opens but login fails (stays 対応方法4).",
)
@click.option("--clear", "answer", flag_value="clear", help="Withdraw the recorded answer.")
@click.option("--list", "answer", flag_value="list", help="Show the answers recorded, dated.")
@click.option("--institution", "-i", help="Only for this institution of the mailbox.")
@click.option("--note", help="Free text kept with the answer (who, why).")
@click.pass_obj
def mark_command(ctx: Context, account: str, answer: str | None, institution, note) -> None:
    """Record what staff found when following the password mail (SPEC §3 rows 2–3)."""
    if answer is None:
        fail("give one of --login-done, --url-unreachable, --cannot-login, --clear, --list")
    config = _config(ctx, required=False)
    if config.accounts and account not in config.accounts_by_name:
        fail(f"{config.path}: no account named {account!r}")
    rules, repo = _rules_and_repo(config)
    if answer == "list":
        for a in repo.answers(account, include_withdrawn=True):
            withdrawn = f" (withdrawn {a.withdrawn_at:%Y-%m-%d %H:%M})" if a.withdrawn_at else ""
            target = a.institution or "all institutions"
            click.echo(
                f"{a.recorded_at:%Y-%m-%d %H:%M} UTC  {a.answer:<16} {target}"
                f"{withdrawn}{'  ' + a.note if a.note else ''}"
            )
        return
    if answer == "clear":
        count = repo.withdraw_answers(account, institution)
        click.echo(f"{account}: withdrew {count} answer(s)")
    else:
        repo.add_answer(account, answer, institution, note)
        click.echo(f"{account}: recorded {STAFF_ANSWERS[answer]}")
    for a in assess_all(config, rules, repo):
        if a.account == account:
            click.echo(
                f"  {a.institution or '(unknown)'}: {a.decision.state} → "
                f"{rules.paths[a.decision.path].label}"
            )


# classify -----------------------------------------------------------------------------------


@main.command("classify")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.pass_obj
def classify_command(ctx: Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Dry run of rules/ on .eml files: type, fields, verdict, matching rule. Stores nothing."""
    config = _config(ctx, required=False)
    try:
        rules = load_rules(config.rules_dir)
    except TomlError as exc:
        fail(str(exc))
    policy = verify_policy(config, rules)
    for path in files:
        raw = RawMessage(folder="-", folder_role="other", locator=str(path), data=path.read_bytes())
        result = examine(raw, rules, policy)
        info = _classification(path, result)
        if as_json:
            click.echo(json.dumps(info, ensure_ascii=False))
            continue
        click.echo(f"{path}:")
        for key, value in info.items():
            if key != "file":
                click.echo(f"  {key}: {value}")


def _classification(path: Path, m: ScannedMessage | None) -> dict:
    if m is None:
        return {"file": str(path), "type": None, "note": "not G-MIS-looking mail: ignored by scan"}
    return {
        "file": str(path),
        "type": m.type,
        "rule": m.rule,
        "subject": m.subject,
        "from": m.from_address,
        "fields": {k: v for k, v in m.fields.items() if not k.endswith("_token_sha256")},
        "genuine": m.genuine,
        "reasons": [f"{r.code}: {r.en}" for r in m.reasons],
        "warnings": [f"{r.code}: {r.en}" for r in m.warnings],
        **({"error": m.parse_error} if m.parse_error else {}),
    }


# db -----------------------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations in migrations/)."""


@db_group.command("upgrade")
@click.pass_obj
def db_upgrade(ctx: Context) -> None:
    """Create the database or upgrade its schema to the latest migration."""
    config = _config(ctx, required=False)
    _, repo = _rules_and_repo(config, migrate=False)
    try:
        upgrade(repo.engine)
    except Exception as exc:
        fail(f"cannot upgrade {config.database_url}: {describe_error(exc)}", EXIT_ERROR)
    with repo.engine.connect() as conn:
        click.echo(f"database at revision {current_revision(conn)}")


# init ---------------------------------------------------------------------------------------


@main.command("init")
@click.argument("path", default="config.toml", type=click.Path(dir_okay=False, path_type=Path))
def init_command(path: Path) -> None:
    """Write a commented config file to PATH (default ./config.toml) to edit."""
    if path.exists():
        fail(f"{path} exists; not overwriting it")
    path.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    click.echo(f"wrote {path}: edit the [[accounts]] tables, then run `gmis-mailscan scan`")


# doctor -------------------------------------------------------------------------------------


@main.command("doctor")
@click.option("--account", "-a", "names", multiple=True, help="Check only this account (repeat).")
@click.pass_obj
def doctor_command(ctx: Context, names: tuple[str, ...]) -> None:
    """Check the config against the servers without scanning: login, folders and roles,
    mailbox usage, capabilities. Exit 3 if some accounts fail, 4 if all do."""
    config = _config(ctx)
    rules, _ = _rules_and_repo(config)
    accounts = [a for a in config.accounts if not names or a.name in names]
    if not accounts:
        fail(f"{config.path}: no [[accounts]] to check")
    failed = 0
    for account in accounts:
        try:
            report = diagnose(account, config, rules)
        except Exception as exc:
            failed += 1
            click.echo(f"{account.name}: FAILED: {describe_error(exc, account, config.timeout)}")
            continue
        click.echo(f"{account.name}: OK ({report['where']})")
        for folder in report["folders"]:
            click.echo(f"  folder {folder.name!r}: {folder.role}")
        quota = report["quota"]
        usage = (
            "unknown (no QUOTA)"
            if quota is None
            else (f"{quota.used_kib} KiB of {quota.limit_kib} KiB ({quota.ratio:.0%})")
        )
        click.echo(f"  mailbox usage: {usage}")
        if report["capabilities"]:
            click.echo(f"  capabilities: {' '.join(report['capabilities'])}")
    if failed:
        sys.exit(EXIT_FAILED if failed == len(accounts) else EXIT_PARTIAL)
