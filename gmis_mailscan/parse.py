"""Bytes → ParsedMessage: headers and bodies decoded, HTML rendered to text, links listed.

mail-parser parses the MIME structure and headers, but its body decoding loses Japanese:
mail-parser 4.8 returns a 7bit ISO-2022-JP part undecoded (raw ``ESC $ B``) and decodes
Shift_JIS strictly, turning the CP932 characters real mailers write (①, 髙, ～) into U+FFFD.
So the text parts are decoded here, from their bytes, with Japanese-aware charset handling.
"""

from __future__ import annotations

import email.header
import email.parser
import email.utils
import re
from datetime import datetime
from email.message import Message

import mailparser
from bs4 import BeautifulSoup
from bs4.element import Tag
from mailparser.exceptions import MailParserRecursionError

from .links import extract_links
from .records import ParsedMessage


class UnparseableMessage(Exception):
    """The message cannot be read at all; str() is the reason stored for it."""


# Declared charsets that mailers actually write in a superset: decode with the superset.
_CHARSET_SUPERSETS = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso-2022-jp",
    "csiso2022jp": "iso-2022-jp",
    "euc-jp": "euc_jis_2004",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
}
_GUESSES = ("utf-8", "iso-2022-jp", "cp932", "euc_jis_2004")
_ESC_JIS = re.compile(rb"\x1b[\$\(][@BJI]")
# Defects the stdlib reports for charsets that decode_bytes() handles itself.
_HANDLED_DEFECTS = {"CharsetDecodeDefect", "UndecodableBytesDefect", "NonASCIILocalPartDefect"}
_BLOCK_TAGS = ("p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "blockquote")
_SKIPPED_TAGS = ("script", "style", "head")


def parse(raw: bytes) -> ParsedMessage:
    """Parse one message; raise UnparseableMessage with a reason when nothing can be read."""
    if not raw.strip():
        raise UnparseableMessage("empty message")
    try:
        msg, defect_names = _mime(raw)
        plain, html = _bodies(msg)
    except UnparseableMessage:
        raise
    except (RecursionError, MailParserRecursionError):
        raise UnparseableMessage("MIME structure nested too deeply") from None
    except Exception as exc:  # mail-parser and email raise many types on hostile input
        raise UnparseableMessage(f"MIME parsing failed: {type(exc).__name__}: {exc}") from None
    if not msg.keys():
        raise UnparseableMessage("no header section")
    soup = BeautifulSoup(html, "html.parser") if html else None  # one parse for text and links
    html_text = _html_to_text(html, soup) if html else ""
    text = plain or html_text
    from_addresses = tuple(_addresses(msg.get_all("From", [])))
    if not from_addresses and not msg.get("Subject"):
        raise UnparseableMessage("no From and no Subject header")
    defects = tuple(sorted(set(defect_names) - _HANDLED_DEFECTS))
    return ParsedMessage(
        message_id=_message_id(msg.get("Message-ID")),
        subject=_header_text(msg.get("Subject", "")),
        from_addresses=from_addresses,
        reply_to=tuple(addr for _, addr in _addresses(msg.get_all("Reply-To", []))),
        return_path=_return_path(msg.get("Return-Path")),
        date=_date(msg.get("Date")),
        text=text,
        html=html or None,
        links=extract_links(text if plain else "", html or None, soup),
        authentication_results=tuple(
            _header_text(v) for v in msg.get_all("Authentication-Results", [])
        ),
        defects=defects,
    )


def parse_head(raw: bytes) -> ParsedMessage | None:
    """From and Subject alone, read from the header section (no MIME tree, no bodies), as
    parse() reads them: enough to set unrelated mail aside cheaply. None when the message has
    neither, and only parse() can say what is wrong with it."""
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if i >= 0]
    head = raw[: min(ends) + 1] if ends else raw
    msg = email.parser.BytesHeaderParser().parsebytes(head)
    from_addresses = tuple(_addresses(msg.get_all("From", [])))
    subject = msg.get("Subject")
    if not from_addresses and not subject:
        return None
    return ParsedMessage(
        message_id=None,
        subject=_header_text(subject or ""),
        from_addresses=from_addresses,
        reply_to=(),
        return_path=None,
        date=None,
        text="",
        html=None,
        links=(),
        authentication_results=(),
    )


