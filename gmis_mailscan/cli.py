"""Command line: parse arguments, call one function of the library, print its result.

Exit codes (also in the README and `gmis-mailscan --help`):
  0  success
  1  unexpected error (a bug: please report it with the output)
  2  bad usage, configuration or rules (the message names the file and the key)
  3  scan partly failed: some accounts could not be scanned, the others were
     (rescue: some messages were refused or some accounts failed)
  4  scan failed: no account could be scanned (rescue: no account could be reached)
  5  another scan is running on the same database (cron overlap); nothing was done
  6  with --exit-code: someone must act (an institution's path is not "none", or a
     warning is new); the report is printed even with --quiet
  7  the notification mail could not be sent (scan data kept; the next run sends it)
  A scan's 3 or 4 wins over 7, and 7 over 6.
"""

# The heavy parts (SQLAlchemy, the mail parsers, rich) are imported inside the commands that
# use them: `--help`, `init` and `classify` start in a fraction of the time.

from __future__ import annotations

import json
import logging
import signal
import sys
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from zoneinfo import ZoneInfo

import click

from . import report as report_doc
from .config import (
    ENV_CONFIG,
    Config,
    config_path,
    config_places,
    load_config,
    no_config,
    with_local_account,
)
from .records import RawMessage, ScannedMessage
from .report import csvfile
from .report.texts import LANGS, Texts, load_texts
from .report.view import clean, local_time
from .resources import data_path
from .rules import Rules, load_rules
from .sources import Folder
from .tomlcheck import TomlError, did_you_mean

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from .scan import Progress as ScanProgress
    from .scan import ScanOutcome
    from .store.repo import Repo

EXAMPLE_CONFIG = data_path("config.example.toml")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_FAILED, EXIT_LOCKED = 0, 1, 2, 3, 4, 5
EXIT_ACTION, EXIT_NOTIFY = 6, 7
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
        if not self.config_option and not path.exists():
            if not required:
                return no_config()
            elsewhere = ", ".join(str(p) for p in config_places()[1:])
            raise TomlError(
                path,
                "",
                f"file not found (nor {elsewhere}): write one with `gmis-mailscan init`, "
                "or give --config PATH",
            )
        return load_config(path)


def lang_option(command):
    """--lang for every command whose output people read (default: [report] lang, else ja)."""
    return click.option(
        "--lang",
        type=click.Choice(LANGS),
        envvar="GMIS_MAILSCAN_LANG",
        help="Output language: ja (default, or [report] lang) or en.",
    )(command)


def _texts(config: Config, lang: str | None) -> Texts:
    try:
        return load_texts(lang or config.report_lang, config.rules_dir)
    except TomlError as exc:
        fail(str(exc))


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
    help="Config file; else $GMIS_MAILSCAN_CONFIG, ./config.toml, the user's config folder, "
    "/etc/gmis-mailscan/ (`doctor` shows which).",
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
        if ctx.invoked_subcommand not in _NO_MAIL_PARSED:
            from bs4 import MarkupResemblesLocatorWarning

            warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)
    ctx.obj = Context(config_option, quiet)


_NO_MAIL_PARSED = ("init", "report", "mark", "db")


def _rules_and_repo(config: Config, migrate: bool = True) -> tuple[Rules, Repo]:
    from .store.db import DatabaseError, connect
    from .store.repo import Repo

    try:
        rules = load_rules(config.rules_dir)
        repo = Repo(
            connect(config.database_url, migrate=migrate, accounts_at_once=config.concurrency)
        )
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


