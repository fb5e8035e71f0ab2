"""End to end through the real command line on a copy of examples/ (the repo's stays clean)."""

from __future__ import annotations

import csv
import io
import json
import mailbox
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import inprocess
import mailfactory
import pytest

from gmis_mailscan.parse import parse

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
EXPECTED = json.loads((EXAMPLES / "expected.json").read_text(encoding="utf-8"))
ENV_CHANGES: dict[str, str | None] = {"GMIS_MAILSCAN_CONFIG": None, "COLUMNS": "200"}


def _tokens() -> list[str]:
    """The password-setting tokens examples/generate.py writes into the example mail."""
    source = (EXAMPLES / "generate.py").read_text(encoding="utf-8")
    tokens = re.findall(r'token="([A-Za-z0-9]+)"', source)
    tokens += re.findall(r'SPOOF_TOKEN = "([A-Za-z0-9]+)"', source)
    assert len(tokens) >= 5, tokens
    return tokens


TOKENS = _tokens()


def cli(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    """The command in-process (tests/inprocess.py): only its output and exit code matter."""
    proc = inprocess.run(list(args), cwd=cwd, env=ENV_CHANGES)
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def copy_examples(target: Path) -> Path:
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("example.sqlite3*"))
    return target


def report_json(cwd: Path, *config: str) -> dict:
    return json.loads(cli(*config, "report", "--format", "json", cwd=cwd).stdout)


def paths_by_account(doc: dict) -> dict[str, str]:
    paths: dict[str, str] = {}
    for item in doc["institutions"]:
        assert paths.setdefault(item["account"], item["path"]) == item["path"], item["account"]
    return paths


def message_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """A copy of examples/ scanned once: (folder, output of the scan)."""
    folder = copy_examples(tmp_path_factory.mktemp("ex") / "examples")
    return folder, cli("-c", "config.toml", "scan", cwd=folder)


def test_report_gives_the_expected_path_for_each_account(scanned):
    folder, _ = scanned
    doc = report_json(folder, "-c", "config.toml")
    assert paths_by_account(doc) == EXPECTED


def test_report_details(scanned):
    folder, _ = scanned
    items = {i["account"]: i for i in report_json(folder, "-c", "config.toml")["institutions"]}
    assert items["existing"]["institution"] == "鹿児島中央病院"
    assert items["existing"]["login_id"] == "kgs-chuo-007"
    assert items["existing"]["application_number"] == "A20230512-0101"
    assert items["existing"]["contact"]["phone"] == "099-286-2707"
    assert items["junk-password"]["institution"] == "医療法人①髙木病院～本院"
    assert items["junk-password"]["evidence"][0]["folder_role"] == "junk"
    assert items["inbox-password"]["login_id"] == "kgs-kirishima-21"
    assert items["no-mail"]["institution"] == "さつませんだい病院"  # from the config
    assert items["spoof-only"]["evidence"][0]["genuine"] is False
    assert any("suspicious" in w for w in items["genuine-and-spoof"]["warnings"])
    assert any("unparseable" in w for w in items["mbox-export"]["warnings"])


def test_second_scan_adds_nothing(scanned):
    folder, first = scanned
    before = message_count(folder / "example.sqlite3")
    assert before > 0
    assert re.search(r"existing: \d+ fetched, 1 new", first.stdout)
    second = cli("-c", "config.toml", "scan", cwd=folder)
    assert message_count(folder / "example.sqlite3") == before
    lines = [line for line in second.stdout.splitlines() if " fetched, " in line]
    assert len(lines) == len(EXPECTED)
    assert all(", 0 new;" in line for line in lines), second.stdout


