"""Stored messages of one account → one Assessment per institution named in its mail.

Pure: the caller reads the database, this groups the evidence, runs the decision table and
finds the contact. Genuine account mail decides which institutions exist; suspicious mail is
never trusted for that (its institution name could be made up) and is attached as a warning
to the institution it names, or to every institution when it names none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeGuard, get_args

from .contacts import find_contact
from .decide import ACCOUNT_TYPES, decide
from .normalize import compact
from .records import (
    UNPARSEABLE,
    USER_CONFIRMATION,
    Decision,
    Evidence,
    EvidenceItem,
    ScannedMessage,
    StaffAnswer,
)
from .rules import Contact, Rules
from .sources import Quota


@dataclass(frozen=True)
class AccountFacts:
    """What the database knows of an account besides its messages."""

    name: str
    institution: str | None
    address: str | None
    quota: Quota | None
    last_error: str | None
    answers: tuple[
        tuple[str | None, str], ...
    ]  # (institution or None for all, answer), oldest first
    scanned: bool = True
    rescued: tuple[tuple[str, str, str], ...] = ()  # (sha256, from, to) of `rescue` moves


@dataclass(frozen=True)
class Assessment:
    account: str
    key: str  # grouping key: the compacted institution name, or "" when unknown
    institution: str | None
    login_id: str | None
    application_number: str | None
    address: str | None
    decision: Decision
    evidence: tuple[ScannedMessage, ...]
    warnings: tuple[str, ...]
    contact: Contact
    quota: Quota | None
    staff_answer: str | None
    rescued: tuple[str, ...] = ()  # the `rescue` moves of its password mail still to act on


def institution_of(msg: ScannedMessage) -> str | None:
    """The institution a message names: 報告機関名 when given, else the greeting."""
    return msg.fields.get("reporting_institution") or msg.fields.get("institution") or None


def assess_account(
    facts: AccountFacts, messages: list[ScannedMessage], rules: Rules, full_ratio: float
) -> list[Assessment]:
    """One Assessment per institution (at least one per account), in a stable order."""
    messages = counted_locations(messages)
    unparseable = [m for m in messages if m.type == UNPARSEABLE]
    parsed = [m for m in messages if m.type != UNPARSEABLE]
    groups = _groups(parsed, facts)
    account_warnings = [f"unparseable message in {m.folder}: {m.parse_error}" for m in unparseable]
    if facts.last_error:
        account_warnings.insert(0, f"last scan of this account failed: {facts.last_error}")
    if not facts.scanned:
        account_warnings.insert(0, "this account has not been scanned yet")
    return [
        _assess(facts, key, name, members, account_warnings, rules, full_ratio)
        for key, (name, members) in groups.items()
    ]


def counted_locations(messages: list[ScannedMessage]) -> list[ScannedMessage]:
    """Each message at the folders it counts by, with the roles the report shows.

    An archive folder (\\All: Gmail's すべてのメール) holds a copy of nearly every message, so a
    message counts by its other folders; found only there (archived) it is non-junk mail
    ("other"). Sent (read for forwards only) is shown as "other" too. The store reads a message
    back once per folder, with the same bytes hash (one stored row, one hash).
    """
    elsewhere = {m.sha256 for m in messages if m.folder_role != "archive"}
    out = []
    for m in messages:
        if m.folder_role == "archive" and m.sha256 in elsewhere:
            continue
        if m.folder_role in ("archive", "sent"):
            m = replace(m, folder_role="other")
        out.append(m)
    return out


def _groups(
    messages: list[ScannedMessage], facts: AccountFacts
) -> dict[str, tuple[str | None, list[ScannedMessage]]]:
    """Group by institution: genuine account mail founds groups; the rest joins them."""
    groups: dict[str, tuple[str | None, list[ScannedMessage]]] = {}
    for m in messages:
        name = institution_of(m)
        if m.genuine and m.type in ACCOUNT_TYPES and name:
            groups.setdefault(compact(name), (name, []))[1].append(m)
    if not groups:
        name = facts.institution
        groups[compact(name) if name else ""] = (name, [])
    founders = {id(m) for _, members in groups.values() for m in members}
    for m in messages:
        if id(m) in founders:
            continue
        name = institution_of(m)
        key = compact(name) if name else None
        if key in groups:  # genuine or not, it concerns the institution it names
            groups[key][1].append(m)
        else:  # it names none of them: it concerns the mailbox as a whole
            for _, members in groups.values():
                members.append(m)
    return groups


def _assess(
    facts: AccountFacts,
    key: str,
    name: str | None,
    members: list[ScannedMessage],
    account_warnings: list[str],
    rules: Rules,
    full_ratio: float,
) -> Assessment:
    answer = _staff_answer(facts, key)
    evidence = Evidence(
        items=tuple(_item(m) for m in members),
        quota_ratio=facts.quota.ratio if facts.quota else None,
        quota_full_ratio=full_ratio,
        staff_answer=answer,
    )
    decision = decide(evidence)
    genuine = [m for m in members if m.genuine]
    address = _latest(genuine, "address", USER_CONFIRMATION) or facts.address
    warnings = list(account_warnings) + list(decision.warnings)
    for m in genuine:
        warnings.extend(f"{m.folder}: {w.en}" for w in m.warnings)
        if not m.present:
            warnings.append(
                f"{m.type} mail is no longer in the mailbox (last seen in {m.folder}): "
                "deleted or moved to a folder that is not scanned"
            )
    return Assessment(
        account=facts.name,
        key=key,
        institution=name,
        login_id=_latest(genuine, "login_id"),
        application_number=_latest(genuine, "application_number"),
        address=address,
        decision=decision,
        evidence=tuple(members),
        warnings=tuple(dict.fromkeys(warnings)),
        contact=find_contact(address, rules),
        quota=facts.quota,
        staff_answer=answer,
        rescued=_rescued(facts, genuine) if decision.path == "method4" else (),
    )


def _rescued(facts: AccountFacts, genuine: list[ScannedMessage]) -> tuple[str, ...]:
    """The moves out of junk that brought this institution from 対応方法2 to 対応方法4."""
    here = {m.sha256 for m in genuine if m.present and m.folder_role != "junk"}
    return tuple(
        f"moved from {src} to {dst} by gmis-mailscan rescue"
        for sha256, src, dst in facts.rescued
        if sha256 in here
    )


def _item(m: ScannedMessage) -> EvidenceItem:
    return EvidenceItem(
        type=m.type,
        folder=m.folder,
        folder_role=m.folder_role,
        genuine=bool(m.genuine),
        reasons=m.reasons,
        date=m.date,
        message_id=m.message_id,
    )


def _staff_answer(facts: AccountFacts, key: str) -> StaffAnswer | None:
    """The newest answer for this institution, or for the whole account."""
    answer = None
    for institution, value in facts.answers:
        if (institution is None or compact(institution) == key) and _is_answer(value):
            answer = value
    return answer


def _is_answer(value: str) -> TypeGuard[StaffAnswer]:
    return value in get_args(StaffAnswer)


def _latest(messages: list[ScannedMessage], field: str, type_id: str | None = None) -> str | None:
    """The field from the newest message that has it (a re-sent mail supersedes)."""
    value = None
    for m in messages:  # stored order is by date
        if (type_id is None or m.type == type_id) and m.fields.get(field):
            value = m.fields[field]
    return value
