"""Forwarded copies (forwards.py) and how a scan records them (scan.examine)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import mailfactory
import pytest

from gmis_mailscan.forwards import find_forward
from gmis_mailscan.parse import parse
from gmis_mailscan.records import RawMessage
from gmis_mailscan.scan import examine
from gmis_mailscan.verify import VerifyPolicy

PW_SUBJECT = mailfactory.SUBJECTS["password_registration"]
COLLEAGUE = "さくら病院 事務 <jimu@sakura-hospital.example>"


def message(subject: str, text: str, sender: str = COLLEAGUE, attach: bytes | None = None):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "it@sakura-hospital.example"
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="sakura-hospital.example")
    msg.set_content(text)
    if attach is not None:
        msg.add_attachment(email.message_from_bytes(attach, policy=email.policy.default))
    return msg.as_bytes(policy=email.policy.SMTP)


def original_text(**kw) -> str:
    raw = mailfactory.build("password_registration", body="text", **kw)
    return email.message_from_bytes(raw, policy=email.policy.default).get_content()


def forward_of(raw: bytes, rules):
    return find_forward(parse(raw), raw, rules)


@pytest.mark.parametrize(
    "marker, label",
    [
        ("---------- Forwarded message ---------", "Subject"),
        ("---------- 転送されたメッセージ ----------", "件名"),
        ("-----Original Message-----", "Subject"),
        ("-----元のメッセージ-----", "件名"),
        ("Begin forwarded message:", "Subject"),
    ],
)
def test_inline_forward_markers(rules, marker, label):
    text = (
        f"ご確認ください。\n\n{marker}\nFrom: 厚生労働省G-MIS事務局 <info@g-mis.net>\n"
        f"{label}: {PW_SUBJECT}\n\n{original_text(login_id='kgs-in1')}"
    )
    forward = forward_of(message("お知らせ G-MIS事務局", text), rules)
    assert forward is not None and forward.how == "inline"
    assert forward.forwarder == "jimu@sakura-hospital.example"
    assert forward.inner.subject == PW_SUBJECT
    assert "ご確認ください" not in forward.inner.text and "kgs-in1" in forward.inner.text


def test_attached_original_is_read_as_its_own_message(rules):
    original = mailfactory.build("password_registration", login_id="kgs-att1")
    forward = forward_of(message(f"FW: {PW_SUBJECT}", "転送します", attach=original), rules)
    assert forward is not None and forward.how == "attachment"
    assert forward.inner.from_addresses[0][1] == "info@g-mis.net"
    assert forward.inner.subject == PW_SUBJECT and "kgs-att1" in forward.inner.text


@pytest.mark.parametrize("prefix", ["Fwd: ", "FW: ", "転送: ", "ＦＷ：", "Fwd: Fwd: "])
def test_forward_prefix_of_the_subject_alone(rules, prefix):
    forward = forward_of(message(prefix + PW_SUBJECT, original_text()), rules)
    assert forward is not None and forward.how == "subject"


def test_not_forwards(rules):
    genuine = mailfactory.build("password_registration")
    assert forward_of(genuine, rules) is None
    # A display name claiming the secretariat is a spoof's trick, not a colleague's forward.
    spoof = message(f"Fwd: {PW_SUBJECT}", original_text(), sender="G-MIS事務局 <a@evil.example>")
    assert forward_of(spoof, rules) is None
    # A spam filter wrapping the secretariat's mail keeps its From: not a forward either.
    wrapped = message(
        f"***SPAM*** {PW_SUBJECT}", "Spam detection report", "info@g-mis.net", attach=genuine
    )
    assert forward_of(wrapped, rules) is None
    assert forward_of(message(f"RE: {PW_SUBJECT}", "承知しました"), rules) is None


def scanned(raw: bytes, rules, role: str = "inbox"):
    return examine(RawMessage("Sent" if role == "sent" else "INBOX", role, "uid:1", raw, 1),
                   rules, VerifyPolicy())  # fmt: skip


def test_a_forward_is_never_genuine_and_names_forwarder_subject_and_login_id(rules):
    original = mailfactory.build("password_registration", login_id="kgs-sc1")
    record = scanned(message(f"転送: {PW_SUBJECT}", "転送", attach=original), rules)
    assert (record.type, record.genuine) == ("password_registration", False)
    assert record.fields["login_id"] == "kgs-sc1"
    assert record.fields["forwarded_by"] == "jimu@sakura-hospital.example"
    assert record.fields["forwarded_subject"] == PW_SUBJECT
    assert "c=***" in record.fields["password_url"]  # the token stays masked in a forward too
    (reason,) = record.reasons
    assert reason.code == "forwarded_copy"
    assert "kgs-sc1" in reason.en and "jimu@sakura-hospital.example" in reason.ja


def test_a_forwarded_phish_keeps_its_link_reasons(rules):
    phish = mailfactory.build(
        "password_registration", html_links=[("https://www.med-login.mhbw.go.jp/login?c=x", "x")]
    )
    record = scanned(message(f"Fwd: {PW_SUBJECT}", "転送", attach=phish), rules)
    codes = [r.code for r in record.reasons]
    assert codes[0] == "forwarded_copy" and any(c.startswith("link_") for c in codes[1:])


def test_sent_keeps_forwards_of_account_mail_only(rules):
    other = mailfactory.build("other")
    assert (
        scanned(message("Fwd: 【厚生労働省G-MIS事務局】お知らせ", "x", attach=other), rules, "sent")
        is None
    )
    assert scanned(mailfactory.build("password_registration"), rules, "sent") is None
    pw = mailfactory.build("password_registration")
    kept = scanned(message(f"Fwd: {PW_SUBJECT}", "x", attach=pw), rules, "sent")
    assert kept is not None and kept.type == "password_registration" and not kept.genuine
