"""URLs in a message body, and the few facts about a URL the other stages need.

The verify stage judges every link a reader could follow, so extraction errs on the side of
finding too much: URLs in the plain text (joined again when a mailer wrapped one over two lines),
URLs in the visible text of the HTML (mail clients turn them into links), and every HTML
attribute that navigates or loads something. The password URL's ``c`` parameter is a one-time
secret: `mask_token` and `token_hash` let callers store and compare it without keeping it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal
from urllib.parse import unquote, urljoin

from bs4 import BeautifulSoup

from .normalize import BIDI_CONTROLS, strip_invisible
from .records import Link

_URL_CHARS = r"A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%"
_TEXT_URL = re.compile(
    rf"(?<![A-Za-z0-9+.\-])(?:[A-Za-z][A-Za-z0-9+.\-]*://|www\.|mailto:)[{_URL_CHARS}]+",
    re.IGNORECASE,
)
_URL_RUN = re.compile(rf"[{_URL_CHARS}]+")
_NEW_URL = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*://|www\.|mailto:)", re.IGNORECASE)
_URL_INNER = re.compile(r"[/?=&%#.~_]")
_TRAILING = ".,;:!?'\"*"
_CLOSERS = {")": "(", "]": "["}

# tag → (attribute, Link.source): what a click navigates to, or what the client loads.
_HTML_ATTRS: dict[str, tuple[str, Literal["href", "src"]]] = {
    "a": ("href", "href"),
    "area": ("href", "href"),
    "form": ("action", "href"),
    "img": ("src", "src"),
    "script": ("src", "src"),
    "iframe": ("src", "src"),
    "frame": ("src", "src"),
    "embed": ("src", "src"),
    "source": ("src", "src"),
    "link": ("href", "src"),
}
_SPECIAL_SCHEMES = ("http", "https", "ftp", "ws", "wss")
_URL_WHITESPACE = str.maketrans("", "", "\t\r\n")
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def extract_links(
    text: str, html: str | None, soup: BeautifulSoup | None = None
) -> tuple[Link, ...]:
    """Every URL in the plain text and the HTML, in order of appearance, identical Links once.

    `soup` is the HTML already parsed by the caller (html.parser), to parse it only once.
    """
    found = [Link(url, "text") for url in _text_urls(strip_invisible(text))]
    if html:
        found.extend(_html_links(html, soup))
    return tuple(dict.fromkeys(found))


def bidi_urls(text: str, html: str | None, soup: BeautifulSoup | None = None) -> tuple[str, ...]:
    """URLs (invisible characters removed) with a bidirectional control inside or beside
    them: in the plain text or the HTML's visible text, in a link attribute, or in the text
    an anchor shows for its URL. Such a URL is not shown as it goes
    (``https://evil.example/\u202egepj.og.wlhm`` reads as mhlw.go.jp)."""
    found: list[str] = []
    texts = [text]
    if html:
        soup = soup if soup is not None else BeautifulSoup(html, "html.parser")
        for tag in soup.find_all([*_HTML_ATTRS, "base"]):
            value = tag.get(_HTML_ATTRS[tag.name][0] if tag.name in _HTML_ATTRS else "href")
            if not isinstance(value, str) or not _clean(value):
                continue
            if _BIDI.search(value) or (tag.name == "a" and _BIDI.search(tag.get_text())):
                found.append(_clean(value))
        texts.append(soup.get_text(" "))
    for piece in texts:
        words = piece.split()
        for i, word in enumerate(words):
            if _BIDI.search(word):  # the word holding the control, and its neighbours
                found.extend(_text_urls(strip_invisible(" ".join(words[max(0, i - 1) : i + 2]))))
    return tuple(dict.fromkeys(found))


def _text_urls(text: str) -> list[str]:
    """URLs in plain text; a URL ending a line continues on the next when that line goes on
    with URL characters that look like part of a URL (mailers hard-wrap long URLs)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    used: dict[int, int] = {}  # line index -> characters already taken by a wrapped URL
    urls: list[str] = []
    for i, line in enumerate(lines):
        for match in _TEXT_URL.finditer(line, used.get(i, 0)):
            url, j, at_end = match.group(), i, match.end() == len(line)
            while at_end and (piece := _continuation(lines, j + 1)) is not None:
                url, j = url + piece, j + 1
                used[j] = len(piece)
                at_end = len(piece) == len(lines[j])
            urls.append(_trim(url))
    return urls


def _continuation(lines: list[str], j: int) -> str | None:
    """The start of lines[j] if it continues a wrapped URL: URL characters that look like
    the inside of a URL (not a word such as "G-MIS" or a login ID), not a new URL."""
    run = _URL_RUN.match(lines[j]) if j < len(lines) else None
    if not run or _NEW_URL.match(run.group()):
        return None
    piece = run.group()
    return piece if _URL_INNER.search(piece) and re.search(r"[A-Za-z0-9]", piece) else None


def _trim(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets after a URL."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last])):
            url = url[:-1]
        else:
            break
    return url


def _html_links(html: str, soup: BeautifulSoup | None = None) -> list[Link]:
    soup = soup if soup is not None else BeautifulSoup(html, "html.parser")
    links: list[Link] = []
    base = _base_href(soup)
    if base:
        links.append(Link(base, "href"))  # judged like a link: it decides where links go
    for tag in soup.find_all(list(_HTML_ATTRS)):
        attr, source = _HTML_ATTRS[tag.name]
        value = tag.get(attr)
        if not isinstance(value, str) or not value.strip():
            continue
        url = _clean(value)
        shown = tag.get_text(" ", strip=True) if tag.name == "a" else None
        shown = strip_invisible(shown) or None if shown else None
        links.append(Link(url, source, shown))
        if base and not _SCHEME.match(url):
            # A client that honours <base> opens the resolved URL; one that ignores it opens
            # the URL as written: both are judged.
            links.append(Link(urljoin(base, url), source, shown))
    for tag in soup(["script", "style", "head"]):
        tag.decompose()
    links.extend(Link(url, "text") for url in _text_urls(strip_invisible(soup.get_text("\n"))))
    return links


def _clean(value: str) -> str:
    """An attribute URL as a browser reads it: trimmed, without tabs, newlines (browsers drop
    them) and invisible characters."""
    return strip_invisible(value.strip().translate(_URL_WHITESPACE))


def _base_href(soup: BeautifulSoup) -> str | None:
    """The document's base URL: the first ``<base href>``, as browsers take it."""
    tag = soup.find("base", href=True)
    value = tag.get("href") if tag is not None else None
    return _clean(value) or None if isinstance(value, str) else None


def mask_token(url: str) -> str:
    """The URL with its ``c`` value, and any other query value over 12 characters, as ***."""
    head, sep, rest = url.partition("?")
    if not sep:
        return url
    query, hash_sep, fragment = rest.partition("#")
    pairs = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and value and (key == "c" or len(value) > 12):
            value = "***"
        pairs.append(f"{key}{eq}{value}")
    return f"{head}?{'&'.join(pairs)}{hash_sep}{fragment}"


def token_hash(url: str) -> str | None:
    """SHA-256 hex of the ``c`` value, to recognise a re-sent mail without storing the secret."""
    _, sep, rest = url.partition("?")
    if not sep:
        return None
    for pair in rest.partition("#")[0].split("&"):
        key, eq, value = pair.partition("=")
        if key == "c" and value:
            return hashlib.sha256(unquote(value).encode("utf-8")).hexdigest()
    return None


def split_authority(url: str) -> tuple[str | None, str | None]:
    """(userinfo, host) of a URL as a browser reads it, host lowercased and IDNA-decoded.

    Browsers take http(s) URLs without slashes (``https:evil.example``) and with backslashes
    as hierarchical, end the userinfo at the last ``@`` and the authority at ``\\``, and
    decode percent-escapes in the host; so does this. Scheme-less ``www.`` and ``//host``
    count too; ``mailto:`` and other non-hierarchical URLs have no host.
    """
    rest = url.strip()
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", rest)
    if scheme:
        rest = rest[scheme.end() :]
        if scheme.group()[:-1].lower() not in _SPECIAL_SCHEMES and not rest.startswith("//"):
            return None, None
    elif not rest.lower().startswith(("www.", "//")):
        return None, None
    authority = re.split(r"[/?#\\]", rest.lstrip("/\\"), maxsplit=1)[0]
    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        host = hostport[1:].partition("]")[0]
    else:
        host = hostport.partition(":")[0]
    host = idna_decode(unquote(host).lower().rstrip("."))
    return (userinfo if at else None), (host or None)


def url_host(url: str) -> str | None:
    """The host a browser would contact: lowercased, IDNA-decoded, without userinfo or port."""
    return split_authority(url)[1]


def idna_decode(host: str) -> str:
    """Punycode labels (``xn--…``) as Unicode, so lookalikes can be compared; others as is."""
    labels = []
    for label in host.split("."):
        if label.startswith("xn--"):
            try:
                label = label[4:].encode("ascii").decode("punycode") or label
            except UnicodeError:
                pass
        labels.append(label)
    return ".".join(labels)