def _bar_progress(progress: Progress) -> ScanProgress:
    """A progress bar per folder on a terminal (defined here: scan.py loads only when used)."""
    from .scan import Progress as ScanProgress

    class BarProgress(ScanProgress):
        def __init__(self) -> None:
            self.tasks: dict[tuple[str, str], TaskID] = {}

        def folder(self, account: str, folder: Folder) -> None:
            label = f"{account}: {folder.name} ({folder.role})"
            self.tasks[(account, folder.name)] = progress.add_task(label, total=None)

        def fetched(self, account: str, folder: Folder, count: int, total: int | None) -> None:
            task = self.tasks[(account, folder.name)]
            if total is not None:
                progress.update(task, total=total)
            progress.advance(task, count)

    return BarProgress()


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
    "--msg-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Scan this folder of Outlook .msg files instead of the configured accounts.",
)
@click.option(
    "--junk",
    "junk",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="With --mbox/--eml-dir/--msg-dir: an mbox file or a .eml/.msg folder that is junk.",
)
@click.option(
    "--name",
    default="local",
    show_default=True,
    help="Account name for --maildir/--mbox/--eml-dir/--msg-dir.",
)
@click.option(
    "--exit-code",
    "exit_code",
    is_flag=True,
    help="Exit 6 and print the report (even with --quiet) when someone must act.",
)
@click.option(
    "--notify/--no-notify",
    "wanted",
    default=None,
    help="Mail a summary of what changed ([notify] in the config; default: its notify key).",
)
@click.pass_obj
def scan_command(
    ctx: Context, names, maildir, mbox, eml_dir, msg_dir, junk, name, exit_code, wanted
) -> None:
    """Read the mailboxes (read-only) and store what the G-MIS mail says.

    Exit 3 if some accounts failed, 4 if all did, 5 if another scan is running, 6 (with
    --exit-code) if someone must act, 7 if the notification mail could not be sent.
    """
    given = (("maildir", maildir), ("mbox", mbox), ("eml_dir", eml_dir), ("msg_dir", msg_dir))
    local = [(k, p) for k, p in given if p]
    if len(local) > 1:
        fail("give only one of --maildir, --mbox, --eml-dir, --msg-dir")
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
    from .status import assess_all, needs_action
    from .store.db import scan_lock

    wanted = _wants_notify(config, wanted)
    rules, repo = _rules_and_repo(config)
    with scan_lock(repo.engine, config.lock_timeout) as got:
        if not got:
            fail("another scan is running on this database; try again later", EXIT_LOCKED)
        outcome = _run_scan(ctx, config, rules, repo, accounts)
        if all(a.skipped == "held" for a in outcome.accounts):  # PostgreSQL: all taken
            fail("another scan is running on this database; try again later", EXIT_LOCKED)
        assessments = assess_all(config, rules, repo, cause="scan", scan_run=outcome.run_id)
        notified = not wanted or _notify_after_scan(config, rules, repo, assessments)
    _print_outcome(ctx, outcome)
    action = needs_action(assessments, repo.history(scan_run=outcome.run_id))
    if exit_code and action:
        doc = report_doc.build(assessments, rules, repo.last_run(), config.rules_dir)
        style = ReportStyle("table", _texts(config, None), _timezone(config))
        _print_report(doc, style, None, config.rules_dir)
    code = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}[outcome.status]
    if code == EXIT_OK and not notified:
        code = EXIT_NOTIFY
    if code == EXIT_OK and exit_code and action:
        code = EXIT_ACTION
    sys.exit(code)


def _wants_notify(config: Config, option: bool | None) -> bool:
    """--notify/--no-notify, else [notify] notify; --notify without [notify] is an error."""
    if option and config.notify is None:
        fail(f"{config.path or 'no config'}: --notify needs a [notify] table")
    if option is None:
        return config.notify is not None and config.notify.enabled
    return option


def _notify_after_scan(config: Config, rules: Rules, repo: Repo, assessments) -> bool:
    """Send the summary mail; False (after one stderr line) when it could not be sent."""
    from . import notify

    assert config.notify is not None
    try:
        notify.send_changes(config.notify, rules, repo, assessments, config.rules_dir)
    except notify.NotifyError as exc:
        click.echo(f"gmis-mailscan: notification not sent: {exc}", err=True)
        return False
    return True


