"""Outlook .msg files (名前を付けて保存, drag-to-desktop): read through extract-msg with the
transport headers they keep and their bodies in the right charset, judged like any mail;
`scan --msg-dir`, `msg_dir` in an account and `classify FILE.msg`. The files are written by
msgforge's .msg writer (tests/msgfactory.py)."""

from __future__ import annotations

import json
from email.header import Header

import mailfactory
import pytest
from msgfactory import build_msg, html_in_rtf, text_in_rtf
from reliability import cli, rows, sqlite_url, write_config

from gmis_mailscan.config import load_config, no_config
from gmis_mailscan.parse import parse
from gmis_mailscan.records import UNPARSEABLE, RawMessage
from gmis_mailscan.scan import examine, verify_policy

PW = "password_registration"
SUBJECT = mailfactory.SUBJECTS[PW]
TOKEN = mailfactory.TOKEN
PASSWORD_URL = f"https://www.med-login.mhlw.go.jp/login?c={TOKEN}"
TEXT = (
    "医療法人①髙木病院～本院 ご担当者様\n\nG-MISへようこそ!\n"
    f"システムをご利用するには {PASSWORD_URL} にアクセスし、パスワードを設定してください。\n"
    "ユーザ名(ログインID): kgs-takagi01\n"
    "2回目以降のアクセスはこちらから https://www.med-login.mhlw.go.jp/s/login/ より\n"
)
HTML = (
    "<html><body><p>{institution} ご担当者様</p><p>G-MISへようこそ!</p>"
    f'<p>システムをご利用するには <a href="{{url}}">{PASSWORD_URL}</a> にアクセスし、'
    "パスワードを設定してください。</p><p>ユーザ名(ログインID): kgs-takagi01</p></body></html>"
)
AUTH_PASS = (
    "Authentication-Results: mx.sakura-hospital.example; spf=pass smtp.mailfrom=g-mis.net;\n"
    " dkim=pass header.d=g-mis.net; dmarc=pass header.from=g-mis.net\n"
)
AUTH_FAIL = (
    "Authentication-Results: mx.sakura-hospital.example; spf=fail smtp.mailfrom=g-mis.net;\n"
    " dkim=none; dmarc=fail header.from=g-mis.net\n"
)


def transport(auth: str = AUTH_PASS, sender: str = "info@g-mis.net") -> str:
    """Transport headers as Outlook keeps them for a received message."""
    return (
        "Received: from mail.g-mis.net (mail.g-mis.net [192.0.2.10])\n"
        " by mx.sakura-hospital.example with ESMTPS; Mon, 6 Nov 2023 10:00:02 +0900\n"
        + auth
        + f"From: =?UTF-8?B?5Y6a55Sf5Yq05YON55yBRy1NSVPkuovli5nlsYA=?= <{sender}>\n"
        "To: jimu@sakura-hospital.example\n"
        f"Subject: {Header(SUBJECT, 'iso-2022-jp').encode()}\n"
        "Date: Mon, 6 Nov 2023 10:00:00 +0900\n"
        "Message-ID: <msg-test.1@g-mis.net>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b1"\n\n'
    )


@pytest.fixture(scope="module")
def policy(rules):
    return verify_policy(no_config(), rules)


def scanned(data: bytes, rules, policy, folder: str = "INBOX"):
    role = "junk" if folder != "INBOX" else "inbox"
    return examine(RawMessage(folder, role, f"{folder}/x.msg", data), rules, policy)


def test_transport_headers_and_japanese_unicode_body(rules, policy):
    data = build_msg(subject=SUBJECT, body=TEXT, transport_headers=transport())
    parsed = parse(data)
    assert parsed.subject == SUBJECT  # from the transport header's ISO-2022-JP word
    assert parsed.message_id == "msg-test.1@g-mis.net"
    assert parsed.authentication_results[0].startswith("mx.sakura-hospital.example; spf=pass")
    m = scanned(data, rules, policy)
    assert m.type == PW and m.genuine, m.reasons
    assert m.fields["institution"] == "医療法人①髙木病院～本院"
    assert m.fields["login_id"] == "kgs-takagi01"
    assert m.fields["password_url"].endswith("/login?c=***")


@pytest.mark.parametrize("code_page", [932])
def test_eight_bit_strings_in_the_message_code_page(code_page, rules, policy):
    """A non-Unicode .msg: subject, names and body in CP932 (①, 髙, ～ included)."""
    data = build_msg(subject=SUBJECT, body=TEXT, string_code_page=code_page)
    m = scanned(data, rules, policy)
    assert m.subject == SUBJECT
    assert m.fields["institution"] == "医療法人①髙木病院～本院"
    assert m.genuine, m.reasons


