"""The only code that reads or writes the tables. Plain records in, plain records out.

Each write that belongs together is one transaction: a folder's batch of messages with the
folder's new UID state, so a run cut off at any point leaves either all of a batch or none.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Engine, delete, func, select, update
from sqlalchemy.orm import Session

from ..config import Account
from ..records import Reason, ScannedMessage
from ..sources import FolderState, FolderUpdate, Quota
from .models import (
    AccountRow,
    FolderRow,
    HistoryRow,
    InstitutionRow,
    LocationRow,
    MessageRow,
    NotifyStateRow,
    ScanRunRow,
    StaffAnswerRow,
)

if TYPE_CHECKING:
    from ..history import Change


def now() -> datetime:
    """Naive UTC, the same on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class AccountInfo:
    name: str
    institution: str | None
    address: str | None
    quota: Quota | None
    last_scan_at: datetime | None
    last_error: str | None
    quota_checked_at: datetime | None = None


@dataclass(frozen=True)
class StaffAnswer:
    id: int
    account: str
    institution: str | None
    answer: str
    note: str | None
    recorded_at: datetime
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class InstitutionState:
    key: str
    name: str | None
    login_id: str | None
    application_number: str | None
    address: str | None
    state: str
    path: str
    row: int | None = None
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] | None = None  # None: not recorded (before migration 0004)
    suspicious: tuple[str, ...] | None = None  # sha256 of the suspicious mail it saw


ChangesOf = Callable[[dict[str, InstitutionState]], "list[Change]"]


