"""The verify stage (SPEC §5): sender, Authentication-Results, DKIM and links."""

from __future__ import annotations

import dataclasses
import re

import dkim
import mailfactory
import pytest
from dkim import dknewkey
from hypothesis import given, settings
from hypothesis import strategies as st

from gmis_mailscan.parse import parse
from gmis_mailscan.records import Link, ParsedMessage, Verdict
from gmis_mailscan.verify import REASONS, VerifyPolicy, resembles, verify

TOKEN = mailfactory.TOKEN
PASSWORD_URL = f"https://www.med-login.mhlw.go.jp/login?c={TOKEN}"
SECOND_URL = "https://www.med-login.mhlw.go.jp/s/login/"
POLICY = VerifyPolicy()


def parsed(**changes: object) -> ParsedMessage:
    """A genuine password mail as the parser would hand it over, with some fields changed."""
    base = ParsedMessage(
        message_id="1.2@g-mis.net",
        subject=mailfactory.SUBJECTS["password_registration"],
        from_addresses=(("厚生労働省G-MIS事務局", "info@g-mis.net"),),
        reply_to=(),
        return_path=None,
        date=None,
        text=f"さくら病院 ご担当者様\n{PASSWORD_URL}\n{SECOND_URL}\n",
        html=None,
        links=(
            Link(PASSWORD_URL, "text"),
            Link(SECOND_URL, "text"),
            Link(mailfactory.IRYO_URL, "text"),
        ),
        authentication_results=(),
    )
    return dataclasses.replace(base, **changes)


def check(message: ParsedMessage, policy: VerifyPolicy = POLICY, raw: bytes = b"") -> Verdict:
    return verify(message, raw, policy)


def codes(verdict: Verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def warning_codes(verdict: Verdict) -> list[str]:
    return [r.code for r in verdict.warnings]


def test_genuine_baseline() -> None:
    verdict = check(parsed())
    assert verdict == Verdict(True, (), ())


# --- sender -------------------------------------------------------------------------------


@pytest.mark.parametrize("addr", ["info@g-mis.net", "INFO@G-MIS.NET", "Info@G-Mis.Net"])
def test_sender_case_insensitive(addr: str) -> None:
    assert check(parsed(from_addresses=(("", addr),))).genuine


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("support@g-mis.net", ["sender_mismatch"]),
        ("info@example.com", ["sender_mismatch"]),
        ("info@g-mis.net.example", ["sender_mismatch", "sender_lookalike"]),
        ("info@g-rnis.net", ["sender_mismatch", "sender_lookalike"]),
        ("info@g-mis.co", ["sender_mismatch", "sender_lookalike"]),
        ("info@gmis.net", ["sender_mismatch", "sender_lookalike"]),
        ("info@g-m1s.net", ["sender_mismatch", "sender_lookalike"]),
        ("info@g-m\u0456s.net", ["sender_mismatch", "sender_lookalike"]),  # Cyrillic і
        ("info@xn--g-ms-n9d.net", ["sender_mismatch", "sender_lookalike"]),  # the same, punycode
        ("info@\uff47-mis.net", ["sender_mismatch", "sender_lookalike"]),  # full-width ｇ
        ("\uff49nfo@g-mis.net", ["sender_mismatch"]),  # full-width ｉ in the local part
        ("info@sub.g-mis.net", ["sender_mismatch", "sender_lookalike"]),
        ("info@g-mis.net.evil.example", ["sender_mismatch", "sender_lookalike"]),
        ("", ["sender_mismatch"]),
    ],
)
def test_sender_must_be_exact(addr: str, expected: list[str]) -> None:
    assert codes(check(parsed(from_addresses=(("厚生労働省G-MIS事務局", addr),)))) == expected


