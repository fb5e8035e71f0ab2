"""One scan run: for each account, source → parse → classify → verify → store.

Only this module knows the order of the stages. Accounts are scanned concurrently (bounded by
[scan] concurrency); one failing account is recorded with its reason and the others go on.
"""

from __future__ import annotations

import hashlib
import imaplib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from .classify import classify, is_candidate
from .config import Account, Config
from .decide import ACCOUNT_TYPES
from .forwards import Forward, claims_secretariat, find_forward
from .parse import UnparseableMessage, parse, parse_head
from .records import FORWARDED, UNPARSEABLE, ParsedMessage, RawMessage, Reason, ScannedMessage
from .rules import Rules
from .sources import Batch, Folder, FolderState, FolderUpdate, Source, SourceError
from .sources.local import LocalSource
from .verify import VerifyPolicy, verify

if TYPE_CHECKING:  # the store imports SQLAlchemy, which `classify` does not need
    from .store.repo import AccountInfo, Repo

log = logging.getLogger(__name__)


@dataclass
class AccountOutcome:
    name: str
    error: str | None = None
    fetched: int = 0  # messages read from the source
    stored: int = 0  # new message rows
    folders: list[tuple[str, str, int]] = field(default_factory=list)  # (name, role, fetched)
    quota_ratio: float | None = None
    #: Not scanned by this run (PostgreSQL, several scanners): "held" while another scanner
    #: had it locked, "done" when another one scanned it since this run began.
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ScanOutcome:
    run_id: int
    accounts: list[AccountOutcome]

    @property
    def status(self) -> str:
        failed = sum(not a.ok for a in self.accounts)
        if not failed:
            return "ok"
        return "failed" if failed == len(self.accounts) else "partial"


class Progress:
    """Callbacks for a terminal display; the default does nothing (the core never prints)."""

    def folder(self, account: str, folder: Folder) -> None: ...

    def fetched(self, account: str, folder: Folder, count: int, total: int | None) -> None: ...


SourceOpener = Callable[[Account, Config, Rules], Source]


def open_source(account: Account, config: Config, rules: Rules) -> Source:
    if account.local is not None:
        junk = rules.junk_names + account.junk_folders
        skip = rules.skip_names + rules.sent_names
        return LocalSource(account.local, junk, skip, config.batch_size)
    from .sources.imap import ImapSource  # imported here: disk-only runs need no IMAP code

    return ImapSource(account, config, rules)


def diagnose(
    account: Account, config: Config, rules: Rules, opener: SourceOpener = open_source
) -> dict:
    """Connect and look around without fetching: for `doctor`."""
    source = opener(account, config, rules)
    try:
        settings, local = account.imap, account.local
        if settings is not None:
            where = f"{settings.security}://{settings.host}:{settings.port} as {settings.username}"
        else:
            assert local is not None  # config.py gives every account IMAP or a local source
            where = f"{local.kind} {local.path}"
        return {
            "where": where,
            "folders": list(source.folders()),
            "quota": source.quota(),
            "capabilities": source.capabilities(),
        }
    finally:
        source.close()


def verify_policy(config: Config, rules: Rules) -> VerifyPolicy:
    return VerifyPolicy(
        sender=rules.sender,
        official_hosts=rules.official_hosts,
        authserv_ids=config.authserv_ids,
        check_dkim=config.dkim,
    )


