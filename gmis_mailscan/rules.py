"""Load and validate the rules in ``rules/``: message types, field patterns, folders, contacts.

Rules are data so that a new subject variant or prefecture is an edit, not a release. They are
checked once at load; any mistake is a TomlError naming the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .normalize import compact, nfkc
from .resources import data_path
from .tomlcheck import Table, TomlError, load_toml

#: The rules shipped with the package (a user's own [scan] rules_dir replaces them).
DEFAULT_RULES_DIR = data_path("rules")

PATH_IDS = ("none", "method1", "method2", "method3", "method4", "contact", "register", "review")


@dataclass(frozen=True)
class FieldRule:
    name: str
    patterns: tuple[re.Pattern[str], ...]
    keep_original: bool  # report the value as written rather than NFKC-normalized
    secret: bool  # a URL carrying a one-time token: store masked + hashed only


@dataclass(frozen=True)
class TypeRule:
    id: str
    description: str
    subjects: tuple[str, ...]  # compacted (NFKC, no spaces, case-folded)
    fields: tuple[str, ...]


@dataclass(frozen=True)
class PathText:
    label: str
    title: str
    instructions: tuple[str, ...]


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str
    area: str  # what the contact covers, for the report


@dataclass(frozen=True)
class ContactDirectory:
    """One prefecture's directory: municipality or town prefix → contact."""

    prefecture: str
    aliases: tuple[tuple[str, str], ...]
    prefixes: tuple[tuple[str, Contact], ...]  # longest first


@dataclass(frozen=True)
class Rules:
    sender: str
    candidate_from: tuple[str, ...]
    candidate_subject: tuple[str, ...]
    candidate_fields: tuple[str, ...]  # what makes a subject-only mention an account mail
    server_search_from: tuple[str, ...]
    server_search_subject: tuple[str, ...]
    strip_prefixes: tuple[str, ...]
    subject_prefix: str
    types: tuple[TypeRule, ...]
    fields: dict[str, FieldRule]
    official_hosts: tuple[str, ...]
    junk_names: tuple[str, ...]
    skip_names: tuple[str, ...]
    sent_names: tuple[str, ...]
    archive_names: tuple[str, ...]
    forward_markers: tuple[str, ...]  # NFKC, case-folded, dashes stripped
    forward_subject_labels: tuple[str, ...]
    forward_prefixes: tuple[str, ...]  # compacted
    states: dict[str, str]
    paths: dict[str, PathText]
    directories: tuple[ContactDirectory, ...]
    fallback_contact: str
    helpdesk: Contact
    rescued: tuple[str, ...] = ()  # remaining steps of 対応方法2 after `rescue` moved the mail


def load_rules(rules_dir: Path | None = None) -> Rules:
    """Read gmis.toml, flowchart.toml and contacts/*.toml from `rules_dir`."""
    rules_dir = rules_dir or DEFAULT_RULES_DIR
    if not rules_dir.is_dir():
        raise TomlError(rules_dir, "", "rules folder not found")
    main_file = rules_dir / "gmis.toml"
    top = Table(load_toml(main_file), main_file)
    sender_table = top.table("sender")
    sender = sender_table.get("address", str).strip().lower()
    candidate = top.table("candidate")
    subject = top.table("subject")
    fields = _field_rules(top.table("fields"))
    types = _type_rules(top, set(fields))
    verify = top.table("verify")
    folders = top.table("folders")
    forwards = top.table("forwards", {})
    contacts = top.table("contacts")
    rules = partial(  # completed below, once its tables are checked and the flowchart read
        Rules,
        sender=sender,
        candidate_from=tuple(compact(s) for s in candidate.str_list("from_contains")),
        candidate_subject=tuple(compact(s) for s in candidate.str_list("subject_contains")),
        candidate_fields=_known_fields(candidate, "account_fields", set(fields)),
        server_search_from=_ascii_terms(candidate, "server_search_from"),
        server_search_subject=_ascii_terms(candidate, "server_search_subject"),
        strip_prefixes=tuple(compact(s) for s in subject.str_list("strip_prefixes", [])),
        subject_prefix=compact(subject.get("prefix", str, "")),
        types=types,
        fields=fields,
        official_hosts=tuple(h.lower() for h in verify.str_list("official_hosts")),
        junk_names=tuple(folders.str_list("junk_names", [])),
        skip_names=tuple(folders.str_list("skip_names", [])),
        sent_names=tuple(folders.str_list("sent_names", [])),
        archive_names=tuple(folders.str_list("archive_names", [])),
        forward_markers=tuple(
            nfkc(m).strip("-_ ").casefold() for m in forwards.str_list("markers", [])
        ),
        forward_subject_labels=tuple(
            nfkc(m).casefold() for m in forwards.str_list("subject_labels", [])
        ),
        forward_prefixes=tuple(compact(m) for m in forwards.str_list("subject_prefixes", [])),
        fallback_contact=contacts.get("fallback", str),
        helpdesk=Contact(
            contacts.get("helpdesk_name", str), contacts.get("helpdesk_phone", str), "G-MIS"
        ),
    )
    for t in (top, sender_table, candidate, subject, verify, folders, forwards, contacts):
        t.done()
    states, paths, rescued = _flowchart(rules_dir / "flowchart.toml")
    directories = tuple(
        _directory(path) for path in sorted((rules_dir / "contacts").glob("*.toml"))
    )
    return rules(states=states, paths=paths, directories=directories, rescued=rescued)


