"""Bad mail never stops a scan: public malformed-mail corpora, generated damage, and fuzzing.

Every message goes through `scan.examine()` (parse → classify → verify) and through a real
scan of a Maildir holding it. Nothing may raise; each message is either classified, ignored
(not G-MIS-looking mail) or stored as `unparseable` with a reason.

1. The public corpora in ../shared/corpora (mail-parser's and CPython's malformed test mail).
   They are read where they are, never copied; GMIS_CORPORA_DIR names another place. When
   they are missing the test fails and says where it looked.
2. Generated damage (GENERATED below): G-MIS mails truncated at many points, wrong and
   unknown charsets, broken base64 and quoted-printable, a 30 MB attachment, multiparts nested
   100, 150, 500 and 2000 deep, NUL bytes, an empty message, header-only mail, huge headers,
   binary garbage. Where the damage leaves the subject readable, the message keeps its type
   (and its login ID when the body still holds it): a charset or a broken part must not cost
   the evidence.
3. Hypothesis mutates genuine G-MIS mails (byte flips, deletions, insertions, duplicated
   header fields): examine() returns None or a ScannedMessage and never raises; damage to
   the body or duplicated headers never change the type.
"""

from __future__ import annotations

import base64
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import mailfactory
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import REPO_ROOT, cli, rows, sqlite_url, write_config

from gmis_mailscan.config import no_config
from gmis_mailscan.records import OTHER_GMIS, UNPARSEABLE, RawMessage, ScannedMessage
from gmis_mailscan.rules import load_rules
from gmis_mailscan.scan import examine, verify_policy

