"""ParsedMessage + raw bytes → Verdict: may this message count as the secretariat's mail?

SPEC §5. The password-setting mail is what a phisher copies, so a message is genuine only when
nothing about its sender, its receiving server's authentication results or its links is off;
each finding is a Reason with texts for staff. Things worth a look that real mail also shows
(a bounce domain in Return-Path, plain http to the ministry) are warnings and do not count.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import authres
import authres.dmarc

from .links import extract_links, idna_decode, mask_token, split_authority, url_host
from .normalize import strip_invisible
from .records import Link, ParsedMessage, Reason, Verdict


@dataclass(frozen=True)
class VerifyPolicy:
    """Who the genuine sender is, which hosts are official, and whose results to trust."""

    sender: str = "info@g-mis.net"
    official_hosts: tuple[str, ...] = ("mhlw.go.jp",)  # the host itself or any subdomain
    # Trusted Authentication-Results authserv-ids; empty = trust only the topmost header.
    authserv_ids: tuple[str, ...] = ()
    check_dkim: bool = False  # verify the raw message's DKIM signature with dkimpy
    # TXT lookup for dkimpy (name → record), injected by tests; None = dkimpy's own DNS.
    dns_txt: Callable[[bytes], bytes | None] | None = None


# code → (counts as suspicion?, English, Japanese). Placeholders are filled per finding.
REASONS: dict[str, tuple[bool, str, str]] = {
    "no_from": (
        True,
        "The message has no From address.",
        "差出人(From)のアドレスがありません。",
    ),
    "multiple_from": (
        True,
        "The From field holds {count} addresses; the secretariat sends from exactly one.",
        "差出人(From)にアドレスが{count}件あります。G-MIS事務局のメールの差出人は1件だけです。",
    ),
    "sender_mismatch": (
        True,
        "The sender address is {address}, not {sender}.",
        "差出人アドレスが {sender} ではありません（{address}）。",
    ),
    "sender_lookalike": (
        True,
        "The sender's domain {domain} imitates {sender_domain}.",
        "差出人のドメイン {domain} は {sender_domain} に似せた偽のドメインの疑いがあります。",
    ),
    "sender_in_display_name": (
        True,
        "The sender's display name shows {shown}, but the mail comes from {address}.",
        "差出人の表示名に {shown} とありますが、実際の差出人アドレスは {address} です。",
    ),
    "dmarc_fail": (
        True,
        "The receiving server ({authserv}) recorded dmarc=fail.",
        "受信サーバ({authserv})の判定で DMARC 認証に失敗しています(dmarc=fail)。",
    ),
    "dkim_fail": (
        True,
        "The receiving server ({authserv}) recorded dkim=fail for {domain}.",
        "受信サーバ({authserv})の判定で {domain} の DKIM 署名の検証に失敗しています(dkim=fail)。",
    ),
    "spf_fail": (
        True,
        "The receiving server ({authserv}) recorded spf={result} and no DKIM pass for "
        "{sender_domain}.",
        "受信サーバ({authserv})の判定で SPF 認証に失敗し(spf={result})、{sender_domain} の "
        "DKIM 署名も確認できません。",
    ),
    "dkim_invalid": (
        True,
        "No valid DKIM signature of {sender_domain}: {detail}.",
        "{sender_domain} の有効な DKIM 署名がありません（{detail}）。",
    ),
    "link_unofficial_host": (
        True,
        "The link {url} goes to {host}, not to an official host ({official}).",
        "リンク {url} の接続先 {host} は公式のドメイン({official})ではありません。",
    ),
    "link_lookalike_host": (
        True,
        "The link {url} goes to {host}, which imitates {official}.",
        "リンク {url} の接続先 {host} は公式のドメイン({official})に似せた偽のドメインの疑いが"
        "あります。",
    ),
    "link_userinfo": (
        True,
        "The link {url} puts {userinfo}@ before its real host {host}.",
        "リンク {url} は「{userinfo}@」の後ろに本当の接続先 {host} を隠しています。",
    ),
    "link_text_mismatch": (
        True,
        "A link shows {shown_host} but goes to {host}.",
        "リンクの表示は {shown_host} ですが、実際の接続先は {host} です。",
    ),
    "link_bad_scheme": (
        True,
        "The link {url} is a {scheme}: link, not a web address.",
        "リンク {url} は Web のアドレスではありません({scheme}:)。",
    ),
    "link_mailto_other": (
        True,
        "A link writes mail to {address}, not to {sender}.",
        "リンクのメール送信先 {address} は {sender} ではありません。",
    ),
    "reply_to_other_domain": (
        False,
        "Replies would go to {address}, outside {sender_domain}.",
        "返信先(Reply-To) {address} は {sender_domain} 以外のドメインです。",
    ),
    "return_path_other_domain": (
        False,
        "The envelope sender (Return-Path) {address} is outside {sender_domain}.",
        "エンベロープ送信者(Return-Path) {address} は {sender_domain} 以外のドメインです。",
    ),
    "compauth_fail": (
        True,
        "The receiving server ({authserv}) recorded compauth=fail (reason {reason}): Microsoft "
        "judged the sender forged.",
        "受信サーバ({authserv})の判定で送信元の複合認証に失敗しています(compauth=fail、reason "
        "{reason})。なりすましと判定されたメールです。",
    ),
    "compauth_softfail": (
        False,
        "The receiving server ({authserv}) recorded compauth=softfail (reason {reason}).",
        "受信サーバ({authserv})の判定で送信元の複合認証が不確定です(compauth=softfail、reason "
        "{reason})。",
    ),
    "auth_results_partial": (
        False,
        "The Authentication-Results header of {authserv} could not be fully read; the dmarc, "
        "dkim, spf and compauth results it states were applied.",
        "{authserv} の Authentication-Results ヘッダを完全には解析できませんでした。記載されている "
        "dmarc・dkim・spf・compauth の判定結果を読み取って適用しました。",
    ),
    "link_not_https": (
        False,
        "The link {url} to an official host is not encrypted (http).",
        "公式のドメインへのリンク {url} が暗号化されていません(http)。",
    ),
    "link_bidi_control": (
        True,
        "The link {url} has a text-direction control character in or beside it, which can make "
        "it read as another address.",
        "リンク {url} の中または前後に文字の表示方向を変える制御文字があり、別のアドレスに"
        "見せかけている疑いがあります。",
    ),
    "spam_filter_wrapped": (
        False,
        "A spam filter wrapped this mail in its report; the original inside was judged.",
        "迷惑メールフィルタがこのメールを報告で包んでいました。中の元のメールを判定しました。",
    ),
}

_AUTHRES = authres.FeatureContext(authres.dmarc)
_ADDRESS_IN_TEXT = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_BARE_HOST = re.compile(r"(?<![\w.\-@])(?:[a-z0-9\-]+\.){2,}[a-z]{2,}(?![\w\-])", re.IGNORECASE)
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i",
        "ї": "i", "ј": "j", "ѕ": "s", "һ": "h", "ԁ": "d", "ӏ": "l", "ԛ": "q", "ԝ": "w",
        "к": "k", "м": "m", "т": "t", "в": "b", "н": "h", "α": "a", "ο": "o", "ρ": "p",
        "ι": "i", "ν": "v", "κ": "k", "τ": "t", "ε": "e", "υ": "u", "χ": "x", "ı": "i",
        "ɡ": "g", "。": ".", "｡": ".", "0": "o", "1": "l", "i": "l",
    }
)  # fmt: skip
_IGNORED_SCHEMES = ("cid", "tel")  # an inline image part; a phone number


def verify(parsed: ParsedMessage, raw: bytes, policy: VerifyPolicy) -> Verdict:
    """Judge one message; genuine only when no suspicion was found."""
    found = _Findings(policy)
    _check_sender(parsed, found)
    if parsed.mime_bytes is not None:
        raw = parsed.mime_bytes  # a spam filter's wrapper is not what was signed
    if parsed.spam_wrapped:
        found.add("spam_filter_wrapped")
    dkim_passed = False
    if policy.check_dkim:
        problem = _dkim_problem(raw, found.sender_domain, policy.dns_txt)
        if problem:
            found.add("dkim_invalid", detail=problem)
        dkim_passed = problem is None
    _check_auth_results(parsed.authentication_results, found, dkim_passed)
    for link in parsed.links:
        _check_link(link, found)
    for url in parsed.bidi_urls:
        found.add("link_bidi_control", url=_for_people(url))
    return Verdict(not found.reasons, tuple(found.reasons), tuple(found.warnings))


class _Findings:
    """Reasons and warnings in the order found, each distinct text once."""

    def __init__(self, policy: VerifyPolicy) -> None:
        self.policy = policy
        self.sender = policy.sender.lower()
        self.sender_domain = self.sender.rpartition("@")[2]
        self.official = tuple(h.lower().strip(".") for h in policy.official_hosts)
        self.reasons: list[Reason] = []
        self.warnings: list[Reason] = []

    def add(self, code: str, **details: object) -> None:
        suspicious, en, ja = REASONS[code]
        values = {
            "sender": self.sender,
            "sender_domain": self.sender_domain,
            "official": ", ".join(self.official),
            **details,
        }
        reason = Reason(code, en.format(**values), ja.format(**values))
        target = self.reasons if suspicious else self.warnings
        if reason not in target:
            target.append(reason)


# --- sender -------------------------------------------------------------------------------


def _check_sender(parsed: ParsedMessage, found: _Findings) -> None:
    addresses = parsed.from_addresses
    if not addresses:
        found.add("no_from")
    elif len(addresses) > 1:
        found.add("multiple_from", count=len(addresses))
    for name, addr in addresses:
        if not (addr.isascii() and addr.lower() == found.sender):
            found.add("sender_mismatch", address=addr or "(none)")
            domain = addr.rpartition("@")[2]
            if domain and resembles(domain, found.sender_domain):
                found.add("sender_lookalike", domain=domain)
        for shown in _ADDRESS_IN_TEXT.findall(unicodedata.normalize("NFKC", name)):
            if shown.lower() != addr.lower():
                found.add("sender_in_display_name", shown=shown, address=addr or "(none)")
    for addr in parsed.reply_to:
        if not _in_domain(addr, found.sender_domain):
            found.add("reply_to_other_domain", address=addr)
    if parsed.return_path and not _in_domain(parsed.return_path, found.sender_domain):
        found.add("return_path_other_domain", address=parsed.return_path)


def _in_domain(address: str, domain: str) -> bool:
    """Is the address in the domain or a subdomain of it (DMARC's relaxed alignment)?"""
    return _aligned(address.strip().strip("<>").rpartition("@")[2], domain)


def _aligned(host: str, domain: str) -> bool:
    host = host.lower().rstrip(".")
    return host.isascii() and (host == domain or host.endswith("." + domain))


def resembles(host: str, target: str) -> bool:
    """Does ``host`` imitate ``target``? Only meaningful when it is not ``target`` itself.

    Confusable letters and full-width forms (compared as a skeleton: NFKC, Cyrillic/Greek
    lookalikes, rn→m, 0→o, 1/i→l), ``target`` inside it (``mhlw.go.jp.example.com``, also a
    subdomain), a domain suffix within two edits (``mhbw.go.jp``), or a label within one edit
    of the target's name (``g-mis.co``, ``gmis.net``).
    """
    host, target = idna_decode(host.lower()), target.lower()
    if host == target:
        return False
    s_host, s_target = _skeleton(host), _skeleton(target)
    if target in host or s_target in s_host:
        return True
    labels = s_host.split(".")
    suffixes = (".".join(labels[i:]) for i in range(len(labels)))
    if any(_within(suffix, s_target, 2) for suffix in suffixes):
        return True
    name = s_target.split(".")[0]
    return any(
        len(label) >= 4
        and (_within(label, name, 1) or label.replace("-", "") == name.replace("-", ""))
        for label in labels
    )


def _skeleton(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().translate(_CONFUSABLES)
    return text.replace("rn", "m").replace("vv", "w")


def _within(a: str, b: str, limit: int) -> bool:
    """Is the Levenshtein distance of a and b at most limit? (Cheap length check first.)"""
    if abs(len(a) - len(b)) > limit:
        return False
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] <= limit


# --- authentication results ----------------------------------------------------------------


@dataclass(frozen=True)
class _AuthResult:
    """One ``method=result`` of an Authentication-Results header, with its signing domain."""

    method: str
    result: str
    dkim_domain: str | None = None  # header.d, else the domain of header.i (dkim only)
    reason: str | None = None  # compauth's reason=NNN (Microsoft's verdict code)


@dataclass(frozen=True)
class _AuthHeader:
    authserv: str
    results: tuple[_AuthResult, ...]
    complete: bool  # False: salvaged from a header the grammar could not read


# Exchange Online and on-premise Exchange write their header without an authserv-id.
_NO_AUTHSERV_ID = "Exchange (authserv-id なし)"
_STARTS_WITH_RESULT = re.compile(r"\s*[A-Za-z][\w.-]*\s*=")
_RESULT = re.compile(r"(?<![\w.-])(dmarc|dkim|spf|compauth)\s*=\s*([A-Za-z]+)", re.IGNORECASE)
_COMMENT = re.compile(r"\([^()]*\)")
_PROPERTY = re.compile(r"(?<![\w.-])(header\.[di]|reason)\s*=\s*\"?([^\s;\")]+)", re.IGNORECASE)


def _read_auth_header(value: str) -> _AuthHeader:
    """Read one Authentication-Results value, as RFC 8601 or as Exchange writes it.

    Exchange's form has no authserv-id (``spf=fail …; dkim=none …; dmarc=fail action=oreject
    …; compauth=fail reason=000``); it is read as if it had one. What the grammar still cannot
    read is salvaged: every ``dmarc=``, ``dkim=``, ``spf=`` and ``compauth=`` it states counts,
    so an unreadable header never hides a failure.
    """
    text = " ".join(value.split())
    # An authserv-id is a token, which cannot hold "=": a header opening with one has none.
    without_id = bool(_STARTS_WITH_RESULT.match(text))
    authserv = _NO_AUTHSERV_ID if without_id else text.split(";")[0].strip()[:60] or "?"
    try:
        header = _AUTHRES.parse_value(f"exchange; {text}" if without_id else text)
    except authres.AuthResError:
        return _AuthHeader(authserv, _salvage(text), False)
    results = _with_reasons(
        tuple(
            _AuthResult(
                r.method.lower(),
                str(r.result).lower(),
                _dkim_domain(r) if r.method.lower() == "dkim" else None,
            )
            for r in header.results
        ),
        text,
    )
    # The grammar is lenient: a result after a stray "(" can vanish into a comment.
    read = {(r.method, r.result) for r in results}
    missed = tuple(r for r in _salvage(text) if (r.method, r.result) not in read)
    authserv = authserv if without_id else header.authserv_id
    return _AuthHeader(authserv, results + missed, not missed)


def _with_reasons(results: tuple[_AuthResult, ...], text: str) -> tuple[_AuthResult, ...]:
    """authres drops compauth's ``reason=``; take it from the text (Microsoft's verdict code)."""
    reasons = {r.method: r.reason for r in _salvage(text) if r.reason}
    return tuple(
        _AuthResult(r.method, r.result, r.dkim_domain, reasons.get(r.method)) for r in results
    )


def _salvage(text: str) -> tuple[_AuthResult, ...]:
    """Every result a header states outside comments, with the properties up to the next."""
    while (uncommented := _COMMENT.sub(" ", text)) != text:  # (nested (comments)) say nothing
        text = uncommented
    found = []
    matches = list(_RESULT.finditer(text))
    for i, match in enumerate(matches):
        tail = text[match.end() : matches[i + 1].start() if i + 1 < len(matches) else None]
        props = {k.lower(): v for k, v in _PROPERTY.findall(tail)}
        method = match.group(1).lower()
        domain = props.get("header.d") or props.get("header.i", "").rpartition("@")[2] or None
        found.append(
            _AuthResult(
                method,
                match.group(2).lower(),
                domain.lower() if method == "dkim" and domain else None,
                props.get("reason"),
            )
        )
    return tuple(found)


def _check_auth_results(values: Iterable[str], found: _Findings, dkim_passed: bool) -> None:
    """Apply SPEC §5 to the trusted Authentication-Results headers (newest first).

    Without configured authserv-ids only the topmost header (the receiving server's own) is
    trusted; with them, the headers of those servers, and a topmost header without an
    authserv-id (Exchange's).
    """
    trusted = tuple(i.lower() for i in found.policy.authserv_ids)
    headers = []
    for index, value in enumerate(values):
        header = _read_auth_header(value)
        topmost_without_id = index == 0 and header.authserv == _NO_AUTHSERV_ID
        if trusted and header.authserv.lower() not in trusted and not topmost_without_id:
            continue
        if not trusted and index > 0:
            break
        if not header.complete:
            found.add("auth_results_partial", authserv=header.authserv)
        headers.append(header)
    results = [(h.authserv, r) for h in headers for r in h.results]
    domain = found.sender_domain
    dkim_passed = dkim_passed or any(
        r.method == "dkim" and r.result == "pass" and _aligned(r.dkim_domain or "", domain)
        for _, r in results
    )
    for authserv, r in results:
        if r.method == "dmarc" and r.result == "fail":
            found.add("dmarc_fail", authserv=authserv)
        elif r.method == "dkim" and r.result == "fail":
            if r.dkim_domain is None or _aligned(r.dkim_domain, domain):
                found.add("dkim_fail", authserv=authserv, domain=r.dkim_domain or domain)
        elif r.method == "spf" and r.result in ("fail", "softfail") and not dkim_passed:
            found.add("spf_fail", authserv=authserv, result=r.result)
        elif r.method == "compauth" and r.result == "fail":
            found.add("compauth_fail", authserv=authserv, reason=r.reason or "-")
        elif r.method == "compauth" and r.result == "softfail":
            found.add("compauth_softfail", authserv=authserv, reason=r.reason or "-")


def _dkim_domain(result: authres.AuthenticationResult) -> str | None:
    """The signing domain of a dkim result: header.d, else the domain of header.i."""
    values = {(p.type, p.name): p.value for p in result.properties}
    if values.get(("header", "d")):
        return str(values[("header", "d")]).lower()
    if values.get(("header", "i")):
        return str(values[("header", "i")]).rpartition("@")[2].lower()
    return None


def _dkim_problem(
    raw: bytes, domain: str, dns_txt: Callable[[bytes], bytes | None] | None
) -> str | None:
    """None when a DKIM signature of the domain (or a subdomain) verifies, else why not."""
    import dkim  # only with [verify] dkim = true: it loads a DNS resolver (~0.2 s)
    from dkim.util import InvalidTagValueList, parse_tag_value

    try:
        message = dkim.DKIM(raw)
    except dkim.DKIMException as exc:
        return f"message not readable: {exc}"
    signatures = [v for k, v in message.headers if k.lower() == b"dkim-signature"]
    aligned = []
    for index, value in enumerate(signatures):
        try:
            signer = parse_tag_value(value).get(b"d", b"").decode("ascii", "replace")
        except InvalidTagValueList:
            continue
        if _aligned(signer, domain):
            aligned.append(index)
    if not aligned:
        return f"no signature with d={domain}"
    kwargs = {} if dns_txt is None else {"dnsfunc": lambda name, timeout=5: dns_txt(name)}
    problem = "signature does not verify"
    for index in aligned:
        try:
            if message.verify(idx=index, **kwargs):
                return None
        except dkim.DKIMException as exc:  # a missing or bad key, a malformed signature
            problem = f"signature does not verify: {exc}"
    return problem


# --- links ---------------------------------------------------------------------------------


def _check_link(link: Link, found: _Findings) -> None:
    url = link.url.strip()
    shown_url = _for_people(url)
    scheme_match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme == "mailto":
        for addr in unquote(url[len("mailto:") :].partition("?")[0]).split(","):
            if addr.strip().lower() != found.sender:
                found.add("link_mailto_other", address=addr.strip())
        return
    if scheme in _IGNORED_SCHEMES:
        return
    if scheme not in ("", "http", "https"):
        found.add("link_bad_scheme", url=shown_url, scheme=scheme)
        return
    userinfo, host = split_authority(url)
    if host is None:  # "#top", a relative path: nowhere to go from a mail
        return
    if userinfo is not None:
        found.add("link_userinfo", url=shown_url, userinfo=userinfo, host=host)
    if not any(_aligned(host, official) for official in found.official):
        code = (
            "link_lookalike_host"
            if any(resembles(host, official) for official in found.official)
            else "link_unofficial_host"
        )
        found.add(code, url=shown_url, host=host)
    elif scheme == "http":
        found.add("link_not_https", url=shown_url)
    shown_host = _shown_host(link.shown_text) if link.shown_text else None
    if shown_host and _same_site_key(shown_host) != _same_site_key(host):
        found.add("link_text_mismatch", shown_host=shown_host, host=host)


def _shown_host(text: str) -> str | None:
    """The host of the URL a link's text shows, if it shows one."""
    text = unicodedata.normalize("NFKC", text)
    for link in extract_links(text, None):
        host = url_host(link.url)
        if host:
            return host
    bare = _BARE_HOST.search(text)
    return bare.group().lower() if bare else None


def _same_site_key(host: str) -> str:
    """Hosts a reader cannot tell apart on screen compare equal: NFKC, without ``www.``."""
    return unicodedata.normalize("NFKC", host).lower().removeprefix("www.")


def _for_people(url: str) -> str:
    """A URL fit for reports: one-time token masked, no invisible character (a bidi control
    would reorder the report line), length bounded."""
    masked = mask_token(strip_invisible(url))
    return masked if len(masked) <= 100 else masked[:97] + "..."
