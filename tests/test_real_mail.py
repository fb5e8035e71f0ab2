"""Mail judged as it really is (issue 15): <base href>, invisible and bidi characters, fields
wherever the mail puts them, the ISO-2022-JP family, spam-filter wrappers and notices that
quote the secretariat. Each class of mail in genuine and spoofed variants, in the charsets it
can be written in, through the real parse → classify → verify stages.
"""

from __future__ import annotations

import base64
from email.utils import format_datetime

import mailfactory
import pytest

from gmis_mailscan.classify import classify, is_candidate
from gmis_mailscan.config import no_config
from gmis_mailscan.normalize import BIDI_CONTROLS, compact, strip_invisible
from gmis_mailscan.parse import decode_bytes, parse
from gmis_mailscan.records import RawMessage
from gmis_mailscan.scan import examine, verify_policy
from gmis_mailscan.verify import verify

PW = "password_registration"
UC = "user_confirmation"
TOKEN = mailfactory.TOKEN
PASSWORD_URL = f"https://www.med-login.mhlw.go.jp/login?c={TOKEN}"
SECOND_URL = "https://www.med-login.mhlw.go.jp/s/login/"
SPOOF_SENDER = "info@g-mis-support.example"
JAPANESE = ("utf-8", "iso-2022-jp", "shift_jis", "cp932")


@pytest.fixture(scope="module")
def policy(rules):
    return verify_policy(no_config(), rules)


def judge(raw: bytes, rules, policy):
    parsed = parse(raw)
    return parsed, classify(parsed, rules), verify(parsed, raw, policy)