def test_address_in_display_name() -> None:
    verdict = check(parsed(from_addresses=(("info@g-mis.net", "g-mis@mail.example"),)))
    assert codes(verdict) == ["sender_mismatch", "sender_in_display_name"]
    assert (
        "info@g-mis.net" in verdict.reasons[1].ja and "g-mis@mail.example" in verdict.reasons[1].ja
    )
    # full-width ＠ in the display name is still an address to a reader
    assert "sender_in_display_name" in codes(
        check(parsed(from_addresses=(("info＠g-mis.net", "x@mail.example"),)))
    )
    # the genuine address repeated as its own display name is fine
    assert check(parsed(from_addresses=(("info@g-mis.net", "info@g-mis.net"),))).genuine


def test_no_from_and_multiple_from() -> None:
    assert codes(check(parsed(from_addresses=()))) == ["no_from"]
    verdict = check(parsed(from_addresses=(("", "info@g-mis.net"), ("", "phish@evil.example"))))
    assert codes(verdict) == ["multiple_from", "sender_mismatch"]
    # the secretariat's address twice is still two From addresses
    twice = (("", "info@g-mis.net"), ("", "info@g-mis.net"))
    assert codes(check(parsed(from_addresses=twice))) == ["multiple_from"]


def test_reply_to_and_return_path_are_warnings() -> None:
    verdict = check(
        parsed(reply_to=("help@support.example",), return_path="bounce@bounce.mailer.example")
    )
    assert verdict.genuine
    assert warning_codes(verdict) == ["reply_to_other_domain", "return_path_other_domain"]
    same = check(parsed(reply_to=("info@g-mis.net",), return_path="<bounce@mail.g-mis.net>"))
    assert same.genuine and not same.warnings


def test_sender_texts_name_the_policy_sender() -> None:
    verdict = check(parsed(from_addresses=(("", "x@mail.example"),)))
    assert (
        verdict.reasons[0].ja
        == "差出人アドレスが info@g-mis.net ではありません（x@mail.example）。"
    )
    other = VerifyPolicy(sender="noreply@example.org")
    assert "noreply@example.org" in check(parsed(), other).reasons[0].en


@pytest.mark.parametrize(
    ("host", "target", "expected"),
    [
        ("www.med-login.mhbw.go.jp", "mhlw.go.jp", True),
        ("mhlw.go.jp.example.com", "mhlw.go.jp", True),
        ("www.mhlw-go.jp", "mhlw.go.jp", True),
        ("mhiw.go.jp", "mhlw.go.jp", True),
        ("www.xn--mlw-2sd.go.jp", "mhlw.go.jp", True),
        ("www.ｍhlw.go.jp", "mhlw.go.jp", True),
        ("g-mis.net", "g-mis.net", False),
        ("gmail.com", "g-mis.net", False),
        ("203.0.113.7", "mhlw.go.jp", False),
        ("track.example.net", "mhlw.go.jp", False),
        ("sakura-hospital.example", "g-mis.net", False),
    ],
)
def test_resembles(host: str, target: str, expected: bool) -> None:
    assert resembles(host, target) is expected


# --- Authentication-Results ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ("mx.h.example; dmarc=fail (p=REJECT) header.from=g-mis.net", ["dmarc_fail"]),
        ("mx.h.example; dkim=fail header.d=g-mis.net", ["dkim_fail"]),
        ("mx.h.example; dkim=fail header.i=@g-mis.net", ["dkim_fail"]),
        ("mx.h.example; dkim=fail (no key)", ["dkim_fail"]),  # unnamed signer: assume ours
        ("mx.h.example; dkim=fail header.d=list.example; dkim=pass header.d=g-mis.net", []),
        ("mx.h.example; spf=fail smtp.mailfrom=info@g-mis.net", ["spf_fail"]),
        ("mx.h.example; spf=softfail smtp.mailfrom=g-mis.net; dkim=none", ["spf_fail"]),
        (
            "mx.h.example; spf=fail smtp.mailfrom=g-mis.net; dkim=pass header.d=evil.example",
            ["spf_fail"],
        ),
        # forwarding breaks SPF, not DKIM
        (
            "mx.h.example; spf=fail smtp.mailfrom=g-mis.net; dkim=pass header.d=g-mis.net; dmarc=pass",
            [],
        ),
        ("mx.h.example; spf=softfail; dkim=pass header.i=info@mail.g-mis.net", []),
        ("mx.h.example; spf=neutral; dkim=permerror header.d=g-mis.net", []),
        ("mx.h.example; none", []),
    ],
)
def test_authentication_results(results: str, expected: list[str]) -> None:
    assert codes(check(parsed(authentication_results=(results,)))) == expected