class Repo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite takes one writer at a time, and a writer that finds it taken sleeps in
        # SQLite's busy handler (1, 2, 5, 10 … 100 ms) however soon it is free again; the
        # scan's account threads queue on this lock instead. PostgreSQL needs none.
        sqlite = engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock() if sqlite else contextlib.nullcontext()
        self._account_ids: dict[str, int] = {}  # see _account_id

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Session]:
        """A session in one write transaction, committed on leaving."""
        with self._write_lock, Session(self.engine) as s, s.begin():
            yield s

    # accounts -----------------------------------------------------------------------------

    def sync_account(self, account: Account) -> AccountInfo:
        """Create the account row, or refresh what the config says of it; return the row."""
        with self._writing() as s:
            row = self._account(s, account.name, create=True)
            row.institution = account.institution
            row.address = account.address
            self._account_ids[account.name] = row.id
            return _account_info(row)

    def account(self, name: str) -> AccountInfo | None:
        with Session(self.engine) as s:
            row = self._account(s, name, missing_ok=True)
            return _account_info(row) if row is not None else None

    def accounts(self) -> list[AccountInfo]:
        with Session(self.engine) as s:
            rows = s.scalars(select(AccountRow).order_by(AccountRow.name)).all()
            return [_account_info(r) for r in rows]

    def set_quota(self, name: str, quota: Quota | None) -> None:
        with self._writing() as s:
            row = self._account(s, name)
            row.quota_used_kib = quota.used_kib if quota else None
            row.quota_limit_kib = quota.limit_kib if quota else None
            row.quota_messages = quota.messages if quota else None
            row.quota_message_limit = quota.message_limit if quota else None
            row.quota_checked_at = now()

    def finish_account(self, name: str, error: str | None) -> None:
        with self._writing() as s:
            s.execute(
                update(AccountRow)
                .where(AccountRow.id == self._account_id(s, name))
                .values(last_scan_at=now(), last_error=error)
            )

    # folders and messages -----------------------------------------------------------------

    def folder_state(self, account: str, folder: str) -> FolderState:
        return self.folder_states(account).get(folder, FolderState())

    def folder_states(self, account: str) -> dict[str, FolderState]:
        """Every folder's state of an account in two queries: read once per scan."""
        with Session(self.engine) as s:
            acc_id = self._account_id(s, account)
            known: dict[str, set[str]] = {}
            for folder, locator in s.execute(
                select(LocationRow.folder, LocationRow.locator).where(
                    LocationRow.account_id == acc_id, LocationRow.removed_at.is_(None)
                )
            ):
                known.setdefault(folder, set()).add(locator)
            states = {
                row.name: FolderState(
                    row.uidvalidity,
                    row.last_uid,
                    frozenset(known.pop(row.name, ())),
                    row.messages,
                )
                for row in s.execute(
                    select(
                        FolderRow.name,
                        FolderRow.uidvalidity,
                        FolderRow.last_uid,
                        FolderRow.messages,
                    ).where(FolderRow.account_id == acc_id)
                )
            }
            for folder, locators in known.items():  # placed there, its folder never stored
                states[folder] = FolderState(known=frozenset(locators))
            return states

    def store_batch(
        self,
        account: str,
        update: FolderUpdate,
        messages: Iterable[ScannedMessage],
        run_id: int | None,
    ) -> int:
        """Store one batch and the folder's new state atomically; return rows added."""
        with self._writing() as s:
            acc_id = self._account_id(s, account)
            self._save_folders(s, acc_id, [update])
            return self._store_messages(s, acc_id, list(messages), run_id)

    def store_states(self, account: str, updates: list[FolderUpdate]) -> None:
        """Store the new state of many folders (batches with nothing to keep) at once."""
        with self._writing() as s:
            self._save_folders(s, self._account_id(s, account), updates)

    def _save_folders(self, s: Session, acc_id: int, updates: list[FolderUpdate]) -> None:
        """Each folder's state as `updates` tell, the later of one folder's winning.

        `exists` is the folder's message count at `last_uid` when known (see FolderState).
        A UIDVALIDITY different from the stored one means the server renumbered the folder:
        its old locations are marked removed in the same transaction (the rescan that follows
        finds the messages again under their new UIDs); the messages stay.
        """
        rows = {
            row.name: row
            for row in s.scalars(
                select(FolderRow).where(
                    FolderRow.account_id == acc_id,
                    FolderRow.name.in_({u.name for u in updates}),
                )
            )
        }
        renumbered = []
        for u in updates:
            frow = rows.get(u.name)
            if frow is None:
                frow = rows[u.name] = FolderRow(account_id=acc_id, name=u.name, last_uid=0)
                s.add(frow)
            elif frow.uidvalidity is not None and u.uidvalidity != frow.uidvalidity:
                renumbered.append(u.name)
                frow.last_uid = 0
            frow.role = u.role
            frow.uidvalidity = u.uidvalidity
            frow.last_uid = max(frow.last_uid, u.last_uid)
            frow.messages = u.exists if frow.last_uid == u.last_uid else None
            frow.updated_at = now()
        if renumbered:
            s.execute(
                update(LocationRow)
                .where(
                    LocationRow.account_id == acc_id,
                    LocationRow.folder.in_(renumbered),
                    LocationRow.removed_at.is_(None),
                )
                .values(removed_at=now())
            )

    def _store_messages(
        self, s: Session, account_id: int, messages: list[ScannedMessage], run_id
    ) -> int:
        """Add the batch's new messages and place every message in its folder.

        A batch is read and written in a few statements, not a few per message: the rows its
        dedup keys may name, one INSERT of the new rows, the locations of the known ones.
        """
        keys = set()
        for msg in messages:
            key = _clean(msg.dedup_key)
            keys |= {key, _spoof_key(key, msg)}
        rows = {
            row.dedup_key: row
            for row in s.scalars(
                select(MessageRow).where(
                    MessageRow.account_id == account_id, MessageRow.dedup_key.in_(keys)
                )
            )
        }
        known = set(rows.values())
        placed: list[tuple[MessageRow, ScannedMessage]] = []
        added = 0
        for msg in messages:
            dedup_key = _clean(msg.dedup_key)
            row = rows.get(dedup_key)
            if row is not None and row.genuine != msg.genuine and row.sha256 != msg.sha256:
                # Same Message-ID, different bytes and verdict: a spoof reusing a real
                # Message-ID (or the real mail after a spoof) is another message, never
                # merged into it.
                dedup_key = _spoof_key(dedup_key, msg)
                row = rows.get(dedup_key)
            if row is None:
                row = rows[dedup_key] = _message_row(account_id, dedup_key, msg, run_id)
                s.add(row)
                added += 1
            placed.append((row, msg))
        s.flush()  # the new rows get their ids
        locations = {}
        if known:  # a row made just now has no location yet: no need to ask
            locations = {
                (loc.message_pk, loc.folder): loc
                for loc in s.scalars(
                    select(LocationRow).where(
                        LocationRow.message_pk.in_({row.id for row in known}),
                        LocationRow.folder.in_({msg.folder for msg in messages}),
                    )
                )
            }
        for row, msg in placed:
            loc = locations.get((row.id, msg.folder))
            if loc is None:
                loc = LocationRow(message_pk=row.id, account_id=account_id, folder=msg.folder)
                locations[(row.id, msg.folder)] = loc
                s.add(loc)
            loc.role, loc.uid, loc.locator, loc.seen_at = (
                msg.folder_role,
                msg.uid,
                msg.locator,
                now(),
            )
            loc.removed_at = None
        return added

    def prune_locations(self, account: str, folder: str, present: set[str]) -> int:
        """Mark removed the messages a folder no longer holds (moved or deleted).

        Removed, not forgotten: a password mail staff deleted after logging in was still
        received, and the decision must not fall back to "apply for a new account".
        """
        with self._writing() as s:
            acc_id = self._account_id(s, account)
            gone = [
                loc
                for loc in s.scalars(
                    select(LocationRow).where(
                        LocationRow.account_id == acc_id,
                        LocationRow.folder == folder,
                        LocationRow.removed_at.is_(None),
                    )
                )
                if loc.locator not in present
            ]
            for loc in gone:
                loc.removed_at = now()
            return len(gone)

    def prune_folders(self, account: str, scanned: set[str]) -> int:
        """Mark removed the mail of every folder this scan did not read; forget their state.

        A folder deleted or renamed on the server (or by a namespace change, INBOX.Junk →
        Junk) is not listed any more: its mail is no longer where it was last seen. A message
        that moved with a renamed folder is found there again, by Message-ID and content,
        and keeps that one location; one found nowhere counts where it was last seen, with a
        warning. A folder of the same name created later is scanned from its first UID.
        """
        with self._writing() as s:
            acc_id = self._account_id(s, account)
            gone = s.execute(
                update(LocationRow)
                .where(
                    LocationRow.account_id == acc_id,
                    LocationRow.folder.not_in(scanned),
                    LocationRow.removed_at.is_(None),
                )
                .values(removed_at=now())
            )
            s.execute(
                delete(FolderRow).where(
                    FolderRow.account_id == acc_id, FolderRow.name.not_in(scanned)
                )
            )
            return cast(CursorResult[Any], gone).rowcount or 0

    def messages(self, account: str) -> list[ScannedMessage]:
        """Every stored message of an account, once per folder that holds it now; a message
        no folder holds any more once, where it was last seen, with present=False."""
        with Session(self.engine) as s:
            acc = self._account(s, account, missing_ok=True)
            if acc is None:
                return []
            rows = s.execute(  # plain rows, not ORM objects: this runs on every scan and report
                select(*_MESSAGE_COLUMNS, *_LOCATION_COLUMNS)
                .join(LocationRow, LocationRow.message_pk == MessageRow.id)
                .where(MessageRow.account_id == acc.id)
                .order_by(
                    MessageRow.date.asc().nulls_first(),
                    MessageRow.id,
                    LocationRow.removed_at.desc().nulls_first(),
                    LocationRow.folder,
                )
            ).all()
            out: list[ScannedMessage] = []
            present: set[int] = set()
            seen: set[int] = set()
            for row in rows:
                if row.removed_at is None:
                    present.add(row.id)
                    out.append(_scanned(row))
                elif row.id not in present and row.id not in seen:
                    out.append(_scanned(row, present=False))
                seen.add(row.id)
            return out

    def message_count(self) -> int:
        with Session(self.engine) as s:
            return s.scalar(select(func.count(MessageRow.id))) or 0

    # staff answers ------------------------------------------------------------------------

    def add_answer(
        self, account: str, answer: str, institution: str | None, note: str | None
    ) -> StaffAnswer:
        """Record an answer; it replaces (withdraws) earlier answers for the same target."""
        with self._writing() as s:
            acc = self._account(s, account, create=True)
            self._withdraw(s, acc.id, institution)
            row = StaffAnswerRow(
                account_id=acc.id,
                institution=institution,
                answer=answer,
                note=note,
                recorded_at=now(),
            )
            s.add(row)
            s.flush()
            return _answer(row, account)

    def withdraw_answers(self, account: str, institution: str | None) -> int:
        with self._writing() as s:
            acc = self._account(s, account, create=True)
            return self._withdraw(s, acc.id, institution)

    def _withdraw(self, s: Session, account_id: int, institution: str | None) -> int:
        result = s.execute(  # an UPDATE: the cursor's result, which counts its rows
            update(StaffAnswerRow)
            .where(
                StaffAnswerRow.account_id == account_id,
                StaffAnswerRow.institution.is_(None)
                if institution is None
                else StaffAnswerRow.institution == institution,
                StaffAnswerRow.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=now())
        )
        return cast(CursorResult[Any], result).rowcount or 0

    def answers(self, account: str, include_withdrawn: bool = False) -> list[StaffAnswer]:
        with Session(self.engine) as s:
            acc = self._account(s, account, missing_ok=True)
            if acc is None:
                return []
            query = select(StaffAnswerRow).where(StaffAnswerRow.account_id == acc.id)
            if not include_withdrawn:
                query = query.where(StaffAnswerRow.withdrawn_at.is_(None))
            rows = s.scalars(query.order_by(StaffAnswerRow.recorded_at, StaffAnswerRow.id))
            return [_answer(r, account) for r in rows]

    # institutions -------------------------------------------------------------------------

    def save_institutions(
        self, account: str, states: list[InstitutionState], changes_of: ChangesOf | None = None
    ) -> list[Change]:
        """Replace the account's decided institution states with `states`.

        `changes_of` gets the states stored until now and returns what changed; those changes
        are stored in the same transaction, which first takes the account's row lock, so two
        processes assessing at once cannot both record one change.
        """
        with self._writing() as s:
            acc = self._account(s, account, create=True)
            s.execute(update(AccountRow).where(AccountRow.id == acc.id).values(name=acc.name))
            old = {
                r.key: _institution_state(r)
                for r in s.scalars(
                    select(InstitutionRow).where(InstitutionRow.account_id == acc.id)
                )
            }
            s.execute(delete(InstitutionRow).where(InstitutionRow.account_id == acc.id))
            for st in states:
                s.add(
                    InstitutionRow(
                        account_id=acc.id,
                        key=_clean(st.key),
                        name=_clean(st.name),
                        login_id=_clean(st.login_id),
                        application_number=_clean(st.application_number),
                        address=_clean(st.address),
                        state=st.state,
                        path=st.path,
                        row=st.row,
                        reasons=list(st.reasons),
                        warnings=_clean(list(st.warnings)) if st.warnings is not None else None,
                        suspicious=list(st.suspicious) if st.suspicious is not None else None,
                        updated_at=now(),
                    )
                )
            changes = changes_of(old) if changes_of else []
            stored = []
            for c in changes:
                row = HistoryRow(
                    account_id=acc.id,
                    institution_key=_clean(c.key),
                    institution=_clean(c.institution),
                    at=now(),
                    scan_run_id=c.scan_run,
                    cause=c.cause,
                    from_state=c.from_state,
                    to_state=c.to_state,
                    from_path=c.from_path,
                    to_path=c.to_path,
                    login_id=_clean(c.login_id),
                    changes=_clean([r.as_dict() for r in c.changes]),
                    new_warnings=_clean(list(c.new_warnings)),
                )
                s.add(row)
                s.flush()
                stored.append(replace(c, id=row.id, at=row.at))
            return stored

    def institutions(self, account: str) -> list[InstitutionState]:
        with Session(self.engine) as s:
            acc = self._account(s, account, missing_ok=True)
            if acc is None:
                return []
            rows = s.scalars(
                select(InstitutionRow)
                .where(InstitutionRow.account_id == acc.id)
                .order_by(InstitutionRow.key)
            )
            return [_institution_state(r) for r in rows]

    # history and notifications ------------------------------------------------------------

    def history(
        self,
        account: str | None = None,
        since: datetime | None = None,
        after_id: int | None = None,
        scan_run: int | None = None,
    ) -> list[Change]:
        """Stored changes, oldest first: of one account, since a time (naive UTC), after a
        history id, or of one scan run."""
        from ..history import Change

        with Session(self.engine) as s:
            query = select(HistoryRow, AccountRow.name).join(
                AccountRow, AccountRow.id == HistoryRow.account_id
            )
            if account is not None:
                query = query.where(AccountRow.name == account)
            if since is not None:
                query = query.where(HistoryRow.at >= since)
            if after_id is not None:
                query = query.where(HistoryRow.id > after_id)
            if scan_run is not None:
                query = query.where(HistoryRow.scan_run_id == scan_run)
            return [
                Change(
                    account=name,
                    key=r.institution_key,
                    institution=r.institution,
                    from_state=r.from_state,
                    to_state=r.to_state,
                    from_path=r.from_path,
                    to_path=r.to_path,
                    login_id=r.login_id,
                    changes=_reasons(r.changes),
                    new_warnings=tuple(r.new_warnings or ()),
                    cause=r.cause,
                    scan_run=r.scan_run_id,
                    id=r.id,
                    at=r.at,
                )
                for r, name in s.execute(query.order_by(HistoryRow.id))
            ]

    def last_history_id(self) -> int:
        with Session(self.engine) as s:
            return s.scalar(select(func.max(HistoryRow.id))) or 0

    def notified_up_to(self) -> int | None:
        """The last history id a summary mail covered; None before the first one."""
        with Session(self.engine) as s:
            row = s.get(NotifyStateRow, 1)
            return row.last_history_id if row is not None else None

    def set_notified(self, history_id: int, sent: bool) -> None:
        """Move the watermark on (never back: a slower run cannot resend what a faster sent)."""
        with self._writing() as s:
            row = s.get(NotifyStateRow, 1)
            if row is None:
                row = NotifyStateRow(id=1, last_history_id=history_id)
                s.add(row)
            row.last_history_id = max(row.last_history_id, history_id)
            if sent:
                row.sent_at = now()

    # scan runs ----------------------------------------------------------------------------

    def start_run(self) -> int:
        """Record a new run. Called under the scan lock, so a run still marked running was
        killed: it is marked interrupted."""
        with self._writing() as s:
            s.execute(
                update(ScanRunRow)
                .where(ScanRunRow.status == "running")
                .values(status="interrupted")
            )
            row = ScanRunRow(started_at=now(), status="running", fetched=0, stored=0, errors=[])
            s.add(row)
            s.flush()
            return row.id

    def finish_run(
        self, run_id: int, status: str, fetched: int, stored: int, errors: list[str]
    ) -> None:
        with self._writing() as s:
            row = s.get_one(ScanRunRow, run_id)
            row.finished_at = now()
            row.status, row.fetched, row.stored, row.errors = status, fetched, stored, errors

    def last_run(self) -> dict | None:
        with Session(self.engine) as s:
            row = s.scalar(select(ScanRunRow).order_by(ScanRunRow.id.desc()).limit(1))
            if row is None:
                return None
            return {
                "id": row.id,
                "started_at": row.started_at.isoformat(),
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                "status": row.status,
                "fetched": row.fetched,
                "stored": row.stored,
                "errors": list(row.errors or []),
            }

    # helpers ------------------------------------------------------------------------------

    def _account_id(self, s: Session, name: str) -> int:
        """The account row's id, asked once per Repo: a scan stores many batches per account."""
        if name not in self._account_ids:
            self._account_ids[name] = self._account(s, name).id
        return self._account_ids[name]

    @staticmethod
    def _account(s: Session, name: str, create: bool = False, missing_ok: bool = False):
        row = s.scalar(select(AccountRow).where(AccountRow.name == name))
        if row is None and create:
            row = AccountRow(name=name)
            s.add(row)
            s.flush()
        if row is None and not missing_ok:
            raise KeyError(f"unknown account {name!r}")
        return row


