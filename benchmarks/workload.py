"""The benchmark mail: a hospital mailbox's unrelated mail plus the G-MIS secretariat's mail.

Unrelated mail is built from templates (fast: 100,000 messages in well under a minute), with
the shape real mail has: trace headers, DKIM signatures, Japanese subjects as RFC 2047 words,
bodies in UTF-8 (base64), ISO-2022-JP (7bit), Shift_JIS and plain English, HTML newsletters,
and attachments. Sizes are log-normal: most messages a few KB, one in five carries an attachment
of tens to a few hundred KB. No unrelated From or Subject contains "g-mis", "gmis", "g-rnis"
or "G-MIS", so the server searches of every contestant match exactly the G-MIS mail.

G-MIS mail comes from tests/mailfactory.py (the three account mails and their neighbours in
every encoding the secretariat's mailer uses, plus spoofs that forge the exact From), with
trace headers as a receiving server adds them.
"""

from __future__ import annotations

import base64
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import mailfactory  # noqa: E402

JST = timezone(timedelta(hours=9))
GMIS_SENDER = "info@g-mis.net"


@dataclass(frozen=True)
class Spec:
    """The shape of one workload; QUICK is a small one to check that the harness works."""

    name: str
    inbox: int  # messages in INBOX of the big mailbox
    junk: int  # messages in Junk
    gmis_inbox: int  # of which from the G-MIS sender
    gmis_junk: int
    accounts: int  # accounts of the multi-account case (slices of the big mailbox)
    rss_sizes: tuple[int, ...]  # smaller mailboxes (prefixes of the big one) for the RSS curve
    corpus_others: int  # unrelated messages in the local parse corpus
    seed: int = 20231106

    @property
    def total(self) -> int:
        return self.inbox + self.junk

    @property
    def account_inbox(self) -> int:
        return self.inbox // self.accounts

    @property
    def account_junk(self) -> int:
        return self.junk // self.accounts


FULL = Spec("full", 95_000, 5_000, 180, 20, 20, (10_000, 50_000), 2_000)
QUICK = Spec("quick", 4_750, 250, 18, 2, 5, (1_000, 2_500), 300)


# --- text pools ----------------------------------------------------------------------------

