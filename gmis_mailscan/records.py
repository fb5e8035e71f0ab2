"""Plain, frozen records passed from one pipeline stage to the next.

Only these cross module boundaries, so each stage can be tested with data built by hand:
source → RawMessage → parse → ParsedMessage → classify → Classified, verify → Verdict,
store → Evidence → decide → Decision → report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

#: "archive" (\\All) and "sent" are read by the scan; the report shows both as "other" (SPEC §7).
FolderRole = Literal["inbox", "junk", "other", "archive", "sent"]

#: Message types known to the decision table; rules may add more, which count as "other".
PASSWORD_REGISTRATION = "password_registration"
USER_CONFIRMATION = "user_confirmation"
ACCOUNT_NOTICE = "account_notice"
OTHER_GMIS = "other_gmis"
UNPARSEABLE = "unparseable"
#: Reason code of a forwarded copy (forwards.py): never evidence, reported for review.
FORWARDED = "forwarded_copy"


@dataclass(frozen=True)
class RawMessage:
    """One message as a source delivered it, before any parsing."""

    folder: str
    folder_role: FolderRole
    locator: str  # "uid:<n>" for IMAP, a file path (or "path#n" inside an mbox) on disk
    data: bytes
    uid: int | None = None


@dataclass(frozen=True)
class Link:
    """A URL found in a message; for HTML anchors also the text a reader sees."""

    url: str
    source: Literal["text", "href", "src"]
    shown_text: str | None = None


@dataclass(frozen=True)
class ParsedMessage:
    """Decoded headers and body of a message, Japanese text already in str."""

    message_id: str | None
    subject: str
    from_addresses: tuple[tuple[str, str], ...]  # (display name, addr-spec)
    reply_to: tuple[str, ...]
    return_path: str | None
    date: datetime | None
    text: str  # text/plain body, or the HTML body rendered as text when there is none
    html: str | None
    links: tuple[Link, ...]
    authentication_results: tuple[str, ...]  # raw header values, top (newest) first
    defects: tuple[str, ...] = ()
    bidi_urls: tuple[str, ...] = ()  # URLs with a bidirectional control in or beside them
    # The HTML body as text when `text` is the text/plain one: fields the plain part lacks
    # (a placeholder "HTMLメールを表示できません") are looked for here.
    html_text: str = ""
    # The RFC 822 bytes the message was parsed from when they are not the raw message: the
    # original inside a spam filter's wrapper, the mail an Outlook .msg file holds.
    mime_bytes: bytes | None = None
    spam_wrapped: bool = False  # a spam filter's report around the original was removed


@dataclass(frozen=True)
class Classified:
    """What the rules made of a message: its type and the fields they extracted."""

    type: str
    rule: str | None  # id of the subject rule that matched, None for other_gmis
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    """A machine-readable reason code with texts for people."""

    code: str
    en: str
    ja: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "en": self.en, "ja": self.ja}


@dataclass(frozen=True)
class Verdict:
    """Whether a message may count as evidence (genuine) and why not."""

    genuine: bool
    reasons: tuple[Reason, ...] = ()  # why it is suspicious (empty when genuine)
    warnings: tuple[Reason, ...] = ()  # worth a look, but not enough to distrust it


@dataclass(frozen=True)
class EvidenceItem:
    """One stored G-MIS(-looking) message as the decision table sees it."""

    type: str
    folder: str
    folder_role: FolderRole
    genuine: bool
    reasons: tuple[Reason, ...] = ()
    date: datetime | None = None
    message_id: str | None = None


StaffAnswer = Literal["login_done", "url_unreachable", "cannot_login"]


@dataclass(frozen=True)
class Evidence:
    """Everything known about one institution of one account."""

    items: tuple[EvidenceItem, ...] = ()
    quota_ratio: float | None = None  # used / limit, None when the server has no QUOTA
    quota_full_ratio: float = 0.9
    staff_answer: StaffAnswer | None = None


@dataclass(frozen=True)
class Decision:
    """One row of the decision table (SPEC §3) applied to some Evidence."""

    row: int
    state: str
    path: str
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScannedMessage:
    """A message after parse → classify → verify, as stored; read back once per folder."""

    folder: str
    folder_role: FolderRole
    locator: str
    uid: int | None
    sha256: str
    size: int
    type: str
    message_id: str | None = None
    subject: str | None = None
    from_address: str | None = None
    date: datetime | None = None
    rule: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    genuine: bool | None = None  # None when unparseable
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
    parse_error: str | None = None
    present: bool = True  # False: no scanned folder holds it any more (deleted or moved away)

    @property
    def dedup_key(self) -> str:
        """Message-ID when there is one (a moved message keeps it), else the content hash."""
        if not self.message_id:
            return f"sha256:{self.sha256}"
        if len(self.message_id) > 400:  # the column holds 500 characters; a header may not
            digest = hashlib.sha256(self.message_id.encode("utf-8", "surrogatepass")).hexdigest()
            return f"mid-sha256:{digest}"
        return f"mid:{self.message_id}"
