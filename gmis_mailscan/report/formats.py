"""Render the report document (see report.build) as JSON, CSV, HTML or a rich table."""

from __future__ import annotations

import csv
import io
import json
from html import escape
from typing import Any

from rich.console import RenderableType
from rich.markup import escape as markup_escape
from rich.table import Table

CSV_COLUMNS = (
    "account",
    "institution",
    "login_id",
    "application_number",
    "state",
    "path",
    "label",
    "contact_name",
    "contact_phone",
    "evidence",
    "warnings",
)


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2)


def _evidence_summary(item: dict[str, Any]) -> str:
    parts = []
    for e in item["evidence"]:
        mark = (
            ""
            if e["genuine"]
            else " (suspicious: " + ",".join(r["code"] for r in e["reasons"]) + ")"
        )
        parts.append(f"{e['type']}@{e['folder']}[{e['folder_role']}]{mark}")
    return "; ".join(parts)


def _row(item: dict[str, Any]) -> dict[str, str]:
    return {
        "account": item["account"],
        "institution": item["institution"] or "",
        "login_id": item["login_id"] or "",
        "application_number": item["application_number"] or "",
        "state": item["state"],
        "path": item["path"],
        "label": item["label"],
        "contact_name": item["contact"]["name"],
        "contact_phone": item["contact"]["phone"] or "",
        "evidence": _evidence_summary(item),
        "warnings": " | ".join(item["warnings"]),
    }


def to_csv(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in doc["institutions"]:
        writer.writerow(_row(item))
    return out.getvalue()


def to_html(doc: dict[str, Any]) -> str:
    rows = []
    for item in doc["institutions"]:
        cells = _row(item)
        steps = "".join(f"<li>{escape(s)}</li>" for s in item["instructions"])
        rows.append(
            "<tr>"
            + "".join(f"<td>{escape(cells[c])}</td>" for c in CSV_COLUMNS[:6])
            + f"<td><strong>{escape(cells['label'])}</strong><ol>{steps}</ol></td>"
            + f"<td>{escape(cells['contact_name'])}<br>{escape(cells['contact_phone'])}</td>"
            + f"<td>{escape(cells['evidence'])}</td><td>{escape(cells['warnings'])}</td>"
            + "</tr>"
        )
    head = "".join(
        f"<th>{escape(h)}</th>"
        for h in CSV_COLUMNS[:6] + ("対応", "連絡先", "evidence", "warnings")
    )
    return (
        '<!DOCTYPE html>\n<html lang="ja"><head><meta charset="utf-8">'
        "<title>G-MIS アカウントメール確認</title></head><body>"
        f"<h1>G-MIS アカウントメール確認</h1><p>{escape(doc['generated_at'])}</p>"
        f'<table border="1"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        "</body></html>\n"
    )


def to_terminal(doc: dict[str, Any]) -> list[RenderableType]:
    """A summary table (one row per institution), then what to do for each one."""
    e = markup_escape
    table = Table(title="G-MIS アカウントメール確認", show_lines=False)
    for column in ("#", "account", "institution", "login ID", "対応", "contact"):
        table.add_column(column, overflow="fold")
    details: list[RenderableType] = []
    for n, item in enumerate(doc["institutions"], 1):
        contact = f"{item['contact']['name']} {item['contact']['phone'] or ''}".strip()
        style = "green" if item["path"] == "none" else "red" if item["path"] == "review" else ""
        label = f"[{style}]{e(item['label'])}[/{style}]" if style else e(item["label"])
        table.add_row(
            str(n),
            e(item["account"]),
            e(item["institution"] or "-"),
            e(item["login_id"] or "-"),
            label,
            e(contact),
        )
        lines = [
            f"[bold]{n}. {e(item['account'])} — {e(item['institution'] or '(unknown)')}"
            f": {label}[/bold] {e(item['title'])}",
            f"   state: {e(item['state'])} ({e(item['state_label'])})",
        ]
        if item["application_number"]:
            lines.append(f"   申請番号: {e(item['application_number'])}")
        lines += [f"   • {e(step)}" for step in item["instructions"]]
        lines.append(f"   連絡先: {e(contact)}")
        lines += [f"   evidence: {e(ev)}" for ev in _evidence_summary(item).split("; ") if ev]
        lines += [f"   [yellow]⚠ {e(w)}[/yellow]" for w in item["warnings"]]
        details.append("\n".join(lines))
    helpdesk = doc["helpdesk"]
    details.append(f"G-MISのシステム操作について: {e(helpdesk['name'])} {e(helpdesk['phone'])}")
    return [table, *details]
