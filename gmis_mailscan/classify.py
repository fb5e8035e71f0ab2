"""ParsedMessage + Rules → Classified: the message type by subject, the fields by pattern.

Pure and driven entirely by ``rules/gmis.toml``; nothing here knows a subject or a label.
"""

from __future__ import annotations

from .links import mask_token, token_hash
from .normalize import compact, normalize
from .records import OTHER_GMIS, Classified, ParsedMessage
from .rules import Rules


def is_candidate(parsed: ParsedMessage, rules: Rules) -> bool:
    """Does the message claim to come from the G-MIS secretariat (genuinely or not)?"""
    for name, addr in parsed.from_addresses:
        sender = compact(f"{name} {addr}")
        if any(needle in sender for needle in rules.candidate_from):
            return True
    subject = compact(parsed.subject)
    if any(needle in subject for needle in rules.candidate_subject):
        return True
    return match_type(parsed.subject, rules) is not None


def match_type(subject: str, rules: Rules) -> str | None:
    """The id of the first type whose subject the message's subject contains."""
    text = _strip_subject(compact(subject), rules)
    for rule in rules.types:
        if any(s in text for s in rule.subjects):
            return rule.id
    return None


def classify(parsed: ParsedMessage, rules: Rules) -> Classified:
    """Type and extracted fields; unknown subjects are `other_gmis`, never guessed at."""
    type_id = match_type(parsed.subject, rules)
    if type_id is None:
        wanted = ("institution",) if "institution" in rules.fields else ()
        return Classified(OTHER_GMIS, None, extract_fields(parsed.text, wanted, rules))
    rule = next(t for t in rules.types if t.id == type_id)
    return Classified(type_id, type_id, extract_fields(parsed.text, rule.fields, rules))


def extract_fields(text: str, names: tuple[str, ...], rules: Rules) -> dict[str, str]:
    """Apply each named field's patterns to the normalized text; first match wins."""
    norm = normalize(text)
    fields: dict[str, str] = {}
    for name in names:
        rule = rules.fields[name]
        for pattern in rule.patterns:
            match = pattern.search(norm.text)
            if not match or not match.group("value"):
                continue
            start, end = match.span("value")
            value = norm.original_span(start, end) if rule.keep_original else norm.text[start:end]
            if rule.secret:
                fields[f"{name}_token_sha256"] = token_hash(value) or ""
                value = mask_token(value)
            fields[name] = value.strip()
            break
    return fields


def _strip_subject(subject: str, rules: Rules) -> str:
    """Remove RE:/Fwd:/転送: markers (any number, any order) and the secretariat's prefix."""
    changed = True
    while changed:
        changed = False
        for prefix in rules.strip_prefixes:
            if subject.startswith(prefix):
                subject = subject[len(prefix) :]
                changed = True
    if rules.subject_prefix and subject.startswith(rules.subject_prefix):
        subject = subject[len(rules.subject_prefix) :]
    return subject