def examine(raw: RawMessage, rules: Rules, policy: VerifyPolicy) -> ScannedMessage | None:
    """Parse, classify and verify one message; None when it is not G-MIS-looking mail.

    Never raises: a message that cannot be read becomes an `unparseable` record with the
    reason, so one bad message cannot stop a scan. Mail whose From and Subject already show
    that it is not G-MIS-looking is set aside on its header alone, its bodies never decoded
    (most of a local Maildir or mbox is such mail).
    """
    try:
        head = parse_head(raw.data)
        if head is not None and not is_candidate(head, rules, body=False):
            return None
    except Exception:  # whatever is wrong with it, parse() below says so
        pass
    scanned = partial(
        ScannedMessage,
        folder=raw.folder,
        folder_role=raw.folder_role,
        locator=raw.locator,
        uid=raw.uid,
        sha256=hashlib.sha256(raw.data).hexdigest(),
        size=len(raw.data),
    )
    try:
        parsed = parse(raw.data)
    except UnparseableMessage as exc:
        return scanned(type=UNPARSEABLE, parse_error=str(exc))
    except Exception as exc:  # a parser bug must cost one message, not the run
        return scanned(
            type=UNPARSEABLE,
            parse_error=f"internal error while parsing: {type(exc).__name__}: {exc}",
        )
    try:
        if not is_candidate(parsed, rules):
            return None
        forward = find_forward(parsed, raw.data, rules)
        if forward is not None:
            return _forwarded(scanned, parsed, forward, raw, rules, policy)
        if raw.folder_role == "sent":  # read for forwards only: the rest was not received
            return None
        if raw.folder_role == "archive" and not claims_secretariat(parsed, rules):
            return None  # also this mailbox's sent mail (Gmail): a reply is not a spoof
        classified = classify(parsed, rules)
        verdict = verify(parsed, raw.data, policy)
    except Exception as exc:  # a bug must cost one message, not the run
        return scanned(
            type=UNPARSEABLE,
            message_id=parsed.message_id,
            subject=parsed.subject,
            parse_error=f"internal error while classifying: {type(exc).__name__}: {exc}",
        )
    addresses = [addr for _, addr in parsed.from_addresses]
    return scanned(
        type=classified.type,
        message_id=parsed.message_id,
        subject=parsed.subject,
        from_address=", ".join(addresses) or None,
        date=parsed.date,
        rule=classified.rule,
        fields=classified.fields,
        genuine=verdict.genuine,
        reasons=verdict.reasons,
        warnings=verdict.warnings + _defect_warnings(parsed.defects),
    )


def _forwarded(
    scanned: Callable[..., ScannedMessage],
    parsed: ParsedMessage,
    forward: Forward,
    raw: RawMessage,
    rules: Rules,
    policy: VerifyPolicy,
) -> ScannedMessage | None:
    """A forwarded copy: typed and read as the mail it forwards, never genuine.

    Its reason names the forwarder, the forwarded subject and the login ID, so staff can ask
    that colleague for the original. In Sent only a forward of an account mail is kept.
    """
    classified = classify(forward.inner, rules)
    if raw.folder_role == "sent" and classified.type not in ACCOUNT_TYPES:
        return None
    login = classified.fields.get("login_id")
    en = f"Forwarded copy ({forward.how}) by {forward.forwarder}: {forward.inner.subject!r}"
    ja = f"転送されたコピー（{forward.forwarder}）: 「{forward.inner.subject}」"
    if login:
        en, ja = f"{en}, login ID {login}", f"{ja}、ログインID {login}"
    reason = Reason(
        FORWARDED,
        f"{en}. Proof the mail arrived, not the secretariat's mail: ask for the original.",
        f"{ja}。メールが届いた証拠ですが事務局からの正規のメールではありません。元のメールを確認してください。",
    )
    links = verify(forward.inner, raw.data, policy).reasons  # a forwarded phish is still one
    fields = {
        **classified.fields,
        "forwarded_by": forward.forwarder,
        "forwarded_subject": forward.inner.subject,
    }
    return scanned(
        type=classified.type,
        message_id=parsed.message_id,
        subject=parsed.subject,
        from_address=", ".join(addr for _, addr in parsed.from_addresses) or None,
        date=parsed.date,
        rule=classified.rule,
        fields=fields,
        genuine=False,
        reasons=(reason, *(r for r in links if r.code.startswith("link_"))),
        warnings=_defect_warnings(parsed.defects),
    )


def _defect_warnings(defects: tuple[str, ...]) -> tuple[Reason, ...]:
    if not defects:
        return ()
    text = ", ".join(defects)
    return (Reason("mime_defects", f"MIME defects: {text}", f"MIME構造の不備: {text}"),)


@dataclass(frozen=True)
class ScanRun:
    """What the accounts of one scan run share."""

    config: Config
    rules: Rules
    repo: Repo
    policy: VerifyPolicy
    progress: Progress
    opener: SourceOpener
    run_id: int


