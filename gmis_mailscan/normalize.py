"""Text normalization for matching Japanese mail.

Rules match on NFKC text (ＩＤ → ID, ： → :, （） → ()) with spaces folded, but names and
addresses are reported as written (①, 髙 and ～ stay). `Normalized` keeps, for every character
of the normalized text, the index of the original character it came from, so a match on the
normalized text can be cut out of the original.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Characters a reader cannot see: every format character (Unicode category Cf: the BOM,
# zero-width space, joiners, soft hyphen, bidirectional controls, tag characters), the
# combining grapheme joiner and the Hangul fillers. Two copies of a mail that differ only in
# them must match the same rules and be one institution. Listed, not computed from
# unicodedata at import (a scan of every code point costs start-up time); a test checks the
# list against unicodedata.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
# Bidirectional embedding, override and isolate controls: they reorder what is shown, so
# a URL beside one may not read as it goes.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def strip_invisible(text: str) -> str:
    """`text` without the characters a reader cannot see (see _INVISIBLE)."""
    return _INVISIBLE.sub("", text)


def nfkc(text: str) -> str:
    """NFKC with every run of whitespace folded to one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", strip_invisible(text)).split())


def compact(text: str) -> str:
    """A key for comparing names: NFKC, case-folded, no whitespace or invisible character."""
    return "".join(unicodedata.normalize("NFKC", strip_invisible(text)).split()).casefold()


@dataclass(frozen=True)
class Normalized:
    """Normalized text plus a map back to the original."""

    text: str
    original: str
    origin: tuple[int, ...]  # origin[i] = index in `original` of text[i]

    def original_span(self, start: int, end: int) -> str:
        """The original text behind text[start:end], with its whitespace folded."""
        if start >= end:
            return ""
        last = self.origin[end - 1]
        # Up to the next character of the text: a voiced mark composed into `last` (ｶﾞ → ガ)
        # is part of it; anything else skipped on the way is whitespace, folded below.
        stop = next((o for o in self.origin[end:] if o > last), len(self.original))
        piece = self.original[self.origin[start] : stop]
        return " ".join(piece.split())


_PLAIN: set[str] = set()  # characters _is_plain() said yes to


def _is_plain(ch: str) -> bool:
    """Does normalize() keep `ch` as it is: NFKC-stable, no space, not a combining mark?"""
    if ch.isspace() or unicodedata.combining(ch) or unicodedata.normalize("NFKC", ch) != ch:
        return False
    _PLAIN.add(ch)
    return True


def normalize(original: str) -> Normalized:
    """Normalize per character: NFKC, horizontal whitespace folded, blank lines and invisible
    characters dropped.

    Lines are kept, so rules can anchor on a line (a greeting) or cross lines with ``\\s*``
    (a field whose value was wrapped onto the next line).
    """
    src = strip_invisible(original).replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(src):
        if ch in _PLAIN or _is_plain(ch):  # most characters: kept as they are
            out.append(ch)
            origin.append(i)
            continue
        piece = unicodedata.normalize("NFKC", ch)
        for c in piece:
            if unicodedata.combining(c) and out and out[-1] not in " \n":
                # Per-character NFKC leaves half-width ｶﾞ as カ + U+3099: compose it (ガ).
                composed = unicodedata.normalize("NFC", out[-1] + c)
                if len(composed) == 1:
                    out[-1] = composed
                    continue
            if c == "\n":
                while out and out[-1] == " ":  # no trailing space on a line
                    out.pop()
                    origin.pop()
                if not out or out[-1] == "\n":  # drop blank lines
                    continue
            elif c.isspace():
                if not out or out[-1] in " \n":
                    continue
                c = " "
            out.append(c)
            origin.append(i)
    while out and out[-1] in " \n":
        out.pop()
        origin.pop()
    return Normalized("".join(out), src, tuple(origin))