def _run_scan(ctx, config, rules, repo, accounts) -> ScanOutcome:
    from .scan import scan

    if ctx.quiet or not sys.stderr.isatty():
        return scan(config, rules, repo, accounts=accounts)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        return scan(config, rules, repo, accounts=accounts, progress=_bar_progress(bar))


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
@lang_option
@click.option("--only-action", is_flag=True, help="Only institutions that need something done.")
@click.option(
    "--wide",
    is_flag=True,
    help="Table: every column (account, application number, state, evidence, warnings), "
    "also when the output is not a terminal.",
)
@click.option(
    "--csv-encoding",
    type=click.Choice(csvfile.ENCODINGS),
    default="utf-8-sig",
    show_default=True,
    help="CSV: utf-8-sig (UTF-8 with BOM, opens right in Excel), utf-8, or cp932.",
)
@click.option(
    "--csv-headers",
    type=click.Choice(csvfile.HEADERS),
    help="CSV column headers: ja, en (default: the --lang), or keys for scripts.",
)
@click.option(
    "--exit-code",
    "exit_code",
    is_flag=True,
    help="Exit 6 when someone must act; with --quiet, print only then (a file is always written).",
)
@click.pass_obj
def report_command(
    ctx: Context,
    fmt: str,
    output: Path | None,
    lang: str | None,
    only_action: bool,
    wide: bool,
    csv_encoding: str,
    csv_headers: str | None,
    exit_code: bool,
) -> None:
    """Per institution: state, remedy (対応方法), evidence, warnings and whom to call."""
    from .status import assess_all, needs_action

    config = _config(ctx, required=False)
    rules, repo = _rules_and_repo(config)
    style = ReportStyle(
        fmt, _texts(config, lang), _timezone(config), wide, csv_encoding, csv_headers
    )
    assessments = assess_all(config, rules, repo)
    last = repo.last_run()
    doc = report_doc.build(assessments, rules, last, config.rules_dir)
    if only_action:
        doc = report_doc.only_action(doc)
    action = exit_code and needs_action(
        assessments, repo.history(scan_run=last["id"]) if last else []
    )
    if output or action or not (exit_code and ctx.quiet):
        _print_report(doc, style, output, config.rules_dir)
    sys.exit(EXIT_ACTION if action else EXIT_OK)


@dataclass(frozen=True)
class ReportStyle:
    """How `report` (and `scan --exit-code`) renders the document for people."""

    fmt: str
    texts: Texts
    tz: tzinfo | None
    wide: bool = False
    csv_encoding: str = "utf-8-sig"
    csv_headers: str | None = None


def _timezone(config: Config) -> tzinfo | None:
    return ZoneInfo(config.report_timezone) if config.report_timezone else None


def _print_report(
    doc: dict, style: ReportStyle, output: Path | None, rules_dir: Path | None
) -> None:
    from rich.console import Console

    from .report import formats, terminal
    from .report.html import render_html
    from .report.view import build_view

    if style.fmt == "json":
        _emit(formats.to_json(doc), output)
        return
    if style.fmt == "html":
        _emit(render_html(doc, style.texts.lang, style.tz, rules_dir=rules_dir), output)
        return
    view = build_view(doc, style.texts, style.tz)
    if style.fmt == "csv":
        data = csvfile.to_csv(view, style.csv_headers or style.texts.lang, style.csv_encoding)
        if output:
            output.write_bytes(data)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
    elif output or not sys.stdout.isatty():
        if not style.wide:  # cron mail, a pipe or a file: no box drawing
            _emit(terminal.to_plain(view), output)
            return
        console = Console(file=output.open("w", encoding="utf-8") if output else None, width=160)
        for part in terminal.to_terminal(view, console.width, wide=True):
            console.print(part, soft_wrap=True)
    else:
        console = Console()
        for part in terminal.to_terminal(view, console.width, wide=style.wide):
            console.print(part, soft_wrap=True)  # already folded to the width