def test_mark_changes_the_path_and_clear_restores_it(tmp_path):
    folder = copy_examples(tmp_path / "examples")
    cli("-c", "config.toml", "scan", cwd=folder)

    def path_of(account: str) -> tuple[str, str]:
        [item] = [
            i
            for i in report_json(folder, "-c", "config.toml")["institutions"]
            if i["account"] == account
        ]
        return item["state"], item["path"]

    assert path_of("inbox-password") == ("password_mail_received", "method4")
    out = cli("-c", "config.toml", "mark", "inbox-password", "--login-done", cwd=folder).stdout
    assert "login_completed" in out
    assert path_of("inbox-password") == ("login_completed", "none")  # row 2
    cli("-c", "config.toml", "mark", "inbox-password", "--url-unreachable", cwd=folder)
    assert path_of("inbox-password") == ("url_unreachable", "method3")  # row 3
    cli("-c", "config.toml", "mark", "inbox-password", "--clear", cwd=folder)
    assert path_of("inbox-password") == ("password_mail_received", "method4")
    history = cli(
        "-c", "config.toml", "mark", "inbox-password", "--list", "--lang", "en", cwd=folder
    ).stdout
    assert history.count("withdrawn") == 2
    # The other accounts never moved.
    assert paths_by_account(report_json(folder, "-c", "config.toml")) == EXPECTED


def test_mark_unknown_account_is_refused(scanned):
    folder, _ = scanned
    proc = cli("-c", "config.toml", "mark", "nobody", "--login-done", cwd=folder, code=2)
    assert "nobody" in proc.stderr


def test_classify_prints_type_and_fields(tmp_path):
    eml = next((EXAMPLES / "mail" / "inbox-password" / "cur").glob("*M4P1*"))
    out = cli("classify", "--lang", "en", str(eml), cwd=tmp_path).stdout
    assert "type: password_registration" in out
    assert "rule: password_registration" in out
    assert "'login_id': 'kgs-kirishima-21'" in out
    assert "'institution': 'きりしま記念病院'" in out
    assert "login?c=***" in out
    assert "genuine: yes" in out
    japanese = cli("classify", str(eml), cwd=tmp_path).stdout
    assert "種類: password_registration (パスワード登録のご依頼)" in japanese
    assert "正規のメール: はい" in japanese
    [line] = cli("classify", "--json", str(eml), cwd=tmp_path).stdout.splitlines()
    info = json.loads(line)
    assert info["type"] == "password_registration"
    assert info["fields"]["login_id"] == "kgs-kirishima-21"


def test_classify_ordinary_mail_is_not_gmis(tmp_path):
    eml = next((EXAMPLES / "mail" / "no-mail" / "cur").glob("*M1P1*"))
    out = cli("classify", "--json", str(eml), cwd=tmp_path).stdout
    assert json.loads(out)["type"] is None


def test_tokens_never_appear_in_any_output_nor_the_database(tmp_path):
    folder = copy_examples(tmp_path / "examples")
    decoded = "\n".join(  # the example mail really carries every token
        parse(p.read_bytes()).text for p in (folder / "mail").rglob("*!2,S")
    ) + "\n".join(
        parse(m.as_bytes()).text
        for p in (folder / "mail").rglob("*.mbox")
        for m in mailbox.mbox(p)
        if m.get("Subject")
    )
    assert all(token in decoded for token in TOKENS)
    outputs = [cli("-c", "config.toml", "scan", cwd=folder)]
    for fmt in ("table", "json", "csv", "html"):
        outputs.append(cli("-c", "config.toml", "report", "--format", fmt, cwd=folder))
    cli("-c", "config.toml", "report", "--format", "html", "-o", "report.html", cwd=folder)
    files = sorted(
        str(p) for p in (folder / "mail").rglob("*") if p.is_file() and "mbox" not in p.name
    )
    outputs.append(cli("-c", "config.toml", "classify", *files, cwd=folder))
    outputs.append(cli("-c", "config.toml", "classify", "--json", *files, cwd=folder))
    text = "\n".join(p.stdout + p.stderr for p in outputs)
    text += (folder / "report.html").read_text(encoding="utf-8")
    assert "login?c=***" in text
    for token in TOKENS:
        assert token not in text
    database = b"".join(p.read_bytes() for p in folder.glob("example.sqlite3*") if p.is_file())
    assert b"login?c=***" in database
    for token in TOKENS:
        assert token.encode() not in database


