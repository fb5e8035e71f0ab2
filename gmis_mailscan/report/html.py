"""The report as one self-contained HTML page (no network: CSS inline, SVG inline, no script).

Rendered by jinja2 with autoescaping on, so text from mail is always text, inside the SVG too;
a Content-Security-Policy allows only this page's own stylesheet. #14 attaches this page to
notification mails through `render_html`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import tzinfo
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from .flowchart import layout
from .texts import load_texts
from .view import Card, build_view

_PHONE = re.compile(r"^\+?[0-9][0-9()\- ]{4,}$")


@lru_cache(maxsize=1)
def _environment() -> tuple[Any, str]:
    """The template engine, imported only when a page is made (it costs every command's start)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("gmis_mailscan.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    css = (files("gmis_mailscan.report") / "templates" / "report.css").read_text("utf-8")
    return env, css


def render_html(
    doc: dict[str, Any],
    lang: str = "ja",
    tz: tzinfo | None = None,
    only_action: bool = False,
    rules_dir: Path | None = None,
) -> str:
    """The report document (as report.build makes it) as an HTML page in `lang`, times in
    `tz` (None: this machine's zone); `only_action` leaves out institutions with nothing to do."""
    texts = load_texts(lang, rules_dir)
    view = build_view(doc, texts, tz, only_action)
    from markupsafe import Markup

    env, css = _environment()
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    policy = (
        "default-src 'none'; "
        f"style-src 'sha256-{digest}'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    return env.get_template("report.html.j2").render(
        view=view,
        t=texts,
        css=Markup(css),
        policy=policy,
        charts={c.number: layout(c.state, texts) for c in view.cards},
        tone=lambda c: _tone(c)[0],
        icon=lambda c: _tone(c)[1],
        dial=lambda phone: phone.replace(" ", "") if _PHONE.match(phone or "") else None,
    )


def _tone(card: Card) -> tuple[str, str]:
    """The class and symbol of a card's remedy: colour is never the only signal. (A spoof beside
    a genuine mail is shown by its own warning, not by the remedy's badge.)"""
    if card.path == "review":
        return "tone-danger", "⚠"
    return ("tone-done", "✔") if card.path == "none" else ("tone-action", "▶")