def _emit(text: str, output: Path | None) -> None:
    if output:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    else:
        click.echo(text.rstrip("\n"))


# mark ---------------------------------------------------------------------------------------


def _answer(flag: str, help: str):
    """One of mark's answer flags; they are collected so that two at once can be refused."""

    def collect(ctx: click.Context, _param: click.Parameter, given: bool) -> None:
        if given:
            ctx.meta.setdefault("mark_answers", []).append(flag)

    return click.option(flag, is_flag=True, expose_value=False, callback=collect, help=help)


_ANSWER_FLAGS = ("--login-done", "--url-unreachable", "--cannot-login", "--clear", "--list")


@main.command("mark")
@click.argument("account")
@_answer("--login-done", "Staff opened the URL and logged in (row 2: nothing to do).")
@_answer("--url-unreachable", "The URL in the mail cannot be reached (row 3: 対応方法3).")
@_answer("--cannot-login", "The URL opens but login fails (stays 対応方法4).")
@_answer("--clear", "Withdraw the recorded answer.")
@_answer("--list", "Show the answers recorded, dated.")
@click.option("--institution", "-i", help="Only for this institution of the mailbox.")
@click.option("--note", help="Free text kept with the answer (who, why).")
@lang_option
@click.pass_obj
def mark_command(ctx: Context, account: str, institution, note, lang: str | None) -> None:
    """Record what staff found when following the password mail (rows 2 and 3 of the
    Ministry's flowchart: logged in, or the URL cannot be reached)."""
    given = click.get_current_context().meta.get("mark_answers", [])
    if len(given) != 1:
        fail(
            f"give one of {', '.join(_ANSWER_FLAGS)}"
            + (f", not {' and '.join(sorted(given, key=_ANSWER_FLAGS.index))}" if given else "")
        )
    answer = given[0].removeprefix("--").replace("-", "_")
    config = _config(ctx, required=False)
    from .status import assess_all

    rules, repo = _rules_and_repo(config)
    known = sorted(config.accounts_by_name or {a.name for a in repo.accounts()})
    if account not in known:
        where = f"{config.path}: " if config.path else ""
        fail(
            f"{where}no account named {account!r}{did_you_mean(account, known)} "
            f"(known: {', '.join(known) or 'none yet: scan first'})"
        )
    if answer == "list":
        t = _texts(config, lang)
        tz = ZoneInfo(config.report_timezone) if config.report_timezone else None
        for a in repo.answers(account, include_withdrawn=True):
            at = local_time(a.withdrawn_at, t, tz)
            withdrawn = f" ({t('mark.withdrawn', at=at)})" if a.withdrawn_at else ""
            target = clean(a.institution) or t("mark.all_institutions")
            click.echo(
                f"{local_time(a.recorded_at, t, tz)}  {t('mark.' + a.answer)}  {target}"
                f"{withdrawn}{'  ' + clean(a.note) if a.note else ''}"
            )
        return
    if answer == "clear":
        count = repo.withdraw_answers(account, institution)
        click.echo(f"{account}: withdrew {count} answer(s)")
    else:
        repo.add_answer(account, answer, institution, note)
        click.echo(f"{account}: recorded {STAFF_ANSWERS[answer]}")
    for item in assess_all(config, rules, repo, cause="mark"):
        if item.account == account:
            click.echo(
                f"  {item.institution or '(unknown)'}: {item.decision.state} → "
                f"{rules.paths[item.decision.path].label}"
            )


# history ------------------------------------------------------------------------------------


