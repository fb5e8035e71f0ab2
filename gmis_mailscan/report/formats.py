"""The report document (see report.build) as JSON; the other formats have their own modules:
html.py, csvfile.py, terminal.py, all rendering one view (view.py)."""

from __future__ import annotations

import json
from typing import Any


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2)