def _spoof_key(dedup_key: str, msg: ScannedMessage) -> str:
    return _clean(f"{dedup_key}#sha256:{msg.sha256}")


def _message_row(account_id: int, dedup_key: str, msg: ScannedMessage, run_id) -> MessageRow:
    return MessageRow(
        account_id=account_id,
        dedup_key=dedup_key,
        message_id=_clean(msg.message_id),
        sha256=msg.sha256,
        size=msg.size,
        subject=_clean(msg.subject),
        from_address=_clean(msg.from_address),
        date=_naive_utc(msg.date),
        type=msg.type,
        rule=msg.rule,
        fields=_clean(dict(msg.fields)),
        genuine=msg.genuine,
        reasons=_clean([r.as_dict() for r in msg.reasons]),
        warnings=_clean([r.as_dict() for r in msg.warnings]),
        parse_error=_clean(msg.parse_error),
        first_run_id=run_id,
        created_at=now(),
    )


def _clean(value):
    """PostgreSQL text cannot hold NUL; one hostile header must not fail a batch every run."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _reasons(items: list[dict] | None) -> tuple[Reason, ...]:
    return tuple(Reason(r["code"], r.get("en", ""), r.get("ja", "")) for r in items or [])


_MESSAGE_COLUMNS = [
    getattr(MessageRow, name)
    for name in (
        "id", "sha256", "size", "type", "message_id", "subject", "from_address", "date", "rule",
        "fields", "genuine", "reasons", "warnings", "parse_error",
    )
]  # fmt: skip
_LOCATION_COLUMNS = [
    getattr(LocationRow, name) for name in ("folder", "role", "uid", "locator", "removed_at")
]


def _scanned(row, present: bool = True) -> ScannedMessage:
    """A stored message at one location: a row of _MESSAGE_COLUMNS + _LOCATION_COLUMNS."""
    return ScannedMessage(
        folder=row.folder,
        folder_role=row.role,
        locator=row.locator,
        uid=row.uid,
        sha256=row.sha256,
        size=row.size,
        type=row.type,
        message_id=row.message_id,
        subject=row.subject,
        from_address=row.from_address,
        date=row.date,
        rule=row.rule,
        fields=dict(row.fields or {}),
        genuine=row.genuine,
        reasons=_reasons(row.reasons),
        warnings=_reasons(row.warnings),
        parse_error=row.parse_error,
        present=present,
    )


def _institution_state(r: InstitutionRow) -> InstitutionState:
    return InstitutionState(
        r.key,
        r.name,
        r.login_id,
        r.application_number,
        r.address,
        r.state,
        r.path,
        r.row,
        tuple(r.reasons or ()),
        tuple(r.warnings) if r.warnings is not None else None,
        tuple(r.suspicious) if r.suspicious is not None else None,
    )


def _account_info(r: AccountRow) -> AccountInfo:
    storage = (r.quota_used_kib, r.quota_limit_kib)
    count = (r.quota_messages, r.quota_message_limit)
    if None in storage:
        storage = (None, None)
    if None in count:
        count = (None, None)
    quota = Quota(*storage, *count) if storage[0] is not None or count[0] is not None else None
    return AccountInfo(
        r.name, r.institution, r.address, quota, r.last_scan_at, r.last_error, r.quota_checked_at
    )


def _answer(r: StaffAnswerRow, account: str) -> StaffAnswer:
    return StaffAnswer(
        r.id, account, r.institution, r.answer, r.note, r.recorded_at, r.withdrawn_at
    )
