"""The record of `rescue` moves, and where a moved message is now (tables rescues, locations).

Kept apart from repo.py because only the one command that changes a mailbox writes here. A
move is recorded in two steps around the IMAP writes: `start` before the first command
("started"), `finish` after the server confirmed where the message is ("moved" or "copied"),
in the same transaction as the message's new location. A run cut off between the two leaves a
started row, which the next run completes instead of adding another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import LocationRow, RescueRow
from .repo import Repo, now


@dataclass(frozen=True)
class Rescue:
    account: str
    sha256: str
    message_id: str | None
    who: str
    started_at: datetime
    finished_at: datetime | None
    from_folder: str
    from_uid: int
    to_folder: str
    to_uid: int | None
    method: str  # move | copy+expunge | copy
    status: str  # started | moved | copied


@dataclass(frozen=True)
class Target:
    """Where a message goes: the folder, its role and its UIDVALIDITY."""

    folder: str
    role: str
    uidvalidity: int


class RescueLog:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def start(
        self,
        account: str,
        *,
        sha256: str,
        message_id: str | None,
        folder: str,
        uidvalidity: int,
        uid: int,
        to_folder: str,
        method: str,
        who: str,
    ) -> int:
        """Record that a move begins; an unfinished record of the same move is reused."""
        with self.repo._writing() as s:
            acc = self.repo._account(s, account)
            row = s.scalar(_unfinished(acc.id, sha256, folder, uidvalidity, uid))
            if row is None:
                row = RescueRow(
                    account_id=acc.id,
                    message_pk=_message_pk(s, acc.id, folder, uid),
                    sha256=sha256,
                    message_id=message_id,
                    from_folder=folder,
                    from_uidvalidity=uidvalidity,
                    from_uid=uid,
                    started_at=now(),
                    status="started",
                )
                s.add(row)
            row.who, row.to_folder, row.method = who, to_folder, method
            s.flush()
            return row.id

    def unfinished(
        self, account: str, sha256: str, folder: str, uidvalidity: int, uid: int
    ) -> int | None:
        """The record of a move of this message that a cut-off run started, if any."""
        with Session(self.repo.engine) as s:
            acc = self.repo._account(s, account)
            row = s.scalar(_unfinished(acc.id, sha256, folder, uidvalidity, uid))
            return row.id if row is not None else None

    def finish(
        self,
        rescue_id: int,
        target: Target,
        to_uid: int,
        *,
        original_gone: bool,
        status: str,
    ) -> None:
        """Complete the record and place the message in its new folder (UID `to_uid`).

        With `original_gone` its junk location is marked removed in the same transaction,
        so the report sees the message in exactly one folder, never missing.
        """
        with self.repo._writing() as s:
            row = s.get(RescueRow, rescue_id)
            assert row is not None
            row.status, row.finished_at = status, now()
            row.to_folder, row.to_uidvalidity, row.to_uid = (
                target.folder,
                target.uidvalidity,
                to_uid,
            )
            if row.message_pk is None:
                return
            locations = {
                loc.folder: loc
                for loc in s.scalars(
                    select(LocationRow).where(LocationRow.message_pk == row.message_pk)
                )
            }
            dest = locations.get(target.folder)
            if dest is None:
                dest = LocationRow(
                    message_pk=row.message_pk, account_id=row.account_id, folder=target.folder
                )
                s.add(dest)
            dest.role, dest.uid, dest.locator = target.role, to_uid, f"uid:{to_uid}"
            dest.seen_at, dest.removed_at = now(), None
            source = locations.get(row.from_folder)
            if original_gone and source is not None and source.uid == row.from_uid:
                source.removed_at = now()

    def rescues(self, account: str) -> list[Rescue]:
        """Every recorded move of the account, oldest first."""
        with Session(self.repo.engine) as s:
            acc = self.repo._account(s, account, missing_ok=True)
            if acc is None:
                return []
            rows = s.scalars(
                select(RescueRow).where(RescueRow.account_id == acc.id).order_by(RescueRow.id)
            )
            return [
                Rescue(
                    account,
                    r.sha256,
                    r.message_id,
                    r.who,
                    r.started_at,
                    r.finished_at,
                    r.from_folder,
                    r.from_uid,
                    r.to_folder,
                    r.to_uid,
                    r.method,
                    r.status,
                )
                for r in rows
            ]


def _unfinished(account_id: int, sha256: str, folder: str, uidvalidity: int, uid: int):
    return select(RescueRow).where(
        RescueRow.account_id == account_id,
        RescueRow.sha256 == sha256,
        RescueRow.from_folder == folder,
        RescueRow.from_uidvalidity == uidvalidity,
        RescueRow.from_uid == uid,
        RescueRow.status == "started",
    )


def _message_pk(s: Session, account_id: int, folder: str, uid: int) -> int | None:
    return s.scalar(
        select(LocationRow.message_pk).where(
            LocationRow.account_id == account_id,
            LocationRow.folder == folder,
            LocationRow.uid == uid,
        )
    )
