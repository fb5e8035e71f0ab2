"""Assessments → the report document (SPEC §7) and its JSON, CSV, HTML and terminal forms."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rich.console import Console

from gmis_mailscan import report
from gmis_mailscan.assess import AccountFacts, assess_account
from gmis_mailscan.records import Reason, ScannedMessage
from gmis_mailscan.report import formats
from gmis_mailscan.sources import Quota

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


def test_csv(doc):
    text = formats.to_csv(doc)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(formats.CSV_COLUMNS)
    assert len(rows) == 1 + len(doc["institutions"])
    records = list(csv.DictReader(io.StringIO(text)))
    sakura = next(r for r in records if r["institution"] == "さくら病院")
    assert sakura["account"] == "sakura"
    assert (sakura["state"], sakura["path"], sakura["label"]) == (
        "password_mail_in_junk",
        "method2",
        "対応方法2",
    )
    assert sakura["contact_phone"] == "0994-52-2125"
    assert "password_registration@迷惑メール[junk]" in sakura["evidence"]
    assert "(suspicious: sender_lookalike)" in sakura["evidence"]
    nasty = next(r for r in records if r["institution"] == NASTY)  # commas/quotes survive
    assert nasty["application_number"] == "A-1"
    empty = next(r for r in records if r["account"] == "empty")
    assert (empty["login_id"], empty["application_number"], empty["evidence"]) == ("", "", "")


def test_html_escapes_text(doc):
    html = formats.to_html(doc)
    assert html.startswith("<!DOCTYPE html>")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp;" in html
    assert "対応方法2" in html and "0994-52-2125" in html
    assert html.count("<tr>") == 1 + len(doc["institutions"])


def test_terminal_renderables_render(doc):
    console = Console(record=True, width=200, color_system=None)
    for part in formats.to_terminal(doc):
        console.print(part)
    text = console.export_text()
    for expected in ("さくら病院", "みどり病院", "kgs-sakura01", "対応方法2", "0994-52-2125"):
        assert expected in text
    assert "[bold red]病院[/bold red]" in text  # shown literally, not taken as markup
    assert "0570-783-872" in text
    for step in doc["institutions"][0]["instructions"]:
        assert step[:20] in text


def test_empty_report(rules):
    doc = report.build([], rules, None)
    assert doc["institutions"] == [] and doc["last_scan"] is None
    assert formats.to_csv(doc).splitlines() == [",".join(formats.CSV_COLUMNS)]
    assert "<tbody></tbody>" in formats.to_html(doc)
    assert json.loads(formats.to_json(doc))["institutions"] == []


def test_generated_at_is_utc(doc):
    generated = datetime.fromisoformat(doc["generated_at"])
    assert generated.utcoffset() == UTC.utcoffset(None)