@main.command("history")
@click.argument("account", required=False)
@click.option(
    "--since",
    metavar="DATE",
    help="Only changes at or after DATE (YYYY-MM-DD or ISO 8601; local time unless given).",
)
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(("table", "json")),
    default="table",
    show_default=True,
)
@click.option("--lang", type=click.Choice(("ja", "en")), default="ja", show_default=True)
@click.pass_obj
def history_command(ctx: Context, account: str | None, since, fmt: str, lang: str) -> None:
    """Every change of an institution's state (oldest first), with its time and scan run."""
    config = _config(ctx, required=False)
    _, repo = _rules_and_repo(config)
    changes = repo.history(account, since=_since(since) if since else None)
    if fmt == "json":
        click.echo(json.dumps([c.as_dict() for c in changes], ensure_ascii=False, indent=2))
        return
    for c in changes:
        item = c.as_dict()
        run = f"run {c.scan_run}" if c.scan_run else c.cause
        click.echo(
            f"{item['at']}  {c.account}  {c.institution or '-'}  "
            f"{c.from_path or '-'} → {c.to_path or '-'}  ({run})  {item['reason'][lang]}"
        )


def _since(value: str) -> datetime:
    """--since as naive UTC, the form the database keeps."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since: expected a date like 2026-12-01 or 2026-12-01T09:00+09:00, got {value!r}")
    return when.astimezone(UTC).replace(tzinfo=None)


# notify -------------------------------------------------------------------------------------


@main.command("notify")
@click.option("--test", "test", is_flag=True, help="Send a test mail to check [notify].")
@click.pass_obj
def notify_command(ctx: Context, test: bool) -> None:
    """Mail what changed since the last notification (no scan), or a test mail. Exit 7 if
    the mail could not be sent."""
    from . import notify
    from .status import assess_all
    from .store.db import scan_lock

    config = _config(ctx)
    if config.notify is None:
        fail(f"{config.path}: no [notify] table (see config.example.toml)")
    rules, repo = _rules_and_repo(config)
    try:
        if test:
            notify.send_test(config.notify, config.rules_dir)
            sent = True
        else:
            with scan_lock(repo.engine, config.lock_timeout) as got:
                if not got:
                    fail("a scan is running on this database; try again later", EXIT_LOCKED)
                assessments = assess_all(config, rules, repo)
                sent = (
                    notify.send_changes(config.notify, rules, repo, assessments, config.rules_dir)
                    is not None
                )
    except notify.NotifyError as exc:
        fail(f"notification not sent: {exc}", EXIT_NOTIFY)
    if not ctx.quiet:
        click.echo(f"mail sent to {', '.join(config.notify.to)}" if sent else "nothing new to tell")


# watch --------------------------------------------------------------------------------------


@main.command("watch")
@click.option(
    "--notify/--no-notify",
    "wanted",
    default=None,
    help="Mail a summary after each scan that changed something (default: [notify] notify).",
)
@click.pass_obj
def watch_command(ctx: Context, wanted: bool | None) -> None:
    """Scan as soon as new mail arrives (IMAP IDLE on INBOX and junk folders, polling where
    that is not possible), and every account in full each [watch] full_scan_minutes.
    Read-only, like scan. Runs until SIGTERM or SIGINT, finishing the scan in hand."""
    from .watch import Watcher  # here: the other commands need no thread machinery

    config = _config(ctx)
    if not config.accounts:
        fail(f"{config.path}: no [[accounts]] to watch")
    wanted = _wants_notify(config, wanted)
    rules, repo = _rules_and_repo(config)
    watcher = Watcher(config, rules, repo, send_notifications=wanted)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: watcher.stop())
    watcher.run()


# classify -----------------------------------------------------------------------------------


@main.command("classify")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@lang_option
@click.pass_obj
def classify_command(
    ctx: Context, files: tuple[Path, ...], as_json: bool, lang: str | None
) -> None:
    """Dry run of rules/ on .eml or Outlook .msg files: type, fields, verdict, matching rule.
    Stores nothing."""
    from .scan import examine, verify_policy

    config = _config(ctx, required=False)
    try:
        rules = load_rules(config.rules_dir)
    except TomlError as exc:
        fail(str(exc))
    policy = verify_policy(config, rules)
    t = _texts(config, lang)
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
                click.echo(f"  {t('classify.' + key)}: {_shown(key, value, result, t)}")


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


def _shown(key: str, value: object, m: ScannedMessage | None, t: Texts) -> object:
    """A classify value for people: names beside codes, reasons in the language, no escapes."""
    if m is None:
        return t("classify.not_gmis") if key == "note" else value
    if key == "type":
        return f"{m.type} ({t.group('types').get(m.type, m.type)})"
    if key == "genuine":
        return t("classify.yes") if m.genuine else t("classify.no")
    if key in ("reasons", "warnings"):
        items = m.reasons if key == "reasons" else m.warnings
        return "; ".join(f"{r.code}: {getattr(r, t.lang)}" for r in items) or "-"
    return clean(value) if isinstance(value, str) else value


# db -----------------------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations in migrations/)."""


