"""bytes → ParsedMessage, with the Japanese charsets real mail uses."""

from __future__ import annotations

import base64

import mailfactory
import mailparser
import pytest

from gmis_mailscan.classify import classify
from gmis_mailscan.parse import UnparseableMessage, decode_bytes, parse

PW_SUBJECT = "【厚生労働省G-MIS事務局】G-MISのご利用準備完了に伴うパスワード登録のご依頼"
CP932_NAME = "医療法人①髙木病院～本院"


def test_mail_parser_leaves_7bit_iso2022jp_undecoded():
    """The known trap (SPEC §2): mail-parser returns the raw ESC $ B bytes as the body."""
    raw = mailfactory.build("password_registration", charset="iso-2022-jp", body="text")
    body = mailparser.parse_from_bytes(raw).text_plain[0]
    assert "\x1b$B" in body and "ご担当者様" not in body
    assert "さくら病院 ご担当者様" in parse(raw).text


def test_mail_parser_loses_cp932_characters_declared_shift_jis():
    raw = mailfactory.build(
        "password_registration", charset="cp932", cte="8bit", body="text", institution=CP932_NAME
    )
    assert CP932_NAME not in mailparser.parse_from_bytes(raw).text_plain[0]
    assert CP932_NAME in parse(raw).text


CHARSET_CASES = [
    ("utf-8", "base64", "text"),
    ("utf-8", "quoted-printable", "html"),
    ("utf-8", "8bit", "alternative"),
    ("iso-2022-jp", "7bit", "text"),
    ("iso-2022-jp", "7bit", "html"),
    ("shift_jis", "base64", "text"),
    ("shift_jis", "quoted-printable", "alternative"),
    ("cp932", "8bit", "text"),
    ("cp932", "base64", "html"),
]


@pytest.mark.parametrize("charset,cte,body", CHARSET_CASES)
def test_password_mail_fields_exact_in_every_charset(rules, charset, cte, body):
    name = CP932_NAME if charset == "cp932" else "さくら病院"
    raw = mailfactory.build(
        "password_registration", charset=charset, cte=cte, body=body, institution=name
    )
    parsed = parse(raw)
    assert parsed.subject == PW_SUBJECT
    assert parsed.from_addresses == (("厚生労働省G-MIS事務局", "info@g-mis.net"),)
    result = classify(parsed, rules)
    assert result.type == "password_registration"
    assert result.fields["institution"] == name
    assert result.fields["login_id"] == "kgs-sakura01"
    assert result.fields["password_url"] == "https://www.med-login.mhlw.go.jp/login?c=***"
    assert result.fields["login_url"] == "https://www.med-login.mhlw.go.jp/s/login/"


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp", "shift_jis"])
def test_user_confirmation_fields_exact(rules, charset):
    raw = mailfactory.build("user_confirmation", charset=charset, body="html")
    result = classify(parse(raw), rules)
    assert result.type == "user_confirmation"
    assert result.fields == {
        "institution": "さくら病院",
        "reporting_institution": "さくら病院",
        "application_number": "A20230601-0042",
        "address": "鹿児島県鹿屋市札元1丁目1番1号",
        "login_id": "kgs-sakura01",
    }


def test_fullwidth_and_split_fields(rules):
    raw = mailfactory.build(
        "user_confirmation", fullwidth=True, split_fields=True, charset="iso-2022-jp", body="text"
    )
    fields = classify(parse(raw), rules).fields
    assert fields["login_id"] == "kgs-sakura01"
    assert fields["application_number"] == "A20230601-0042"
    assert fields["reporting_institution"] == "さくら病院"


@pytest.mark.parametrize("charset", ["iso-2022-jp", "utf-8", "shift_jis"])
def test_subject_folded_over_encoded_words(charset):
    raw = mailfactory.build("password_registration", fold_subject=True, charset=charset)
    assert b"\r\n " in raw.split(b"\r\n\r\n")[0]  # really folded
    assert parse(raw).subject == PW_SUBJECT


@pytest.mark.parametrize("prefix", ["RE: ", "Fwd: ", "転送: ", "Re: Fw: "])
def test_reply_and_forward_prefixes(rules, prefix):
    raw = mailfactory.build("password_registration", subject_prefix=prefix)
    assert classify(parse(raw), rules).type == "password_registration"


def test_windows_iso2022jp_with_nec_specials():
    """CP50220 writes ① (row 13) and 髙 (IBM ext.) inside ESC $ B, which Python rejects."""
    # ① is JIS row 13 (0x2D21); 髙 the NEC-selected IBM extension at row 92 (0x7C62).
    data = b"\x1b$B\x2d\x21\x7c\x62\x1b(B abc"
    assert decode_bytes(data, "iso-2022-jp") == "①髙 abc"


def test_utf8_mislabelled_as_shift_jis_still_decodes():
    assert decode_bytes("髙木".encode(), "shift_jis") in ("髙木", "鬮呎惠")  # never raises
    assert decode_bytes(b"\x82\xa0", None) == "あ"


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"", "empty message"),
        (b"   \r\n\r\n", "empty message"),
        (b"\r\n\r\nonly a body, no headers", "no"),
    ],
)
def test_unreadable_messages_raise_with_a_reason(raw, reason):
    with pytest.raises(UnparseableMessage, match=reason):
        parse(raw)


def test_broken_base64_body_does_not_raise():
    raw = mailfactory.build("password_registration", cte="base64", body="text")
    head, body = raw.split(b"\r\n\r\n", 1)
    parsed = parse(head + b"\r\n\r\n" + body[:37] + b"!!!***" + base64.b64encode(b"x")[:3])
    assert parsed.subject == PW_SUBJECT


def test_links_listed_from_html_and_text():
    parsed = parse(mailfactory.build("password_registration", body="alternative"))
    urls = {link.url for link in parsed.links}
    assert "https://www.med-login.mhlw.go.jp/s/login/" in urls
    assert any(u.startswith("https://www.med-login.mhlw.go.jp/login?c=") for u in urls)


def test_authentication_results_kept_in_order():
    raw = mailfactory.build(
        "password_registration",
        extra_headers=[
            ("Authentication-Results", "mx.a.example; dkim=pass header.d=g-mis.net"),
            ("Authentication-Results", "mx.b.example; spf=pass"),
        ],
    )
    assert [h.split(";")[0] for h in parse(raw).authentication_results] == [
        "mx.a.example",
        "mx.b.example",
    ]
