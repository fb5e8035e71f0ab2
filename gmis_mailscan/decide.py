"""Evidence → Decision: the Ministry's flowchart (ユーザ登録状況確認) as the table of SPEC §3.

Pure: no I/O, no rules files. The first row that matches wins; row 9 (only suspicious mail) is
checked before rows 6–8. Suspicious mail never counts as evidence; it only adds a warning.
Row 10 (forwarded copies of an account mail, no genuine one) comes before rows 6–9: the mail
reached someone, so it is `review`, never "register again"; a forward adds no warning.
"""

from __future__ import annotations

from .records import (
    ACCOUNT_NOTICE,
    FORWARDED,
    PASSWORD_REGISTRATION,
    USER_CONFIRMATION,
    Decision,
    Evidence,
    EvidenceItem,
)

#: Types that show an account exists or is being issued; anything else is just listed.
ACCOUNT_TYPES = (PASSWORD_REGISTRATION, USER_CONFIRMATION, ACCOUNT_NOTICE)


def decide(evidence: Evidence) -> Decision:
    """Apply the decision table to one institution's evidence."""
    genuine = [i for i in evidence.items if i.genuine]
    forwards = [i for i in evidence.items if _forwarded(i) and i.type in ACCOUNT_TYPES]
    suspicious = [i for i in evidence.items if not i.genuine and not _forwarded(i)]
    warnings = _warnings(suspicious, evidence)
    confirmations = _of(genuine, USER_CONFIRMATION)
    passwords = _of(genuine, PASSWORD_REGISTRATION)
    notices = _of(genuine, ACCOUNT_NOTICE)
    full = evidence.quota_ratio is not None and evidence.quota_ratio >= evidence.quota_full_ratio

    def row(n: int, state: str, path: str, *reasons: str) -> Decision:
        return Decision(n, state, path, reasons, warnings)

    if confirmations:
        return row(1, "existing_account", "none", _found(confirmations))
    if passwords:
        found = _found(passwords)
        if evidence.staff_answer == "login_done":
            return row(2, "login_completed", "none", found, "staff recorded: login completed")
        if evidence.staff_answer == "url_unreachable":
            return row(3, "url_unreachable", "method3", found, "staff recorded: URL unreachable")
        if all(i.folder_role == "junk" for i in passwords):
            return row(4, "password_mail_in_junk", "method2", found, "only in junk folders")
        reasons = [found]
        if evidence.staff_answer == "cannot_login":
            reasons.append("staff recorded: URL opened but cannot log in")
        return row(5, "password_mail_received", "method4", *reasons)
    if forwards:  # the mail reached someone: not "no mail", but not evidence either
        return row(10, "forwarded_copy", "review", *_forwards(forwards))
    if suspicious and not notices:
        return row(9, "suspicious_only", "review", "only suspicious G-MIS-looking mail")
    if notices and not full:
        return row(6, "notice_only", "contact", _found(notices), "no password-registration mail")
    quota = _quota(evidence)
    if full:
        return row(7, "mailbox_full", "method1", "no genuine account mail", quota)
    return row(8, "no_mail", "register", "no genuine account mail", quota)


def _forwarded(item: EvidenceItem) -> bool:
    return not item.genuine and any(r.code == FORWARDED for r in item.reasons)


def _forwards(items: list[EvidenceItem]) -> list[str]:
    """One line per forwarded copy: where, and what its reason says (forwarder, login ID)."""
    return [
        f"forwarded copy of {i.type} in {i.folder}: {r.en}"
        for i in items
        for r in i.reasons
        if r.code == FORWARDED
    ]


def _of(items: list[EvidenceItem], type_id: str) -> list[EvidenceItem]:
    return [i for i in items if i.type == type_id]


def _found(items: list[EvidenceItem]) -> str:
    folders = sorted({f"{i.folder} ({i.folder_role})" for i in items})
    return f"genuine {items[0].type} in {', '.join(folders)}"


def _quota(evidence: Evidence) -> str:
    if evidence.quota_ratio is None:
        return "mailbox usage unknown (no QUOTA)"
    return f"mailbox usage {evidence.quota_ratio:.0%} (full at {evidence.quota_full_ratio:.0%})"


def _warnings(suspicious: list[EvidenceItem], evidence: Evidence) -> tuple[str, ...]:
    warnings = [
        f"suspicious {i.type} in {i.folder}: {', '.join(r.code for r in i.reasons) or 'unverified'}"
        for i in suspicious
    ]
    if evidence.quota_ratio is not None and evidence.quota_ratio >= evidence.quota_full_ratio:
        warnings.append(f"mailbox is {evidence.quota_ratio:.0%} full: new mail may be refused")
    return tuple(warnings)