@db_group.command("upgrade")
@click.pass_obj
def db_upgrade(ctx: Context) -> None:
    """Create the database or upgrade its schema to the latest migration."""
    from .scan import describe_error
    from .store.db import current_revision, upgrade

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
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
def init_command(path: Path, force: bool) -> None:
    """Write a commented config file to PATH (default ./config.toml) to edit."""
    if path.exists() and not force:
        fail(f"{path} exists; not overwriting it (init --force replaces it)")
    try:
        path.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    click.echo(f"wrote {path}: edit the [[accounts]] tables, then run `gmis-mailscan scan`")


# doctor -------------------------------------------------------------------------------------


@main.command("doctor")
@click.option("--account", "-a", "names", multiple=True, help="Check only this account (repeat).")
@lang_option
@click.pass_obj
def doctor_command(ctx: Context, names: tuple[str, ...], lang: str | None) -> None:
    """Check the config against the servers without scanning: login, folders and roles,
    mailbox usage, capabilities. Exit 3 if some accounts fail, 4 if all do."""
    from .scan import describe_error, diagnose
    from .store.db import DatabaseError, describe

    config = _config(ctx)
    try:
        rules = load_rules(config.rules_dir)
    except TomlError as exc:
        fail(str(exc))
    t = _texts(config, lang)
    accounts = [a for a in config.accounts if not names or a.name in names]
    if not accounts:
        fail(f"{config.path}: no [[accounts]] to check")
    click.echo(f"config: {config.path.resolve() if config.path else '-'}")
    try:  # read only: doctor never creates or upgrades the database
        click.echo(f"database: {describe(config.database_url)}")
    except DatabaseError as exc:
        click.echo(f"database: FAILED: {exc}", err=True)
    failed = 0
    for account in accounts:
        try:
            report = diagnose(account, config, rules)
        except Exception as exc:
            failed += 1
            why = describe_error(exc, account, config.timeout)
            click.echo(f"{account.name}: {t('doctor.failed')}: {why}", err=True)
            continue
        click.echo(f"{account.name}: {t('doctor.ok')} ({report['where']})")
        for folder in report["folders"]:
            role = t.group("roles").get(folder.role, folder.role) if t.lang != "en" else folder.role
            click.echo(f"  {t('doctor.folder')} {folder.name!r}: {role}")
        quota = report["quota"]
        usage = t("doctor.no_quota")
        if quota is not None:  # by size, else by count (MESSAGE); the ratio is the fuller one
            ratio = f"{quota.ratio:.0%}"
            usage = (
                t("doctor.usage_value", used=quota.used_kib, limit=quota.limit_kib, ratio=ratio)
                if quota.limit_kib
                else t(
                    "doctor.usage_messages",
                    used=quota.messages,
                    limit=quota.message_limit,
                    ratio=ratio,
                )
            )
        click.echo(f"  {t('doctor.usage')}: {usage}")
        if report["capabilities"]:
            click.echo(f"  {t('doctor.capabilities')}: {' '.join(report['capabilities'])}")
    if failed:
        sys.exit(EXIT_FAILED if failed == len(accounts) else EXIT_PARTIAL)


