"""The report for a terminal (a rich table, then what to do for each institution) and for cron
mail (the same, plainly, without box drawing).

Text is folded here, not by rich, to keep Japanese line-breaking rules (no line starts with
）、。 and the like, none ends with （「) and to never split a login ID, phone number or other
run of ASCII: rich only gets lines that already fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from .texts import columns
from .view import Card, View

_NO_LINE_START = set(
    "、。，．,.)）」』】〕〉》］｝!?！？ー…‥・：；ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ"
)
_NO_LINE_END = set("（「『【〔〈《［｛(")
_TOKEN = re.compile(r"[!-~]+| +|.", re.S)  # an ASCII run stays whole: IDs, phones, URLs
_STYLE = {"danger": "bold red", "warning": "yellow", "info": ""}


def fold(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` columns, broken where Japanese allows."""
    lines: list[list[str]] = []
    line: list[str] = []
    used = 0
    for token in _TOKEN.findall(text):
        size = columns(token)
        if used + size <= width:
            line.append(token)
            used += size
            continue
        if token.isspace():
            lines.append(line)
            line, used = [], 0
            continue
        carry: list[
            str
        ] = []  # moved down so the new line does not start with ）or the old end with（
        while len(line) > 1 and (
            (carry or [token])[0][0] in _NO_LINE_START or line[-1][-1] in _NO_LINE_END
        ):
            carry.insert(0, line.pop())
        lines.append(line)
        while size > width:  # an ASCII run longer than a line: no better place to cut
            head, token = _cut(token, width)
            lines.append(carry + [head])
            carry, size = [], columns(token)
        line = carry + [token]
        used = sum(columns(part) for part in line)
    lines.append(line)
    return ["".join(part).strip() for part in lines if "".join(part).strip()] or [""]


def _cut(token: str, width: int) -> tuple[str, str]:
    used = 0
    for i, ch in enumerate(token):
        used += columns(ch)
        if used > width:
            return token[:i], token[i:]
    return token, ""


@dataclass(frozen=True)
class _Column:
    key: str
    header: str
    minimum: int
    weight: int
    whole: bool  # never folded (login ID): as wide as its longest value


def _cell(card: Card, key: str, view: View) -> str:
    none = view.texts("none_value")
    if key == "number":
        return str(card.number)
    if key == "contact":  # 姶良保健所 / （指導監査係） / 0995-44-7963
        name = card.contact_name.replace("（", "\n（")
        return "\n".join(filter(None, (name, card.contact_phone)))
    if key == "label" and card.suspicious and card.path != "review":
        return f"{card.label}\n⚠ {view.texts('count_suspicious')}"
    if key == "evidence":
        return "\n".join(f"{e.folder} ({e.role}): {e.verdict}" for e in card.evidence) or none
    if key == "warnings":
        return "\n".join(a.text for a in card.alerts) or none
    return str(getattr(card, key)) or none


def _columns(view: View, wide: bool) -> list[_Column]:
    t = view.texts
    cols = [
        _Column("number", "No.", 3, 0, True),
        _Column("institution", t("csv.institution"), 10, 3, False),
        _Column("login_id", t("login_id"), 8, 0, True),
        _Column("label", t("action"), 16, 2, False),
        _Column("contact", t("contact"), 14, 2, False),
    ]
    if wide:
        cols[2:2] = [_Column("account", t("account"), 8, 1, False)]
        cols += [
            _Column("application_number", t("application_number"), 8, 0, True),
            _Column("state_label", t("state"), 10, 2, False),
            _Column("evidence", t("evidence"), 12, 3, False),
            _Column("warnings", t("warnings"), 12, 4, False),
        ]
    return cols


