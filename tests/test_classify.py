"""ParsedMessage → Classified: type by subject, fields by pattern, and which mail is a candidate."""

from __future__ import annotations

import hashlib

import mailfactory
import pytest

from gmis_mailscan.classify import classify, is_candidate, match_type
from gmis_mailscan.parse import parse

PW, UC, AN = "password_registration", "user_confirmation", "account_notice"
PREFIX = "【厚生労働省G-MIS事務局】"
BARE = {
    PW: "G-MISのご利用準備完了に伴うパスワード登録のご依頼",
    UC: "報告機関内でのG-MISご利用者の確認依頼",
    AN: "G-MISアカウント発行にかかる事前のご連絡",
}

SUBJECT_CASES = [
    # (name, subject, type or None)
    ("password", PREFIX + BARE[PW], PW),
    ("confirmation", PREFIX + BARE[UC], UC),
    ("notice", PREFIX + BARE[AN], AN),
    ("RE:", "RE: " + PREFIX + BARE[PW], PW),
    ("Re: lower case", "Re: " + PREFIX + BARE[UC], UC),
    ("Fwd:", "Fwd: " + PREFIX + BARE[AN], AN),
    ("FW:", "FW: " + PREFIX + BARE[PW], PW),
    ("転送:", "転送: " + PREFIX + BARE[PW], PW),
    ("転送 full-width colon", "転送：" + PREFIX + BARE[UC], UC),
    ("full-width RE：", "ＲＥ：" + PREFIX + BARE[PW], PW),
    ("full-width Ｆｗｄ：", "Ｆｗｄ：" + PREFIX + BARE[AN], AN),
    ("stacked markers", "Re: Fwd: 転送: RE: " + PREFIX + BARE[PW], PW),
    ("prefix dropped by a forward", "Fwd: " + BARE[PW], PW),
    ("full-width G-MIS", PREFIX + "Ｇ－ＭＩＳのご利用準備完了に伴うパスワード登録のご依頼", PW),
    ("spaces inside", PREFIX + " G-MIS アカウント発行にかかる 事前のご連絡", AN),
    ("unknown subject", PREFIX + "定期報告開始のお知らせ", None),
    ("unrelated", "院内研修のお知らせ", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(
    "subject,expected", [c[1:] for c in SUBJECT_CASES], ids=[c[0] for c in SUBJECT_CASES]
)
def test_match_type(rules, subject, expected):
    assert match_type(subject, rules) == expected


MAIL_PREFIX_CASES = [
    ("RE: ", "utf-8"),
    ("Fwd: ", "iso-2022-jp"),
    ("転送: ", "shift_jis"),
    ("ＲＥ：", "iso-2022-jp"),
    ("Ｆｗｄ：", "utf-8"),
    ("転送：", "utf-8"),
]


@pytest.mark.parametrize("prefix,charset", MAIL_PREFIX_CASES)
def test_prefixed_mail_is_classified(rules, prefix, charset):
    cte = "8bit" if charset == "shift_jis" else None
    raw = mailfactory.build(PW, subject_prefix=prefix, charset=charset, cte=cte)
    result = classify(parse(raw), rules)
    assert (result.type, result.rule) == (PW, PW)
    assert result.fields["login_id"] == "kgs-sakura01"


def test_password_mail_quoting_the_notice_subject_is_a_password_mail(rules):
    """The trap: the password mail's body quotes the account_notice subject in full."""
    parsed = parse(mailfactory.build(PW, body="text"))
    assert PREFIX + BARE[AN] in parsed.text
    assert classify(parsed, rules).type == PW


def test_notice_quoting_the_password_subject_is_a_notice(rules):
    parsed = parse(mailfactory.build(AN, body="text"))
    assert PREFIX + BARE[PW] in parsed.text
    result = classify(parsed, rules)
    assert result.type == AN
    assert result.fields == {"institution": "さくら病院"}


def test_unknown_subject_from_the_sender_is_other_gmis(rules):
    parsed = parse(mailfactory.build("other", institution="いぶすき病院"))
    assert is_candidate(parsed, rules)
    result = classify(parsed, rules)
    assert result.type == "other_gmis"
    assert result.rule is None
    assert result.fields == {"institution": "いぶすき病院"}


FIELD_CASES = [
    # (name, build options, expected fields)
    (
        "user_confirmation, full-width labels and digits",
        dict(kind=UC, fullwidth=True, charset="iso-2022-jp"),
        {
            "institution": "さくら病院",
            "application_number": "A20230601-0042",
            "reporting_institution": "さくら病院",
            "address": "鹿児島県鹿屋市札元１丁目１番１号",  # names and addresses as written
            "login_id": "kgs-sakura01",
        },
    ),
    (
        "user_confirmation, fields split over lines",
        dict(kind=UC, split_fields=True, body="text"),
        {
            "institution": "さくら病院",
            "application_number": "A20230601-0042",
            "reporting_institution": "さくら病院",
            "address": "鹿児島県鹿屋市札元1丁目1番1号",
            "login_id": "kgs-sakura01",
        },
    ),
    (
        "account_notice, CP932 name",
        dict(kind=AN, charset="cp932", institution="医療法人①髙木病院～本院"),
        {"institution": "医療法人①髙木病院～本院"},
    ),
    (
        "password_registration, split and full-width",
        dict(kind=PW, split_fields=True, fullwidth=True, body="alternative", login_id="ab-12"),
        {
            "institution": "さくら病院",
            "login_id": "ab-12",
            "password_url": "https://www.med-login.mhlw.go.jp/login?c=***",
            "login_url": "https://www.med-login.mhlw.go.jp/s/login/",
        },
    ),
]


@pytest.mark.parametrize(
    "options,expected", [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
)
def test_fields(rules, options, expected):
    options = dict(options)
    kind = options.pop("kind")
    fields = classify(parse(mailfactory.build(kind, **options)), rules).fields
    assert {k: v for k, v in fields.items() if not k.endswith("_token_sha256")} == expected


def test_half_width_katakana_labels(rules):
    """ﾕｰｻﾞ名(ﾛｸﾞｲﾝID): a Shift_JIS mailer may write the labels in half-width katakana."""
    text = "さくら病院 ご担当者様\nﾕｰｻﾞ名(ﾛｸﾞｲﾝID): kgs-hankaku-1\n"
    raw = mailfactory.build(PW, body="text", charset="cp932", cte="8bit", body_override=text)
    fields = classify(parse(raw), rules).fields
    assert fields["login_id"] == "kgs-hankaku-1"


# --- candidates: what the scan keeps at all -------------------------------------------------

CANDIDATE_CASES = [
    # (name, build options, candidate?)
    ("genuine password mail", dict(kind=PW), True),
    ("genuine unknown notice", dict(kind="other"), True),
    (
        "lookalike sender, neutral subject",
        dict(kind="other", sender="info@g-rnis.net", subject="ご確認のお願い"),
        True,
    ),
    (
        "sender without hyphen",
        dict(kind="other", sender="info@gmis.net", subject="ご確認のお願い"),
        True,
    ),
    (
        "display name only",
        dict(
            kind="other",
            sender="noreply@mail.example",
            display_name="厚生労働省G-MIS事務局",
            subject="ご確認のお願い",
        ),
        True,
    ),
    (
        "full-width display name",
        dict(
            kind="other",
            sender="noreply@mail.example",
            display_name="Ｇ－ＭＩＳ事務局",
            subject="ご確認のお願い",
        ),
        True,
    ),
    (
        "address in the display name",
        dict(
            kind="other",
            sender="g-info@mail.example",
            display_name="info@g-mis.net",
            subject="ご確認のお願い",
        ),
        True,
    ),
    (
        "copied subject from an unrelated sender",
        dict(kind=PW, sender="noreply@mail.example", display_name="事務局"),
        True,
    ),
    (
        "secretariat named in the subject only",
        dict(
            kind="other",
            sender="noreply@mail.example",
            display_name="事務局",
            subject="【厚生労働省G-MIS事務局】重要なお知らせ",
        ),
        True,
    ),
    ("ordinary mail", dict(kind="unrelated"), False),
    (
        "prefecture's notice mentioning G-MIS",
        dict(
            kind="unrelated",
            sender="iryo@pref.kagoshima.lg.jp",
            display_name="鹿児島県 保健医療福祉課",
            subject="G-MISアカウントの確認について（依頼）",
            body="text",
            body_override=(
                "各医療機関 御中\n\nG-MIS事務局（info@g-mis.net）から届くアカウントメールを"
                "ご確認ください。\nhttps://www.g-mis.mhlw.go.jp/\n"
            ),
        ),
        False,
    ),
]


@pytest.mark.parametrize(
    "options,expected", [c[1:] for c in CANDIDATE_CASES], ids=[c[0] for c in CANDIDATE_CASES]
)
def test_is_candidate(rules, options, expected):
    options = dict(options)
    kind = options.pop("kind")
    assert is_candidate(parse(mailfactory.build(kind, **options)), rules) is expected


# --- the one-time token ---------------------------------------------------------------------

TOKEN = "Tk9SeCrEt0123456789abcdefGHIJKLmn"


@pytest.mark.parametrize("body", ["text", "html", "alternative"])
def test_password_url_is_stored_masked_with_a_hash_of_the_token(rules, body):
    parsed = parse(mailfactory.build(PW, token=TOKEN, body=body))
    assert TOKEN in parsed.text  # the mail does carry it
    fields = classify(parsed, rules).fields
    assert fields["password_url"] == "https://www.med-login.mhlw.go.jp/login?c=***"
    assert fields["password_url_token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert not any(TOKEN in key or TOKEN in value for key, value in fields.items())


def test_different_tokens_give_different_hashes(rules):
    one = classify(parse(mailfactory.build(PW, token="A" * 32)), rules).fields
    two = classify(parse(mailfactory.build(PW, token="B" * 32)), rules).fields
    assert one["password_url"] == two["password_url"]
    assert one["password_url_token_sha256"] != two["password_url_token_sha256"]
