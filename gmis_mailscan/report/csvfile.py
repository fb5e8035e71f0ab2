"""The report as CSV for Excel: one row per institution, UTF-8 with BOM and Japanese headers by
default, so a double click opens it right in Japanese Excel.

Cells that Excel would run as a formula (starting with = + - @, a tab or a carriage return)
get a leading apostrophe (OWASP "CSV injection"): mail text is written by whoever sent it.
"""

from __future__ import annotations

import csv
import io

from .texts import load_texts
from .view import View

COLUMNS = (
    "account",
    "institution",
    "login_id",
    "application_number",
    "label",
    "title",
    "state_label",
    "contact_name",
    "contact_phone",
    "evidence",
    "warnings",
    "state",
    "path",
)
ENCODINGS = ("utf-8-sig", "utf-8", "cp932")
HEADERS = ("ja", "en", "keys")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A cell Excel shows as text, never evaluates."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def to_csv(view: View, headers: str = "ja", encoding: str = "utf-8-sig") -> bytes:
    """CSV bytes; characters CP932 lacks become '?' (the JSON report keeps them all)."""
    t = view.texts if headers in ("keys", view.lang) else load_texts(headers)
    sep = "／" if view.lang == "ja" else " / "
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([t(f"csv.{key}") if headers != "keys" else key for key in COLUMNS])
    for c in view.cards:
        evidence = sep.join(
            f"{e.folder} ({e.role}) {e.date} {e.type}: {e.verdict}".replace("  ", " ")
            for e in c.evidence
        )
        row = {
            "account": c.account,
            "institution": c.institution,
            "login_id": c.login_id,
            "application_number": c.application_number,
            "label": c.label,
            "title": c.title,
            "state_label": c.state_label,
            "contact_name": c.contact_name,
            "contact_phone": c.contact_phone,
            "evidence": evidence,
            "warnings": sep.join(a.text for a in c.alerts),
            "state": c.state,
            "path": c.path,
        }
        writer.writerow([neutralise(row[key]) for key in COLUMNS])
    return out.getvalue().encode(encoding, errors="replace")
