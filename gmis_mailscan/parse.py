"""Bytes → ParsedMessage: headers and bodies decoded, HTML rendered to text, links listed.

mail-parser parses the MIME structure and headers, but its body decoding loses Japanese:
mail-parser 4.8 returns a 7bit ISO-2022-JP part undecoded (raw ``ESC $ B``) and decodes
Shift_JIS strictly, turning the CP932 characters real mailers write (①, 髙, ～) into U+FFFD.
So the text parts are decoded here, from their bytes, with Japanese-aware charset handling.
"""

from __future__ import annotations

import email.header
import email.parser
import email.policy
import email.utils
import re
from dataclasses import replace
from datetime import datetime
from email.message import Message

import mailparser
from bs4 import BeautifulSoup
from bs4.element import Tag
from mailparser.exceptions import MailParserRecursionError

from .links import bidi_urls, extract_links
from .msgfile import UnreadableMsg, is_msg, msg_to_mime
from .normalize import strip_invisible
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
    "iso-2022-jp-1": "iso2022_jp_1",
    "iso-2022-jp-2": "iso2022_jp_2",
    "csiso2022jp2": "iso2022_jp_2",
    "iso-2022-jp-3": "iso2022_jp_3",
    "iso-2022-jp-2004": "iso2022_jp_2004",
    "iso-2022-jp-ext": "iso2022_jp_ext",
    # Microsoft's variants: no codec of Python's; the decoder below reads them.
    "iso-2022-jp-ms": "iso-2022-jp",
    "cp50220": "iso-2022-jp",
    "cp50221": "iso-2022-jp",
    "cp50222": "iso-2022-jp",
    "euc-jp": "euc_jis_2004",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
}
_GUESSES = ("utf-8", "iso-2022-jp", "cp932", "euc_jis_2004")
# Any ISO-2022-JP family designation: JIS X 0201/0208 (ESC ( J, ESC $ B), the 4-byte ones of
# -2 and -3/-2004 (ESC $ ( D: JIS X 0212, ESC $ ( O/P/Q: JIS X 0213, ESC $ ( C: KS X 1001),
# ESC $ A (GB 2312) and the single-shift sets of -2 (ESC . A, ESC . F).
_ESC_JIS = re.compile(rb"\x1b(?:[\$\(][@BJI]|\$\([@BCDOPQ]|\$A|\.[AF])")
# 2-byte sets of the ISO-2022-JP family other than JIS X 0208: designation → a codec of
# Python's that decodes one character given its designation.
_DOUBLE_BYTE_SETS = {
    b"$(D": "iso2022_jp_2",  # JIS X 0212 (濵 and other supplementary kanji)
    b"$A": "iso2022_jp_2",  # GB 2312
    b"$(C": "iso2022_jp_2",  # KS X 1001
    b"$(O": "iso2022_jp_2004",  # JIS X 0213 plane 1 (2000)
    b"$(Q": "iso2022_jp_2004",  # JIS X 0213 plane 1 (2004)
    b"$(P": "iso2022_jp_2004",  # JIS X 0213 plane 2
}
_SINGLE_SHIFT_SETS = {b".A": "latin-1", b".F": "iso8859-7"}  # ISO-2022-JP-2's G2 sets
# Defects the stdlib reports for charsets that decode_bytes() handles itself.
_HANDLED_DEFECTS = {"CharsetDecodeDefect", "UndecodableBytesDefect", "NonASCIILocalPartDefect"}
_BLOCK_TAGS = ("p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "blockquote")
_SKIPPED_TAGS = ("script", "style", "head")


def parse(raw: bytes) -> ParsedMessage:
    """Parse one message; raise UnparseableMessage with a reason when nothing can be read.

    A spam filter's wrapper (a report plus the original as message/rfc822) is parsed as the
    original inside it: its From, bodies, links and Authentication-Results are the mail's.
    An Outlook .msg file is converted to the mail it holds (msgfile.py) and parsed as that.
    """
    if not raw.strip():
        raise UnparseableMessage("empty message")
    if is_msg(raw):  # an Outlook .msg file
        try:
            mime = msg_to_mime(raw)
        except UnreadableMsg as exc:
            raise UnparseableMessage(str(exc)) from None
        return replace(parse(mime), mime_bytes=mime)
    try:
        msg, defect_names = _mime(raw)
        original = _wrapped_original(msg)
        if original is not None:
            return replace(parse(original), mime_bytes=original, spam_wrapped=True)
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
    bidi = bidi_urls(plain, html or None, soup)  # before links: that drops <head> from soup
    html_text = strip_invisible(_html_to_text(html, soup)) if html else ""
    plain = strip_invisible(plain)
    from_addresses = tuple(_addresses(msg.get_all("From", [])))
    if not from_addresses and not msg.get("Subject"):
        raise UnparseableMessage("no From and no Subject header")
    defects = tuple(sorted(set(defect_names) - _HANDLED_DEFECTS))
    return ParsedMessage(
        message_id=_message_id(msg.get("Message-ID")),
        subject=strip_invisible(_header_text(msg.get("Subject", ""))),
        from_addresses=from_addresses,
        reply_to=tuple(addr for _, addr in _addresses(msg.get_all("Reply-To", []))),
        return_path=_return_path(msg.get("Return-Path")),
        date=_date(msg.get("Date")),
        text=plain or html_text,
        html=html or None,
        links=extract_links(plain, html or None, soup),
        authentication_results=tuple(
            _header_text(v) for v in msg.get_all("Authentication-Results", [])
        ),
        defects=defects,
        html_text=html_text if plain else "",
        bidi_urls=bidi,
    )


def _wrapped_original(msg: Message) -> bytes | None:
    """The original mail inside a spam filter's report (SpamAssassin ``report_safe``: the
    report as text, the original as message/rfc822, X-Spam-Flag: YES on the wrapper), else
    None. A person's forward-as-attachment carries no spam verdict and is left as it is."""
    flagged = any(
        str(msg.get(name, "")).strip().lower().startswith("yes")
        for name in ("X-Spam-Flag", "X-Spam-Status")
    )
    if not flagged or not msg.is_multipart():
        return None
    parts = msg.get_payload()
    inner = [
        p for p in parts if isinstance(p, Message) and p.get_content_type() == "message/rfc822"
    ]
    original = inner[0].get_payload() if len(inner) == 1 else None
    if not isinstance(original, list) or not original or not isinstance(original[0], Message):
        return None
    return original[0].as_bytes(policy=email.policy.compat32)


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
        subject=strip_invisible(_header_text(subject or "")),
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
        return _decode_iso2022jp(data, _CHARSET_SUPERSETS.get(declared, "iso-2022-jp"))
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


def _decode_iso2022jp(data: bytes, codec: str = "iso-2022-jp") -> str:
    """The ISO-2022-JP family: the declared variant's codec when the text keeps to it, else
    every designation any variant allows, including Microsoft's (CP50220/CP50221: ①, 髙 and
    other CP932 extras under ESC $ B, half-width kana by ESC ( I or SO/SI).

    Python's codecs reject the CP932 extras and each knows only its own variant's sets, so
    JIS X 0208 double bytes are mapped to Shift_JIS arithmetically and decoded as CP932, and
    each other double byte is decoded by a codec that knows its set.
    """
    for name in dict.fromkeys((codec, "iso-2022-jp")) if b"\x0e" not in data else ():
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            pass
    out: list[str] = []
    mode: bytes = b"(B"  # the designation in force for G0
    g2: str | None = None  # ISO-2022-JP-2's single-shift set
    shifted = False  # SO ... SI: half-width kana (CP50222)
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x1B:
            match = _ESC_JIS.match(data, i)
            seq = match.group()[1:] if match else data[i + 1 : i + 3]
            if seq in _SINGLE_SHIFT_SETS:
                g2 = _SINGLE_SHIFT_SETS[seq]
            elif seq == b"N" or data[i + 1 : i + 2] == b"N":  # SS2: one G2 character
                if g2 and i + 2 < len(data):
                    out.append(bytes([data[i + 2] | 0x80]).decode(g2, errors="replace"))
                i += 3
                continue
            else:
                mode = seq
            i += 1 + len(seq)
            continue
        if byte in (0x0E, 0x0F):
            shifted = byte == 0x0E
            i += 1
            continue
        double = not shifted and (mode in (b"$B", b"$@") or mode in _DOUBLE_BYTE_SETS)
        if double and byte not in b"\r\n" and i + 1 < len(data):
            out.append(_double_byte(mode, data[i : i + 2]))
            i += 2
            continue
        kana = (mode == b"(I" or shifted) and 0x21 <= byte <= 0x5F
        out.append(chr(byte + 0xFF61 - 0x21) if kana else chr(byte))
        i += 1
    return "".join(out)


def _double_byte(mode: bytes, pair: bytes) -> str:
    """One character of a 2-byte set; U+FFFD when the set does not define it."""
    if mode in _DOUBLE_BYTE_SETS:
        try:
            return (b"\x1b" + mode + pair).decode(_DOUBLE_BYTE_SETS[mode])
        except UnicodeDecodeError:
            return "\ufffd"
    return _jis_pair_to_sjis(pair[0], pair[1]).decode("cp932", errors="replace")


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
    return [
        (strip_invisible(_header_text(name)).strip(), addr.strip())
        for name, addr in pairs
        if name or addr
    ]


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