def _widths(view: View, cols: list[_Column], width: int) -> list[int]:
    """Each column's width: whole columns as needed, the rest shared by weight."""
    longest = []
    for col in cols:
        values = [col.header] + [_cell(c, col.key, view) for c in view.cards]
        longest.append(max(columns(line) for v in values for line in v.split("\n")))
    room = width - 3 * len(cols) - 1  # borders and padding of a rich box
    sizes = [n if col.whole else min(n, col.minimum) for col, n in zip(cols, longest, strict=True)]
    while True:
        spare = room - sum(sizes)
        growing = [i for i, col in enumerate(cols) if not col.whole and sizes[i] < longest[i]]
        if spare <= 0 or not growing:
            return sizes
        total = sum(cols[i].weight for i in growing)
        for i in growing:
            sizes[i] = min(longest[i], sizes[i] + max(1, spare * cols[i].weight // total))
            if sum(sizes) >= room:
                break


def to_terminal(view: View, width: int = 80, wide: bool = False) -> list[RenderableType]:
    """A rich table fitting `width` columns, then each institution's details."""
    cols = _columns(view, wide)
    sizes = _widths(view, cols, width)
    table = Table(box=box.SQUARE, show_lines=True, expand=False)
    for col, size in zip(cols, sizes, strict=True):
        table.add_column(col.header, width=size, no_wrap=True, overflow="ignore")
    for card in view.cards:
        cells = []
        for col, size in zip(cols, sizes, strict=True):
            value = _cell(card, col.key, view)
            lines = [part for line in value.split("\n") for part in fold(line, size)]
            cell = Text("\n".join(lines), style=_tone(card) if col.key == "label" else "")
            cell.highlight_words([f"⚠ {view.texts('count_suspicious')}"], "bold red")
            cells.append(cell)
        table.add_row(*cells)
    details = [Text("\n").append_text(_details(view, c, width)) for c in view.cards]
    return [_header(view), table, *details, Text("\n").append_text(_footer(view))]


def to_plain(view: View, width: int = 76) -> str:
    """The same report for a mail client: no box drawing, lines of at most `width` columns."""
    out = [_header(view).plain, ""]
    for card in view.cards:
        out += [_details(view, card, width).plain, ""]
    out.append(_footer(view).plain)
    return "\n".join(out) + "\n"


def _tone(card: Card) -> str:
    return "bold red" if card.suspicious else "green" if card.path == "none" else "bold yellow"


def _header(view: View) -> Text:
    t = view.texts
    unit = t("count_unit")
    return Text(
        f"{t('title')}\n{t('generated')}: {view.generated}  {t('last_scan')}: {view.last_scan}\n"
        f"{t('count_suspicious')} {view.count_suspicious}{unit} / "
        f"{t('count_action')} {view.count_action}{unit} / {t('count_done')} {view.count_done}{unit}"
        + ("" if view.cards else f"\n{t('no_institutions')}")
    )


def _details(view: View, card: Card, width: int) -> Text:
    t = view.texts
    none = t("none_value")
    text = Text()

    def line(value: str, style: str = "", indent: str = "   ", mark: str = "") -> None:
        first = indent + mark
        hang = " " * max(3, len(first))
        for i, part in enumerate(fold(value, max(20, width - len(hang)))):
            text.append((first if i == 0 else hang) + part + "\n", style=style)

    title = f"{card.label}" + (f" — {card.title}" if card.title else "")
    line(f"{card.number}. {card.institution} ({card.account}): {title}", _tone(card), indent="")
    for a in card.alerts:
        line(a.text, _STYLE[a.severity], mark="⚠ ")
    line(f"{t('login_id')}: {card.login_id or none}")
    if card.application_number:
        line(f"{t('application_number')}: {card.application_number}")
    line(f"{t('state')}: {card.state_label}")
    for step in card.instructions:
        line(step, mark="• ")
    line(f"{t('contact')}: {card.contact_name} {card.contact_phone}".rstrip())
    for e in card.evidence:
        removed = f" {t('removed')}" if e.removed else ""
        line(f"{e.folder} ({e.role}){removed} {e.date} {e.type}: {e.verdict}", mark="- ")
    if not card.evidence:
        line(t("no_evidence"), mark="- ")
    text.rstrip()
    return text


def _footer(view: View) -> Text:
    return Text(f"{view.texts('helpdesk')}: {view.helpdesk_name} {view.helpdesk_phone}")
