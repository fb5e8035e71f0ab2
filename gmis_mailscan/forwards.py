"""Forwarded copies of the secretariat's mail: who forwarded it, what it said.

A colleague's forward is not from the secretariat, so it is never genuine evidence, but it is
proof that the mail reached someone: reported for review rather than as "no mail". Found as a
`message/rfc822` attachment, after an inline marker line (Gmail's `---------- Forwarded
message ---------`, Outlook's `-----Original Message-----` / `-----元のメッセージ-----`) or by a
forward prefix of the subject (`Fwd:`, `転送:`); the markers are data (rules/gmis.toml).
A message whose From claims to be the secretariat is never a forward: that is the mail itself,
a spoof, or a spam filter's wrapper around it (parse/verify handle those).
"""

from __future__ import annotations

import email
import email.message
import email.policy
from dataclasses import dataclass, replace

from .normalize import compact, nfkc
from .parse import UnparseableMessage, parse
from .records import ParsedMessage
from .rules import Rules

#: A forward nests the original at most this deep (a forward of a forward …).
_MAX_PARTS = 200


@dataclass(frozen=True)
class Forward:
    """A forwarded copy: the forwarder and the forwarded message as far as it can be read."""

    forwarder: str  # the outer From addr-spec (or display name when there is none)
    how: str  # "attachment", "inline" or "subject"
    inner: ParsedMessage  # the forwarded message: its subject and text (for the rules)


def find_forward(parsed: ParsedMessage, raw: bytes, rules: Rules) -> Forward | None:
    """The forwarded original inside `parsed`, or None when it is not a forward."""
    if not parsed.from_addresses or claims_secretariat(parsed, rules):
        return None
    name, addr = parsed.from_addresses[0]
    forwarder = addr or name
    attached = _attached(raw, rules)
    if attached is not None:
        return Forward(forwarder, "attachment", attached)
    inline = _inline(parsed, rules)
    if inline is not None:
        return Forward(forwarder, "inline", inline)
    subject = compact(parsed.subject)
    for prefix in rules.forward_prefixes:
        if subject.startswith(prefix):
            return Forward(forwarder, "subject", parsed)
    return None


def claims_secretariat(parsed: ParsedMessage, rules: Rules) -> bool:
    """Does the From (address or display name) claim to be the secretariat, truly or not?"""
    return any(
        needle in compact(f"{name} {addr}")
        for name, addr in parsed.from_addresses
        for needle in rules.candidate_from
    )


def _attached(raw: bytes, rules: Rules) -> ParsedMessage | None:
    """The first attached message (message/rfc822) that claims to come from the secretariat."""
    try:
        outer = email.message_from_bytes(raw, policy=email.policy.compat32)
        for count, part in enumerate(outer.walk()):
            if count > _MAX_PARTS:
                return None
            if part.get_content_type() != "message/rfc822" or not part.is_multipart():
                continue
            attached = part.get_payload(0)
            if not isinstance(attached, email.message.Message):
                continue
            inner = parse(attached.as_bytes())
            if claims_secretariat(inner, rules):
                return inner
    except (UnparseableMessage, RecursionError, LookupError, ValueError, TypeError):
        return None  # a damaged attachment: the inline markers may still tell
    return None


def _inline(parsed: ParsedMessage, rules: Rules) -> ParsedMessage | None:
    """The text after a forward marker line, with the subject its header block names."""
    lines = parsed.text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        if nfkc(line).strip("-_ ").casefold() not in rules.forward_markers:
            continue
        quoted = lines[i + 1 :]
        subject = parsed.subject
        for header in quoted[:12]:  # From/Date/Subject/To of the forwarded mail
            label, sep, value = nfkc(header).partition(":")
            if sep and label.strip().casefold() in rules.forward_subject_labels:
                subject = value.strip()
                break
        return replace(parsed, subject=subject, text="\n".join(quoted))
    return None
