"""Outlook .msg files → RFC 822 bytes, so they go through parse → classify → verify as mail.

What Outlook's 名前を付けて保存 and drag-to-desktop write is an OLE compound file of MAPI
properties, read with extract-msg. A received message keeps the transport headers it arrived
with (PR_TRANSPORT_MESSAGE_HEADERS): they are the headers of the result, Authentication-Results
included. A draft or a copy without them gets From, To, Subject, Date and Message-ID from the
properties. The bodies are written as UTF-8: the plain body as Outlook stored it (Unicode, or
8-bit in the message's code page), the HTML body decoded from its Internet code page (932 for
Shift_JIS, 50220–50222 for ISO-2022-JP), an RTF-only body de-encapsulated to HTML or text.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import logging
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Headers the conversion rewrites: the bodies are re-encoded, so the stored ones do not apply.
_BODY_HEADERS = ("content-type", "content-transfer-encoding", "mime-version")
_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to", "sender")
# Windows code pages Outlook records for HTML bodies → the charset label to decode with.
_CODE_PAGES = {
    932: "cp932",
    50220: "cp50220",
    50221: "cp50221",
    50222: "cp50222",
    51932: "euc-jp",
    20932: "euc-jp",
    65001: "utf-8",
    1252: "cp1252",
    28591: "latin-1",
}


_STRING_SUPERSETS = {"shift_jis": "cp932", "shift-jis": "cp932"}


class UnreadableMsg(Exception):
    """The file is not a message extract-msg can read; str() says why."""


def is_msg(data: bytes) -> bool:
    """Is `data` an OLE compound file (what an Outlook .msg is)?"""
    return data.startswith(OLE_MAGIC)


def msg_to_mime(data: bytes) -> bytes:
    """The message in an Outlook .msg file as RFC 822 bytes; UnreadableMsg when it is none."""
    import extract_msg  # here: loading it costs start-up time that .eml-only runs do not need
    from extract_msg.exceptions import ExMsgBaseException
    from extract_msg.msg_classes import MessageBase

    from .parse import decode_bytes  # parse imports this module: imported when needed

    # What is wrong with a file becomes its parse error; extract-msg's own log lines about it
    # would reach cron's mail as stray stderr.
    quiet = logging.getLogger("extract_msg")
    quiet.propagate = False
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())

    try:
        msg = extract_msg.openMsg(data, strict=True, delayAttachments=True)
        if not msg.areStringsUnicode and msg.stringEncoding in _STRING_SUPERSETS:
            # 8-bit strings: Japanese Outlook writes CP932 (①, 髙) under code page 932, which
            # extract-msg reads as strict Shift_JIS.
            encoding = _STRING_SUPERSETS[msg.stringEncoding]
            msg.close()
            msg = extract_msg.openMsg(
                data, strict=True, delayAttachments=True, overrideEncoding=encoding
            )
    except (ExMsgBaseException, OSError, ValueError, TypeError) as exc:
        raise UnreadableMsg(
            f"Outlook .msg file not readable: {type(exc).__name__}: {exc}"
        ) from None
    try:
        if not isinstance(msg, MessageBase):
            raise UnreadableMsg(f"Outlook .msg file holds no mail message ({msg.classType})")
        headers = _headers(msg)
        plain = msg.body or ""
        html_bytes = msg.getStream("__substg1.0_10130102")
        if html_bytes is not None:
            code_page = msg.getPropertyVal("3FDE0003")
            html = decode_bytes(html_bytes, _CODE_PAGES.get(code_page) or _meta_charset(html_bytes))
        elif msg.rtfBody:  # RTF only: Outlook's "rich text", or HTML/text encapsulated in RTF
            from_rtf = msg.deencapsulateBody(msg.rtfBody, extract_msg.enums.DeencapType.HTML)
            html = decode_bytes(from_rtf, "utf-8") if isinstance(from_rtf, bytes) else ""
        else:
            html = ""
    except UnreadableMsg:
        raise
    except Exception as exc:  # extract-msg raises many types on damaged properties
        raise UnreadableMsg(
            f"Outlook .msg file not readable: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        msg.close()
    out = MIMEMultipart("alternative")
    for name, value in headers:
        out[name] = value
    if plain.strip() or not html:
        out.attach(MIMEText(plain.replace("\r\n", "\n"), "plain", "utf-8"))
    if html:
        out.attach(MIMEText(html, "html", "utf-8"))
    return out.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))


def _headers(msg) -> list[tuple[str, str]]:
    """The transport headers the file keeps, else headers from the message's properties."""
    text = msg.headerText or ""
    if text.startswith("Microsoft Mail Internet Headers Version 2.0"):
        text = text[43:].lstrip()
    if text.strip():
        parsed: Message = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
        items = [
            (k, _address_header(v) if k.lower() in _ADDRESS_HEADERS else v)
            for k, v in parsed.items()
            if k.lower() not in _BODY_HEADERS
        ]
        if any(k.lower() in ("from", "subject") for k, _ in items):
            return items
    items = []
    if msg.sender:
        name, addr = email.utils.parseaddr(msg.sender)
        items.append(("From", email.utils.formataddr((name, addr), charset="utf-8")))
    for name, value in (("To", msg.to), ("Subject", msg.subject), ("Message-ID", msg.messageId)):
        if value:
            items.append((name, value if value.isascii() else Header(value, "utf-8").encode()))
    if msg.date:
        items.append(("Date", email.utils.format_datetime(msg.date)))
    return items


def _address_header(value: str) -> str:
    """An address header stored with raw non-ASCII display names, as encoded words: encoding
    the whole value would hide the addresses inside one encoded word."""
    if value.isascii():
        return value
    pairs = email.utils.getaddresses([value])
    return ", ".join(email.utils.formataddr(pair, charset="utf-8") for pair in pairs)


def _meta_charset(html: bytes) -> str | None:
    """The charset an HTML body declares in its <meta>, if any."""
    head = html[:2048].lower()
    at = head.find(b"charset=")
    if at < 0:
        return None
    label = head[at + 8 :].lstrip(b"\"' ").split(b'"')[0].split(b"'")[0].split(b";")[0].strip()
    return label.split(b">")[0].strip(b" /").decode("ascii", "replace") or None