JA_SENTENCES = (
    "いつもお世話になっております。",
    "来週の院内感染対策委員会の資料をお送りします。",
    "ご確認のほど、よろしくお願いいたします。",
    "本日の外来診療は予定どおり午後五時までとなります。",
    "電子カルテの定期メンテナンスのため、日曜日の午前二時から四時まで停止します。",
    "看護部の勤務表を更新しましたので、各部署でご確認ください。",
    "医療安全研修の受講がまだの方は、今月末までに受講をお願いします。",
    "薬剤部より、後発医薬品への切り替えについてお知らせします。",
    "先日の会議の議事録を共有フォルダに保存しました。",
    "検査科の機器更新に伴い、一部の検査の報告時間が変わります。",
    "地域連携室からのお知らせです。紹介状の様式が変更になりました。",
    "健康診断の日程について、総務課までご連絡ください。",
    "新しい職員の歓迎会を来月の第一金曜日に予定しています。",
    "ご注文いただいた商品を本日発送いたしました。",
    "お届け予定日は三日後です。配送状況は下記のページでご確認いただけます。",
    "今月のメールマガジンをお届けします。",
    "セミナーのお申し込みありがとうございました。",
    "当日は受付にてお名前をお伝えください。",
    "請求書を添付いたしましたので、ご査収ください。",
    "お支払い期限は翌月末日となっております。",
    "システム障害のため、一時的にサービスがご利用いただけない状態となっておりました。",
    "現在は復旧しております。ご迷惑をおかけしましたことをお詫び申し上げます。",
    "病棟の空調工事は来週の月曜日から始まります。",
    "患者様からのご意見を取りまとめましたので、ご一読ください。",
    "学会の演題登録の締め切りが近づいております。",
    "外部委託業者の入館手続きについて、警備室と調整済みです。",
    "災害訓練の実施要領を添付します。各部署の担当者は内容をご確認ください。",
    "放射線科の予約枠を一部変更しました。",
)
EN_SENTENCES = (
    "Thank you for your order; it has been shipped today.",
    "Please find attached the minutes of last week's meeting.",
    "Your monthly statement is now available in your account.",
    "We are writing to let you know about changes to our terms of service.",
    "The conference programme has been updated with the keynote speakers.",
    "Registration for the spring workshop closes at the end of this month.",
    "Our support team will get back to you within two business days.",
    "This newsletter brings you the latest research on infection control.",
    "The maintenance window is scheduled for Sunday from 2 to 4 a.m. JST.",
    "If you did not request this change, please contact the help desk at once.",
    "The journal has accepted your manuscript pending minor revisions.",
    "Please review the attached invoice and confirm the delivery address.",
    "Your subscription will renew automatically unless you cancel it.",
    "The webinar recording and slides are now available for download.",
    "We have received your application and will review it shortly.",
    "The new clinical guidelines take effect from the first of next month.",
)
JA_SUBJECTS = (
    "院内感染対策委員会 資料送付",
    "【重要】電子カルテ定期メンテナンスのお知らせ",
    "勤務表更新のご連絡",
    "医療安全研修 受講のお願い",
    "後発医薬品切り替えのお知らせ",
    "会議議事録の共有",
    "検査機器更新に伴う報告時間の変更",
    "紹介状様式変更のお知らせ",
    "健康診断日程のご案内",
    "ご注文の商品を発送しました",
    "メールマガジン 今月号",
    "セミナーお申し込み受付完了",
    "請求書送付のご案内",
    "システム障害復旧のお知らせ",
    "空調工事のお知らせ",
    "学会演題登録締め切りのお知らせ",
    "災害訓練実施要領",
    "放射線科予約枠変更",
    "Re: 来週の打ち合わせについて",
    "Fwd: 見積書の件",
)
EN_SUBJECTS = (
    "Your order has shipped",
    "Minutes of the weekly meeting",
    "Your monthly statement is ready",
    "Important changes to our terms of service",
    "Conference programme update",
    "Spring workshop registration",
    "Re: support request",
    "Infection control newsletter",
    "Scheduled maintenance",
    "Security notice for your account",
    "Manuscript decision",
    "Invoice attached",
    "Webinar recording available",
    "Application received",
)
SENDERS = (
    ("総務課", "soumu@sakura-hospital.example"),
    ("看護部", "kango@sakura-hospital.example"),
    ("薬剤部", "yakuzai@sakura-hospital.example"),
    ("医療安全管理室", "anzen@sakura-hospital.example"),
    ("地域連携室", "renkei@sakura-hospital.example"),
    ("情報システム課", "it@sakura-hospital.example"),
    ("山田 太郎", "t.yamada@sakura-hospital.example"),
    ("佐藤 花子", "h.sato@sakura-hospital.example"),
    ("鹿児島県医師会", "info@kagoshima-med.example"),
    ("医療機器販売株式会社", "sales@iryoukiki.example.co.jp"),
    ("通販ショップ", "order@shop.example.co.jp"),
    ("学会事務局", "office@gakkai.example.or.jp"),
    ("医学書院メールマガジン", "magazine@igaku.example.co.jp"),
    ("Medical Journal", "editor@journal.example.com"),
    ("Conference Office", "office@conference.example.org"),
    ("Support", "support@cloud.example.com"),
    ("Billing", "billing@vendor.example.com"),
    ("Webinars", "events@webinar.example.net"),
)
_JA_SENDERS = SENDERS[:13]
_EN_SENDERS = SENDERS[13:]
RECIPIENT = "jimu@sakura-hospital.example"


def _check_pools() -> None:
    """No unrelated header may match the server searches (case-insensitive substrings)."""
    needles = ("g-mis", "gmis", "g-rnis")
    for text in (*JA_SUBJECTS, *EN_SUBJECTS, *(f"{n} {a}" for n, a in SENDERS)):
        assert not any(n in text.lower() for n in needles), text


_check_pools()


# --- one unrelated message -----------------------------------------------------------------


