"""Text normalization: NFKC per character, whitespace folding, and the map back to the original."""

from __future__ import annotations

import pytest

from gmis_mailscan.normalize import compact, nfkc, normalize

NFKC_CASES = [
    # (name, original, normalized text)
    ("full-width latin and digits", "ＩＤ：ＡＢＣ１２３", "ID:ABC123"),
    ("full-width brackets", "ユーザ名（ログインＩＤ）", "ユーザ名(ログインID)"),
    ("ideographic space folded", "さくら病院\u3000\u3000ご担当者様", "さくら病院 ご担当者様"),
    ("tabs and spaces folded", "住所:\t  鹿児島県", "住所: 鹿児島県"),
    ("circled digit", "医療法人①", "医療法人1"),
    ("half-width katakana", "ｶﾀｶﾅ", "カタカナ"),
    ("half-width voiced katakana composed", "ﾛｸﾞｲﾝ ﾊﾟｽﾜｰﾄﾞ", "ログイン パスワード"),
    ("kanji variants kept", "髙木病院", "髙木病院"),
    ("wave dash", "4月～6月", "4月~6月"),
    ("CRLF and CR become LF", "a\r\nb\rc", "a\nb\nc"),
    ("blank lines dropped", "a\n\n\nb\n \n\u3000\nc", "a\nb\nc"),
    ("trailing space on a line dropped", "a   \nb", "a\nb"),
    ("leading whitespace dropped", "\n\n  a", "a"),
    ("trailing whitespace dropped", "a \n\n \n", "a"),
    ("empty", "", ""),
    ("only whitespace", " \n\u3000\r\n", ""),
]


@pytest.mark.parametrize(
    "original,text", [c[1:] for c in NFKC_CASES], ids=[c[0] for c in NFKC_CASES]
)
def test_normalized_text(original, text):
    assert normalize(original).text == text


@pytest.mark.parametrize("original", [c[1] for c in NFKC_CASES], ids=[c[0] for c in NFKC_CASES])
def test_origin_has_one_index_per_character_and_is_ordered(original):
    norm = normalize(original)
    assert len(norm.origin) == len(norm.text)
    assert list(norm.origin) == sorted(norm.origin)
    assert all(0 <= i < len(norm.original) for i in norm.origin)


SPAN_CASES = [
    # (name, original, needle in the normalized text, original text behind it)
    ("full-width ID", "ログインＩＤ：ＫＧＳ－００１\n", "KGS-001", "ＫＧＳ－００１"),
    (
        "name with circled digit",
        "医療法人①髙木病院～本院 ご担当者様",
        "医療法人1髙木病院~本院",
        "医療法人①髙木病院～本院",
    ),
    ("value after blank lines", "住所:\n\n\n鹿児島県鹿屋市", "鹿児島県鹿屋市", "鹿児島県鹿屋市"),
    ("value split over lines", "報告機関名:\r\nさくら\r\n病院", "さくら\n病院", "さくら 病院"),
    ("ideographic space inside", "さくら\u3000病院", "さくら 病院", "さくら 病院"),
    ("half-width voiced kana", "ﾛｸﾞｲﾝ ID", "ログイン", "ﾛｸﾞｲﾝ"),
    ("ends on a voiced kana", "ﾊﾟｽﾜｰﾄﾞ\n", "パスワード", "ﾊﾟｽﾜｰﾄﾞ"),
    ("one character expanding to two", "㍻5年", "平成", "㍻"),
]


@pytest.mark.parametrize(
    "original,needle,expected", [c[1:] for c in SPAN_CASES], ids=[c[0] for c in SPAN_CASES]
)
def test_original_span(original, needle, expected):
    norm = normalize(original)
    start = norm.text.index(needle)
    assert norm.original_span(start, start + len(needle)) == expected


def test_original_span_empty_range():
    norm = normalize("さくら病院")
    assert norm.original_span(2, 2) == ""
    assert norm.original_span(3, 1) == ""


def test_original_keeps_line_ends_normalized():
    assert normalize("a\r\nb").original == "a\nb"


@pytest.mark.parametrize(
    "func,original,expected",
    [
        (nfkc, " ＡＢ\u3000 Ｃ\n\nｄ ", "AB C d"),
        (nfkc, "ｶﾞ", "ガ"),
        (compact, " ＡＢ\u3000 Ｃ\n\nｄ ", "abcd"),
        (compact, "【厚生労働省Ｇ－ＭＩＳ事務局】", "【厚生労働省g-mis事務局】"),
        (compact, "ＲＥ：", "re:"),
    ],
)
def test_nfkc_and_compact(func, original, expected):
    assert func(original) == expected
