"""rules/: the shipped rules load, every mistake in a rules file is a TomlError naming the file
and the key, and a new message type or subject variant is a rules edit only."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import mailfactory
import pytest

from gmis_mailscan.classify import classify
from gmis_mailscan.config import no_config
from gmis_mailscan.parse import parse
from gmis_mailscan.rules import DEFAULT_RULES_DIR, PATH_IDS, load_rules
from gmis_mailscan.scan import verify_policy
from gmis_mailscan.tomlcheck import TomlError
from gmis_mailscan.verify import verify


def copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, target)
    return target


def replace(old: str, new: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def append(extra: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")

    return edit


def test_shipped_rules_load():
    rules = load_rules()
    assert rules.sender == "info@g-mis.net"
    assert [t.id for t in rules.types] == [
        "password_registration",
        "user_confirmation",
        "account_notice",
    ]
    assert {"institution", "login_id", "application_number", "address", "password_url"} <= set(
        rules.fields
    )
    assert rules.fields["password_url"].secret
    assert rules.fields["institution"].keep_original
    assert not rules.fields["login_id"].keep_original
    assert rules.official_hosts == ("mhlw.go.jp",)
    assert "迷惑メール" in rules.junk_names
    assert set(rules.paths) == set(PATH_IDS)
    assert rules.paths["method2"].label == "対応方法2"
    assert [d.prefecture for d in rules.directories] == ["鹿児島県"]
    assert rules.helpdesk.phone == "0570-783-872"


ERROR_CASES = [
    # (name, file edited, edit, key named in the error, words in the reason)
    (
        "bad regex",
        "gmis.toml",
        replace("patterns = ['申請番号", "patterns = ['(申請番号"),
        "fields.application_number.patterns[0]",
        "bad regular expression",
    ),
    (
        "pattern without a value group",
        "gmis.toml",
        replace(r"(?P<value>[A-Za-z0-9][A-Za-z0-9\-_]*)']", r"[A-Za-z0-9]+']"),
        "fields.application_number.patterns[0]",
        "group named 'value'",
    ),
    (
        "second pattern without a value group",
        "gmis.toml",
        replace(
            r"patterns = ['申請番号\s*:\s*(?P<value>[A-Za-z0-9][A-Za-z0-9\-_]*)']",
            r"patterns = ['申請番号\s*:\s*(?P<value>\w+)', '番号(\w+)']",
        ),
        "fields.application_number.patterns[1]",
        "group named 'value'",
    ),
    (
        "field without patterns",
        "gmis.toml",
        replace(
            "[fields.login_url]\n", "[fields.fax]\nvalue = 'normalized'\n\n[fields.login_url]\n"
        ),
        "fields.fax.patterns",
        "required key is missing",
    ),
    (
        "bad value choice",
        "gmis.toml",
        replace('[fields.address]\nvalue = "original"', '[fields.address]\nvalue = "raw"'),
        "fields.address.value",
        "expected one of normalized, original",
    ),
    (
        "unknown key in a type",
        "gmis.toml",
        replace('description = "アカウント発行の事前連絡"', 'descripton = "typo"'),
        "types[2].descripton",
        "unknown key",
    ),
    (
        "unknown key in a field",
        "gmis.toml",
        replace("[fields.login_id]\n", "[fields.login_id]\nsecrett = true\n"),
        "fields.login_id.secrett",
        "unknown key",
    ),
    (
        "unknown key in [sender]",
        "gmis.toml",
        replace('address = "info@g-mis.net"', 'address = "info@g-mis.net"\nadress = "x"'),
        "sender.adress",
        "unknown key",
    ),
    (
        "unknown top-level table",
        "gmis.toml",
        append('\n[folder]\njunk_names = ["Spam"]\n'),
        "folder",
        "unknown key",
    ),
    (
        "type references an unknown field",
        "gmis.toml",
        replace('fields = ["institution"]\n', 'fields = ["institution", "fax"]\n'),
        "types[2].fields",
        "fax",
    ),
    (
        "duplicate type id",
        "gmis.toml",
        replace('id = "account_notice"', 'id = "user_confirmation"'),
        "types[2].id",
        "duplicate type id",
    ),
    (
        "type without subjects",
        "gmis.toml",
        replace('subjects = ["G-MISアカウント発行にかかる事前のご連絡"]', "subjects = []"),
        "types[2].subjects",
        "at least one subject",
    ),
    (
        "subject of the wrong type",
        "gmis.toml",
        replace('subjects = ["G-MISアカウント発行にかかる事前のご連絡"]', "subjects = [1]"),
        "types[2].subjects",
        "list of strings",
    ),
    (
        "missing sender address",
        "gmis.toml",
        replace('address = "info@g-mis.net"', ""),
        "sender.address",
        "required key is missing",
    ),
    (
        "flowchart path misspelt",  # the typo is named, not the path it leaves missing
        "flowchart.toml",
        replace("[paths.review]", "[paths.reviews]"),
        "paths.reviews",
        "unknown key; did you mean 'review'?",
    ),
    (
        "flowchart path missing",
        "flowchart.toml",
        replace("[paths.review]", "[paths.elsewhere]"),
        "paths.review",
        "required key is missing",
    ),
    (
        "flowchart label of the wrong type",
        "flowchart.toml",
        replace('label = "対応方法3"', "label = 3"),
        "paths.method3.label",
        "expected a string",
    ),
    (
        "contacts: phone not a string",
        "contacts/kagoshima.toml",
        replace('phone = "099-286-2707"', "phone = 992862707"),
        "contacts[0].phone",
        "expected a string",
    ),
    (
        "contacts: towns of an unknown district",
        "contacts/kagoshima.toml",
        replace('towns = { "鹿児島郡"', 'towns = { "鹿児島群"'),
        "contacts[1].towns.鹿児島群",
        "not one of this contact's municipalities",
    ),
    (
        "contacts: unknown key",
        "contacts/kagoshima.toml",
        replace(
            'name = "加世田保健所（指導監査係）"', 'name = "加世田保健所（指導監査係）"\nfax = "x"'
        ),
        "contacts[2].fax",
        "unknown key",
    ),
    (
        "contacts: missing prefecture",
        "contacts/kagoshima.toml",
        replace('prefecture = "鹿児島県"', ""),
        "prefecture",
        "required key is missing",
    ),
]


@pytest.mark.parametrize(
    "file,edit,key,why", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_rules_error_names_file_and_key(tmp_path, file, edit, key, why):
    rules_dir = copy_rules(tmp_path)
    path = rules_dir / file
    edit(path)
    with pytest.raises(TomlError) as info:
        load_rules(rules_dir)
    error = info.value
    assert error.file == str(path)
    assert error.key == key
    assert str(error).startswith(f"{path}: {key}: ")
    assert why in str(error)
    assert "\n" not in str(error)


FILE_ERROR_CASES = [
    # (name, file, edit, words in the reason)
    ("missing gmis.toml", "gmis.toml", Path.unlink, "file not found"),
    ("missing flowchart.toml", "flowchart.toml", Path.unlink, "file not found"),
    ("invalid TOML", "gmis.toml", replace("[sender]", "[sender"), "not valid TOML"),
    (
        "invalid TOML in contacts",
        "contacts/kagoshima.toml",
        replace("[[contacts]]", "[[contacts]"),
        "not valid TOML",
    ),
]


@pytest.mark.parametrize(
    "file,edit,why", [c[1:] for c in FILE_ERROR_CASES], ids=[c[0] for c in FILE_ERROR_CASES]
)
def test_unreadable_rules_file_names_the_file(tmp_path, file, edit, why):
    rules_dir = copy_rules(tmp_path)
    path = rules_dir / file
    edit(path)
    with pytest.raises(TomlError) as info:
        load_rules(rules_dir)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}: {why}")
    assert "\n" not in str(info.value)


def test_invalid_toml_names_the_line(tmp_path):
    rules_dir = copy_rules(tmp_path)
    replace("[sender]", "[sender")(rules_dir / "gmis.toml")
    with pytest.raises(TomlError, match=r"line \d+"):
        load_rules(rules_dir)


def test_missing_rules_folder(tmp_path):
    with pytest.raises(TomlError) as info:
        load_rules(tmp_path / "nowhere")
    assert str(info.value) == f"{tmp_path / 'nowhere'}: rules folder not found"


# --- a rules edit, not a code change ------------------------------------------------------

NEW_SUBJECT = "【厚生労働省G-MIS事務局】G-MIS定期報告の受付開始のお知らせ"


def test_new_message_type_is_a_rules_edit(tmp_path):
    raw = mailfactory.build("other", subject=NEW_SUBJECT, institution="ひおき病院")
    assert classify(parse(raw), load_rules()).type == "other_gmis"

    rules_dir = copy_rules(tmp_path)
    new_type = (
        "\n[[types]]\n"
        'id = "report_start"\n'
        'description = "定期報告の受付開始"\n'
        'subjects = ["G-MIS定期報告の受付開始のお知らせ"]\n'
        'fields = ["institution", "login_url"]\n'
    )
    replace("\n# Field extraction.", new_type + "\n# Field extraction.")(rules_dir / "gmis.toml")
    result = classify(parse(raw), load_rules(rules_dir))
    assert result.type == "report_start"
    assert result.rule == "report_start"
    assert result.fields == {
        "institution": "ひおき病院",
        "login_url": "https://www.med-login.mhlw.go.jp/s/login/",
    }


def test_new_subject_variant_is_a_rules_edit(tmp_path):
    variant = "【厚生労働省G-MIS事務局】G-MISのパスワード登録のお願い（再送）"
    raw = mailfactory.build("password_registration", subject=variant, login_id="kgs-new-1")
    assert classify(parse(raw), load_rules()).type == "other_gmis"

    rules_dir = copy_rules(tmp_path)
    replace(
        'subjects = ["G-MISのご利用準備完了に伴うパスワード登録のご依頼"]',
        'subjects = ["G-MISのご利用準備完了に伴うパスワード登録のご依頼", '
        '"G-MISのパスワード登録のお願い"]',
    )(rules_dir / "gmis.toml")
    result = classify(parse(raw), load_rules(rules_dir))
    assert result.type == "password_registration"
    assert result.fields["login_id"] == "kgs-new-1"
    assert result.fields["password_url"] == "https://www.med-login.mhlw.go.jp/login?c=***"


def test_first_matching_type_wins(tmp_path):
    """Types are tried in file order: a broad type listed first shadows the later ones."""
    rules_dir = copy_rules(tmp_path)
    broad = '[[types]]\nid = "anything_gmis"\nsubjects = ["G-MIS"]\n\n'
    replace("[[types]]\n", broad + "[[types]]\n")(rules_dir / "gmis.toml")
    raw = mailfactory.build("password_registration")
    assert classify(parse(raw), load_rules(rules_dir)).type == "anything_gmis"


def test_sender_comes_from_the_rules_file(tmp_path):
    """[sender] address is what verification compares From with: change it and the
    secretariat's own address stops counting as genuine."""
    mail = mailfactory.build("password_registration")
    shipped = load_rules()
    assert verify(parse(mail), mail, verify_policy(no_config(), shipped)).genuine
    rules_dir = copy_rules(tmp_path)
    replace('address = "info@g-mis.net"', 'address = "Kanri@G-MIS.net"')(rules_dir / "gmis.toml")
    changed = verify_policy(no_config(), load_rules(rules_dir))
    assert changed.sender == "kanri@g-mis.net"
    verdict = verify(parse(mail), mail, changed)
    assert [r.code for r in verdict.reasons] == ["sender_mismatch"]