def test_absent_results_are_not_a_failure() -> None:
    assert check(parsed(authentication_results=())).genuine


def test_only_topmost_header_is_trusted_by_default() -> None:
    forged_pass_below = ("mx.h.example; dmarc=fail", "mx.h.example; dmarc=pass")
    assert codes(check(parsed(authentication_results=forged_pass_below))) == ["dmarc_fail"]
    forged_fail_below = ("mx.h.example; dmarc=pass", "evil.example; dmarc=fail")
    assert check(parsed(authentication_results=forged_fail_below)).genuine


def test_trusted_authserv_ids() -> None:
    policy = VerifyPolicy(authserv_ids=("MX.Hospital.example",))
    results = (
        "spam-filter.example; dmarc=fail",  # untrusted: ignored, though on top
        "mx.hospital.example; spf=softfail; dkim=pass header.d=g-mis.net",
        "mx.hospital.example; dkim=fail header.d=g-mis.net",
    )
    verdict = check(parsed(authentication_results=results), policy)
    assert codes(verdict) == ["dkim_fail"]
    assert "mx.hospital.example" in verdict.reasons[0].en


def test_unreadable_results_are_never_taken_as_absent() -> None:
    verdict = check(parsed(authentication_results=("garbage ;;; ==",)))
    assert verdict.genuine and warning_codes(verdict) == ["auth_results_partial"]
    policy = VerifyPolicy(authserv_ids=("mx.h.example",))
    # an untrusted header is not read at all, readable or not
    verdict = check(parsed(authentication_results=("??", "mx.h.example; dmarc=fail")), policy)
    assert codes(verdict) == ["dmarc_fail"] and warning_codes(verdict) == []


# The three header forms a hospital meets, each as its server writes it for a spoof and for the
# genuine mail: Microsoft 365 (no authserv-id, compauth), Gmail, Postfix + OpenDKIM/OpenDMARC.
M365_SPOOF = (
    "spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=g-mis.net; dkim=none (message not "
    "signed) header.d=none;dmarc=fail action=oreject header.from=g-mis.net;compauth=fail "
    "reason=000"
)
M365_GENUINE = (
    "spf=pass (sender IP is 198.51.100.7) smtp.mailfrom=g-mis.net; dkim=pass (signature was "
    "verified) header.d=g-mis.net;dmarc=pass action=none header.from=g-mis.net;compauth=pass "
    "reason=100"
)
GMAIL_SPOOF = (
    "mx.google.com; spf=fail (google.com: domain of info@g-mis.net does not designate "
    "203.0.113.9 as permitted sender) smtp.mailfrom=info@g-mis.net; dmarc=fail (p=REJECT "
    "sp=REJECT dis=QUARANTINE) header.from=g-mis.net"
)
GMAIL_GENUINE = (
    "mx.google.com; dkim=pass header.i=@g-mis.net header.s=s1 header.b=AbCd; spf=pass "
    "(google.com: domain of info@g-mis.net designates 198.51.100.7 as permitted sender) "
    "smtp.mailfrom=info@g-mis.net; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=g-mis.net"
)
POSTFIX_SPOOF = (
    'mail.hospital.example; dkim=fail reason="signature verification failed" (2048-bit key; '
    'unprotected) header.d=g-mis.net header.i=@g-mis.net header.b="AbCd"'
)
POSTFIX_DMARC_SPOOF = "mail.hospital.example; dmarc=fail (p=reject dis=none) header.from=g-mis.net"
POSTFIX_GENUINE = (
    "mail.hospital.example; dkim=pass (2048-bit key; unprotected) header.d=g-mis.net "
    'header.i=@g-mis.net header.b="AbCd"; dkim-atps=neutral'
)