def test_csv_and_html_reports(scanned):
    folder, _ = scanned
    args = ("-c", "config.toml", "report", "--format", "csv", "--csv-headers", "keys")
    text = cli(*args, cwd=folder).stdout.removeprefix("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["account"]: r["path"] for r in rows} == EXPECTED
    html = cli("-c", "config.toml", "report", "--format", "html", cwd=folder).stdout
    assert html.lstrip().startswith("<!DOCTYPE html>") and "対応方法2" in html
    table = cli("-c", "config.toml", "report", cwd=folder).stdout
    assert "対応方法4" in table and "鹿児島中央病院" in table


# --- mail on disk given on the command line ------------------------------------------------


def write_eml(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def test_junk_eml_folder(tmp_path):
    inbox, junk = tmp_path / "inbox", tmp_path / "quarantine"
    write_eml(inbox, "1.eml", mailfactory.build("unrelated"))
    write_eml(
        junk,
        "1.eml",
        mailfactory.build(
            "password_registration",
            institution="ひおき病院",
            login_id="kgs-hioki",
            charset="iso-2022-jp",
        ),
    )
    out = cli("scan", "--eml-dir", str(inbox), "--junk", str(junk), cwd=tmp_path).stdout
    assert "local: 2 fetched, 1 new" in out
    assert "quarantine (junk)" in out
    [item] = report_json(tmp_path)["institutions"]
    assert (item["account"], item["institution"], item["login_id"]) == (
        "local",
        "ひおき病院",
        "kgs-hioki",
    )
    assert (item["state"], item["path"]) == ("password_mail_in_junk", "method2")
    assert [(e["folder"], e["folder_role"]) for e in item["evidence"]] == [("quarantine", "junk")]


def test_unparseable_messages_are_recorded_and_the_scan_goes_on(tmp_path):
    inbox = tmp_path / "inbox"
    write_eml(inbox, "0-empty.eml", b"")
    write_eml(inbox, "1-garbage.eml", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    write_eml(inbox, "2-good.eml", mailfactory.build("password_registration", login_id="kgs-ok"))
    proc = cli("scan", "--eml-dir", str(inbox), cwd=tmp_path)
    assert "local: 3 fetched, 3 new" in proc.stdout
    [item] = report_json(tmp_path)["institutions"]
    assert (item["path"], item["login_id"]) == ("method4", "kgs-ok")
    assert "unparseable message in INBOX: empty message" in item["warnings"]
    assert "unparseable message in INBOX: no header section" in item["warnings"]
    # Recorded once: a rescan neither fails nor stores them again.
    assert "local: 0 fetched, 0 new" in cli("scan", "--eml-dir", str(inbox), cwd=tmp_path).stdout
    out = cli("classify", "--lang", "en", str(inbox / "0-empty.eml"), cwd=tmp_path).stdout
    assert "type: unparseable" in out and "error: empty message" in out


BAD_CONFIGS = [
    # (name, config text, key the message must name)
    ("wrong type", '[[accounts]]\nname = "a"\nmaildir = "m"\ncolour = 1\n', "accounts[0].colour"),
    (
        "bad security",
        '[[accounts]]\nname = "a"\nhost = "h"\nusername = "u"\npassword_env = "P"\n'
        'security = "ssl"\n',
        "accounts[0].security",
    ),
    (
        "bad ratio",
        '[scan]\nquota_full_ratio = 2\n[[accounts]]\nname = "a"\nmaildir = "m"\n',
        "scan.quota_full_ratio",
    ),
]


@pytest.mark.parametrize("command", [["scan"], ["report"], ["report", "--format", "json"]])
@pytest.mark.parametrize("text,key", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_exits_2_with_one_line(tmp_path, command, text, key):
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    proc = cli("-c", str(config), *command, cwd=tmp_path, code=2)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(config) in lines[0] and key in lines[0]
