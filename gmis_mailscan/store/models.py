"""SQLAlchemy tables. The schema is created and changed only by Alembic (migrations/)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    """A mailbox; its last known quota and the outcome of its last scan."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    institution: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    quota_used_kib: Mapped[int | None] = mapped_column(BigInteger)
    quota_limit_kib: Mapped[int | None] = mapped_column(BigInteger)
    quota_messages: Mapped[int | None] = mapped_column(BigInteger)  # MESSAGE (migration 0004)
    quota_message_limit: Mapped[int | None] = mapped_column(BigInteger)
    quota_checked_at: Mapped[datetime | None]
    last_scan_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class FolderRow(Base):
    """Per-folder IMAP state, so a rescan fetches only new messages."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("account_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(10))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    messages: Mapped[int | None] = mapped_column(BigInteger)  # at last_uid (migration 0004)
    updated_at: Mapped[datetime | None]


class MessageRow(Base):
    """One G-MIS(-looking) message, once per account however many folders hold it.

    `dedup_key` is the Message-ID, or the SHA-256 of the bytes when there is none, so a message
    moved between folders or rescanned after a UIDVALIDITY change is not stored twice. The
    password URL's token is never stored: `fields` holds it masked, plus a hash of it.
    """

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("account_id", "dedup_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    dedup_key: Mapped[str] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    subject: Mapped[str | None] = mapped_column(Text)
    from_address: Mapped[str | None] = mapped_column(Text)
    date: Mapped[datetime | None]
    type: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    genuine: Mapped[bool | None]
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    parse_error: Mapped[str | None] = mapped_column(Text)
    first_run_id: Mapped[int | None] = mapped_column(ForeignKey("scan_runs.id"))
    created_at: Mapped[datetime]


class LocationRow(Base):
    """Where a message is (or was, when removed_at is set): folder, role, UID or file."""

    __tablename__ = "locations"
    __table_args__ = (
        UniqueConstraint("message_pk", "folder"),
        Index("ix_locations_account_folder", "account_id", "folder"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(10))
    uid: Mapped[int | None] = mapped_column(BigInteger)
    locator: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]  # no longer in the folder (migration 0003)


class StaffAnswerRow(Base):
    """What staff told the tool (SPEC §3 rows 2–3), dated; withdrawn rather than deleted."""

    __tablename__ = "staff_answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    institution: Mapped[str | None] = mapped_column(Text)  # None: every institution
    answer: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class InstitutionRow(Base):
    """Each institution's state as last decided, so a database user can see it without us."""

    __tablename__ = "institutions"
    __table_args__ = (UniqueConstraint("account_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    login_id: Mapped[str | None] = mapped_column(Text)
    application_number: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(32))
    row: Mapped[int | None]  # the decision-table row that matched (migration 0002)
    reasons: Mapped[list] = mapped_column(JSON, default=list)  # why (migration 0002)
    updated_at: Mapped[datetime]
    # What the last assessment saw, to tell what is new (migration 0004; NULL: not known).
    warnings: Mapped[list | None] = mapped_column(JSON)
    suspicious: Mapped[list | None] = mapped_column(JSON)  # sha256 of suspicious mail


class ScanRunRow(Base):
    """One run of `scan`: when, how it ended, what it fetched, which accounts failed."""

    __tablename__ = "scan_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # running|ok|partial|failed|interrupted
    fetched: Mapped[int] = mapped_column(default=0)
    stored: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list] = mapped_column(JSON, default=list)


class HistoryRow(Base):
    """One change of an institution's assessed state, with the run or command that caused it."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_account_at", "account_id", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    institution_key: Mapped[str] = mapped_column(Text)
    institution: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]
    scan_run_id: Mapped[int | None] = mapped_column(ForeignKey("scan_runs.id"))
    cause: Mapped[str] = mapped_column(String(16))  # scan | mark | report
    from_state: Mapped[str | None] = mapped_column(String(64))
    to_state: Mapped[str | None] = mapped_column(String(64))
    from_path: Mapped[str | None] = mapped_column(String(32))
    to_path: Mapped[str | None] = mapped_column(String(32))
    login_id: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[list] = mapped_column(JSON, default=list)  # [{code, en, ja}]
    new_warnings: Mapped[list] = mapped_column(JSON, default=list)


class NotifyStateRow(Base):
    """Up to which history row a summary mail was sent (one row, id 1)."""

    __tablename__ = "notify_state"
    id: Mapped[int] = mapped_column(primary_key=True)
    last_history_id: Mapped[int]
    sent_at: Mapped[datetime | None]


class RescueRow(Base):
    """One message `rescue` moved (or is moving) out of a junk folder (migration 0007).

    Written with status "started" before the first IMAP write and completed afterwards
    ("moved"; "copied" when the server has no UIDPLUS and the original stays), so a run
    cut off in the middle is seen and finished by the next one.
    """

    __tablename__ = "rescues"
    __table_args__ = (Index("ix_rescues_account", "account_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    sha256: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(Text)
    who: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    from_folder: Mapped[str] = mapped_column(Text)
    from_uidvalidity: Mapped[int] = mapped_column(BigInteger)
    from_uid: Mapped[int] = mapped_column(BigInteger)
    to_folder: Mapped[str] = mapped_column(Text)
    to_uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    to_uid: Mapped[int | None] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(16))  # move | copy+expunge | copy
    status: Mapped[str] = mapped_column(String(16))  # started | moved | copied