@pytest.mark.parametrize(
    ("results", "expected", "warnings"),
    [
        (M365_SPOOF, ["spf_fail", "dmarc_fail", "compauth_fail"], []),
        ("ARC-Seal: nonsense; " + M365_SPOOF, ["spf_fail", "dmarc_fail", "compauth_fail"], []),
        (M365_GENUINE, [], []),
        (
            "spf=pass smtp.mailfrom=g-mis.net; compauth=softfail reason=601",
            [],
            ["compauth_softfail"],
        ),
        ("spf=none smtp.mailfrom=g-mis.net; compauth=fail reason=001", ["compauth_fail"], []),
        (GMAIL_SPOOF, ["spf_fail", "dmarc_fail"], []),
        (GMAIL_GENUINE, [], []),
        (POSTFIX_SPOOF, ["dkim_fail"], []),
        (POSTFIX_DMARC_SPOOF, ["dmarc_fail"], []),
        (POSTFIX_GENUINE, [], []),
    ],
)
def test_header_forms_of_real_servers(
    results: str, expected: list[str], warnings: list[str]
) -> None:
    verdict = check(parsed(authentication_results=(results,)))
    assert codes(verdict) == expected
    assert [w for w in warning_codes(verdict) if w != "auth_results_partial"] == warnings


def test_microsoft_verdict_names_its_reason_code() -> None:
    verdict = check(parsed(authentication_results=(M365_SPOOF,)))
    compauth = next(r for r in verdict.reasons if r.code == "compauth_fail")
    assert "reason 000" in compauth.en and "reason 000" in compauth.ja
    assert "Exchange" in verdict.reasons[0].en


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        # the grammar gives up on these; the results they state still count
        ("mx.h.example; dmarc=fail header.from=g-mis.net; ((unbalanced", ["dmarc_fail"]),
        ("mx.h.example; spf=softfail smtp.mailfrom=g-mis.net; dkim=none; @@@", ["spf_fail"]),
        ("spf=pass; ;; dkim=fail header.d=g-mis.net", ["dkim_fail"]),
        # a result after a stray "(" that the grammar would swallow as a comment
        (
            "mx.h.example; dkim=pass header.d=g-mis.net (( dmarc=fail header.from=g-mis.net",
            ["dmarc_fail"],
        ),
        ("mx.h.example;; compauth=fail reason=000 ===", ["compauth_fail"]),
        # DKIM of the sender's domain still excuses a broken SPF, as in a readable header
        ("mx.h.example; spf=fail; dkim=pass header.d=g-mis.net; ((", []),
        ("mx.h.example; dkim=fail header.d=list.example;; dkim=pass header.d=g-mis.net", []),
    ],
)
def test_unreadable_header_is_salvaged(results: str, expected: list[str]) -> None:
    verdict = check(parsed(authentication_results=(results,)))
    assert codes(verdict) == expected
    assert "auth_results_partial" in warning_codes(verdict)


def test_results_inside_a_real_comment_say_nothing() -> None:
    verdict = check(
        parsed(
            authentication_results=("mx.h.example; dkim=pass header.d=g-mis.net (x (dmarc=fail))",)
        )
    )
    assert verdict == Verdict(True, (), ())


