"""Assessments → report documents. `build` makes the JSON contract of SPEC §7; the formats
(json, csv, html, table) render that one document, so they can never disagree.

Nothing here prints; the password-setting token never reaches a report (it is not stored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records import ScannedMessage
from ..rules import Rules
from .view import alerts, all_texts

if TYPE_CHECKING:
    from ..assess import Assessment

FORMATS = ("table", "json", "csv", "html")
__all__ = ["FORMATS", "build", "only_action"]


def build(
    assessments: list[Assessment],
    rules: Rules,
    last_run: dict | None,
    rules_dir: Path | None = None,
) -> dict[str, Any]:
    """The report as one JSON-ready object with a list `institutions`.

    Beside the contract's keys each institution has `alerts` (its warnings with a code and a
    text per language) and `needs_action` (a remedy applies, or phishing is suspected).
    """
    texts = all_texts(rules_dir)
    institutions = []
    for a in assessments:
        item = _institution(a, rules)
        item["alerts"] = alerts(item, texts)
        danger = any(x["severity"] == "danger" for x in item["alerts"])
        item["needs_action"] = item["path"] != "none" or danger
        institutions.append(item)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "last_scan": last_run,
        "institutions": institutions,
        "helpdesk": {"name": rules.helpdesk.name, "phone": rules.helpdesk.phone},
    }


def only_action(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with only the institutions that need something done."""
    return {**doc, "institutions": [i for i in doc["institutions"] if i["needs_action"]]}


def _institution(a: Assessment, rules: Rules) -> dict[str, Any]:
    path = rules.paths[a.decision.path]
    contact = {"name": a.contact.name, "phone": a.contact.phone or None, "area": a.contact.area}
    return {
        "account": a.account,
        "institution": a.institution,
        "login_id": a.login_id,
        "application_number": a.application_number,
        "address": a.address,
        "state": a.decision.state,
        "state_label": rules.states.get(a.decision.state, a.decision.state),
        "path": a.decision.path,
        "label": path.label,
        "title": path.title,
        "instructions": list(path.instructions) + (list(rules.rescued) if a.rescued else []),
        "row": a.decision.row,
        "reasons": list(a.decision.reasons) + list(a.rescued),
        "staff_answer": a.staff_answer,
        "mailbox_usage": _usage(a),
        "evidence": [_evidence(m) for m in a.evidence],
        "warnings": list(a.warnings),
        "contact": contact,
    }


def _usage(a: Assessment) -> dict[str, Any] | None:
    if a.quota is None:
        return None
    return {
        "used_kib": a.quota.used_kib,
        "limit_kib": a.quota.limit_kib,
        "ratio": round(a.quota.ratio, 4) if a.quota.ratio is not None else None,
    }


def _evidence(m: ScannedMessage) -> dict[str, Any]:
    return {
        "type": m.type,
        "folder": m.folder,
        "folder_role": m.folder_role,
        "present": m.present,
        "genuine": bool(m.genuine),
        "reasons": [r.as_dict() for r in m.reasons],
        "warnings": [r.as_dict() for r in m.warnings],
        "subject": m.subject,
        "from": m.from_address,
        "date": m.date.isoformat() if m.date else None,
        "message_id": m.message_id,
        "fields": {k: v for k, v in m.fields.items() if not k.endswith("_token_sha256")},
    }
