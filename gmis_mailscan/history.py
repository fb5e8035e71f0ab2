"""Assessed states before and after → what changed: the `history` rows, the alerts, exit 6.

Pure: the caller hands in the institution states stored before and decided now; texts come
from rules/alerts.toml. A rescan that decides the same gives no Change at all.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from .records import Reason
from .rules import DEFAULT_RULES_DIR, Rules
from .store.repo import InstitutionState

ALERTS_FILE = "alerts.toml"
#: Codes of changes that make a warning "new" for exit code 6.
NEW_WARNING_CODES = ("new_suspicious_mail", "new_warning")


@dataclass(frozen=True)
class Change:
    """One change of one institution; id, at and scan_run are set once it is stored."""

    account: str
    key: str
    institution: str | None
    from_state: str | None
    to_state: str | None
    from_path: str | None
    to_path: str | None
    login_id: str | None
    changes: tuple[Reason, ...]
    new_warnings: tuple[str, ...] = ()
    cause: str = "scan"
    scan_run: int | None = None
    id: int | None = None
    at: datetime | None = None  # naive UTC, as stored

    @property
    def warns(self) -> bool:
        """A new suspicious mail or a new warning: someone must look (exit 6)."""
        return any(c.code in NEW_WARNING_CODES for c in self.changes)

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `history --format json`."""
        return {
            "id": self.id,
            "at": local_iso(self.at) if self.at else None,
            "account": self.account,
            "institution": self.institution,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "from_path": self.from_path,
            "to_path": self.to_path,
            "login_id": self.login_id,
            "reason": {
                "ja": "、".join(c.ja for c in self.changes),
                "en": "; ".join(c.en for c in self.changes),
            },
            "changes": [c.as_dict() for c in self.changes],
            "new_warnings": list(self.new_warnings),
            "cause": self.cause,
            "scan_run": self.scan_run,
        }


def local_iso(naive_utc: datetime) -> str:
    """Stored naive UTC → local time with its offset (SPEC §8: local time, zone named)."""
    return naive_utc.replace(tzinfo=UTC).astimezone().isoformat(timespec="seconds")


@cache
def texts(rules_dir: Path | None = None) -> dict[str, Any]:
    """rules/alerts.toml (of `rules_dir` when it has one, else the shipped one)."""
    path = (rules_dir or DEFAULT_RULES_DIR) / ALERTS_FILE
    if not path.exists():
        path = DEFAULT_RULES_DIR / ALERTS_FILE
    with path.open("rb") as fh:
        return tomllib.load(fh)


def pair(
    old: dict[str, InstitutionState], new: dict[str, InstitutionState]
) -> list[tuple[InstitutionState | None, InstitutionState | None]]:
    """Old and new states of the same institution, by key.

    An account known only as "" (no mail named the institution yet) that is now named by its
    mail is the same institution, not one gone and one new.
    """
    old = dict(old)
    added = [k for k in new if k not in old]
    if "" in old and "" not in new and added:
        old[added[0]] = old.pop("")
    keys = list(dict.fromkeys([*old, *new]))
    return [(old.get(k), new.get(k)) for k in keys]


def diff(
    account: str,
    old: InstitutionState | None,
    new: InstitutionState | None,
    rules: Rules,
    cause: str = "scan",
    scan_run: int | None = None,
    rules_dir: Path | None = None,
) -> Change | None:
    """What changed between two states of an institution; None when nothing did."""
    t = texts(rules_dir)["changes"]
    en = {"from": _label(old, rules, "en"), "to": _label(new, rules, "en")}
    ja = {"from": _label(old, rules, "ja"), "to": _label(new, rules, "ja")}

    def reason(code: str, **values: str) -> Reason:
        return Reason(
            code, t[code]["en"].format(**en, **values), t[code]["ja"].format(**ja, **values)
        )

    changes: list[Reason] = []
    if old is None and new is not None:
        changes.append(reason("new_institution"))
    elif new is None and old is not None:
        changes.append(reason("institution_gone"))
    elif old is not None and new is not None and (old.state, old.path) != (new.state, new.path):
        changes.append(reason("state_changed"))
    if new is not None and new.login_id and (old is None or old.login_id != new.login_id):
        code = "login_id_appeared" if old is None or not old.login_id else "login_id_changed"
        changes.append(reason(code, login_id=new.login_id))
    new_warnings: list[str] = []
    if new is not None:
        known: tuple[str, ...] | None = () if old is None else old.suspicious
        if known is not None:
            count = len(set(new.suspicious or ()) - set(known))
            if count:
                changes.append(reason("new_suspicious_mail", count=str(count)))
        seen = None if old is None else old.warnings
        if old is None or seen is not None:
            before = {_shape(w) for w in seen or ()}
            new_warnings = [w for w in new.warnings or () if _shape(w) not in before]
            changes += [reason("new_warning", warning=w) for w in new_warnings]
    if not changes:
        return None
    named = new if new is not None else old
    assert named is not None
    return Change(
        account=account,
        key=named.key,
        institution=named.name,
        from_state=old.state if old else None,
        to_state=new.state if new else None,
        from_path=old.path if old else None,
        to_path=new.path if new else None,
        login_id=named.login_id,
        changes=tuple(changes),
        new_warnings=tuple(new_warnings),
        cause=cause,
        scan_run=scan_run,
    )


def _label(s: InstitutionState | None, rules: Rules, lang: str) -> str:
    if s is None:
        return "-"
    if lang == "en":
        return f"{s.state} ({s.path})"
    path = rules.paths.get(s.path)
    return f"{rules.states.get(s.state, s.state)}（{path.label if path else s.path}）"


def _shape(warning: str) -> str:
    """A warning without its numbers: "mailbox is 91% full" is not new after "90% full"."""
    return re.sub(r"\d+", "#", warning)