def test_exchange_header_on_top_counts_beside_trusted_ids() -> None:
    """With trusted ids configured, Exchange's own (id-less) topmost header is read too."""
    policy = VerifyPolicy(authserv_ids=("mx.hospital.example",))
    verdict = check(
        parsed(authentication_results=(M365_SPOOF, "mx.hospital.example; none")), policy
    )
    assert codes(verdict) == ["spf_fail", "dmarc_fail", "compauth_fail"]
    # an id-less header below the top may be the sender's own: not trusted
    below = ("mx.hospital.example; dkim=pass header.d=g-mis.net", M365_SPOOF)
    assert check(parsed(authentication_results=below), policy).genuine
    assert check(parsed(authentication_results=("mx.h.example; none", M365_SPOOF))).genuine


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp", "shift_jis"])
def test_microsoft_spoof_is_suspicious_end_to_end(charset: str) -> None:
    """The whole message as Exchange Online delivers it: parsed, then verified."""
    raw = mailfactory.build(
        "password_registration",
        charset=charset,
        extra_headers=[("Authentication-Results", M365_SPOOF)],
    )
    verdict = verify(parse(raw), raw, POLICY)
    assert not verdict.genuine
    assert {"dmarc_fail", "compauth_fail"} <= set(codes(verdict))
    genuine = mailfactory.build(
        "password_registration",
        charset=charset,
        extra_headers=[("Authentication-Results", M365_GENUINE)],
    )
    assert verify(parse(genuine), genuine, POLICY).genuine


def test_folded_results_header() -> None:
    folded = "mx.google.com;\r\n       dkim=pass header.i=@g-mis.net;\r\n       spf=softfail\r\n smtp.mailfrom=x"
    assert check(parsed(authentication_results=(folded,))).genuine


# --- links --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (Link("https://www.g-mis.mhlw.go.jp/user-Registration-Form", "text"), []),
        (Link("https://mhlw.go.jp/", "text"), []),
        (Link("www.mhlw.go.jp/index.html", "text"), []),
        (Link("mailto:info@g-mis.net", "href", "info@g-mis.net"), []),
        (Link("mailto:INFO@g-mis.net?subject=x", "href"), []),
        (Link("cid:logo@g-mis.net", "src"), []),
        (Link("#top", "href"), []),
        (
            Link(f"https://www.med-login.mhbw.go.jp/login?c={TOKEN}", "text"),
            ["link_lookalike_host"],
        ),
        (Link("https://www.med-login.mhlw.go.jp.example.com/", "href"), ["link_lookalike_host"]),
        (Link("https://www.xn--mlw-2sd.go.jp/", "href"), ["link_lookalike_host"]),
        (
            Link("https://www.mhlw.go.jp@evil.example/", "href"),
            ["link_userinfo", "link_unofficial_host"],
        ),
        (Link("https://user@www.mhlw.go.jp/", "href"), ["link_userinfo"]),
        (Link("http://203.0.113.7/login", "text"), ["link_unofficial_host"]),
        (Link("https://[2001:db8::7]/", "text"), ["link_unofficial_host"]),
        (Link("https:evil.example/login", "href"), ["link_unofficial_host"]),
        (Link("https://track.example.net/o.gif", "src"), ["link_unofficial_host"]),
        (Link("javascript:void(0)", "href", "ログイン"), ["link_bad_scheme"]),
        (Link("data:text/html;base64,PGgxPg==", "href"), ["link_bad_scheme"]),
        (Link("mailto:help@mail.example", "href"), ["link_mailto_other"]),
        (
            Link("https://evil.example/", "href", PASSWORD_URL),
            ["link_unofficial_host", "link_text_mismatch"],
        ),
        (Link(SECOND_URL, "href", "https://www.mhlw.go.jp/"), ["link_text_mismatch"]),
        (Link(SECOND_URL, "href", "med-login.mhlw.go.jp"), []),  # same host, no www.
        (Link(SECOND_URL, "href", "こちら"), []),
        (Link(SECOND_URL, "href", "ｗｗｗ.ｍｅｄ-ｌｏｇｉｎ.ｍｈｌｗ.ｇｏ.ｊｐ"), []),
        (Link(SECOND_URL, "href", "詳細は index.html を参照"), []),
    ],
)
def test_links(link: Link, expected: list[str]) -> None:
    assert codes(check(parsed(links=(link,)))) == expected


