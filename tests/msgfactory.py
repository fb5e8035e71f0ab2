"""Outlook .msg files for tests, written by a real .msg writer.

msgforge (PyPI, pure Python) writes .msg files: an OLE compound file of MAPI property
streams. Its Message class writes Unicode properties with an HTML body only, so the
variants Outlook produces are built here on msgforge's own compound-file writer and property
table (``msgforge._builder._OleWriter``/``_Props``): a received message's transport headers
(PR_TRANSPORT_MESSAGE_HEADERS), 8-bit strings in a code page (Outlook's non-Unicode
files), HTML in a code page other than UTF-8, RTF-only bodies.
"""

from __future__ import annotations

from datetime import datetime

import compressed_rtf
from msgforge import _builder as forge

PT_STRING8 = 0x001E
_CODECS = {932: "cp932", 50220: "iso2022_jp", 65001: "utf-8", 1252: "cp1252"}


def build_msg(
    *,
    subject: str,
    sender: tuple[str, str] = ("info@g-mis.net", "厚生労働省G-MIS事務局"),
    body: str | None = None,
    html: str | None = None,
    html_code_page: int = 65001,
    rtf: bytes | None = None,
    transport_headers: str | None = None,
    string_code_page: int | None = None,
    sent: datetime | None = None,
) -> bytes:
    """One .msg file. ``string_code_page`` writes the strings 8-bit in that code page (no
    STORE_UNICODE_OK); ``html`` is written in ``html_code_page``; ``rtf`` is stored
    compressed, as Outlook does."""
    ole = forge._OleWriter()
    root = ole.root
    root.clsid = forge._MSG_CLSID
    nameid = ole.add_storage(root, "__nameid_version1.0")
    for stream in ("00020102", "00030102", "00040102"):
        ole.add_stream(nameid, f"__substg1.0_{stream}", b"")
    props = forge._Props()

    def string(prop_id: int, value: str) -> None:
        if string_code_page is None:
            props.add_unicode(ole, root, prop_id, value)
            return
        data = value.encode(_CODECS[string_code_page])
        ole.add_stream(root, f"__substg1.0_{prop_id:04X}{PT_STRING8:04X}", data)
        props._entries.append((prop_id, PT_STRING8, len(data) + 1))

    string(0x001A, "IPM.Note")
    string(0x0037, subject)
    address, name = sender
    for prop_id, value in ((0x0C1A, name), (0x0C1E, "SMTP"), (0x0C1F, address),
                           (0x5D01, address), (0x0042, name), (0x0064, "SMTP"),
                           (0x0065, address)):  # fmt: skip
        string(prop_id, value)
    if transport_headers is not None:
        string(0x007D, transport_headers.replace("\n", "\r\n"))
    if body is not None:
        string(0x1000, body)
    if html is not None:
        props.add_binary(ole, root, 0x1013, html.encode(_CODECS[html_code_page]))
    if rtf is not None:
        props.add_binary(ole, root, 0x1009, compressed_rtf.compress(rtf))
    props.add_long(0x0E07, 0x01)  # MSGFLAG_READ: a received message
    when = forge._datetime_to_filetime(sent or datetime(2023, 11, 6, 1, 0))
    props.add_systime(0x0039, when)
    props.add_systime(0x0E06, when)
    props.add_long(0x340D, 0x00040000 if string_code_page is None else 0)
    props.add_long(0x3FDE, html_code_page)
    if string_code_page is not None:
        props.add_long(0x3FFD, string_code_page)
    ole.add_stream(root, "__properties_version1.0", props.build_msg_stream(0, 0))
    return ole.build()


def html_in_rtf(html: str) -> bytes:
    """HTML encapsulated in RTF (\\fromhtml1), as Outlook stores an HTML mail's RTF body."""
    return forge._encapsulate_html(html)


def text_in_rtf(text: str) -> bytes:
    """Plain text encapsulated in RTF (\\fromtext), as Outlook stores a plain mail's body."""
    body = "".join(
        "\\par\n" if ch == "\n" else ch if ord(ch) < 128 and ch not in "\\{}" else
        f"\\u{ord(ch) if ord(ch) < 32768 else ord(ch) - 65536}?"
        for ch in text
    )  # fmt: skip
    return (
        "{\\rtf1\\ansi\\ansicpg932\\fromtext \\fbidis \\deff0{\\fonttbl{\\f0\\fmodern MS Gothic;}}"
        "\\uc1\\pard\\plain\\f0 " + body + "}"
    ).encode("ascii")
