"""Find whom an institution should call, from its address and the directories in rules/contacts/.

An address outside every directory gets the generic answer (the prefecture's desk) rather than
a wrong phone number.
"""

from __future__ import annotations

import re

from .normalize import compact
from .rules import Contact, ContactDirectory, Rules

# Japanese IMEs write the postcode hyphen as − (U+2212), ‐, ー and the like; NFKC keeps them.
_POSTCODE = re.compile(r"^(?:〒)?\s*\d{3}[-‐‑‒–—―−ー]?\d{4}")
_PREFECTURE = re.compile(r"^(東京都|北海道|(?:京都|大阪)府|.{2,3}?県)")


def find_contact(address: str | None, rules: Rules) -> Contact:
    """The contact for `address`, or the fallback desk when it cannot be placed."""
    fallback = Contact(rules.fallback_contact, "", "")
    if not address:
        return fallback
    text = _POSTCODE.sub("", compact(address))
    for directory in rules.directories:
        contact = _lookup(text, directory)
        if contact:
            return contact
    return fallback


def _lookup(text: str, directory: ContactDirectory) -> Contact | None:
    for written, canonical in directory.aliases:
        text = text.replace(written, canonical)
    prefecture = compact(directory.prefecture)
    if text.startswith(prefecture):
        text = text[len(prefecture) :]
    elif _PREFECTURE.match(text) and not any(text.startswith(p) for p, _ in directory.prefixes):
        return None  # another prefecture
    for prefix, contact in directory.prefixes:
        if text.startswith(compact(prefix)):
            return contact
    return None