def test_http_to_official_host_is_a_warning() -> None:
    verdict = check(parsed(links=(Link("http://www.mhlw.go.jp/", "text"),)))
    assert verdict.genuine and warning_codes(verdict) == ["link_not_https"]


def test_official_hosts_policy() -> None:
    policy = VerifyPolicy(official_hosts=("mhlw.go.jp", "G-MIS.net"))
    assert check(parsed(links=(Link("https://www.g-mis.net/help", "href"),)), policy).genuine


def test_reason_texts_never_show_the_token() -> None:
    links = tuple(
        Link(url, "href", PASSWORD_URL)
        for url in (
            f"https://www.med-login.mhbw.go.jp/login?c={TOKEN}",
            f"https://www.mhlw.go.jp@evil.example/login?c={TOKEN}",
            f"http://203.0.113.7/login?lang=ja&c={TOKEN}#x",
            f"http://www.med-login.mhlw.go.jp/login?c={TOKEN}",
        )
    )
    verdict = check(parsed(links=links))
    assert len(verdict.reasons) >= 4 and verdict.warnings
    assert all(TOKEN not in r.en + r.ja for r in verdict.reasons + verdict.warnings)


def test_one_reason_per_distinct_finding() -> None:
    links = (Link("https://evil.example/a", "href"), Link("https://evil.example/a", "text"))
    assert codes(check(parsed(links=links))) == ["link_unofficial_host"]


def test_reason_table() -> None:
    japanese = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    for code, (_, en, ja) in REASONS.items():
        assert re.fullmatch(r"[a-z_]+", code)
        assert en and ja and japanese.search(ja), code


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.text(max_size=30), st.text(max_size=40)), max_size=3),
    st.lists(
        st.one_of(
            st.text(max_size=80),
            st.text(alphabet='adfiklmnpstx.=;@ ()"-', max_size=60).map("mx.h.example; ".__add__),
        ),
        max_size=3,
    ),
    st.lists(
        st.builds(
            Link,
            st.one_of(st.text(max_size=80), st.text(max_size=60).map("https://".__add__)),
            st.sampled_from(["text", "href", "src"]),
            st.one_of(st.none(), st.text(max_size=40)),
        ),
        max_size=4,
    ),
)
def test_hostile_input_never_raises(
    from_addresses: list[tuple[str, str]], results: list[str], links: list[Link]
) -> None:
    message = parsed(
        from_addresses=tuple(from_addresses),
        authentication_results=tuple(results),
        links=tuple(links),
        reply_to=tuple(addr for _, addr in from_addresses),
        return_path=from_addresses[0][1] if from_addresses else None,
    )
    verdict = check(message, VerifyPolicy(authserv_ids=("mx.h.example",)))
    # Every finding is a known code, filed by its weight: suspicions as reasons, the rest as
    # warnings; a From other than exactly the secretariat's one address is never genuine.
    assert all(REASONS[r.code][0] for r in verdict.reasons)
    assert not any(REASONS[w.code][0] for w in verdict.warnings)
    if [addr.lower() for _, addr in from_addresses] != ["info@g-mis.net"]:
        assert not verdict.genuine
        assert {"no_from", "multiple_from", "sender_mismatch"} & {r.code for r in verdict.reasons}


# --- DKIM ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(private key PEM, DNS TXT record) made with dkimpy's own dknewkey helpers."""
    base = tmp_path_factory.mktemp("dkim")
    dknewkey.GenRSAKeys(str(base / "sel.key"), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(base / "sel.key"), str(base / "sel.dns"), verbose=False)
    return (base / "sel.key").read_bytes(), (base / "sel.dns").read_bytes()


def _sign(raw: bytes, key: bytes, domain: bytes = b"g-mis.net") -> bytes:
    headers = [b"from", b"to", b"subject", b"date", b"message-id"]
    return dkim.sign(raw, b"sel", domain, key, include_headers=headers) + raw