def _known_fields(table: Table, key: str, names: set[str]) -> tuple[str, ...]:
    wanted = table.str_list(key, [])
    for name in wanted:
        if name not in names:
            raise table.error(key, f"no [fields.{name}] table defines {name!r}")
    return tuple(wanted)


def _ascii_terms(table: Table, key: str) -> tuple[str, ...]:
    terms = table.str_list(key)
    for term in terms:
        if not term.isascii() or not term.strip() or '"' in term:
            raise table.error(key, f"server search terms must be plain ASCII, got {term!r}")
    if not terms:
        raise table.error(key, "needs at least one term")
    return tuple(terms)


def _field_rules(table: Table) -> dict[str, FieldRule]:
    out = {}
    for name in list(table.data):
        field = table.table(name)
        patterns = field.str_list("patterns")
        if not patterns:
            raise field.error("patterns", "needs at least one pattern")
        compiled = tuple(field.regex("patterns", p, i) for i, p in enumerate(patterns))
        for i, pattern in enumerate(compiled):
            if "value" not in pattern.groupindex:
                raise field.error(f"patterns[{i}]", "needs a group named 'value': (?P<value>…)")
        keep = field.choice("value", ("normalized", "original"), "normalized")
        out[name] = FieldRule(name, compiled, keep == "original", field.get("secret", bool, False))
        field.done()
    return out


def _type_rules(top: Table, field_names: set[str]) -> tuple[TypeRule, ...]:
    types = []
    seen: set[str] = set()
    for t in top.tables("types"):
        type_id = t.get("id", str)
        if type_id in seen:
            raise t.error("id", f"duplicate type id {type_id!r}")
        seen.add(type_id)
        subjects = t.str_list("subjects")
        if not subjects:
            raise t.error("subjects", "needs at least one subject")
        wanted = t.str_list("fields", [])
        for name in wanted:
            if name not in field_names:
                raise t.error("fields", f"no [fields.{name}] table defines {name!r}")
        types.append(
            TypeRule(
                type_id,
                t.get("description", str, ""),
                tuple(compact(s) for s in subjects),
                tuple(wanted),
            )
        )
        t.done()
    if not types:
        raise top.error("types", "at least one [[types]] table is needed")
    return tuple(types)


def _flowchart(path: Path) -> tuple[dict[str, str], dict[str, PathText], tuple[str, ...]]:
    top = Table(load_toml(path), path)
    states_table = top.table("states")
    states = {name: states_table.get(name, str) for name in list(states_table.data)}
    paths_table = top.table("paths")
    paths = {}
    for path_id in PATH_IDS:
        p = paths_table.table(path_id)
        paths[path_id] = PathText(
            p.get("label", str), p.get("title", str, ""), tuple(p.str_list("instructions"))
        )
        p.done()
    paths_table.done()
    rescued_table = top.table("rescued", {})
    rescued = tuple(rescued_table.str_list("instructions", []))
    rescued_table.done()
    top.done()
    return states, paths, rescued


def _directory(path: Path) -> ContactDirectory:
    top = Table(load_toml(path), path)
    prefecture = top.get("prefecture", str)
    aliases_table = top.table("aliases", {})
    aliases = tuple((k, aliases_table.get(k, str)) for k in list(aliases_table.data))
    prefixes: list[tuple[str, Contact]] = []
    for c in top.tables("contacts"):
        municipalities = c.str_list("municipalities")
        towns_table = c.table("towns", {})
        towns = {k: towns_table.str_list(k) for k in list(towns_table.data)}
        for district in towns:
            if district not in municipalities:
                raise towns_table.error(district, "not one of this contact's municipalities")
        area = "、".join(
            f"{m}（{'・'.join(towns[m])}）" if m in towns else m for m in municipalities
        )
        contact = Contact(c.get("name", str), c.get("phone", str), area)
        for m in municipalities:
            prefixes.append((nfkc(m), contact))
            for town in towns.get(m, []):
                prefixes.append((nfkc(town), contact))
        towns_table.done()
        c.done()
    aliases_table.done()
    top.done()
    prefixes.sort(key=lambda item: -len(item[0]))
    return ContactDirectory(nfkc(prefecture), aliases, tuple(prefixes))
