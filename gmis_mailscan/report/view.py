"""The report document → what people read: texts in one language, times in one zone, the
urgent first. HTML, CSV and the terminal all render this one view, so they never disagree.

Everything that comes from mail is cleaned here of control characters and escape sequences
(a terminal would obey them); escaping for HTML and neutralising for CSV happen in the writers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from .texts import LANGS, SEVERITIES, Texts, load_texts

_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: str | None) -> str:
    """Mail text fit for any output: no escape sequences, no control or bidi characters."""
    if not text:
        return ""
    text = _CONTROLS.sub("", _ESCAPES.sub("", text))
    return " ".join(text.replace("\t", " ").replace("\n", " ").split(" ")).strip()


@dataclass(frozen=True)
class Alert:
    code: str
    severity: str  # danger | warning | info
    text: str


@dataclass(frozen=True)
class EvidenceLine:
    folder: str
    role: str  # the folder role's name in this language
    type: str  # the message type's name in this language
    date: str  # local time, or "" when the mail had no date
    genuine: bool
    verdict: str  # 正規のメール, or the reasons it is suspected
    removed: bool


@dataclass(frozen=True)
class Step:
    question: str
    answer: str


@dataclass(frozen=True)
class Card:
    """One institution as people see it."""

    number: int
    account: str
    institution: str
    login_id: str
    application_number: str
    state: str
    path: str
    label: str
    title: str
    state_label: str
    instructions: tuple[str, ...]
    contact_name: str
    contact_phone: str
    contact_area: str
    alerts: tuple[Alert, ...]
    evidence: tuple[EvidenceLine, ...]
    steps: tuple[Step, ...]
    remedy: str  # the end box's words
    mailbox_usage: str
    suspicious: bool
    needs_action: bool


@dataclass(frozen=True)
class View:
    lang: str
    texts: Texts
    generated: str
    last_scan: str
    cards: tuple[Card, ...]
    count_action: int
    count_suspicious: int
    count_done: int
    helpdesk_name: str
    helpdesk_phone: str


def local_time(value: str | datetime | None, texts: Texts, tz: tzinfo | None) -> str:
    """`value` (ISO 8601; no offset means UTC, as stored) in `tz` (None: this machine's zone)."""
    if not value:
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(tz)
    zone = when.tzname() or when.strftime("%z")
    return texts(
        "time",
        year=when.year,
        month=when.month,
        day=when.day,
        hour=when.hour,
        minute=when.minute,
        zone=zone,
    )


def alerts(item: dict[str, Any], texts: dict[str, Texts]) -> list[dict[str, str]]:
    """The item's warnings with a code and a text per language (the JSON `alerts`)."""
    reasons = {r["code"]: r for e in item["evidence"] for r in e["reasons"] + e["warnings"]}
    mail_warnings = {
        f"{e['folder']}: {w['en']}": (e["folder"], w)
        for e in item["evidence"]
        for w in e["warnings"]
    }
    return [_alert(w, mail_warnings, reasons, texts) for w in item["warnings"]]


def _alert(
    warning: str,
    mail_warnings: dict[str, tuple[str, dict[str, str]]],
    reasons: dict[str, dict[str, str]],
    texts: dict[str, Texts],
) -> dict[str, str]:
    if warning in mail_warnings:  # a genuine mail's own warning, e.g. a failed SPF check
        folder, w = mail_warnings[warning]
        said = {k: t("mail_warning", folder=clean(folder), text=w[k]) for k, t in texts.items()}
        return {"code": w["code"], "severity": "warning", **said}
    for rule in texts[LANGS[0]].alerts:
        match = rule.pattern.match(warning)
        if match:
            groups = match.groupdict()
            said = {k: rule.texts[k].format(**_fill(groups, t, reasons)) for k, t in texts.items()}
            return {"code": rule.code, "severity": rule.severity, **said}
    # A warning no [[alerts]] pattern knows: shown as written.
    return {"code": "other", "severity": "warning", **{k: clean(warning) for k in texts}}


def all_texts(rules_dir: Path | None = None) -> dict[str, Texts]:
    return {lang: load_texts(lang, rules_dir) for lang in LANGS}


def _fill(groups: dict[str, str], texts: Texts, reasons: dict[str, dict]) -> dict[str, str]:
    lang = texts.lang
    out = {k: clean(v) for k, v in groups.items()}
    if "type" in groups:
        out["type"] = texts.group("types").get(groups["type"], clean(groups["type"]))
    if "codes" in groups:
        codes = [c.strip() for c in groups["codes"].split(",") if c.strip()]
        out["codes"] = ("、" if lang == "ja" else "; ").join(
            _phrase(reasons[c][lang]) if c in reasons else clean(c) for c in codes
        )
    return out


def _phrase(text: str) -> str:
    """A reason's text without its full stop, to be listed with others."""
    return clean(text).rstrip("。．.")


def build_view(
    doc: dict[str, Any], texts: Texts, tz: tzinfo | None = None, only_action: bool = False
) -> View:
    """The document in `texts`' language and `tz`; urgent institutions first."""
    cards = [_card(n, item, texts, tz) for n, item in enumerate(doc["institutions"], 1)]
    cards.sort(key=lambda c: (_group(c), c.number))
    shown = (c for c in cards if c.needs_action or not only_action)
    cards = [replace(c, number=n) for n, c in enumerate(shown, 1)]
    last = doc.get("last_scan") or {}
    helpdesk = doc["helpdesk"]
    return View(
        lang=texts.lang,
        texts=texts,
        generated=local_time(doc["generated_at"], texts, tz),
        last_scan=local_time(last.get("finished_at") or last.get("started_at"), texts, tz)
        or texts("never_scanned"),
        cards=tuple(cards),
        count_suspicious=sum(1 for c in cards if _group(c) == 0),
        count_action=sum(1 for c in cards if _group(c) == 1),
        count_done=sum(1 for c in cards if _group(c) == 2),
        helpdesk_name=helpdesk["name"],
        helpdesk_phone=helpdesk["phone"],
    )


def _group(card: Card) -> int:
    """0: suspected phishing, 1: a remedy to carry out, 2: nothing to do (the summary's counts)."""
    return 0 if card.suspicious else 1 if card.needs_action else 2


def _card(number: int, item: dict[str, Any], texts: Texts, tz: tzinfo | None) -> Card:
    path_text = _path_text(item, texts)
    card_alerts = tuple(
        Alert(a["code"], a["severity"], clean(a[texts.lang]))
        for a in sorted(item["alerts"], key=lambda a: SEVERITIES.index(a["severity"]))
    )
    suspicious = item["path"] == "review" or any(a.severity == "danger" for a in card_alerts)
    contact = item["contact"]
    return Card(
        number=number,
        account=clean(item["account"]),
        institution=clean(item["institution"]) or texts("unknown_institution"),
        login_id=clean(item["login_id"]),
        application_number=clean(item["application_number"]),
        state=item["state"],
        path=item["path"],
        label=path_text["label"],
        title=path_text["title"],
        state_label=path_text["state"],
        instructions=tuple(path_text["instructions"]),
        contact_name=contact["name"],
        contact_phone=contact["phone"] or "",
        contact_area=contact.get("area") or "",
        alerts=card_alerts,
        evidence=tuple(_evidence(e, texts, tz) for e in item["evidence"]),
        steps=_steps(item["state"], texts),
        remedy=_remedy(item, texts, path_text["label"]),
        mailbox_usage=_usage(item.get("mailbox_usage"), texts),
        suspicious=suspicious,
        needs_action=item["needs_action"],
    )


def _path_text(item: dict[str, Any], texts: Texts) -> dict[str, Any]:
    """Japanese comes with the document (flowchart.toml); other languages from messages.toml."""
    if texts.lang == "ja":
        return {
            "label": item["label"],
            "title": item["title"],
            "instructions": item["instructions"],
            "state": item["state_label"],
        }
    path = texts.group("paths").get(item["path"], {})
    return {
        "label": path.get("label", item["label"]),
        "title": path.get("title", item["title"]),
        "instructions": path.get("instructions", item["instructions"]),
        "state": texts.group("states").get(item["state"], item["state_label"]),
    }


def _evidence(e: dict[str, Any], texts: Texts, tz: tzinfo | None) -> EvidenceLine:
    sep = "、" if texts.lang == "ja" else "; "
    reasons = sep.join(_phrase(r[texts.lang]) for r in e["reasons"])
    verdict = texts("genuine") if e["genuine"] else f"{texts('suspicious')}: {reasons}".rstrip(": ")
    return EvidenceLine(
        folder=clean(e["folder"]),
        role=texts.group("roles").get(e["folder_role"], e["folder_role"]),
        type=texts.group("types").get(e["type"], clean(e["type"])),
        date=local_time(e.get("date"), texts, tz),
        genuine=bool(e["genuine"]),
        verdict=verdict,
        removed=not e.get("present", True),
    )


def _words(lines: tuple[str, ...], texts: Texts, sep: str = "") -> str:
    """A box's lines as one text: Japanese splits a sentence anywhere, English at spaces."""
    return (sep if texts.lang == "ja" else " ").join(lines)


def _steps(state: str, texts: Texts) -> tuple[Step, ...]:
    diagram = texts.diagram
    ids = diagram.paths.get(state, ())
    return tuple(
        Step(
            _words(diagram.nodes[a].lines[texts.lang], texts),
            diagram.edges[(a, b)].labels[texts.lang],
        )
        for a, b in zip(ids, ids[1:], strict=False)
    )


def _remedy(item: dict[str, Any], texts: Texts, label: str) -> str:
    ids = texts.diagram.paths.get(item["state"])
    return _words(texts.diagram.nodes[ids[-1]].lines[texts.lang], texts, " ") if ids else label


def _usage(usage: dict[str, Any] | None, texts: Texts) -> str:
    if not usage or usage.get("ratio") is None:
        return texts("unknown")
    return f"{usage['ratio']:.0%} ({usage['used_kib']:,} / {usage['limit_kib']:,} KiB)"