def _dkim_policy(record: bytes, seen: list[bytes] | None = None) -> VerifyPolicy:
    def dns_txt(name: bytes) -> bytes | None:
        if seen is not None:
            seen.append(name)
        return record if name == b"sel._domainkey.g-mis.net." else None

    return VerifyPolicy(check_dkim=True, dns_txt=dns_txt)


def test_dkim_signature_verifies(dkim_key: tuple[bytes, bytes]) -> None:
    key, record = dkim_key
    raw = _sign(mailfactory.build("password_registration", charset="utf-8", cte="8bit"), key)
    seen: list[bytes] = []
    assert check(parsed(), _dkim_policy(record, seen), raw).genuine
    assert seen == [b"sel._domainkey.g-mis.net."]


def test_dkim_tampered_body_is_invalid(dkim_key: tuple[bytes, bytes]) -> None:
    key, record = dkim_key
    raw = _sign(mailfactory.build("password_registration", charset="utf-8", cte="8bit"), key)
    tampered = raw.replace(b"kgs-sakura01", b"kgs-sakura02")
    assert tampered != raw
    verdict = check(parsed(), _dkim_policy(record), tampered)
    assert codes(verdict) == ["dkim_invalid"]
    assert "does not verify" in verdict.reasons[0].en


def test_dkim_missing_or_foreign_signature_is_invalid(dkim_key: tuple[bytes, bytes]) -> None:
    key, record = dkim_key
    raw = mailfactory.build("password_registration")
    verdict = check(parsed(), _dkim_policy(record), raw)
    assert codes(verdict) == ["dkim_invalid"] and "d=g-mis.net" in verdict.reasons[0].en
    foreign = _sign(raw, key, domain=b"evil.example")
    assert codes(check(parsed(), _dkim_policy(record), foreign)) == ["dkim_invalid"]


def test_dkim_unknown_key_is_invalid(dkim_key: tuple[bytes, bytes]) -> None:
    key, _ = dkim_key
    raw = _sign(mailfactory.build("password_registration"), key)
    policy = VerifyPolicy(check_dkim=True, dns_txt=lambda name: None)
    assert codes(check(parsed(), policy, raw)) == ["dkim_invalid"]


def test_dkim_malformed_signature_is_invalid(dkim_key: tuple[bytes, bytes]) -> None:
    _, record = dkim_key
    raw = b"DKIM-Signature: v=1; d=g-mis.net; garbage\r\n" + mailfactory.build("other")
    assert codes(check(parsed(), _dkim_policy(record), raw)) == ["dkim_invalid"]
    raw = b"DKIM-Signature: ;;==;;\r\n" + mailfactory.build("other")
    assert codes(check(parsed(), _dkim_policy(record), raw)) == ["dkim_invalid"]


def test_own_dkim_pass_excuses_spf_failure(dkim_key: tuple[bytes, bytes]) -> None:
    key, record = dkim_key
    raw = _sign(mailfactory.build("password_registration"), key)
    message = parsed(authentication_results=("mx.h.example; spf=softfail smtp.mailfrom=g-mis.net",))
    assert check(message, _dkim_policy(record), raw).genuine
    assert codes(check(message)) == ["spf_fail"]


# --- the factory corpus, end to end through the parser -------------------------------------

