"""Link extraction, token masking and host parsing (gmis_mailscan.links)."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gmis_mailscan.links import (
    extract_links,
    idna_decode,
    mask_token,
    split_authority,
    token_hash,
    url_host,
)
from gmis_mailscan.normalize import strip_invisible
from gmis_mailscan.records import Link

TOKEN = "Qx7pL2mN9vR4tY8wZ1aB3cD5eF6gH0jK"
PASSWORD_URL = f"https://www.med-login.mhlw.go.jp/login?c={TOKEN}"
SECOND_URL = "https://www.med-login.mhlw.go.jp/s/login/"


def urls(text: str, html: str | None = None) -> list[str]:
    return [link.url for link in extract_links(text, html)]


# --- plain text ---------------------------------------------------------------------------


def test_urls_in_japanese_text_stop_at_japanese() -> None:
    text = f"システムをご利用するには {PASSWORD_URL}にアクセスし、\n2回目以降は{SECOND_URL}よりアクセス"
    assert urls(text) == [PASSWORD_URL, SECOND_URL]
    assert all(
        link.source == "text" and link.shown_text is None for link in extract_links(text, None)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://www.mhlw.go.jp/.", "https://www.mhlw.go.jp/"),
        ("(https://www.mhlw.go.jp/a)", "https://www.mhlw.go.jp/a"),
        ("https://example.org/wiki/A_(b)", "https://example.org/wiki/A_(b)"),
        ("<https://www.g-mis.mhlw.go.jp/>", "https://www.g-mis.mhlw.go.jp/"),
        ("まず www.mhlw.go.jp/index.html を開く", "www.mhlw.go.jp/index.html"),
        ("宛先 mailto:info@g-mis.net まで", "mailto:info@g-mis.net"),
    ],
)
def test_text_url_edges(text: str, expected: str) -> None:
    assert urls(text) == [expected]


def test_url_wrapped_over_lines_is_joined() -> None:
    text = "ここから https://www.med-login.mhlw.go.jp\n.evil.example/login?c=abc\nにアクセス"
    assert urls(text) == ["https://www.med-login.mhlw.go.jp.evil.example/login?c=abc"]


def test_url_wrapped_over_three_lines() -> None:
    text = "https://www.mhlw.go.jp/stf/seisakunitsuite/\nbunya/kenkou_iryou/\niryou/index.html です"
    assert urls(text) == [
        "https://www.mhlw.go.jp/stf/seisakunitsuite/bunya/kenkou_iryou/iryou/index.html"
    ]


@pytest.mark.parametrize(
    "next_line",
    [
        "G-MISへようこそ!",  # a word, not the inside of a URL
        "kgs-sakura01",  # a login ID on its own line
        SECOND_URL,  # a new URL
        "www.mhlw.go.jp/x",  # a new scheme-less URL
        " /indented",  # continuation lines are not indented
        "------",  # a separator
        "",
    ],
)
def test_url_at_line_end_not_joined_with(next_line: str) -> None:
    found = urls(f"{PASSWORD_URL}\n{next_line}")
    assert found[0] == PASSWORD_URL


# --- HTML ---------------------------------------------------------------------------------


def test_html_attributes_and_shown_text() -> None:
    html = f"""<html><head><link rel="stylesheet" href="https://cdn.example/s.css">
    <script src="https://js.example/a.js"></script></head><body>
    <p>ご利用には <a href="{PASSWORD_URL}">{PASSWORD_URL}</a></p>
    <p><a href=" https://evil.example/\n\tx ">こちら</a><a href="#top"><img src="cid:logo"></a></p>
    <iframe src="https://frame.example/"></iframe>
    <form action="https://collect.example/pw"><input name="p"></form>
    <area href="https://map.example/" shape="rect">
    </body></html>"""
    links = extract_links("", html)
    assert Link(PASSWORD_URL, "href", PASSWORD_URL) in links
    assert Link("https://evil.example/x", "href", "こちら") in links  # whitespace in href removed
    assert Link("#top", "href", None) in links
    for src in (
        "https://cdn.example/s.css",
        "https://js.example/a.js",
        "cid:logo",
        "https://frame.example/",
    ):
        assert Link(src, "src") in links
    assert Link("https://collect.example/pw", "href") in links
    assert Link("https://map.example/", "href") in links
    assert Link(PASSWORD_URL, "text") in links  # the visible text a client would autolink


def test_html_visible_text_url_without_anchor() -> None:
    assert "https://evil.example/login" in urls("", "<p>アクセス先: https://evil.example/login</p>")


def test_deduplicated_in_order() -> None:
    text = f"{SECOND_URL}\n{PASSWORD_URL}\n{SECOND_URL}"
    html = f'<a href="{SECOND_URL}">a</a><a href="{SECOND_URL}">a</a><a href="{SECOND_URL}">b</a>'
    assert extract_links(text, html) == (
        Link(SECOND_URL, "text"),
        Link(PASSWORD_URL, "text"),
        Link(SECOND_URL, "href", "a"),
        Link(SECOND_URL, "href", "b"),
    )


# --- tokens -------------------------------------------------------------------------------


def test_mask_token() -> None:
    assert mask_token(PASSWORD_URL) == "https://www.med-login.mhlw.go.jp/login?c=***"
    assert (
        mask_token("https://x.example/p?lang=ja&c=abc&session=0123456789abcdef#c=frag")
        == "https://x.example/p?lang=ja&c=***&session=***#c=frag"
    )
    assert mask_token(SECOND_URL) == SECOND_URL
    assert mask_token("https://x.example/p?flag&short=123456789012") == (
        "https://x.example/p?flag&short=123456789012"
    )


def test_token_hash() -> None:
    assert token_hash(PASSWORD_URL) == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert token_hash("https://x.example/login?lang=ja&c=a%2Bb") == token_hash("https://x/?c=a+b")
    assert token_hash(SECOND_URL) is None
    assert token_hash("https://x.example/login?c=") is None


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1)
)
def test_masked_url_never_contains_the_token(token: str) -> None:
    url = f"https://www.med-login.mhlw.go.jp/login?lang=ja&c={token}"
    assert mask_token(url).endswith("c=***")
    assert token_hash(url) == hashlib.sha256(token.encode()).hexdigest()


@given(
    st.lists(st.sampled_from(["a", "b1", "med-login", "x-y"]), min_size=1, max_size=4),
    st.sampled_from(["", "/", "/login?c=abc", "/s/login/#top"]),
    st.sampled_from(["", " ", "\n", "　", "。"]),
)
def test_url_found_in_japanese_context(labels: list[str], path: str, gap: str) -> None:
    url = "https://" + ".".join(labels) + ".mhlw.go.jp" + path
    assert urls(f"本文{gap}{url}{gap}にアクセス") == [url]


@given(st.text(), st.one_of(st.none(), st.text()))
def test_any_input_is_handled(text: str, html: str | None) -> None:
    links = extract_links(text, html)
    assert len(links) == len(set(links))  # each Link once
    for link in links:
        assert link.url and strip_invisible(link.url) == link.url  # nothing hidden in a URL
        assert link.shown_text is None or strip_invisible(link.shown_text) == link.shown_text
        assert html is not None or link.source == "text"
        host = url_host(link.url)
        assert host is None or not set(host) & set("/?#\\")  # the authority ends there
        digest = token_hash(link.url)
        assert digest is None or re.fullmatch(r"[0-9a-f]{64}", digest)
        if digest is not None:  # the password token is never shown
            assert "c=***" in mask_token(link.url)


# --- hosts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "userinfo", "host"),
    [
        (PASSWORD_URL, None, "www.med-login.mhlw.go.jp"),
        ("HTTPS://WWW.MHLW.GO.JP./", None, "www.mhlw.go.jp"),
        ("https://www.mhlw.go.jp@evil.example/login", "www.mhlw.go.jp", "evil.example"),
        ("https://a@b@evil.example:8443/", "a@b", "evil.example"),
        ("https://www.mhlw.go.jp\\@evil.example/", None, "www.mhlw.go.jp"),
        ("https:evil.example/login", None, "evil.example"),
        ("https://%65vil.example/", None, "evil.example"),
        ("http://203.0.113.7/login", None, "203.0.113.7"),
        ("https://[2001:db8::7]:443/x", None, "2001:db8::7"),
        ("https://www.xn--mlw-2sd.go.jp/", None, "www.m\u04bblw.go.jp"),
        ("www.mhlw.go.jp/index.html", None, "www.mhlw.go.jp"),
        ("//cdn.example/x.png", None, "cdn.example"),
        ("mailto:info@g-mis.net", None, None),
        ("javascript:alert(1)", None, None),
        ("#top", None, None),
    ],
)
def test_split_authority(url: str, userinfo: str | None, host: str | None) -> None:
    assert split_authority(url) == (userinfo, host)
    assert url_host(url) == host


def test_idna_decode_keeps_invalid_punycode() -> None:
    assert idna_decode("xn--g-ms-n9d.net") == "g-m\u0456s.net"
    assert idna_decode("xn--.example") == "xn--.example"
