"""Summary mails through a real SMTP server on loopback (aiosmtpd, tests/smtpserver.py).

STARTTLS with AUTH against the test CA; the received mail is parsed back and read as a
person would: institutions, remedies, phones and login IDs in decoded Japanese, the HTML part
escaped with no link, no password-URL token, no SMTP password. A run with no change sends
nothing; a run while the server is down exits 7 and the next one sends the held changes once.
"""

from __future__ import annotations

import json
import re
import shutil

import mailfactory
import pytest
from reliability import REPO_ROOT, cli, write_config
from smtpserver import SmtpServer

from gmis_mailscan.config import load_config

MAIL = REPO_ROOT / "examples" / "mail"
SMTP_PASSWORD = "s3cret-smtp-Pa55"
HOSTILE = "<script>alert(1)</script>悪意病院"


def _notify_table(server: SmtpServer, tmp, **over) -> str:
    (tmp / "smtp.password").write_text(SMTP_PASSWORD + "\n")
    keys = {
        "smtp_host": "localhost",
        "smtp_port": server.port,
        "security": server.security,
        "from": "gmis@hospital.example",
        "to": ["it@hospital.example", "jimu@hospital.example"],
        "subject_prefix": "[G-MIS監視]",
    }
    if server.auth:
        keys |= {"username": server.auth[0], "password_file": str(tmp / "smtp.password")}
    if server.security != "plain":
        keys["ca_file"] = str(server.ca_file)
    keys |= over
    return "\n[notify]\n" + "".join(
        f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in keys.items()
    )


@pytest.fixture
def tls_dir(dovecot_server):
    """The test CA and server certificate tests/dovecot.py made (127.0.0.1, localhost)."""
    return dovecot_server.base / "tls"


def _mailbox(tmp, name, *messages: bytes):
    cur = tmp / name / "cur"
    cur.mkdir(parents=True)
    for i, data in enumerate(messages):
        (cur / f"{i}.mail:2,S").write_bytes(data)
    return {"name": name, "maildir": str(tmp / name)}


def _config(tmp, server, accounts, **over):
    return write_config(
        tmp / "config.toml",
        f"sqlite:///{tmp / 'db.sqlite3'}",
        accounts,
        raw=_notify_table(server, tmp, **over),
    )


def _text_and_html(msg):
    return (
        msg.get_body(("plain",)).get_content(),
        msg.get_body(("html",)).get_content(),
    )