EXPECTED = {
    "display_name_with_address": "sender_in_display_name",
    "display_name_encoded_address": "sender_in_display_name",
    "domain_suffix_example": "sender_lookalike",
    "domain_rn_for_m": "sender_lookalike",
    "domain_other_tld": "sender_lookalike",
    "domain_no_hyphen": "sender_lookalike",
    "domain_cyrillic_i": "sender_lookalike",
    "domain_fullwidth_g": "sender_lookalike",
    "domain_punycode": "sender_lookalike",
    "domain_evil_suffix": "sender_lookalike",
    "domain_subdomain": "sender_lookalike",
    "other_local_part": "sender_mismatch",
    "two_from_fields": "multiple_from",
    "two_addresses_in_from": "multiple_from",
    "no_from": "no_from",
    "encoded_subject_injects_from": "sender_mismatch",
    "auth_dmarc_fail": "dmarc_fail",
    "auth_dkim_fail": "dkim_fail",
    "auth_spf_fail": "spf_fail",
    "auth_spf_softfail_no_dkim": "spf_fail",
    "auth_spf_fail_dkim_other_domain": "spf_fail",
    "auth_forged_pass_below_fail": "dmarc_fail",
    "auth_m365_dmarc_fail": "compauth_fail",
    "auth_unreadable_dmarc_fail": "dmarc_fail",
    "url_mhbw": "link_lookalike_host",
    "url_suffix": "link_lookalike_host",
    "url_userinfo": "link_userinfo",
    "url_punycode": "link_lookalike_host",
    "url_fullwidth_host": "link_lookalike_host",
    "url_ipv4": "link_unofficial_host",
    "url_ipv6": "link_unofficial_host",
    "anchor_text_mismatch": "link_text_mismatch",
    "img_unofficial": "link_unofficial_host",
    "form_action_unofficial": "link_unofficial_host",
    "javascript_href": "link_bad_scheme",
    "mailto_other": "link_mailto_other",
    "text_url_split_over_lines": "link_lookalike_host",
}
GENUINE_WARNINGS = {
    "reply_to_and_return_path_elsewhere": ["reply_to_other_domain", "return_path_other_domain"]
}

SPOOFS = mailfactory.spoof_variants()
GENUINE = mailfactory.genuine_variants()


def _parse(raw: bytes) -> ParsedMessage:
    return parse(raw)


def test_corpus_sizes_and_expectations() -> None:
    assert len(SPOOFS) >= 24 and len(GENUINE) >= 30
    assert [name for name, _ in SPOOFS] == list(EXPECTED)
    assert len({name for name, _ in GENUINE}) == len(GENUINE)
    assert len({raw for _, raw in SPOOFS + GENUINE}) == len(SPOOFS) + len(GENUINE)


@pytest.mark.parametrize(
    ("name", "raw"),
    SPOOFS,
    ids=[name for name, _ in SPOOFS],
)
def test_spoof_is_suspicious(name: str, raw: bytes) -> None:
    verdict = verify(_parse(raw), raw, POLICY)
    assert not verdict.genuine
    assert EXPECTED[name] in codes(verdict), codes(verdict)
    assert all(TOKEN not in r.en + r.ja for r in verdict.reasons + verdict.warnings)


def test_corpus_encodings_are_real() -> None:
    by_name = dict(GENUINE)
    jis = by_name["password_registration/iso-2022-jp/7bit/text"]
    assert b"\x1b$B" in jis and all(byte < 0x80 for byte in jis)
    cp932 = by_name["password_registration/cp932/8bit/text"]
    assert b'charset="shift_jis"' in cp932 and "髙".encode("cp932") in cp932
    assert "①".encode("cp932") in cp932 and "～".encode("cp932") in cp932
    for name, raw in GENUINE:
        message = _parse(raw)
        assert message.from_addresses[0][1].lower() == "info@g-mis.net", name
        assert message.subject.endswith(tuple(mailfactory.SUBJECTS.values())), name


@pytest.mark.parametrize(("name", "raw"), GENUINE, ids=[name for name, _ in GENUINE])
def test_genuine_is_genuine(name: str, raw: bytes) -> None:
    verdict = verify(_parse(raw), raw, POLICY)
    assert verdict.genuine, [r.en for r in verdict.reasons]
    assert warning_codes(verdict) == GENUINE_WARNINGS.get(name, [])


def test_unrelated_mail_is_not_the_secretariat() -> None:
    raw = mailfactory.build("unrelated")
    verdict = verify(_parse(raw), raw, POLICY)
    assert codes(verdict) == ["sender_mismatch", "link_unofficial_host"]
