"""Assessments → the report document (SPEC §7) and its JSON, CSV, HTML and terminal forms."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from bs4 import BeautifulSoup
from rich.console import Console

from gmis_mailscan import report
from gmis_mailscan.assess import AccountFacts, assess_account
from gmis_mailscan.records import Reason, ScannedMessage
from gmis_mailscan.report import csvfile, formats
from gmis_mailscan.report.csvfile import to_csv
from gmis_mailscan.report.html import render_html
from gmis_mailscan.report.terminal import fold, to_plain, to_terminal
from gmis_mailscan.report.texts import columns, load_texts
from gmis_mailscan.report.view import build_view
from gmis_mailscan.sources import Quota
from gmis_mailscan.tomlcheck import TomlError

REPO = Path(__file__).resolve().parent.parent
TOKYO = ZoneInfo("Asia/Tokyo")

PW, UC = "password_registration", "user_confirmation"
TOKEN_HASH = "ab" * 32
NASTY = "<script>alert('x')</script> & [bold red]病院[/bold red]"
LAST_RUN = {
    "id": 3,
    "started_at": "2023-11-06T01:00:00",
    "finished_at": "2023-11-06T01:00:05",
    "status": "ok",
    "fetched": 7,
    "stored": 2,
    "errors": [],
}


def mail(type_, folder, role, institution, genuine=True, n=1, **fields) -> ScannedMessage:
    return ScannedMessage(
        folder=folder,
        folder_role=role,
        locator=f"uid:{n}",
        uid=n,
        sha256=f"{n:064x}",
        size=10,
        type=type_,
        message_id=f"m{n}@g-mis.net",
        subject="【厚生労働省G-MIS事務局】件名",
        from_address="info@g-mis.net" if genuine else "info@g-rnis.net",
        date=datetime(2023, 11, 6, 10, n, tzinfo=timezone(timedelta(hours=9))),
        rule=type_,
        fields={"institution": institution, **fields},
        genuine=genuine,
        reasons=() if genuine else (Reason("sender_lookalike", "lookalike", "偽のドメイン"),),
    )


@pytest.fixture
def assessments(rules):
    sakura = AccountFacts(
        "sakura", None, "鹿児島県鹿屋市札元1丁目1番1号", Quota(500, 1000), None, ()
    )
    messages = [
        mail(
            PW,
            "迷惑メール",
            "junk",
            "さくら病院",
            n=1,
            login_id="kgs-sakura01",
            password_url="https://www.med-login.mhlw.go.jp/login?c=***",
            password_url_token_sha256=TOKEN_HASH,
        ),
        mail(PW, "INBOX", "inbox", "さくら病院", genuine=False, n=2),
        mail(
            UC,
            "INBOX",
            "inbox",
            NASTY,
            n=3,
            application_number="A-1",
            login_id="kgs-nasty",
            address="熊本県熊本市",
        ),
    ]
    empty = AccountFacts("empty", "みどり病院", None, None, None, ())
    return assess_account(sakura, messages, rules, 0.9) + assess_account(empty, [], rules, 0.9)


@pytest.fixture
def doc(assessments, rules):
    return report.build(assessments, rules, LAST_RUN)


REQUIRED = {
    "account": str,
    "institution": (str, type(None)),
    "login_id": (str, type(None)),
    "application_number": (str, type(None)),
    "state": str,
    "path": str,
    "evidence": list,
    "warnings": list,
    "contact": dict,
}
EVIDENCE_REQUIRED = {
    "type": str,
    "folder": str,
    "folder_role": str,
    "genuine": bool,
    "reasons": list,
}
PATHS = {"none", "method1", "method2", "method3", "method4", "contact", "register", "review"}


def test_json_contract(doc):
    parsed = json.loads(formats.to_json(doc))
    assert parsed == json.loads(json.dumps(doc))  # JSON-ready as built
    assert isinstance(parsed["institutions"], list) and len(parsed["institutions"]) == 3
    for item in parsed["institutions"]:
        for key, kind in REQUIRED.items():
            assert key in item, key
            assert isinstance(item[key], kind), key
        assert item["path"] in PATHS
        assert isinstance(item["label"], str) and item["label"]
        assert all(isinstance(s, str) for s in item["instructions"])
        assert all(isinstance(w, str) for w in item["warnings"])
        assert {"name", "phone"} <= set(item["contact"])
        for ev in item["evidence"]:
            for key, kind in EVIDENCE_REQUIRED.items():
                assert isinstance(ev[key], kind), key
            assert ev["folder_role"] in ("inbox", "junk", "other")
            for reason in ev["reasons"]:
                assert set(reason) == {"code", "en", "ja"}
    assert parsed["last_scan"] == LAST_RUN
    assert parsed["helpdesk"] == {"name": "厚生労働省G-MIS事務局", "phone": "0570-783-872"}
    datetime.fromisoformat(parsed["generated_at"])


def test_json_values(doc):
    items = {(i["account"], i["institution"]): i for i in doc["institutions"]}
    sakura = items[("sakura", "さくら病院")]
    assert (sakura["state"], sakura["path"], sakura["label"]) == (
        "password_mail_in_junk",
        "method2",
        "対応方法2",
    )
    assert sakura["login_id"] == "kgs-sakura01"
    assert sakura["contact"] == {
        "name": "鹿屋保健所（指導監査係）",
        "phone": "0994-52-2125",
        "area": sakura["contact"]["area"],
    }
    assert sakura["mailbox_usage"] == {"used_kib": 500, "limit_kib": 1000, "ratio": 0.5}
    evidence = {(e["folder"], e["genuine"]): e for e in sakura["evidence"]}
    genuine = evidence[("迷惑メール", True)]
    assert (genuine["type"], genuine["folder_role"], genuine["reasons"]) == (PW, "junk", [])
    spoof = evidence[("INBOX", False)]
    assert [r["code"] for r in spoof["reasons"]] == ["sender_lookalike"]
    assert any("sender_lookalike" in w for w in sakura["warnings"])

    nasty = items[("sakura", NASTY)]
    assert (nasty["path"], nasty["application_number"]) == ("none", "A-1")
    assert nasty["contact"]["phone"] is None  # another prefecture: the fallback, no number

    empty = items[("empty", "みどり病院")]
    assert (empty["state"], empty["path"], empty["evidence"]) == ("no_mail", "register", [])
    assert empty["mailbox_usage"] is None


def test_token_hash_and_token_stay_out_of_the_report(doc):
    text = formats.to_json(doc)
    assert "login?c=***" in text
    assert TOKEN_HASH not in text and "token_sha256" not in text


def view_of(doc, lang="ja", tz=TOKYO, only_action=False):
    return build_view(doc, load_texts(lang), tz, only_action)


def test_alerts_carry_codes_and_both_texts(doc):
    items = {(i["account"], i["institution"]): i for i in doc["institutions"]}
    sakura = items[("sakura", "さくら病院")]
    [alert] = [a for a in sakura["alerts"] if a["code"] == "suspicious_mail"]
    assert alert["severity"] == "danger"
    assert "なりすましの疑い" in alert["ja"] and "偽のドメイン" in alert["ja"]
    assert "sender_lookalike" not in alert["ja"]  # people see texts, the code is beside them
    assert "Suspected phishing" in alert["en"] and "lookalike" in alert["en"]
    assert sakura["needs_action"] is True
    assert items[("sakura", NASTY)]["needs_action"] is False  # the spoof names さくら病院 only
    assert items[("empty", "みどり病院")]["needs_action"] is True  # register


def test_only_action_keeps_institutions_that_need_something(doc, rules):
    done = report.build([_done_assessment(rules)], rules, None)
    assert report.only_action(done)["institutions"] == []
    assert len(report.only_action(doc)["institutions"]) == 2
    assert view_of(done, only_action=True).cards == ()


def _done_assessment(rules):
    facts = AccountFacts("done", None, "鹿児島市山下町11番1号", None, None, ())
    messages = [mail(UC, "INBOX", "inbox", "かもいけ病院", n=7, login_id="kgs-kamoike")]
    [assessment] = assess_account(facts, messages, rules, 0.9)
    return assessment


def test_view_puts_suspected_phishing_first_then_action_then_done(assessments, rules):
    both = report.build([_done_assessment(rules), *assessments], rules, LAST_RUN)
    cards = view_of(both).cards
    assert [c.number for c in cards] == list(range(1, len(cards) + 1))
    kinds = [0 if c.suspicious else 1 if c.path != "none" else 2 for c in cards]
    assert kinds == sorted(kinds) and kinds[-1] == 2 and kinds[0] == 0
    assert "かもいけ病院" in {c.institution for c in cards if c.path == "none"}


def test_local_time_with_a_fixed_zone(doc):
    doc = {**doc, "generated_at": "2026-12-02T14:20:00+00:00"}
    assert view_of(doc).generated == "2026年12月2日 23:20 (JST)"
    assert view_of(doc, "en").generated == "2026-12-02 23:20 (JST)"
    sakura = next(c for c in view_of(doc).cards if c.institution == "さくら病院")
    assert {e.date for e in sakura.evidence} == {
        "2023年11月6日 10:01 (JST)",
        "2023年11月6日 10:02 (JST)",
    }
    assert view_of(doc).last_scan == "2023年11月6日 10:00 (JST)"  # stored naive = UTC
    # The machine's own zone when none is configured (TZ of this process).
    utc = view_of(doc, tz=UTC)
    assert utc.generated == "2026年12月2日 14:20 (UTC)"
    assert json.loads(formats.to_json(doc))["generated_at"] == "2026-12-02T14:20:00+00:00"


def test_english_everywhere(doc):
    view = view_of(doc, "en")
    text = to_plain(view) + render_html(doc, "en", TOKYO) + to_csv(view, "en").decode("utf-8-sig")
    assert "Remedy 2" in text and "The mail was in the junk folder" in text
    assert "Suspected phishing" in text and "Password mail only in a junk folder" in text
    assert '<html lang="en">' in text
    for japanese in ("対応方法", "迷惑メールフォルダ", "なりすまし", "連絡先", "状況"):
        assert japanese not in text.replace('迷惑メール"', ""), japanese
    header = to_csv(view, "en").decode("utf-8-sig").splitlines()[0]
    assert header.startswith("Account,Institution,Login ID,Application number,Action")


@pytest.mark.parametrize("encoding", csvfile.ENCODINGS)
@pytest.mark.parametrize("headers", csvfile.HEADERS)
def test_csv_round_trip(doc, encoding, headers):
    view = view_of(doc)
    data = to_csv(view, headers, encoding)
    assert data.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    rows = list(csv.reader(io.StringIO(data.decode(encoding), newline="")))
    names = {"keys": list(csvfile.COLUMNS)}
    names["ja"] = [load_texts("ja")(f"csv.{k}") for k in csvfile.COLUMNS]
    names["en"] = [load_texts("en")(f"csv.{k}") for k in csvfile.COLUMNS]
    assert rows[0] == names[headers]
    assert len(rows) == 1 + len(view.cards)
    for card, row in zip(view.cards, rows[1:], strict=True):
        record = dict(zip(csvfile.COLUMNS, row, strict=True))
        for key in ("account", "login_id", "application_number", "label", "title", "state_label"):
            assert record[key] == getattr(card, key), key
        assert record["institution"] == card.institution  # < > & ' , [ ] survive
        assert (record["contact_name"], record["contact_phone"]) == (
            card.contact_name,
            card.contact_phone,
        )
        assert (record["state"], record["path"]) == (card.state, card.path)
        assert record["warnings"] == "／".join(a.text for a in card.alerts)
        assert all(e.verdict in record["evidence"] for e in card.evidence)
    sakura = next(r for r in rows if "さくら病院" in r)
    assert "対応方法2" in sakura and "0994-52-2125" in sakura


def test_csv_neutralises_formulas(rules):
    formula = '=HYPERLINK("http://evil.example","x")'
    messages = [
        mail(UC, "INBOX", "inbox", formula, n=1, login_id="kgs-1", application_number="-1+1"),
        mail(UC, "INBOX", "inbox", "@SUM(A1)", n=2, login_id="kgs-2"),
        mail(UC, "INBOX", "inbox", "+cmd|' /C calc'!A0", n=3, login_id="kgs-3"),
    ]
    facts = AccountFacts("=acct", None, None, None, None, ())
    doc = report.build(assess_account(facts, messages, rules, 0.9), rules, None)
    text = to_csv(view_of(doc), "keys", "utf-8").decode("utf-8")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == 3
    for record in records:
        for key, value in record.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (key, value)
    assert {r["institution"] for r in records} == {
        "'" + formula,
        "'@SUM(A1)",
        "'+cmd|' /C calc'!A0",
    }
    assert {r["account"] for r in records} == {"'=acct"}
    assert csvfile.neutralise("\tx") == "'\tx" and csvfile.neutralise("病院") == "病院"


def test_cp932_keeps_the_japanese_of_shift_jis_mail(rules):
    messages = [mail(UC, "INBOX", "inbox", "医療法人①髙木病院～本院", n=1, login_id="kgs-t")]
    facts = AccountFacts("t", None, None, None, None, ())
    doc = report.build(assess_account(facts, messages, rules, 0.9), rules, None)
    data = to_csv(view_of(doc), "ja", "cp932")
    assert "医療法人①髙木病院～本院" in data.decode("cp932")


HOSTILE = (
    '<script>alert(1)</script><img src=x onerror="alert(2)"></svg><svg onload=alert(3)>'
    "\x1b[31m\x1b]0;pwned\x07赤\x1b[0m\x00\x07\u202e[bold red]病院[/bold red]"
)


@pytest.fixture
def hostile_doc(rules):
    messages = [
        mail(
            PW,
            "INBOX\x1b[2J",
            "inbox",
            HOSTILE,
            n=1,
            login_id="kgs-evil",
            password_url="javascript:alert(4)",
        ),
        mail(PW, "<b>Junk</b>", "junk", HOSTILE, genuine=False, n=2),
    ]
    facts = AccountFacts("<i>acct</i>", None, "鹿児島県霧島市1", None, None, ())
    return report.build(assess_account(facts, messages, rules, 0.9), rules, LAST_RUN)


def test_hostile_mail_stays_inert_in_html(hostile_doc):
    page = render_html(hostile_doc, "ja", TOKYO)
    soup = BeautifulSoup(page, "html.parser")
    assert soup.find("script") is None and soup.find("img") is None
    assert not soup.select("[onerror], [onload]")
    assert len(soup.find_all("svg")) == 1  # no second <svg> from the name; none closed early
    svg = soup.find("svg")
    assert "<script>alert(1)</script>" in svg.find("title").get_text()  # text, not markup
    assert "javascript:" not in page
    links = [a["href"] for a in soup.find_all("a")]
    assert links and all(h.startswith(("#inst-", "tel:")) for h in links), links
    [policy] = [m["content"] for m in soup.find_all("meta") if m.get("http-equiv")]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "unsafe-inline" not in policy
    assert "\x1b" not in page and "\x00" not in page and "\u202e" not in page


def test_hostile_mail_stays_inert_in_terminal_and_csv(hostile_doc):
    view = view_of(hostile_doc)
    console = Console(record=True, width=80, color_system="truecolor", force_terminal=True)
    for part in to_terminal(view, 80):
        console.print(part, soft_wrap=True)
    ansi = console.export_text(styles=True, clear=False)
    plain = to_plain(view)
    for text in (plain, console.export_text()):
        assert "\x1b" not in text and "\x07" not in text and "\x00" not in text
        assert "\u202e" not in text
        assert "[boldred]病院[/boldred]" in re.sub(r"\s+", "", text)  # literal, not markup
    assert "]0;pwned" not in ansi and "[2J" not in ansi and "[31m" not in plain
    data = to_csv(view, "ja", "utf-8").decode("utf-8")
    assert "\x1b" not in data and "\x00" not in data


def test_terminal_table_at_80_columns(doc):
    view = view_of(doc)
    console = Console(record=True, width=80, color_system=None)
    for part in to_terminal(view, 80):
        console.print(part, soft_wrap=True)
    text = console.export_text()
    lines = text.splitlines()
    assert max(columns(line) for line in lines) <= 80
    for card in view.cards:
        if card.login_id:
            assert any(card.login_id in line for line in lines), card.login_id  # never split
        assert any(card.contact_phone in line for line in lines)
    for line in lines:
        cells = [c.strip() for c in re.split("[│┃|]", line)]
        assert not any(c.startswith(("）", "、", "。")) for c in cells), line
    assert "┌" in text or "┏" in text  # a terminal gets the table
    assert "state:" not in text and "sender_lookalike" not in text
    assert "偽のドメイン" in text and "鹿屋保健所" in text


def test_terminal_keeps_a_long_login_id_whole(rules):
    long_id = "kgs-a-very-long-login-id-0123456789"
    messages = [
        mail(
            PW,
            "INBOX",
            "inbox",
            "とても長い名前の医療法人社団きりしま記念病院",
            n=1,
            login_id=long_id,
        )
    ]
    facts = AccountFacts("long", None, "霧島市", None, None, ())
    doc = report.build(assess_account(facts, messages, rules, 0.9), rules, None)
    console = Console(record=True, width=80, color_system=None)
    for part in to_terminal(view_of(doc), 80):
        console.print(part, soft_wrap=True)
    text = console.export_text()
    assert long_id in text
    assert max(columns(line) for line in text.splitlines()) <= 80


def test_wide_table_has_every_column(doc):
    view = view_of(doc)
    console = Console(record=True, width=200, color_system=None)
    for part in to_terminal(view, 200, wide=True):
        console.print(part, soft_wrap=True)
    text = console.export_text()
    for header in ("アカウント", "申請番号", "状況", "根拠", "警告"):
        assert header in text.splitlines()[4] or header in text, header
    assert "A-1" in text


def test_plain_layout_for_mail(doc):
    view = view_of(doc)
    text = to_plain(view)
    assert not set(text) & set("┌┐└┘│─┏┓┗┛┃━╭╮╰╯")
    assert max(columns(line) for line in text.splitlines()) <= 76
    assert all(not line.lstrip().startswith(("）", "、", "。")) for line in text.splitlines())
    assert "なりすまし疑い 1件 / 対応が必要 1件 / 対応不要 1件" in text  # spoof: さくら病院 only
    for card in view.cards:
        assert f"{card.number}. {card.institution}" in text
        assert card.label in text
    assert "kgs-sakura01" in text and "0994-52-2125" in text
    assert "0570-783-872" in text


@pytest.mark.parametrize(
    ("text", "width", "lines"),
    [
        ("姶良保健所（指導監査係）", 10, ["姶良保健所", "（指導監査", "係）"]),
        ("あいう。えお", 6, ["あい", "う。え", "お"]),
        ("あいう（えお）", 8, ["あいう", "（えお）"]),
        ("ID: kgs-kirishima-21 です", 12, ["ID:", "kgs-kirishim", "a-21 です"]),
        ("ログインIDは kgs-chuo-007 です", 14, ["ログインIDは", "kgs-chuo-007", "です"]),
    ],
)
def test_fold_follows_japanese_line_breaking(text, width, lines):
    assert fold(text, width) == lines


def test_every_state_has_a_flowchart_path(rules):
    texts = load_texts("ja")
    assert set(texts.diagram.paths) == set(rules.states)
    for state, ids in texts.diagram.paths.items():
        end = texts.diagram.nodes[ids[-1]]
        assert end.kind == "end"
        assert (
            end.path
            == {
                "existing_account": "none",
                "login_completed": "none",
                "url_unreachable": "method3",
                "password_mail_received": "method4",
                "password_mail_in_junk": "method2",
                "mailbox_full": "method1",
                "no_mail": "register",
                "notice_only": "contact",
                "suspicious_only": "review",
                "forwarded_copy": "review",
            }[state]
        )


def test_messages_need_both_languages(tmp_path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules_dir)
    path = rules_dir / "messages.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace('count_done = "nothing to do"\n', ""), "utf-8"
    )
    with pytest.raises(TomlError, match=r"messages.toml: en.count_done: missing"):
        load_texts("en", rules_dir)


def test_a_box_line_too_wide_is_an_error(tmp_path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules_dir)
    path = rules_dir / "diagram.toml"
    text = path.read_text(encoding="utf-8").replace('"件名はどちらか"', '"件名はどちらでしょうか"')
    path.write_text(text, "utf-8")
    with pytest.raises(TomlError, match=r"diagram.toml: nodes.q3.ja: line .* too wide"):
        load_texts("ja", rules_dir)


def test_empty_report(rules):
    doc = report.build([], rules, None)
    assert doc["institutions"] == [] and doc["last_scan"] is None
    view = view_of(doc)
    assert to_csv(view, "keys", "utf-8").decode().splitlines() == [",".join(csvfile.COLUMNS)]
    assert "対象の医療機関はありません" in render_html(
        doc
    ) and "スキャンの記録がありません" in to_plain(view)
    assert json.loads(formats.to_json(doc))["institutions"] == []


def test_generated_at_is_utc(doc):
    generated = datetime.fromisoformat(doc["generated_at"])
    assert generated.utcoffset() == UTC.utcoffset(None)