def scan(
    config: Config,
    rules: Rules,
    repo: Repo,
    *,
    accounts: list[Account] | None = None,
    progress: Progress | None = None,
    opener: SourceOpener = open_source,
) -> ScanOutcome:
    """Scan the accounts (all by default); record the run; never raise for one account."""
    from .store.db import account_lock
    from .store.repo import now

    chosen = list(config.accounts if accounts is None else accounts)
    started = now()
    run = ScanRun(
        config=config,
        rules=rules,
        repo=repo,
        policy=verify_policy(config, rules),
        progress=progress or Progress(),
        opener=opener,
        run_id=repo.start_run(),
    )
    workers = max(1, min(config.concurrency, len(chosen)))

    def claimed(account: Account) -> AccountOutcome:
        """Scan one account under its lock, unless another scanner has it or just did."""
        with account_lock(repo.engine, account.name, config.lock_timeout) as got:
            if not got:
                return AccountOutcome(account.name, skipped="held")
            info = repo.sync_account(account)
            last = info.last_scan_at
            if not config.lock_timeout and last is not None and last >= started:
                return AccountOutcome(account.name, skipped="done")  # by another, this round
            return _scan_account(run, account, info)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(claimed, chosen))
    result = ScanOutcome(run.run_id, outcomes)
    repo.finish_run(
        run.run_id,
        result.status,
        sum(a.fetched for a in outcomes),
        sum(a.stored for a in outcomes),
        [f"{a.name}: {a.error}" for a in outcomes if a.error],
    )
    return result


def _scan_account(run: ScanRun, account: Account, info: AccountInfo) -> AccountOutcome:
    """Scan one account (`info`: its row as the run found it); never raise."""
    outcome = AccountOutcome(account.name)
    repo = run.repo
    source = None
    try:
        source = run.opener(account, run.config, run.rules)
        scanning = AccountScan(run, account.name, source, outcome)
        states = repo.folder_states(account.name)
        work: list[tuple[Folder, FolderState]] = []
        for folder in source.folders(known=states):
            run.progress.folder(account.name, folder)
            state = states.get(folder.name, FolderState())
            outcome.folders.append((folder.name, folder.role, 0))
            if state.unchanged(folder.status):  # the server says so: nothing to ask it
                continue
            scanning.folders[folder.name] = FolderScan(folder, state)
            if folder.status is None:  # INBOX before the list, or a folder STATUS failed on
                scanning.take_all((folder, batch) for batch in source.fetch(folder, state))
            else:
                work.append((folder, state))
        fresh = _quota_fresh(info, run.config)
        scanning.take_all(source.fetch_many(work, quota=bool(work) or not fresh))
        scanning.check_removed()
        # Every folder was read: the mail of those gone from the list is gone from there.
        scanned = {name for name, _, _ in outcome.folders}
        pruned = repo.prune_folders(account.name, scanned) if set(states) - scanned else 0
        changed = pruned > 0 or scanning.changed
        outcome.folders = [(n, r, scanning.fetched(n)) for n, r, _ in outcome.folders]
        if changed or not fresh:
            quota = source.quota()
            repo.set_quota(account.name, quota)
        else:
            quota = info.quota
        outcome.quota_ratio = quota.ratio if quota else None
    except Exception as exc:  # unreachable host, refused login, dropped connection, bad path
        outcome.error = describe_error(exc, account, run.config.timeout)
        log.info("%s: failed: %s", account.name, outcome.error)
    finally:
        if source is not None:
            try:
                source.close()
            except Exception:  # the connection may already be gone
                pass
    repo.finish_account(account.name, outcome.error)
    return outcome


def _quota_fresh(info: AccountInfo, config: Config) -> bool:
    """Whether the stored mailbox usage is recent enough to keep while no folder changed.

    Usage only moves when messages come or go, so a reading younger than [scan]
    quota_max_age_minutes is kept: on Dovecot GETQUOTAROOT opens every folder's index
    (~60 ms at 100,000 messages), most of a rescan that finds nothing new.
    """
    if info.quota_checked_at is None:
        return False
    from .store.repo import now

    age = (now() - info.quota_checked_at).total_seconds()
    return 0 <= age < config.quota_max_age