# rescue -------------------------------------------------------------------------------------


@main.command("rescue")
@click.argument("names", nargs=-1, metavar="[ACCOUNT]...")
@click.option("--all", "all_accounts", is_flag=True, help="Every configured account.")
@click.option("--to", "to", metavar="FOLDER", help="Move here instead of INBOX / rescue_folder.")
@click.option("--dry-run", is_flag=True, help="List what would move; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Move without asking (needed without a terminal).")
@click.pass_obj
def rescue_command(ctx: Context, names, all_accounts, to, dry_run, yes) -> None:
    """Move genuine G-MIS account mail out of junk folders (対応方法2 ①), exactly by UID.

    The only command that changes a mailbox. Each message is re-checked on the server first;
    suspicious mail never moves. Exit 3 if some messages or accounts were refused or failed,
    4 if every account failed, 5 if a scan is running.
    """
    from .rescue import rescue  # only this command needs it
    from .status import assess_all
    from .store.db import scan_lock

    config = _config(ctx)
    if bool(names) == all_accounts:
        fail("name the accounts to rescue, or give --all")
    unknown = [n for n in names if n not in config.accounts_by_name]
    if unknown:
        fail(f"{config.path}: no account named {unknown[0]!r}")
    accounts = (
        list(config.accounts) if all_accounts else [config.accounts_by_name[n] for n in names]
    )
    if not dry_run and not yes and not sys.stdin.isatty():
        fail("rescue moves mail: without a terminal to confirm, give --yes (or --dry-run)")
    rules, repo = _rules_and_repo(config)
    with scan_lock(repo.engine, config.lock_timeout) as got:
        if not got:
            fail("a scan is running on this database; try again later", EXIT_LOCKED)
        if not dry_run and not yes:
            planned = rescue(config, rules, repo, accounts, to=to, dry_run=True)
            _print_rescue(planned, dry_run=True)
            if not any(r.count("would_move") for r in planned):
                sys.exit(_rescue_exit(planned))
            if not click.confirm("Move these messages?", err=True):
                click.echo("nothing moved")
                return
        results = rescue(config, rules, repo, accounts, to=to, dry_run=dry_run)
        _print_rescue(results, dry_run)
        if not dry_run:
            moved = {r.name for r in results if r.count("moved") or r.count("copied")}
            for a in assess_all(config, rules, repo):
                if a.account in moved:
                    label = rules.paths[a.decision.path].label
                    click.echo(f"  {a.institution or '(unknown)'}: {a.decision.state} → {label}")
    sys.exit(_rescue_exit(results))


def _print_rescue(results, dry_run: bool) -> None:
    for r in results:
        for o in r.outcomes:
            subject = f"  {o.subject}" if o.subject else ""
            stream = o.action == "refused"
            click.echo(f"{r.name}: {o.folder} uid {o.uid}: {o.detail}{subject}", err=stream)
        if r.error:
            click.echo(f"{r.name}: FAILED: {r.error}", err=True)
        elif not r.outcomes:
            click.echo(f"{r.name}: no G-MIS account mail in junk folders")
    counts = {a: sum(r.count(a) for r in results) for a in ("would_move", "moved", "copied")}
    refused = sum(r.count("refused") for r in results)
    if dry_run:
        click.echo(
            f"dry run: {counts['would_move']} would move, {refused} refused; nothing changed"
        )
    else:
        click.echo(f"rescue: {counts['moved']} moved, {counts['copied']} copied, {refused} refused")


def _rescue_exit(results) -> int:
    failed = sum(r.error is not None for r in results)
    if results and failed == len(results):
        return EXIT_FAILED
    if failed or any(r.count("refused") for r in results):
        return EXIT_PARTIAL
    return EXIT_OK