def _mime(raw: bytes) -> tuple[Message, set[str]]:
    """The MIME tree and the names of its defects, as mail-parser reads them.

    mail-parser 4.8 gives up on some damaged headers that the stdlib reads fine (a broken
    base64 encoded word in a From display name raises HeaderParseError); the stdlib's tree
    is used then, so one damaged header does not make a G-MIS mail unreadable.
    """
    try:
        mail = mailparser.parse_from_bytes(raw)
        return mail.message, set(mail.defects_categories or ())
    except MailParserRecursionError:
        raise
    except Exception as exc:
        msg = email.message_from_bytes(raw)
        names = {type(d).__name__ for part in msg.walk() for d in part.defects}
        return msg, names | {type(exc).__name__}


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode text bytes, trusting the declared charset only as far as it decodes cleanly."""
    declared = (charset or "").strip().strip('"').lower()
    if _ESC_JIS.search(data):  # 7bit JIS whatever the label says
        return _decode_iso2022jp(data)
    tried = []
    if declared:
        tried.append(_CHARSET_SUPERSETS.get(declared, declared))
    tried.extend(c for c in _GUESSES if c not in tried)
    for name in tried:
        try:
            return data.decode(name)
        except (ValueError, LookupError):  # also UnicodeError ("undefined"), NUL in the name
            continue
    return data.decode("utf-8", errors="replace")


def _decode_iso2022jp(data: bytes) -> str:
    """ISO-2022-JP, including Microsoft's variant (CP50220: ①, 髙 and other CP932 extras).

    Python's iso-2022-jp codec rejects the extras, so JIS X 0208 double bytes are mapped to
    Shift_JIS arithmetically and decoded as CP932, which knows them.
    """
    try:
        return data.decode("iso-2022-jp")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    mode = "ascii"
    i = 0
    while i < len(data):
        if data[i] == 0x1B and i + 2 < len(data):
            seq = data[i + 1 : i + 3]
            mode = {b"$B": "jis", b"$@": "jis", b"(I": "kana"}.get(seq, "ascii")
            i += 3
            continue
        if mode == "jis" and data[i] not in b"\r\n" and i + 1 < len(data):
            out.append(_jis_pair_to_sjis(data[i], data[i + 1]).decode("cp932", errors="replace"))
            i += 2
            continue
        byte = data[i]
        out.append(
            chr(byte + 0xFF61 - 0x21) if mode == "kana" and 0x21 <= byte <= 0x5F else chr(byte)
        )
        i += 1
    return "".join(out)


def _jis_pair_to_sjis(j1: int, j2: int) -> bytes:
    s1 = (j1 + 1) // 2 + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = j2 + (0x1F if j1 % 2 else 0x7E)
    if j1 % 2 and s2 >= 0x7F:
        s2 += 1
    return bytes((s1 & 0xFF, s2 & 0xFF))


def _bodies(msg: Message) -> tuple[str, str]:
    """The message's text/plain and text/html bodies, attachments skipped."""
    plain: list[str] = []
    html: list[str] = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):  # None: nothing to decode
            continue
        text = decode_bytes(payload, part.get_content_charset())
        (plain if kind == "text/plain" else html).append(text)
    return "\n".join(plain).strip(), "\n".join(html).strip()


def _html_to_text(html: str, soup: BeautifulSoup | None = None) -> str:
    """Render HTML as text with a line break after each block, as a reader sees it.

    One iterative walk of the tree: hostile mail nests tags thousands deep, where inserting
    the line breaks into the tree (bs4 insert_after) took quadratic time (20000 <div>: 16 s).
    """
    soup = soup if soup is not None else BeautifulSoup(html, "html.parser")
    wanted = soup.interesting_string_types or ()  # what get_text() keeps: text and CDATA
    out: list[str] = []
    stack = [(iter(soup.contents), False)]
    while stack:
        child = next(stack[-1][0], None)
        if child is None:
            if stack.pop()[1]:
                out.append("\n")
        elif isinstance(child, Tag):
            if child.name not in _SKIPPED_TAGS:
                stack.append((iter(child.contents), child.name in _BLOCK_TAGS))
        elif type(child) in wanted:
            out.append(str(child))
    return "".join(out)


def _header_text(value: object) -> str:
    """Decode RFC 2047 words (folded over lines, any charset) and raw 8-bit headers."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        chunks = email.header.decode_header(value)
    else:
        try:
            chunks = email.header.decode_header(str(value))
        except Exception:
            return str(value)
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            try:  # raw 8-bit header bytes arrive as surrogate escapes
                chunk = chunk.encode("ascii", errors="surrogateescape")
            except UnicodeEncodeError:  # already text (a raw UTF-8 header)
                out.append(chunk)
                continue
        out.append(decode_bytes(chunk, charset))
    text = "".join(out)
    return " ".join(text.split())


def _addresses(values: list) -> list[tuple[str, str]]:
    """Split the raw header into addresses first, then decode display names: an encoded word
    may hide ``"… <info@g-mis.net>"`` inside a display name, which must not become an address."""
    pairs = email.utils.getaddresses([_raw_header(v) for v in values])
    return [(_header_text(name).strip(), addr.strip()) for name, addr in pairs if name or addr]


def _raw_header(value: object) -> str:
    """A header as text with encoded words left as they are; raw 8-bit bytes decoded.

    The email package hands a header with raw 8-bit bytes over as a Header object.
    """
    if isinstance(value, email.header.Header):
        return _header_text(value)
    return str(value)


def _message_id(value: object) -> str | None:
    text = _header_text(value).strip()
    return text.strip("<>") or None


def _return_path(value: object) -> str | None:
    text = _header_text(value).strip().strip("<>")
    return text or None


def _date(value: object) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(_header_text(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None
