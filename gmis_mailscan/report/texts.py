"""The words people see, from rules/messages.toml, and the flowchart from rules/diagram.toml.

Texts are data so that a wording fix or a third language is an edit, not a code change. Both
files are checked once at load: Japanese and English must have the same keys, and every path
of the diagram must follow its arrows; a mistake is a TomlError naming the file and the key.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..rules import DEFAULT_RULES_DIR
from ..tomlcheck import Table, TomlError, load_toml

LANGS = ("ja", "en")
SEVERITIES = ("danger", "warning", "info")
BOX_COLUMNS = 18  # what fits on one line of a flowchart box, a Japanese character counting 2


@dataclass(frozen=True)
class AlertRule:
    """How one kind of warning line (JSON `warnings`) reads for people."""

    code: str
    severity: str
    pattern: re.Pattern[str]
    texts: dict[str, str]  # lang → template


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # question | end
    col: float
    row: int
    lines: dict[str, tuple[str, ...]]  # lang → lines written in the box
    path: str | None  # the remedy an end box stands for
    added: bool  # an outcome the notice's chart does not draw


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    labels: dict[str, str]  # lang → the answer written on the arrow


@dataclass(frozen=True)
class Diagram:
    nodes: dict[str, Node]
    edges: dict[tuple[str, str], Edge]
    paths: dict[str, tuple[str, ...]]  # decision-table state → node ids passed, in order


@dataclass(frozen=True)
class Texts:
    """One language's words, the alert rules and the diagram."""

    lang: str
    words: dict[str, Any]
    alerts: tuple[AlertRule, ...]
    diagram: Diagram

    def __call__(self, key: str, **values: Any) -> str:
        """The text at `key` ("doctor.ok" looks in [ja.doctor]), placeholders filled in."""
        node: Any = self.words
        for part in key.split("."):
            node = node[part]
        return node.format(**values) if values else node

    def group(self, name: str) -> dict[str, Any]:
        return self.words.get(name, {})


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGS)}")
    return lang


@lru_cache(maxsize=8)
def load_texts(lang: str = "ja", rules_dir: Path | None = None) -> Texts:
    """The texts of `lang`; rules_dir without its own messages.toml uses the shipped one."""
    check_lang(lang)
    folder = rules_dir if rules_dir and (rules_dir / "messages.toml").is_file() else None
    folder = folder or DEFAULT_RULES_DIR
    messages_file = folder / "messages.toml"
    data = load_toml(messages_file)
    for other in LANGS:
        if not isinstance(data.get(other), dict):
            raise TomlError(messages_file, other, "missing table of texts")
    _same_keys(messages_file, data["ja"], data["en"], "")
    top = Table(data, messages_file)
    alerts = tuple(_alert(t) for t in top.tables("alerts"))
    for other in LANGS:
        top.get(other, dict)
    top.done()
    diagram_folder = rules_dir if rules_dir and (rules_dir / "diagram.toml").is_file() else None
    diagram = _diagram((diagram_folder or DEFAULT_RULES_DIR) / "diagram.toml")
    return Texts(lang, data[lang], alerts, diagram)


def _same_keys(file: Path, ja: dict[str, Any], en: dict[str, Any], where: str) -> None:
    """English may add [en.states] / [en.paths] (Japanese has them in flowchart.toml)."""
    for key in sorted(set(ja) ^ set(en)):
        if key in ("states", "paths") and key in en:
            continue
        missing = "en" if key in ja else "ja"
        raise TomlError(file, f"{missing}{where}.{key}", "missing: give it in both languages")
    for key, value in ja.items():
        if isinstance(value, dict):
            if not isinstance(en[key], dict):
                raise TomlError(file, f"en{where}.{key}", "expected a table, as in [ja]")
            _same_keys(file, value, en[key], f"{where}.{key}")


def _alert(t: Table) -> AlertRule:
    rule = AlertRule(
        code=t.get("code", str),
        severity=t.choice("severity", SEVERITIES),
        pattern=t.regex("pattern", t.get("pattern", str)),
        texts={lang: t.get(lang, str) for lang in LANGS},
    )
    t.done()
    return rule


def _diagram(path: Path) -> Diagram:
    top = Table(load_toml(path), path)
    nodes_table = top.table("nodes")
    nodes = {}
    for node_id in list(nodes_table.data):
        n = nodes_table.table(node_id)
        nodes[node_id] = Node(
            id=node_id,
            kind=n.choice("kind", ("question", "end")),
            col=n.get("col", float),
            row=n.get("row", int),
            lines={lang: _box_lines(n, lang) for lang in LANGS},
            path=n.get("path", str, None),
            added=n.get("added", bool, False),
        )
        n.done()
    edges = {}
    for e in top.tables("edges"):
        source, target = e.get("from", str), e.get("to", str)
        for key, value in (("from", source), ("to", target)):
            if value not in nodes:
                raise e.error(key, f"no [nodes.{value}]")
        edges[(source, target)] = Edge(source, target, {lang: e.get(lang, str) for lang in LANGS})
        e.done()
    paths_table = top.table("paths")
    paths = {}
    for state in list(paths_table.data):
        ids = tuple(paths_table.str_list(state))
        for a, b in zip(ids, ids[1:], strict=False):
            if (a, b) not in edges:
                raise paths_table.error(state, f"no arrow from {a!r} to {b!r} in [[edges]]")
        if not ids or nodes.get(ids[-1], None) is None or nodes[ids[-1]].kind != "end":
            raise paths_table.error(state, 'must end in a box of kind = "end"')
        paths[state] = ids
    for t in (nodes_table, paths_table, top):
        t.done()
    return Diagram(nodes, edges, paths)


def columns(text: str) -> int:
    """Display width: wide (Japanese) characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _box_lines(node: Table, lang: str) -> tuple[str, ...]:
    lines = tuple(node.str_list(lang))
    for line in lines:
        if columns(line) > BOX_COLUMNS:
            raise node.error(
                lang, f"line {line!r} is too wide for its box ({columns(line)} > {BOX_COLUMNS})"
            )
    return lines