CORPORA_ENV = "GMIS_CORPORA_DIR"
RULES = load_rules()
POLICY = verify_policy(no_config(), RULES)
PW = "password_registration"
LOGIN = "kgs-sakura01"
PW_SUBJECT_B64 = base64.b64encode(mailfactory.SUBJECTS[PW].encode()).decode()
HYPOTHESIS_EXAMPLES = {"mutations": 400, "body damage": 200, "duplicated headers": 200}
HYPOTHESIS = settings(
    deadline=None,  # no timing assertions: a slow machine is not a failure
    database=None,
    derandomize=True,  # the same examples on every run, so CI failures reproduce
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def corpus_files() -> list[Path]:
    """The corpus files; a missing corpus is a failure that says where it looked."""
    where = Path(os.environ.get(CORPORA_ENV) or REPO_ROOT.parent / "shared" / "corpora")
    if not where.is_dir():
        pytest.fail(
            f"malformed-mail corpora not found at {where}: they live beside the checkout in "
            f"../shared/corpora; set {CORPORA_ENV}=/path/to/corpora to read them elsewhere",
            pytrace=False,
        )
    files = sorted(
        p
        for p in where.rglob("*")
        if p.is_file() and p.name != "README.md" and not p.name.startswith(".")
    )
    folders = {p.parent.name for p in files}
    if not {"mail-parser", "cpython-test-email"} <= folders:
        pytest.fail(f"{where}: expected mail-parser/ and cpython-test-email/, found {folders}")
    return files


def run(data: bytes, locator: str = "test") -> ScannedMessage | None:
    result = examine(RawMessage("INBOX", "inbox", locator, data), RULES, POLICY)
    assert result is None or isinstance(result, ScannedMessage)
    if result is not None:
        assert result.sha256 and result.size == len(data)
        if result.type == UNPARSEABLE:
            assert result.parse_error and "\n" not in result.parse_error
            assert result.genuine is not True
        else:
            assert result.type in {t.id for t in RULES.types} | {"other_gmis"}
    return result


# --- generated malformed mail ---------------------------------------------------------------


def _head(extra: str = "", subject: str | None = None) -> bytes:
    subject = subject if subject is not None else f"=?utf-8?b?{PW_SUBJECT_B64}?="
    return (
        "From: =?utf-8?b?5Y6a55Sf5Yq05YON55yBRy1NSVPkuovli5nlsYA=?= <info@g-mis.net>\r\n"
        "To: jimu@sakura-hospital.example\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 06 Nov 2023 10:00:00 +0900\r\n"
        f"Message-ID: <{random.Random(subject + extra).getrandbits(64):x}@g-mis.net>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    ).encode()


BODY = (
    "さくら病院 ご担当者様\n\nG-MISへようこそ!\n"
    "システムをご利用するには https://www.med-login.mhlw.go.jp/login?c=Qx7pL2mN9vR4 にアクセスし、"
    "パスワードを設定してください。\nユーザ名(ログインID): kgs-sakura01\n"
)


def _text(charset: str, body: bytes, cte: str = "8bit") -> bytes:
    return (
        _head(
            f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n"
        )
        + b"\r\n"
        + body
    )


def _nested(depth: int, kind: str = "multipart") -> bytes:
    """The password mail's text part at the bottom of `depth` nested containers."""
    opening, closing = [], []
    for i in range(depth):
        if kind == "multipart":
            opening.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n')
            closing.insert(0, f"\r\n--b{i}--\r\n")
        else:
            opening.append(
                "Content-Type: message/rfc822\r\n\r\nFrom: a@b.example\r\nSubject: x\r\n"
            )
    inner = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + BODY
    return _head() + ("".join(opening) + inner + "".join(closing)).encode()


def _with_attachment(size: int) -> bytes:
    blob = base64.encodebytes(random.Random(size).randbytes(size))
    return (
        _head('Content-Type: multipart/mixed; boundary="zz"\r\n')
        + b"\r\n--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + BODY.encode()
        + b'\r\n--zz\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + blob
        + b"\r\n--zz--\r\n"
    )


def _broken_base64() -> list[tuple[str, bytes]]:
    good = base64.encodebytes(BODY.encode()).decode()
    return [
        ("base64 with garbage characters", good[:40] + "!!*&^%$" + good[40:]),
        ("base64 without padding", good.rstrip().rstrip("=")),
        ("base64 cut mid-quantum", good[: len(good) // 2 + 1]),
        ("base64 that is plain text", BODY),
        ("base64 with a NUL", good[:30] + "\x00" + good[30:]),
    ]


def _broken_qp() -> list[tuple[str, bytes]]:
    import quopri

    good = quopri.encodestring(BODY.encode()).decode()
    return [
        ("QP with bad escapes", good.replace("=E3", "=ZZ", 3)),
        ("QP with a lone = at the end", good + "="),
        ("QP soft break inside a character", good.replace("=81", "=\r\n=81", 5)),
        ("QP lower-case escapes", good.lower()),
    ]


def _truncations() -> list[tuple[str, Callable[[], bytes], str | tuple]]:
    seeds = [
        ("utf8-html", mailfactory.build(PW)),
        ("jis-text", mailfactory.build(PW, charset="iso-2022-jp", body="text")),
        ("sjis-alt", mailfactory.build(PW, charset="shift_jis", cte="8bit", body="alternative")),
        ("cp932-qp", mailfactory.build(PW, charset="cp932", cte="quoted-printable")),
        ("confirmation", mailfactory.build("user_confirmation", body="alternative")),
        ("notice-jis", mailfactory.build("account_notice", charset="iso-2022-jp")),
    ]
    out = []
    for name, data in seeds:
        kind = run(data).type
        header_end = data.index(b"\r\n\r\n")
        for i in range(TRUNCATIONS_PER_MAIL):
            cut = len(data) * i // TRUNCATIONS_PER_MAIL
            expect = ("type", kind) if cut > header_end else ("header cut", kind)
            out.append((f"truncated {name} at {cut}", lambda d=data, c=cut: d[:c], expect))
    return out


TRUNCATIONS_PER_MAIL = 45
rnd = random.Random(20231127)
_GARBAGE = [(f"garbage {n} bytes", rnd.randbytes(n)) for n in (1, 7, 100, 1000, 10_000, 100_000)]

GENERATED: list[tuple[str, Callable[[], bytes], str | tuple]] = [
    # charsets: wrong labels must not cost a field
    ("charset x-unknown", lambda: _text("x-unknown", BODY.encode()), ("login", PW)),
    ("utf-8 label, Shift_JIS bytes", lambda: _text("utf-8", BODY.encode("cp932")), ("login", PW)),
    ("iso-2022-jp label, UTF-8 bytes", lambda: _text("iso-2022-jp", BODY.encode()), ("login", PW)),
    ("shift_jis label, EUC-JP bytes", lambda: _text("shift_jis", BODY.encode("euc_jp")), ("login", PW)),
    ("charset undefined (a codec that always fails)", lambda: _text("undefined", BODY.encode()), ("login", PW)),
    ("charset with a NUL", lambda: _text('"utf-8\x00"', BODY.encode()), ("login", PW)),
    ("charset name 2000 long", lambda: _text("x" * 2000, BODY.encode()), ("login", PW)),
    ("charset rot13 (text codec of str)", lambda: _text("rot13", BODY.encode()), ("login", PW)),
    ("charset utf-16 without BOM", lambda: _text("utf-16", BODY.encode()), ("type", PW)),
    ("subject in charset x-unknown", lambda: _head(subject=f"=?x-unknown?B?{PW_SUBJECT_B64}?=")
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + BODY.encode(), ("login", PW)),
    ("subject in charset undefined", lambda: _head(subject=f"=?undefined?B?{PW_SUBJECT_B64}?=")
        + b"\r\n" + BODY.encode(), ("login", PW)),
    ("subject encoded word with broken base64", lambda: _head(subject="=?utf-8?b?44CQ5Y6a!!*?=")
        + b"\r\n" + BODY.encode(), ("type", OTHER_GMIS)),
    ("From display name with broken base64", lambda: _head().replace(b"5Y6a55Sf", b"5Y6a5*Sf", 1)
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + BODY.encode(), ("login", PW)),
    # transfer encodings
    *[(name, lambda b=body: _text("utf-8", b.encode(), "base64"), ("type", PW))
      for name, body in _broken_base64()],
    *[(name, lambda b=body: _text("utf-8", b.encode(), "quoted-printable"), ("type", PW))
      for name, body in _broken_qp()],
    ("unknown transfer encoding", lambda: _text("utf-8", BODY.encode(), "x-bogus"), ("login", PW)),
    ("uuencode transfer encoding", lambda: _text("utf-8", b"begin 644 x\n!80``\n`\nend\n", "x-uuencode"), ("type", PW)),
    # size
    ("30 MB attachment", lambda: _with_attachment(30 * 1024 * 1024), ("login", PW)),
    # structure
    ("multipart nested 100 deep", lambda: _nested(100), ("login", PW)),
    ("multipart nested 150 deep", lambda: _nested(150), ("login", PW)),
    ("multipart nested 500 deep", lambda: _nested(500), ("type", PW)),
    ("multipart nested 2000 deep", lambda: _nested(2000), ("unparseable", "nested too deeply")),
    ("message/rfc822 nested 2000 deep", lambda: _nested(2000, "rfc822"), ("unparseable", "nested")),
    ("multipart without its boundary", lambda: _head("Content-Type: multipart/mixed\r\n")
        + b"\r\n" + BODY.encode(), ("type", PW)),
    ("multipart never closed", lambda: _nested(3).rsplit(b"--b0--", 1)[0], ("login", PW)),
    ("HTML nested 20000 deep", lambda: _head("Content-Type: text/html; charset=utf-8\r\n")
        + b"\r\n" + b"<div>" * 20000 + BODY.encode() + b"</div>" * 20000, ("login", PW)),
    ("HTML 40000 unclosed tags", lambda: _head("Content-Type: text/html; charset=utf-8\r\n")
        + b"\r\n" + b"<b><i>" * 20000 + BODY.encode(), ("login", PW)),
    # NUL bytes
    ("NUL bytes in the body", lambda: _text("utf-8", BODY.encode().replace(b"\n", b"\x00\n")), ("login", PW)),
    ("NUL byte in the Subject", lambda: _head(subject="G-MIS\x00 notice") + b"\r\nbody", ("type", OTHER_GMIS)),
    ("NUL bytes in the Message-ID", lambda: _head().replace(b"Message-ID: <", b"Message-ID: <\x00\x00")
        + b"\r\n" + BODY.encode(), ("type", PW)),
    ("only NUL bytes", lambda: b"\x00" * 1000, ("unparseable", "")),
    # empty and header-only
    ("empty message", lambda: b"", ("unparseable", "empty message")),
    ("only line breaks and blanks", lambda: b"\r\n\r\n \t\r\n", ("unparseable", "empty message")),
    ("header only, no blank line", lambda: _head().rstrip(b"\r\n"), ("type", PW)),
    ("header and blank line, no body", lambda: _head() + b"\r\n", ("type", PW)),
    ("body only, no header", lambda: BODY.encode("utf-8"), ("unparseable", "")),
    # odd headers
    ("Subject of 1 MB", lambda: _head(subject="G-MIS " + "あ" * 350_000) + b"\r\n" + BODY.encode(), ("type", OTHER_GMIS)),
    ("10000 header fields", lambda: _head("".join(f"X-H{i}: v\r\n" for i in range(10000)))
        + b"\r\n" + BODY.encode(), ("login", PW)),
    ("From with 2000 addresses", lambda: _head().replace(b"To: ", b"From: " + b", ".join(
        b"a%d@x.example" % i for i in range(2000)) + b"\r\nTo: ", 1) + b"\r\n" + BODY.encode(), ("suspicious", PW)),
    ("header line without a colon", lambda: _head("this is no header\r\n") + b"\r\n" + BODY.encode(), ("login", PW)),
    ("CR-only line ends", lambda: (_head() + b"\r\n" + BODY.encode()).replace(b"\r\n", b"\r").replace(b"\n", b"\r"), ("login", PW)),
    ("LF-only line ends", lambda: (_head() + b"\r\n" + BODY.encode()).replace(b"\r\n", b"\n"), ("login", PW)),
    # binary garbage
    *[(name, lambda d=data: d, "not genuine") for name, data in _GARBAGE],
    ("garbage after a G-MIS header", lambda: _head() + b"\r\n" + rnd.randbytes(5000), ("type", PW)),
    *_truncations(),
]  # fmt: skip


def _check(result: ScannedMessage | None, expect) -> None:
    if expect == "not genuine":
        assert result is None or not result.genuine
        return
    what, value = expect
    if what == "header cut":  # a mail cut inside its header: whatever is left, read as such
        if result is None or result.type == UNPARSEABLE:
            assert result is None or result.parse_error, "unparseable without a reason"
            return
        assert result.type in (value, OTHER_GMIS), result.type  # never another type
        assert "login_id" not in result.fields  # no body, no field
        assert not result.genuine or result.from_address == "info@g-mis.net"
        return
    assert result is not None
    if what == "suspicious":
        assert result.type == value and not result.genuine and result.reasons
        return
    if what == "unparseable":
        assert result.type == UNPARSEABLE and value in result.parse_error, result.parse_error
    else:
        assert result.type == value, (result.type, result.parse_error)
        if what == "login":
            assert result.fields.get("login_id") == LOGIN, result.fields


def test_generated_cases_have_unique_names():
    names = [name for name, _, _ in GENERATED]
    assert len(names) == len(set(names))
    assert len(GENERATED) >= 300


@pytest.mark.parametrize("make,expect", [c[1:] for c in GENERATED], ids=[c[0] for c in GENERATED])
def test_generated_malformed_mail(make, expect):
    _check(run(make()), expect)


def test_corpora_through_examine():
    files = corpus_files()
    outcomes = {"ignored": 0, "classified": 0, "unparseable": 0}
    for path in files:
        result = run(path.read_bytes(), str(path))
        if result is None:
            outcomes["ignored"] += 1
        elif result.type == UNPARSEABLE:
            outcomes["unparseable"] += 1
        else:
            outcomes["classified"] += 1
    assert sum(outcomes.values()) == len(files) >= 50
    assert outcomes["ignored"] and outcomes["unparseable"]  # the corpora hold both kinds


def _maildir_scan(tmp: Path, messages: list[bytes]) -> None:
    """Write `messages` into a Maildir (every third one into .Junk), scan it through the CLI,
    and check the database against examine() of each message."""
    root = tmp / "Maildir"
    expected: dict[str, ScannedMessage] = {}
    for i, data in enumerate(messages):
        folder = root / ".Junk" if i % 3 == 2 else root
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        path = folder / "new" / f"{1700000000 + i}.M{i}P1.bad"
        path.write_bytes(data)
        result = run(data)
        if result is not None:
            expected[f"{folder}/{path.name}"] = result
    keys = [m.dedup_key for m in expected.values()]
    assert len(keys) == len(set(keys)), "test data: two messages share a Message-ID"
    db = tmp / "db.sqlite3"
    config = write_config(
        tmp / "config.toml", sqlite_url(db), [{"name": "bad", "maildir": str(root)}]
    )
    result = cli(config, "scan", timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no traceback, no library chatter about the bad mail
    assert f"bad: {len(messages)} fetched, {len(expected)} new" in result.stdout

    stored = dict(
        rows(
            sqlite_url(db),
            "SELECT l.locator, m.type || '|' || COALESCE(m.parse_error, '') "
            "FROM locations l JOIN messages m ON m.id = l.message_pk",
        )
    )
    assert set(stored) == set(expected)  # every message not ignored is stored, nothing else
    for locator, scanned in expected.items():
        kind, _, error = stored[locator].partition("|")
        assert kind == scanned.type, locator
        if kind == UNPARSEABLE:
            assert error, f"{locator}: stored unparseable without a reason"
    again = cli(config, "scan")
    assert again.returncode == 0 and ", 0 new;" in again.stdout, again.stdout
    assert rows(sqlite_url(db), "SELECT COUNT(*) FROM messages") == [(len(expected),)]
    report = cli(config, "report", "--format", "json")
    assert report.returncode == 0 and report.stderr == ""


def test_corpora_through_a_maildir_scan(tmp_path):
    _maildir_scan(tmp_path, [p.read_bytes() for p in corpus_files()])


def test_generated_malformed_mail_through_a_maildir_scan(tmp_path):
    # one Message-ID per message (truncated copies of one mail are one message), and each
    # content once (the six truncations at byte 0 are all the empty message)
    messages = list(dict.fromkeys(make() for _, make, _ in GENERATED))
    _maildir_scan(
        tmp_path,
        [m.replace(b"Message-ID: <", b"Message-ID: <%d." % i, 1) for i, m in enumerate(messages)],
    )


# --- property-based: mutated genuine G-MIS mail ---------------------------------------------

SEEDS = [data for _, data in mailfactory.genuine_variants()]
SEED_RESULTS = [run(data) for data in SEEDS]


def _header_fields(head: bytes) -> list[bytes]:
    """Header fields with their continuation lines."""
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields


_OPS = st.tuples(
    st.sampled_from(["flip", "delete", "insert", "duplicate header"]),
    st.integers(min_value=0),
    st.binary(min_size=1, max_size=24),
    st.integers(min_value=1, max_value=64),
)


def _mutate(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for op, position, blob, length in ops:
        at = position % (len(out) + 1)
        if op == "flip" and out:
            out[at % len(out)] ^= blob[0] or 0xFF
        elif op == "delete":
            del out[at : at + length]
        elif op == "insert":
            out[at:at] = blob
        elif op == "duplicate header":
            head, sep, body = bytes(out).partition(b"\r\n\r\n")
            fields = _header_fields(head)
            copy = fields[position % len(fields)]
            fields.insert(length % (len(fields) + 1), copy)
            out = bytearray(b"\r\n".join(fields) + sep + body)
    return bytes(out)


@settings(HYPOTHESIS, max_examples=HYPOTHESIS_EXAMPLES["mutations"])
@given(seed=st.sampled_from(range(len(SEEDS))), ops=st.lists(_OPS, min_size=1, max_size=8))
def test_mutated_genuine_mail_never_raises(seed, ops):
    run(_mutate(SEEDS[seed], ops))


@settings(HYPOTHESIS, max_examples=HYPOTHESIS_EXAMPLES["body damage"])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    ops=st.lists(_OPS.filter(lambda op: op[0] != "duplicate header"), min_size=1, max_size=8),
)
def test_damage_to_the_body_never_changes_the_type(seed, ops):
    head, sep, body = SEEDS[seed].partition(b"\r\n\r\n")
    result = run(head + sep + _mutate(body, ops))
    assert result is not None and result.type == SEED_RESULTS[seed].type


@settings(HYPOTHESIS, max_examples=HYPOTHESIS_EXAMPLES["duplicated headers"])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    picks=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0)), min_size=1, max_size=5
    ),
)
def test_duplicated_header_fields_keep_type_and_fields(seed, picks):
    ops = [("duplicate header", which, b"x", where) for which, where in picks]
    result = run(_mutate(SEEDS[seed], ops))
    original = SEED_RESULTS[seed]
    assert result is not None and result.type == original.type
    assert result.fields.get("login_id") == original.fields.get("login_id")


def malformed_message_count() -> int:
    """How many malformed messages this module feeds in (for the README's numbers)."""
    return len(corpus_files()) + len(GENERATED) + sum(HYPOTHESIS_EXAMPLES.values())


def test_malformed_message_count_is_what_the_readme_says():
    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    said = re.search(
        r"\*\*(\d+) malformed messages\*\*: (\d+) from public corpora .*?; (\d+) generated "
        r"\(G-MIS mails truncated at (\d+) points.*?; and (\d+) Hypothesis mutations",
        readme,
    )
    assert said, "README: the bad-mail numbers sentence is gone or reworded"
    total, corpora, generated, truncations, mutations = map(int, said.groups())
    assert total == malformed_message_count() >= 1000
    assert corpora == len(corpus_files())
    assert generated == len(GENERATED)
    assert truncations == sum(name.startswith("truncated ") for name, _, _ in GENERATED)
    assert mutations == sum(HYPOTHESIS_EXAMPLES.values())