class MailMaker:
    """Unrelated mail from templates; one instance per workload (its random stream)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        blob = random.Random(seed + 1).randbytes(600_000)
        # One long base64 text; attachments are slices of it (different offsets).
        self.b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
        self._subjects: dict[tuple[str, str], str] = {}
        self.count = 0

    def _lognormal(self, median: float, sigma: float, low: float, high: float) -> int:
        return int(min(max(self.rng.lognormvariate(0, sigma) * median, low), high))

    def _text(self, sentences: tuple[str, ...], chars: int) -> list[str]:
        paragraphs, length = [], 0
        while length < chars:
            para = "".join(self.rng.choice(sentences) for _ in range(self.rng.randint(1, 4)))
            paragraphs.append(para)
            length += len(para) + 2
        return paragraphs

    def _subject(self, text: str, charset: str) -> str:
        key = (text, charset)
        if key not in self._subjects:
            if text.isascii():
                self._subjects[key] = text
            else:
                self._subjects[key] = Header(text, charset).encode()
        return self._subjects[key]

    def message(self, when: datetime) -> bytes:
        rng = self.rng
        self.count += 1
        ja = rng.random() < 0.6
        name, addr = rng.choice(_JA_SENDERS if ja else _EN_SENDERS)
        domain = addr.rpartition("@")[2]
        if ja:
            charset = rng.choices(("utf-8", "iso-2022-jp", "shift_jis"), (6, 3, 1))[0]
            subject_text = rng.choice(JA_SUBJECTS)
            if rng.random() < 0.5:
                subject_text += f"（{rng.randint(1, 999)}）"
            paragraphs = self._text(JA_SENTENCES, self._lognormal(900, 0.8, 80, 20_000))
        else:
            charset = "us-ascii"
            subject_text = rng.choice(EN_SUBJECTS)
            if rng.random() < 0.5:
                subject_text += f" #{rng.randint(1000, 99999)}"
            paragraphs = self._text(EN_SENTENCES, self._lognormal(1_800, 0.8, 150, 40_000))
        header_charset = "iso-2022-jp" if charset in ("iso-2022-jp", "shift_jis") else "utf-8"
        display = self._subject(name, header_charset)
        headers = self._trace(when, domain, addr)
        headers += [
            f"From: {display} <{addr}>",
            f"To: {RECIPIENT}",
            f"Subject: {self._subject(subject_text, header_charset)}",
            f"Date: {format_datetime(when)}",
            f"Message-ID: <{when:%Y%m%d%H%M%S}.{self.count}.{rng.getrandbits(40):x}@{domain}>",
            "MIME-Version: 1.0",
        ]
        if rng.random() < 0.3:
            headers.append(f"List-Unsubscribe: <https://{domain}/unsubscribe?u={self.count}>")
        text_part = self._part("plain", "\r\n\r\n".join(paragraphs), charset)
        html = rng.random() < 0.45
        parts = [text_part]
        if html:
            body = "".join(
                f'<p style="margin:0 0 12px 0;font-size:14px;line-height:1.6">{p}</p>\r\n'
                for p in paragraphs
            )
            page = (
                '<html><head><meta charset="utf-8"><style>body{font-family:sans-serif}</style>'
                f'</head><body><table width="600" align="center"><tr><td>\r\n{body}'
                f'<a href="https://{domain}/news/{self.count}">https://{domain}/</a>'
                "</td></tr></table></body></html>"
            )
            parts = [self._alternative(text_part, self._part("html", page, charset))]
        if rng.random() < 0.2:
            size = self._lognormal(60_000, 1.0, 8_000, 420_000)
            start = rng.randrange(0, len(self.b64) - size - 200)
            start -= start % 78  # line aligned
            chunk = self.b64[start : start + size // 78 * 78]
            parts.append(
                b'Content-Type: application/pdf; name="document.pdf"\r\n'
                b'Content-Disposition: attachment; filename="document.pdf"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n" + chunk
            )
        head = "\r\n".join(headers).encode("ascii") + b"\r\n"
        if len(parts) == 1:
            return head + parts[0]
        boundary = f"=_mixed_{self.count}_{rng.getrandbits(32):x}"
        return head + _multipart("mixed", boundary, parts)

    def _trace(self, when: datetime, domain: str, addr: str) -> list[str]:
        rng = self.rng
        stamp = format_datetime(when)
        ip = f"198.51.100.{rng.randint(1, 254)}"
        qid = f"{rng.getrandbits(48):012X}"
        bh = base64.b64encode(rng.randbytes(32)).decode()
        sig = base64.b64encode(rng.randbytes(256)).decode()
        sig_lines = "\r\n\t ".join(sig[i : i + 70] for i in range(0, len(sig), 70))
        return [
            f"Return-Path: <bounce-{rng.getrandbits(24):x}@{domain}>",
            f"Delivered-To: {RECIPIENT}",
            f"Received: from mx1.sakura-hospital.example (localhost [127.0.0.1])\r\n"
            f"\tby mail.sakura-hospital.example (Postfix) with ESMTP id {qid}\r\n"
            f"\tfor <{RECIPIENT}>; {stamp}",
            f"Received: from mail.{domain} (mail.{domain} [{ip}])\r\n"
            f"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
            f"\tby mx1.sakura-hospital.example (Postfix) with ESMTPS id {qid[::-1]}\r\n"
            f"\tfor <{RECIPIENT}>; {stamp}",
            f"Authentication-Results: mx1.sakura-hospital.example; spf=pass "
            f"smtp.mailfrom={domain};\r\n\tdkim=pass header.d={domain} header.s=s1;\r\n"
            f"\tdmarc=pass header.from={domain}",
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s1;\r\n"
            f"\tt={int(when.timestamp())}; h=From:To:Subject:Date:Message-ID:MIME-Version;\r\n"
            f"\tbh={bh};\r\n\tb={sig_lines}",
            f"X-Mailer: {rng.choice(('Microsoft Outlook 16.0', 'Thunderbird 115.4', 'Becky! 2.81'))}",
        ]

    def _part(self, subtype: str, text: str, charset: str) -> bytes:
        if charset == "us-ascii":
            body = text.encode("ascii")
            cte = "7bit"
        elif charset == "iso-2022-jp":
            body = text.encode("iso-2022-jp")
            cte = "7bit"
        else:
            body = base64.encodebytes(text.encode(charset)).replace(b"\n", b"\r\n")
            cte = "base64"
        if cte == "7bit":
            body = _wrap(body)
        head = (
            f"Content-Type: text/{subtype}; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n"
        )
        return head.encode("ascii") + body

    def _alternative(self, plain: bytes, html: bytes) -> bytes:
        boundary = f"=_alt_{self.count}_{self.rng.getrandbits(32):x}"
        return _multipart("alternative", boundary, [plain, html])


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    sep = f"\r\n--{boundary}\r\n".encode()
    return (
        head
        + b"This is a multi-part message in MIME format."
        + sep
        + sep.join(parts)
        + (f"\r\n--{boundary}--\r\n".encode())
    )


def _wrap(body: bytes, width: int = 180) -> bytes:
    """Keep 7bit lines short (ISO-2022-JP escapes may not be split: split at paragraph ends)."""
    out = []
    for line in body.split(b"\r\n"):
        while len(line) > width and b"\x1b" not in line:
            out.append(line[:width])
            line = line[width:]
        out.append(line)
    return b"\r\n".join(out) + b"\r\n"


# --- G-MIS mail ----------------------------------------------------------------------------

INSTITUTIONS = ("さくら病院", "医療法人①髙木病院～本院", "かごしま中央クリニック", "みなみ薬局")


class GmisMaker:
    """The secretariat's mail (and spoofs forging its exact From), with trace headers."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed + 2)
        self.genuine = [raw for _, raw in mailfactory.genuine_variants()]
        self.spoofs = [
            raw
            for _, raw in mailfactory.spoof_variants()
            if b"From: =?utf-8?b?5Y6a55Sf5Yq05YON55yBRy1NSVPkuovli5nlsYA=?= <info@g-mis.net>" in raw
        ]
        self.count = 0

    def message(self, when: datetime, junk: bool) -> bytes:
        """A fresh G-MIS message; in junk folders one in three is a spoof."""
        rng = self.rng
        self.count += 1
        trace = (
            f"Received: from mta.g-mis.net (mta.g-mis.net [203.0.113.{rng.randint(1, 254)}])\r\n"
            f"\tby mx1.sakura-hospital.example (Postfix) with ESMTPS id {rng.getrandbits(48):X}"
            f";\r\n\t{format_datetime(when)}\r\n"
            "Authentication-Results: mx1.sakura-hospital.example; spf=pass "
            "smtp.mailfrom=g-mis.net;\r\n\tdkim=pass header.d=g-mis.net header.s=sf1;\r\n"
            "\tdmarc=pass header.from=g-mis.net\r\n"
        ).encode()
        if junk and rng.random() < 1 / 3 and self.spoofs:
            raw = rng.choice(self.spoofs)
            return _replace_header(raw, b"Message-ID", f"<spoof.{self.count}@g-mis.net>")
        if rng.random() < 0.3:
            raw = rng.choice(self.genuine)
            raw = _replace_header(raw, b"Message-ID", f"<gmis.{self.count}@g-mis.net>")
            return trace + raw
        kind = rng.choices(
            ("password_registration", "user_confirmation", "account_notice", "other"),
            (5, 2, 2, 1),
        )[0]
        charset = rng.choice(mailfactory.CHARSETS)
        institution = rng.choice(INSTITUTIONS)
        if charset != "cp932":  # ① and 髙 exist in CP932 only
            institution = institution.replace("医療法人①髙木病院～本院", "高木病院")
        raw = mailfactory.build(
            kind,
            institution=institution,
            login_id=f"kgs-{rng.randint(10000, 99999)}",
            application_number=f"A{when:%Y%m%d}-{rng.randint(1, 9999):04d}",
            token="".join(
                rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", k=32)
            ),
            charset=charset,
            body=rng.choice(mailfactory.BODIES),
            date=when,
            message_id=f"<gmis.{self.count}@g-mis.net>",
        )
        return trace + raw


