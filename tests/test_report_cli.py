"""`report` through the real command line on examples/: languages, [report] in config,
--only-action for every format, CSV files in each encoding, the plain layout for cron mail."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mailfactory
import pytest
import test_imap
from test_examples import EXPECTED, cli, copy_examples

from gmis_mailscan.config import load_config
from gmis_mailscan.report import csvfile
from gmis_mailscan.tomlcheck import TomlError

ACTION = {account for account, path in EXPECTED.items() if path != "none"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = copy_examples(tmp_path_factory.mktemp("report-cli") / "examples")
    cli("-c", "config.toml", "scan", cwd=folder)
    return folder


def report(folder: Path, *args: str, config: str = "config.toml") -> str:
    return cli("-c", config, "report", *args, cwd=folder).stdout


def with_report_table(folder: Path, table: str) -> str:
    text = (folder / "config.toml").read_text(encoding="utf-8")
    (folder / "en.toml").write_text(text + "\n[report]\n" + table, encoding="utf-8")
    return "en.toml"


def test_report_table_in_config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[report]\nlang = "en"\ntimezone = "Asia/Tokyo"\n', encoding="utf-8")
    config = load_config(path)
    assert (config.report_lang, config.report_timezone) == ("en", "Asia/Tokyo")
    for table, key in (
        ('lang = "fr"', "report.lang"),
        ('timezone = "Mars/Olympus"', "report.timezone"),
        ("colour = 1", "report.colour"),
    ):
        path.write_text(f"[report]\n{table}\n", encoding="utf-8")
        with pytest.raises(TomlError, match=rf"config.toml: {re.escape(key)}: "):
            load_config(path)


def test_lang_en_from_the_option_and_from_the_config(folder):
    by_option = report(folder, "--lang", "en")
    by_config = report(folder, config=with_report_table(folder, 'lang = "en"\n'))
    for text in (by_option, by_config):
        assert "Remedy 2" in text and "Suspected phishing" in text and "Nothing to do" in text
        assert "対応方法" not in text and "連絡先" not in text
    japanese = report(folder)
    assert "対応方法2" in japanese and "なりすましの疑い" in japanese
    html = report(folder, "--format", "html", "--lang", "en")
    assert '<html lang="en">' in html and "Remedy 4" in html


def test_configured_time_zone_is_named(folder):
    config = with_report_table(folder, 'timezone = "Asia/Tokyo"\n')
    assert "(JST)" in report(folder, config=config)
    doc = json.loads(report(folder, "--format", "json", config=config))
    assert doc["generated_at"].endswith("+00:00")  # JSON keeps ISO 8601 with its offset


def test_machine_zone_from_tz(folder):
    """TZ is read when a process starts: this one runs as a real process."""
    env = {k: v for k, v in os.environ.items() if k != "GMIS_MAILSCAN_CONFIG"}
    env |= {"TZ": "America/New_York", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "gmis_mailscan", "-c", "config.toml", "report"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\((EST|EDT)\)", proc.stdout), proc.stdout[:200]


@pytest.mark.parametrize("fmt", ["json", "csv", "html", "table"])
def test_only_action_in_every_format(folder, fmt):
    out = report(folder, "--format", fmt, "--only-action", "--csv-headers", "keys", "--lang", "ja")
    everything = report(folder, "--format", fmt, "--csv-headers", "keys")
    assert "鹿児島中央病院" not in out and "鹿児島中央病院" in everything  # existing: nothing to do
    for name in ("いずみ病院", "しぶし病院", "きりしま記念病院", "さつませんだい病院"):
        assert name in out
    if fmt == "json":
        assert {i["account"] for i in json.loads(out)["institutions"]} == ACTION
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.removeprefix("\ufeff"))))
        assert {r["account"] for r in rows} == ACTION


@pytest.mark.parametrize("encoding", csvfile.ENCODINGS)
def test_csv_file_in_each_encoding_reads_back(folder, encoding):
    target = folder / f"report-{encoding}.csv"
    cli(
        "-c",
        "config.toml",
        "report",
        "-f",
        "csv",
        "--csv-encoding",
        encoding,
        "-o",
        str(target),
        cwd=folder,
    )
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    rows = list(csv.reader(io.StringIO(data.decode(encoding), newline="")))
    assert rows[0][:3] == ["アカウント", "医療機関", "ログインID"]
    doc = json.loads(report(folder, "--format", "json"))
    by_account = {r[0]: r for r in rows[1:]}
    assert set(by_account) == set(EXPECTED)
    for item in doc["institutions"]:
        row = dict(zip(csvfile.COLUMNS, by_account[item["account"]], strict=True))
        assert row["institution"] == item["institution"]
        assert row["login_id"] == (item["login_id"] or "")
        assert row["label"] == item["label"] and row["path"] == item["path"]
        assert row["contact_phone"] == (item["contact"]["phone"] or "")
        assert row["warnings"] == "／".join(a["ja"] for a in item["alerts"])
    assert "医療法人①髙木病院～本院" in by_account["junk-password"]


def test_plain_layout_when_not_a_terminal(folder):
    text = report(folder)  # captured: not a terminal, as under cron
    assert not set(text) & set("┌┐└┘│─┏┓┗┛┃━╭╮╰╯")
    assert "なりすまし疑い 2件 / 対応が必要 5件 / 対応不要 1件" in text
    assert "kgs-kirishima-21" in text and "0995-44-7963" in text
    assert "state:" not in text and "sender_mismatch" not in text
    wide = report(folder, "--wide")
    assert "┌" in wide or "┏" in wide
    for header in ("アカウント", "申請番号", "状況", "根拠", "警告"):
        assert header in wide


def test_mark_list_and_doctor_speak_japanese(folder):
    cli(
        "-c",
        "config.toml",
        "mark",
        "existing",
        "--login-done",
        "--note",
        "\x1b[31m事務長",
        cwd=folder,
    )
    listed = cli("-c", "config.toml", "mark", "existing", "--list", cwd=folder).stdout
    assert "ログイン完了" in listed and "すべての医療機関" in listed and "\x1b" not in listed
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d \(\w+\)", listed)
    cli("-c", "config.toml", "mark", "existing", "--clear", cwd=folder)
    listed = cli("-c", "config.toml", "mark", "existing", "--list", cwd=folder).stdout
    assert "取り消し" in listed


def test_doctor_speaks_japanese(dovecot_server, tmp_path):
    user = dovecot_server.new_user("doctor-ja", quota_kib=2048, junk_name="迷惑メール")
    dovecot_server.append(user, "INBOX", mailfactory.build("unrelated"))
    config = test_imap.write_config(
        tmp_path, test_imap.account_toml(dovecot_server, user, tmp_path)
    )
    out = test_imap.cli(config, "doctor").stdout
    assert f"{user.name}: 接続OK" in out
    assert (
        "フォルダ 'INBOX': 受信トレイ" in out and "フォルダ '迷惑メール': 迷惑メールフォルダ" in out
    )
    assert "メールボックス使用率:" in out and "/ 2048 KiB" in out