def test_summary_mail_over_starttls_with_auth(tls_dir, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    server = SmtpServer(tls_dir, security="starttls", auth=("gmis", SMTP_PASSWORD)).start()
    try:
        accounts = [
            {"name": "no-mail", "maildir": str(shutil.copytree(MAIL / "no-mail", work / "nm")),
             "institution": "悪意\r\nBcc: evil@attacker.example https://evil.example/x",
             "address": "鹿児島県鹿屋市1"},
            _mailbox(work, "sakura", mailfactory.build(
                "password_registration", institution="さくら病院", login_id="kgs-sakura01",
                charset="iso-2022-jp")),
            _mailbox(work, "hostile", mailfactory.build(
                "user_confirmation", institution=HOSTILE, login_id="kgs-h1")),
            _mailbox(work, "existing", mailfactory.build(
                "user_confirmation", institution="みどり医院", login_id="kgs-midori")),
        ]  # fmt: skip
        config = _config(work, server, accounts)
        first = cli(config, "-q", "scan", "--notify")
        assert first.returncode == 0, first.stderr
        assert first.stdout == first.stderr == ""
        (msg,) = server.messages
        assert server.envelopes == [
            ("gmis@hospital.example", ["it@hospital.example", "jimu@hospital.example"])
        ]
        assert server.auth_attempts and server.auth_attempts[0][1] == "gmis"
        subject = msg["Subject"]
        assert subject.startswith("[G-MIS監視] G-MISアカウントメール: 要対応 2件")
        assert "\n" not in subject and "\r" not in subject and msg["Bcc"] is None
        assert len(msg.get_all("Subject")) == 1 and "https" not in subject
        text, html = _text_and_html(msg)
        assert "悪意 Bcc: evil@attacker.example hxxps://evil[.]example/x" in text
        # First notification: every institution that needs action, none that does not.
        assert "さくら病院" in text and "対応方法4" in text and "kgs-sakura01" in text
        assert "鹿屋保健所（指導監査係） 0994-52-2125" in text
        assert "新規ユーザ登録申請フォームから申請" in text
        assert "みどり医院" not in text and "hostile" not in text  # path none
        raw = b"".join(server.raw)
        assert mailfactory.TOKEN.encode() not in raw and mailfactory.TOKEN not in text + html
        assert SMTP_PASSWORD.encode() not in raw
        assert "<a " not in html.lower() and "https://evil" not in text + html
        assert "<br>" in html and "さくら病院" in html
        # The full report is attached, as `report --format html` makes it (flowcharts and all).
        (attached,) = [p for p in msg.iter_attachments() if p.get_filename()]
        assert attached.get_filename() == "gmis-mailscan-report.html"
        page = attached.get_content()
        assert "Content-Security-Policy" in page and "<svg" in page
        assert "さくら病院" in page and "kgs-sakura01" in page and "0994-52-2125" in page
        assert "<script>alert(1)</script>" not in page and mailfactory.TOKEN not in page

        again = cli(config, "-q", "scan", "--notify")
        assert again.returncode == 0, again.stderr
        assert len(server.messages) == 1  # nothing changed: no mail

        # A spoof arrives, a hostile name gets a new login ID: both mailed, escaped.
        shutil.copy(mailfactory_spoof(work), work / "existing" / "cur" / "spoof.mail:2,S")
        (work / "hostile" / "cur" / "1.mail:2,S").write_bytes(mailfactory.build(
            "user_confirmation", institution=HOSTILE, login_id="kgs-h2"))  # fmt: skip
        third = cli(config, "-q", "scan", "--notify")
        assert third.returncode == 0, third.stderr
        msg = server.messages[-1]
        text, html = _text_and_html(msg)
        assert msg["Subject"].startswith(
            "[G-MIS監視] G-MISアカウントメール: 2件の変更（要対応 0件）"
        )
        assert "なりすましの疑いがある新しいメール: 1通" in text and "みどり医院" in text
        # its warning as the report words it, in Japanese, not as a code list
        assert "警告: ⚠" in text or "警告: なりすまし" in text, text
        assert "suspicious password_registration" not in text and "sender_lookalike" not in text
        assert "ログインIDが変わりました: kgs-h2" in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;悪意病院" in html and "<script" not in html
        assert "<script>alert(1)</script>悪意病院" in text
        assert "さくら病院" not in text  # unchanged
    finally:
        server.stop()


def mailfactory_spoof(tmp):
    path = tmp / "spoof.eml"
    path.write_bytes(
        mailfactory.build(
            "password_registration", institution="みどり医院", sender="info@g-rnis.net"
        )
    )
    return path


def test_smtp_down_exits_7_and_the_next_run_sends_the_held_changes_once(tls_dir, tmp_path):
    server = SmtpServer(tls_dir, security="tls")
    accounts = [_mailbox(tmp_path, "sakura", mailfactory.build("password_registration"))]
    config = _config(tmp_path, server, accounts, notify=True)  # scans notify by default
    down = cli(config, "-q", "scan")
    assert down.returncode == 7
    (line,) = down.stderr.splitlines()
    assert "notification not sent" in line and f"localhost:{server.port}" in line
    history = json.loads(cli(config, "history", "-f", "json").stdout)
    assert [h["to_path"] for h in history] == ["method4"]  # the scan's data was kept

    server.start()
    try:
        up = cli(config, "-q", "scan")
        assert up.returncode == 0, up.stderr
        (msg,) = server.messages
        assert msg["Subject"] == "[G-MIS監視] G-MISアカウントメール: 要対応 1件 - さくら病院"
        assert "さくら病院" in msg.get_body(("plain",)).get_content()
        assert cli(config, "-q", "scan").returncode == 0
        assert cli(config, "notify").stdout.strip() == "nothing new to tell"
        assert len(server.messages) == 1  # sent exactly once
        test = cli(config, "notify", "--test")
        assert test.returncode == 0, test.stderr
        assert server.messages[-1]["Subject"].endswith("通知のテスト")
        assert "security = " not in server.messages[-1].get_body(("plain",)).get_content()
    finally:
        server.stop()
    failed_test = cli(config, "notify", "--test")
    assert failed_test.returncode == 7 and "cannot connect" in failed_test.stderr


@pytest.mark.parametrize(
    "over, key",
    [
        ({"security": "plain", "smtp_host": "mail.example.jp"}, "notify.security"),
        ({"to": []}, "notify.to"),
        ({"from": "a@b\r\nBcc: x@y"}, "notify.from"),
        ({"lang": "fr"}, "notify.lang"),
        ({"smtp_prot": 25}, "notify.smtp_prot"),
    ],
)
def test_bad_notify_config_names_the_key(tmp_path, over, key):
    server = SmtpServer()
    config = _config(tmp_path, server, [_mailbox(tmp_path, "a")], **over)
    result = cli(config, "notify", "--test")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert f"{config}: {key}:" in line


def test_plain_smtp_on_loopback_in_english(tmp_path):
    with SmtpServer() as server:
        accounts = [_mailbox(tmp_path, "sakura", mailfactory.build("password_registration"))]
        config = _config(tmp_path, server, accounts, lang="en", smtp_host="127.0.0.1")
        assert cli(config, "-q", "scan", "--notify").returncode == 0
        (msg,) = server.messages
        assert msg["Subject"] == "[G-MIS監視] G-MIS account mail: 1 need action - さくら病院"
        assert "Login ID: kgs-sakura01" in msg.get_body(("plain",)).get_content()


def test_the_example_notify_table_is_valid(tmp_path):
    text = (REPO_ROOT / "config.example.toml").read_text(encoding="utf-8")
    block = text[text.index("# [notify]") : text.index("[watch]")]
    (tmp_path / "smtp.password").write_text("x\n")
    config = tmp_path / "config.toml"
    config.write_text(
        re.sub(r"(?m)^# (?=[a-z_\[])", "", block).replace(
            "/etc/gmis-mailscan/smtp.password", str(tmp_path / "smtp.password")
        ),
        encoding="utf-8",
    )
    notify = load_config(config).notify
    assert notify is not None and notify.security == "starttls" and len(notify.to) == 2
    assert notify.password is not None and notify.password.file == tmp_path / "smtp.password"