def _replace_header(raw: bytes, name: bytes, value: str) -> bytes:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    out = [
        (name + b": " + value.encode()) if line.lower().startswith(name.lower() + b":") else line
        for line in lines
    ]
    if not any(line.lower().startswith(name.lower() + b":") for line in lines):
        out.append(name + b": " + value.encode())
    return b"\r\n".join(out) + sep + body


# --- a whole folder ------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    data: bytes
    when: datetime
    gmis: bool


def folder_messages(
    count: int, gmis: int, junk: bool, mails: MailMaker, gmis_maker: GmisMaker, seed: int
) -> Iterator[Planned]:
    """`count` messages in date order over five years, `gmis` of them at random places."""
    rng = random.Random(seed)
    where = set(rng.sample(range(count), gmis))
    start = datetime(2019, 4, 1, 8, 0, tzinfo=JST)
    span = (datetime(2024, 3, 31, 18, 0, tzinfo=JST) - start).total_seconds()
    for i in range(count):
        when = start + timedelta(seconds=int(span * i / max(count, 1)))
        if i in where:
            yield Planned(gmis_maker.message(when, junk), when, True)
        else:
            yield Planned(mails.message(when), when, False)


def new_gmis_mails(count: int, seed: int) -> list[bytes]:
    """Mail that "arrives" for the rescan figure."""
    maker = GmisMaker(seed + 99)
    now = datetime.now(UTC).astimezone(JST).replace(microsecond=0)
    stamp = now.strftime("%Y%m%d%H%M%S")
    return [
        _replace_header(
            maker.message(now, junk=False), b"Message-ID", f"<new.{stamp}.{i}@g-mis.net>"
        )
        for i in range(count)
    ]


def local_corpus(spec: Spec) -> tuple[list[bytes], list[bytes]]:
    """(G-MIS mails, unrelated mails) for the parse-throughput figure."""
    mails, gmis = MailMaker(spec.seed + 10), GmisMaker(spec.seed + 10)
    when = datetime(2023, 11, 6, 10, 0, tzinfo=JST)
    n_gmis = spec.gmis_inbox + spec.gmis_junk
    return (
        [gmis.message(when, junk=i % 10 == 0) for i in range(n_gmis)],
        [mails.message(when) for _ in range(spec.corpus_others)],
    )