def codes(verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def shown_texts(classified, verdict) -> list[str]:
    """Everything a report shows of a message: fields and reason/warning texts."""
    texts = [*classified.fields.values()]
    for reason in (*verdict.reasons, *verdict.warnings):
        texts += [reason.en, reason.ja]
    return texts


def password_html(links: str, institution: str = "さくら病院", head: str = "") -> str:
    return (
        f"<html><head>{head}</head><body><p>{institution} ご担当者様</p>"
        f"<p>G-MISへようこそ!</p><p>システムをご利用するには {links} "
        "にアクセスし、パスワードを設定してください。</p>"
        "<p>ユーザ名(ログインID): kgs-sakura01</p></body></html>"
    )


# --- 2. <base href> -----------------------------------------------------------------------


@pytest.mark.parametrize("charset", JAPANESE)
def test_relative_links_resolved_against_an_official_base(charset, rules, policy):
    html = password_html(
        f'<a href="login?c={TOKEN}">こちら</a> <a href="/s/login/">ログイン</a>',
        head='<base href="https://www.med-login.mhlw.go.jp/">',
    )
    raw = mailfactory.build(PW, charset=charset, body="html", body_override=html)
    parsed, classified, verdict = judge(raw, rules, policy)
    urls = [link.url for link in parsed.links]
    assert PASSWORD_URL in urls and SECOND_URL in urls
    assert verdict.genuine, verdict.reasons
    assert classified.fields["login_id"] == "kgs-sakura01"


@pytest.mark.parametrize("charset", JAPANESE)
@pytest.mark.parametrize(
    "base,code,host",
    [
        ("https://med-login.example/", "link_unofficial_host", "med-login.example"),
        ("https://www.med-login.mhlw.go.jp.login.example/", "link_lookalike_host", None),
        ("//phish.example/", "link_unofficial_host", "phish.example"),
    ],
)
def test_base_off_the_official_hosts_is_suspicious(charset, base, code, host, rules, policy):
    html = password_html(f'<a href="login?c={TOKEN}">こちら</a>', head=f'<base href="{base}">')
    raw = mailfactory.build(PW, charset=charset, body="html", body_override=html)
    parsed, _, verdict = judge(raw, rules, policy)
    assert not verdict.genuine
    assert code in codes(verdict)
    if host:  # the resolved password link itself goes there
        assert any(f"{host}/login?c=***" in r.en for r in verdict.reasons), verdict.reasons


def test_base_with_plain_http_to_the_ministry_is_a_warning_only(rules, policy):
    html = password_html(
        f'<a href="login?c={TOKEN}">こちら</a>', head='<base href="http://www.mhlw.go.jp/">'
    )
    raw = mailfactory.build(PW, body="html", body_override=html)
    _, _, verdict = judge(raw, rules, policy)
    assert verdict.genuine
    assert "link_not_https" in [w.code for w in verdict.warnings]


def test_absolute_links_are_not_moved_by_base(rules, policy):
    html = password_html(
        '<a href="https://phish.example/login">こちら</a>',
        head='<base href="https://www.med-login.mhlw.go.jp/">',
    )
    _, _, verdict = judge(mailfactory.build(PW, body="html", body_override=html), rules, policy)
    assert "link_unofficial_host" in codes(verdict)


# --- 3. invisible characters ---------------------------------------------------------------


def test_the_invisible_list_is_every_format_character():
    import sys
    import unicodedata

    every = "".join(
        chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"
    )
    assert strip_invisible(every) == ""
    assert strip_invisible("さくら\u3164病院\u034f") == "さくら病院"  # Hangul filler, CGJ
    assert strip_invisible("ｶﾞ①髙～ A-1") == "ｶﾞ①髙～ A-1"  # visible text untouched


def test_invisible_characters_in_utf8_headers_and_body(rules, policy):
    plain = mailfactory.build(PW, body="text")
    hidden = mailfactory.build(
        PW,
        body="text",
        institution="\ufeffさくら\u200b病院",
        login_id="kgs-\u200dsakura01",
        subject="【厚生労働省G-MIS事務局】G-MIS\u200bのご利用準備完了に伴うパスワード登録のご依頼",
        display_name="厚生労働省\u2060G-MIS事務局",
    )
    _, base_fields, base_verdict = judge(plain, rules, policy)
    parsed, classified, verdict = judge(hidden, rules, policy)
    assert classified.type == PW
    assert classified.fields["institution"] == "さくら病院" == base_fields.fields["institution"]
    assert classified.fields["login_id"] == "kgs-sakura01"
    assert parsed.from_addresses == (("厚生労働省G-MIS事務局", "info@g-mis.net"),)
    assert verdict.genuine and base_verdict.genuine
    assert compact("さくら\u200b病院") == compact("さくら病院")


@pytest.mark.parametrize("charset", JAPANESE)
def test_invisible_characters_as_html_entities(charset, rules, policy):
    html = password_html(
        f'<a href="https://www.med-login.mhlw.go.jp/&#8203;login?c={TOKEN}">こちら</a>',
        institution="&#xFEFF;さくら&#8203;病院&shy;",
    )
    raw = mailfactory.build(PW, charset=charset, body="html", body_override=html)
    parsed, classified, verdict = judge(raw, rules, policy)
    assert classified.fields["institution"] == "さくら病院"
    assert PASSWORD_URL in [link.url for link in parsed.links]
    assert verdict.genuine, verdict.reasons


def test_zero_width_space_cannot_hide_a_foreign_host(rules, policy):
    text = f"さくら病院 ご担当者様\nhttps://www.mhlw.go.jp\u200b.phish.example/login?c={TOKEN}\n"
    raw = mailfactory.build(PW, charset="utf-8", body="text", body_override=text)
    _, _, verdict = judge(raw, rules, policy)
    assert "link_lookalike_host" in codes(verdict)


REVERSED = "https://phish.example/\u202eexe.pj.og.wlhm.www"


@pytest.mark.parametrize(
    "body,charset,content",
    [
        ("text", "utf-8", f"さくら病院 ご担当者様\n{REVERSED}\n"),
        ("text", "utf-8", f"さくら病院 ご担当者様\n\u2067{PASSWORD_URL}\u2069\n"),
        ("text", "utf-8", f"さくら病院 ご担当者様\nこちら \u202d {PASSWORD_URL}\n"),
        ("html", "utf-8", password_html(f'<a href="{REVERSED}">こちら</a>')),
        ("html", "iso-2022-jp", password_html(f'<a href="{PASSWORD_URL}&#x202E;">こちら</a>')),
        ("html", "shift_jis", password_html(f"&#x202B;{PASSWORD_URL}")),
        ("html", "cp932", password_html(f'<a href="{PASSWORD_URL}">&#x2066;こちら</a>')),
    ],
)
def test_bidi_control_beside_a_url_is_suspicious(body, charset, content, rules, policy):
    raw = mailfactory.build(PW, charset=charset, body=body, body_override=content)
    parsed, classified, verdict = judge(raw, rules, policy)
    assert not verdict.genuine
    assert "link_bidi_control" in codes(verdict)
    reason = next(r for r in verdict.reasons if r.code == "link_bidi_control")
    assert "https://" in reason.en and "リンク" in reason.ja
    for text in [*shown_texts(classified, verdict), *(link.url for link in parsed.links)]:
        assert not any(c in text for c in BIDI_CONTROLS), text
    assert TOKEN not in " ".join(shown_texts(classified, verdict))


def test_bidi_control_away_from_urls_is_not(rules, policy):
    text = mailfactory.build(PW, body="text")
    lines = parse(text).text.replace("G-MISへようこそ!", "G-MIS\u202bへようこそ!\u202c")
    raw = mailfactory.build(PW, charset="utf-8", body="text", body_override=lines)
    _, _, verdict = judge(raw, rules, policy)
    assert verdict.genuine, verdict.reasons


# --- 4. fields wherever the mail puts them ----------------------------------------------------

PLACEHOLDERS = (
    "HTMLメールを表示できません。HTML表示に対応したメールソフトでご覧ください。",
    "",
    " \n",
    "このメールはHTML形式で送信されています。",
)


@pytest.mark.parametrize("charset", JAPANESE)
@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_placeholder_text_part_fields_read_from_html(charset, placeholder, rules, policy):
    full = parse(mailfactory.build(PW, charset=charset, body="html"))
    html = full.html
    raw = mailfactory.build(
        PW, charset=charset, body="alternative", body_override=(placeholder, html)
    )
    parsed, classified, verdict = judge(raw, rules, policy)
    assert classified.fields["institution"] == "さくら病院"
    assert classified.fields["login_id"] == "kgs-sakura01"
    assert classified.fields["password_url"].endswith("/login?c=***")
    assert verdict.genuine, verdict.reasons
    spoof = mailfactory.build(
        PW,
        charset=charset,
        body="alternative",
        sender=SPOOF_SENDER,
        body_override=(placeholder, html.replace("www.med-login.mhlw.go.jp", "med-login.example")),
    )
    _, spoofed, spoof_verdict = judge(spoof, rules, policy)
    assert spoofed.fields["login_id"] == "kgs-sakura01"  # shown as a spoof's, never as evidence
    assert {"sender_mismatch", "link_unofficial_host"} <= set(codes(spoof_verdict))


def test_plain_part_fields_win_over_html(rules):
    text = "さくら病院 ご担当者様\nユーザ名(ログインID): kgs-text01\n"
    html = "<p>みなみ病院 ご担当者様</p><p>ユーザ名(ログインID): kgs-html01</p>"
    raw = mailfactory.build(PW, body="alternative", body_override=(text, html))
    fields = classify(parse(raw), rules).fields
    assert (fields["institution"], fields["login_id"]) == ("さくら病院", "kgs-text01")


@pytest.mark.parametrize("charset", JAPANESE)
@pytest.mark.parametrize("body", ["text", "html"])
def test_greeting_on_two_lines_and_wrapped_address(charset, body, rules, policy):
    lines = [
        "医療法人　みどり会 さくら病院",
        "ご担当者様",
        "G-MISユーザが発行済みであることを確認させていただきました。",
        "[申請番号: A20230601-0042]",
        "報告機関名: 医療法人　みどり会 さくら病院",
        "住所: 鹿児島県鹿屋市札元",
        "1丁目1番1号",
        "貴機関でご利用中のユーザ名(ログインID): kgs-sakura01",
        "上記の内容についてお心当たりが無い場合、お手数ですが管轄の都道府県の窓口へご連絡ください。",
    ]
    content = (
        "\n".join(lines) + "\n"
        if body == "text"
        else "<html><body>" + "".join(f"<div>{line}</div>" for line in lines) + "</body></html>"
    )
    raw = mailfactory.build(UC, charset=charset, body=body, body_override=content)
    _, classified, verdict = judge(raw, rules, policy)
    assert classified.fields["institution"] == "医療法人 みどり会 さくら病院"  # spaces folded
    assert classified.fields["address"] == "鹿児島県鹿屋市札元1丁目1番1号"
    assert classified.fields["login_id"] == "kgs-sakura01"
    assert verdict.genuine
    spoof = mailfactory.build(UC, charset=charset, body=body, body_override=content,
                              sender="info@g-rnis.net")  # fmt: skip
    _, spoofed, spoof_verdict = judge(spoof, rules, policy)
    assert spoofed.fields["address"] == "鹿児島県鹿屋市札元1丁目1番1号"
    assert "sender_lookalike" in codes(spoof_verdict)


def test_address_does_not_swallow_the_next_sentence(rules):
    text = (
        "さくら病院 ご担当者様\n住所: 鹿児島県鹿屋市札元1丁目1番1号\n"
        "上記の内容についてご確認ください\n"
    )
    raw = mailfactory.build(UC, body="text", body_override=text)
    assert classify(parse(raw), rules).fields["address"] == "鹿児島県鹿屋市札元1丁目1番1号"


def test_wrapped_latin_address_keeps_its_space(rules):
    text = "Sakura Clinic ご担当者様\n住所: 1-1 Sakuramoto, Kanoya\nKagoshima 893-0000\n"
    raw = mailfactory.build(UC, body="text", body_override=text)
    fields = classify(parse(raw), rules).fields
    assert fields["address"] == "1-1 Sakuramoto, Kanoya Kagoshima 893-0000"


# --- 5. ISO-2022-JP-2 and relatives --------------------------------------------------------


def _jis_mail(label: str, body: bytes, subject_word: str, sender: str = "info@g-mis.net") -> bytes:
    head = (
        f"From: =?{label}?B?{subject_word}?= <{sender}>\r\n"
        "To: jimu@hospital.example\r\n"
        f"Subject: =?{label}?B?{subject_word}?=\r\n"
        f"Date: {format_datetime(mailfactory.DEFAULT_DATE)}\r\n"
        f"Message-ID: <jis-{label}@g-mis.net>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: text/plain; charset="{label}"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    )
    return head.encode("ascii") + body


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


ACCOUNT_LINES = "\r\nユーザ名(ログインID): kgs-hama01\r\n" + PASSWORD_URL + "\r\n"
SUBJECT = mailfactory.SUBJECTS[PW]
JIS_CASES = [
    # label, institution, bytes of the greeting line as that variant writes it
    ("iso-2022-jp-2", "濵田病院", "濵田病院 ご担当者様".encode("iso2022_jp_2")),
    ("ISO-2022-JP-2", "Clínica 濵田", "Clínica 濵田 ご担当者様".encode("iso2022_jp_2")),
    ("iso-2022-jp", "濵田病院", "濵田病院 ご担当者様".encode("iso2022_jp_2")),  # label lies
    ("iso-2022-jp-3", "川﨑病院", "川﨑病院 ご担当者様".encode("iso2022_jp_3")),
    ("iso-2022-jp-2004", "俱知安病院", "俱知安病院 ご担当者様".encode("iso2022_jp_2004")),
    # Microsoft's: ① (NEC row 13) under ESC $ B, half-width kana by ESC ( I and by SO/SI
    ("cp50220", "①髙木病院", b"\x1b$B-!|bLZIB1!\x1b(B \x1b$B$4C4Ev<TMM\x1b(B"),
    ("cp50221", "ｻｸﾗ病院", b"\x1b(I;8W\x1b$BIB1!\x1b(B \x1b$B$4C4Ev<TMM\x1b(B"),
    ("cp50222", "ｻｸﾗ病院", b"\x1b(J\x0e;8W\x0f\x1b$BIB1!\x1b(B \x1b$B$4C4Ev<TMM\x1b(B"),
    ("iso-2022-jp-ms", "①濵田病院", b"\x1b$B-!\x1b$(DI&\x1b$BEDIB1!\x1b(B \x1b$B$4C4Ev<TMM\x1b(B"),
]


@pytest.mark.parametrize(
    "label,institution,greeting", JIS_CASES, ids=[c[0] + "-" + c[1] for c in JIS_CASES]
)
def test_iso2022jp_family(label, institution, greeting, rules, policy):
    body = greeting + ACCOUNT_LINES.encode("iso2022_jp")
    word = _b64(SUBJECT.encode("iso2022_jp"))
    raw = _jis_mail(label, body, word)
    parsed, classified, verdict = judge(raw, rules, policy)
    assert classified.type == PW
    assert classified.fields["institution"] == institution
    assert classified.fields["login_id"] == "kgs-hama01"
    assert verdict.genuine, verdict.reasons
    spoof = _jis_mail(label, body, word, sender="info@g-mis.co")
    _, spoofed, spoof_verdict = judge(spoof, rules, policy)
    assert spoofed.fields["institution"] == institution
    assert "sender_lookalike" in codes(spoof_verdict)


@pytest.mark.parametrize("label", ["iso-2022-jp-2", "iso-2022-jp"])
def test_jis_x_0212_in_encoded_words(label, rules):
    name = "濵田病院 事務局"
    raw = _jis_mail(
        label, ACCOUNT_LINES.encode("ascii", "ignore"), _b64(name.encode("iso2022_jp_2"))
    )
    parsed = parse(raw)
    assert parsed.subject == name
    assert parsed.from_addresses[0][0] == name


def test_jis_decoder_reads_every_designation():
    assert decode_bytes(b"caf\x1b.A\x1bNi \x1b$(CGQ\x1b(B \x1b$AVP\x1b(B", "iso-2022-jp-2") == (
        "café 한 中"
    )
    assert decode_bytes(b"\x1b$(D\x7f\x7f\x1b(B ok", "iso-2022-jp-2") == "\ufffd ok"


# --- 6. mail wrapped by a spam filter ------------------------------------------------------

REPORT = """Spam detection software, running on the system "mx.hospital.example",
has identified this incoming email as possible spam.  The original
message has been attached to this so you can view it or label
similar future email.  If you have any questions, see
the administrator of that system for details.

Content preview:  みなみ病院 ご担当者様 G-MISへようこそ! [...]

Content analysis details:   (5.2 points, 5.0 required)
 pts rule name              description
---- ---------------------- ------------------------------------------------
 3.0 HTML_MESSAGE           BODY: HTML included in message
 See https://spamassassin.apache.org/ and http://wiki.apache.org/spamassassin/Rules
"""


def spam_wrapped(original: bytes, charset: str = "utf-8") -> bytes:
    boundary = "----------=_65A1B2C3.4D5E6F70"
    head = (
        "Received: from localhost by mx.hospital.example with SpamAssassin (version 4.0.0);\r\n"
        f"\tMon, 6 Nov 2023 10:00:05 +0900\r\n"
        "From: =?utf-8?b?5Y6a55Sf5Yq05YON55yBRy1NSVPkuovli5nlsYA=?= <info@g-mis.net>\r\n"
        "To: jimu@sakura-hospital.example\r\n"
        "Subject: ***SPAM*** =?utf-8?b?RvCfmIA=?=\r\n"
        "X-Spam-Flag: YES\r\n"
        "X-Spam-Status: Yes, score=5.2 required=5.0 tests=HTML_MESSAGE\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        "This is a multi-part message in MIME format.\r\n\r\n"
        f"--{boundary}\r\n"
        f'Content-Type: text/plain; charset="{charset}"\r\n'
        "Content-Disposition: inline\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    body = REPORT.replace("\n", "\r\n").encode(charset if charset != "iso-2022-jp" else "utf-8")
    tail = (
        f"\r\n--{boundary}\r\n"
        "Content-Type: message/rfc822; x-spam-type=original\r\n"
        "Content-Description: original message before SpamAssassin\r\n"
        "Content-Disposition: attachment\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return (
        head.encode("ascii")
        + body
        + tail.encode("ascii")
        + original
        + f"\r\n--{boundary}--\r\n".encode()
    )


AUTH_PASS = "mx.hospital.example; spf=pass smtp.mailfrom=g-mis.net; dkim=pass header.d=g-mis.net; dmarc=pass header.from=g-mis.net"
AUTH_FAIL = "mx.hospital.example; spf=fail smtp.mailfrom=g-mis.net; dkim=none; dmarc=fail header.from=g-mis.net"


@pytest.mark.parametrize("charset", JAPANESE)
def test_spam_filter_wrapper_judged_by_the_original(charset, rules, policy):
    original = mailfactory.build(
        PW, charset=charset, institution="みなみ病院",
        extra_headers=[("Authentication-Results", AUTH_PASS)],
    )  # fmt: skip
    raw = spam_wrapped(original, "utf-8")
    scanned = examine(RawMessage("Junk", "junk", "uid:7", raw, 7), rules, policy)
    assert scanned is not None and scanned.folder == "Junk" and scanned.folder_role == "junk"
    assert scanned.type == PW
    assert scanned.subject == mailfactory.SUBJECTS[PW]
    assert scanned.fields["institution"] == "みなみ病院"
    assert scanned.genuine, scanned.reasons
    assert "spam_filter_wrapped" in [w.code for w in scanned.warnings]
    parsed = parse(raw)
    hosts = " ".join(link.url for link in parsed.links)
    assert "apache.org" not in hosts and "Content preview" not in parsed.text
    assert parsed.authentication_results == (AUTH_PASS,)


@pytest.mark.parametrize(
    "changes,code",
    [
        (dict(sender="info@g-mis-support.example"), "sender_mismatch"),
        (dict(extra_headers=[("Authentication-Results", AUTH_FAIL)]), "dmarc_fail"),
        (dict(html_links=[("https://phish.example/login", "ログイン")]), "link_unofficial_host"),
    ],
)
@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp"])
def test_spam_filter_wrapper_around_a_spoof(changes, code, charset, rules, policy):
    original = mailfactory.build(PW, charset=charset, **changes)
    scanned = examine(RawMessage("Junk", "junk", "uid:8", spam_wrapped(original), 8), rules, policy)
    assert scanned is not None and scanned.type == PW
    assert not scanned.genuine and code in [r.code for r in scanned.reasons]


def test_forward_as_attachment_is_not_unwrapped(rules, policy):
    """A person's forward (no spam verdict) stays the forwarder's mail."""
    raw = spam_wrapped(mailfactory.build(PW)).replace(b"X-Spam-Flag: YES", b"X-Spam-Flag: NO")
    raw = raw.replace(b"X-Spam-Status: Yes", b"X-Spam-Status: No")
    parsed = parse(raw)
    assert not parsed.spam_wrapped and parsed.mime_bytes is None
    assert "Spam detection software" in parsed.text


# --- 7. notices that quote the secretariat ------------------------------------------------

NOTICE = (
    "各医療機関 御中\n\n厚生労働省G-MIS事務局から、G-MISアカウントに関するメールが届きます。"
    "迷惑メールフォルダもご確認ください。\nhttps://www.pref.kagoshima.jp/iryo/gmis.html\n"
)


@pytest.mark.parametrize("charset", JAPANESE)
@pytest.mark.parametrize(
    "sender,display",
    [
        ("iryo@pref.kagoshima.lg.jp", "鹿児島県 保健医療福祉課"),
        ("info@kagoshima.med.or.jp", "鹿児島県医師会 事務局"),
    ],
)
def test_notice_quoting_the_secretariat_is_not_a_candidate(charset, sender, display, rules, policy):
    raw = mailfactory.build(
        "unrelated", charset=charset, body="text", sender=sender, display_name=display,
        subject="【転送】G-MIS事務局からのアカウントメールについて", body_override=NOTICE,
    )  # fmt: skip
    assert not is_candidate(parse(raw), rules)
    assert examine(RawMessage("INBOX", "inbox", "uid:1", raw, 1), rules, policy) is None


@pytest.mark.parametrize("charset", JAPANESE)
@pytest.mark.parametrize(
    "changes",
    [
        dict(display_name="厚生労働省G-MIS事務局"),  # claims the secretariat
        dict(sender="g-mis@pref.kagoshima.lg.jp"),
        dict(body_override=NOTICE + "ユーザ名(ログインID): kgs-sakura01\n"),  # account field
        dict(body_override=NOTICE + "https://phish.example/login?c=abcdefghijklmnop\n"),
        dict(body_override=NOTICE + SECOND_URL + "\n"),
    ],
)
def test_claims_and_account_fields_are_still_judged(charset, changes, rules, policy):
    options = dict(
        charset=charset, body="text", sender="iryo@pref.kagoshima.lg.jp",
        display_name="鹿児島県 保健医療福祉課",
        subject="【転送】G-MIS事務局からのアカウントメールについて", body_override=NOTICE,
    )  # fmt: skip
    options.update(changes)
    raw = mailfactory.build("unrelated", **options)
    scanned = examine(RawMessage("INBOX", "inbox", "uid:2", raw, 2), rules, policy)
    assert scanned is not None and not scanned.genuine
    assert scanned.type == "other_gmis"