@pytest.mark.parametrize(
    "code_page,institution",
    [(65001, "医療法人①髙木病院～本院"), (932, "医療法人①髙木病院～本院"), (50220, "濱田病院")],
)
def test_html_only_in_its_internet_code_page(code_page, institution, rules, policy):
    """No plain body, no <meta charset>: the HTML's code page property says how to read it."""
    html = HTML.format(institution=institution, url=PASSWORD_URL)
    data = build_msg(subject=SUBJECT, html=html, html_code_page=code_page)
    m = scanned(data, rules, policy)
    assert m.fields["institution"] == institution
    assert m.fields["login_id"] == "kgs-takagi01"
    assert m.genuine, m.reasons


@pytest.mark.parametrize("kind", ["html", "text"])
def test_rtf_only_body(kind, rules, policy):
    html = HTML.format(institution="医療法人①髙木病院～本院", url=PASSWORD_URL)
    rtf = html_in_rtf(html) if kind == "html" else text_in_rtf(TEXT)
    m = scanned(build_msg(subject=SUBJECT, rtf=rtf), rules, policy)
    assert m.type == PW
    assert m.fields["institution"] == "医療法人①髙木病院～本院"
    assert m.fields["login_id"] == "kgs-takagi01"
    assert m.genuine, m.reasons


@pytest.mark.parametrize(
    "options,code",
    [
        # Outlook shows the properties' sender; the transport From is what arrived
        (dict(transport_headers=transport(sender="info@g-rnis.net")), "sender_lookalike"),
        (dict(transport_headers=transport(auth=AUTH_FAIL)), "dmarc_fail"),
        (dict(sender=("info@g-mis-support.example", "厚生労働省G-MIS事務局")), "sender_mismatch"),
        (
            dict(html=HTML.format(institution="さくら病院", url="https://med-login.example/login")),
            "link_text_mismatch",
        ),
        (
            dict(rtf=html_in_rtf(HTML.format(institution="さくら病院", url="https://x.example/"))),
            "link_unofficial_host",
        ),
    ],
)
def test_spoofed_msg_files(options, code, rules, policy):
    options.setdefault("body", None if "html" in options or "rtf" in options else TEXT)
    m = scanned(build_msg(subject=SUBJECT, **options), rules, policy)
    assert m.type == PW
    assert not m.genuine and code in [r.code for r in m.reasons], m.reasons


def test_damaged_msg_is_unparseable_with_a_reason(rules, policy):
    data = build_msg(subject=SUBJECT, body=TEXT)
    m = scanned(data[:1536], rules, policy)
    assert m.type == UNPARSEABLE
    assert "Outlook .msg file not readable" in m.parse_error


def test_scan_msg_dir_and_classify(tmp_path):
    """`scan --msg-dir DIR` (a subfolder 迷惑メール is a junk folder), then the same folder as
    `msg_dir` of an account in the config, and `classify FILE.msg`."""
    folder = tmp_path / "outlook"
    junk = folder / "迷惑メール"
    junk.mkdir(parents=True)
    genuine = folder / "パスワード登録のご依頼.msg"
    genuine.write_bytes(build_msg(subject=SUBJECT, body=TEXT, transport_headers=transport()))
    spoof = transport(sender="info@g-rnis.net").replace("msg-test.1", "msg-test.2")
    (junk / "spoof.msg").write_bytes(build_msg(subject=SUBJECT, body=TEXT, transport_headers=spoof))
    (folder / "note.eml").write_bytes(mailfactory.build(PW))  # not a .msg: not read
    damaged = build_msg(subject=SUBJECT, body=TEXT)[:1536]
    (folder / "damaged.msg").write_bytes(damaged)
    db = tmp_path / "db.sqlite3"
    config = write_config(tmp_path / "config.toml", sqlite_url(db), [])
    result = cli(config, "scan", "--msg-dir", str(folder), "--name", "outlook")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "outlook: 3 fetched, 3 new" in result.stdout, result.stdout
    stored = rows(
        sqlite_url(db),
        "SELECT l.folder, m.type, m.genuine FROM locations l JOIN messages m "
        "ON m.id = l.message_pk ORDER BY l.folder, m.type",
    )
    assert stored == [("INBOX", PW, 1), ("INBOX", UNPARSEABLE, None), ("迷惑メール", PW, 0)]

    config = write_config(
        tmp_path / "config2.toml",
        sqlite_url(tmp_path / "db2.sqlite3"),
        [{"name": "outlook", "msg_dir": str(folder)}],
    )
    assert load_config(config).accounts[0].local.kind == "msg_dir"
    result = cli(config, "scan")
    assert result.returncode == 0 and "outlook: 3 fetched, 3 new" in result.stdout

    result = cli(None, "classify", "--json", str(genuine))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["type"] == PW and info["genuine"] is True
    assert info["fields"]["institution"] == "医療法人①髙木病院～本院"
    assert TOKEN not in result.stdout
