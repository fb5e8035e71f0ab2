"""ParsedMessage + Rules → Classified: the message type by subject, the fields by pattern.

Pure and driven entirely by ``rules/gmis.toml``; nothing here knows a subject or a label.
"""

from __future__ import annotations

from .links import mask_token, token_hash
from .normalize import Normalized, compact, normalize
from .records import OTHER_GMIS, Classified, ParsedMessage
from .rules import Rules


def is_candidate(parsed: ParsedMessage, rules: Rules, *, body: bool = True) -> bool:
    """Does the message claim to come from the G-MIS secretariat (genuinely or not)?

    A subject that only names the secretariat (a prefecture's notice quoting it) counts when
    the body carries an account field; with ``body=False`` (the header alone was read) it
    counts until the body says otherwise.
    """
    for name, addr in parsed.from_addresses:
        sender = compact(f"{name} {addr}")
        if any(needle in sender for needle in rules.candidate_from):
            return True
    if match_type(parsed.subject, rules) is not None:
        return True
    subject = compact(parsed.subject)
    if not any(needle in subject for needle in rules.candidate_subject):
        return False
    return not body or bool(_fields(parsed, rules.candidate_fields, rules))


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
        wanted: tuple[str, ...] = ("institution",) if "institution" in rules.fields else ()
    else:
        wanted = next(t for t in rules.types if t.id == type_id).fields
    return Classified(type_id or OTHER_GMIS, type_id, _fields(parsed, wanted, rules))


def _fields(parsed: ParsedMessage, names: tuple[str, ...], rules: Rules) -> dict[str, str]:
    """Fields from the body text; those it lacks from the HTML part, when the plain part is a
    placeholder ("HTMLメールを表示できません") or leaves them out."""
    fields = extract_fields(parsed.text, names, rules)
    missing = tuple(n for n in names if n not in fields)
    if missing and parsed.html_text:
        fields.update(extract_fields(parsed.html_text, missing, rules))
    return fields


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
            value = _original(norm, start, end) if rule.keep_original else norm.text[start:end]
            if rule.secret:
                fields[f"{name}_token_sha256"] = token_hash(value) or ""
                value = mask_token(value)
            fields[name] = value.strip()
            break
    return fields


def _original(norm: Normalized, start: int, end: int) -> str:
    """The original text of a value, a line break inside it (an address a mailer wrapped)
    joined without a space between Japanese characters and with one between others."""
    out = ""
    for piece_start, piece_end in _lines(norm.text, start, end):
        piece = norm.original_span(piece_start, piece_end)
        if out and piece and not (out[-1].isascii() and piece[0].isascii()):
            out += piece
        elif piece:
            out = f"{out} {piece}" if out else piece
    return out


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    while (cut := text.find("\n", start, end)) >= 0:
        spans.append((start, cut))
        start = cut + 1
    return [*spans, (start, end)]


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