@dataclass
class FolderScan:
    """One folder's part of an account scan: its stored state and what the batches told."""

    folder: Folder
    state: FolderState
    fetched: int = 0
    changed: bool = field(init=False)  # new UIDs, a new UIDVALIDITY, or known messages gone
    seen: set[str] = field(default_factory=set)  # locators fetched now: there
    end: Batch | None = None  # the last batch taken

    def __post_init__(self) -> None:
        self.changed = self.state.uidvalidity is None


@dataclass
class AccountScan:
    """The batches of one account's folders → parsed, classified, verified and stored.

    Each batch with G-MIS-looking mail is stored with its folder state in one transaction, so
    an interrupted run resumes where it stopped. The states of batches with nothing to store
    (most folders of a scan) wait and are written together, before the next stored batch and
    at the end: one transaction for a hundred folders instead of a hundred.
    """

    run: ScanRun
    account: str
    source: Source
    outcome: AccountOutcome
    folders: dict[str, FolderScan] = field(default_factory=dict)
    _unsaved: list[FolderUpdate] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(f.changed for f in self.folders.values())

    def fetched(self, name: str) -> int:
        return self.folders[name].fetched if name in self.folders else 0

    def take_all(self, batches: Iterable[tuple[Folder, Batch]]) -> None:
        for folder, batch in batches:
            self.take(folder, batch)
        self._save_states()

    def take(self, folder: Folder, batch: Batch) -> None:
        run, one = self.run, self.folders[folder.name]
        state = one.state
        one.changed |= batch.uidvalidity != state.uidvalidity or batch.last_uid != state.last_uid
        scanned = [s for s in (examine(m, run.rules, run.policy) for m in batch.messages) if s]
        update = FolderUpdate(
            folder.name, folder.role, batch.uidvalidity, batch.last_uid, batch.exists
        )
        if scanned:
            self._save_states()
            self.outcome.stored += run.repo.store_batch(self.account, update, scanned, run.run_id)
        else:
            self._unsaved.append(update)
        one.seen |= {m.locator for m in scanned}
        one.end = batch
        one.fetched += len(batch.messages)
        self.outcome.fetched += len(batch.messages)
        run.progress.fetched(self.account, folder, len(batch.messages), batch.total)
        log.info(
            "%s: %s (%s): %d fetched, %d G-MIS-looking, state uid %s",
            self.account,
            folder.name,
            folder.role,
            len(batch.messages),
            len(scanned),
            batch.last_uid,
        )

    def _save_states(self) -> None:
        if self._unsaved:
            self.run.repo.store_states(self.account, self._unsaved)
            self._unsaved = []

    def check_removed(self) -> None:
        """Ask which known messages are still there, of the folders whose message count says
        some may have left (FolderState.may_have_lost); mark the others removed."""
        for one in self.folders.values():
            end, state = one.end, one.state
            if end is None or end.uidvalidity != state.uidvalidity:
                continue  # after a new UIDVALIDITY the old locations were marked removed
            known = set(state.known) - one.seen
            if known and state.may_have_lost(end.uidvalidity, end.last_uid, end.exists):
                present = self.source.present(one.folder, known) | one.seen
                pruned = self.run.repo.prune_locations(self.account, one.folder.name, present)
                one.changed |= pruned > 0


def describe_error(
    exc: BaseException, account: Account | None = None, timeout: float | None = None
) -> str:
    """One line for the report and the cron mail; never a password (sources never put it in)."""
    if isinstance(exc, SourceError):
        return " ".join(str(exc).split())
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    imap = account.imap if account is not None else None
    server = f"{imap.host}:{imap.port}" if imap else "the server"
    if isinstance(exc, TimeoutError) or "timed out" in text:
        limit = f" within {timeout:g} s ([scan] timeout)" if timeout else ""
        return f"no answer from {server}{limit}"
    if isinstance(exc, imaplib.IMAP4.abort | ConnectionError | EOFError):
        return f"connection to {server} lost: {text or type(exc).__name__}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
