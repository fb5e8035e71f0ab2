"""Stored messages of one account → one Assessment per institution."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from gmis_mailscan.assess import AccountFacts, assess_account
from gmis_mailscan.records import Reason, ScannedMessage
from gmis_mailscan.sources import Quota

PW, UC, AN, OT = "password_registration", "user_confirmation", "account_notice", "other_gmis"
SPOOFED = Reason("sender_mismatch", "sender is not info@g-mis.net", "差出人")
FOLDERS = {"inbox": "INBOX", "junk": "Junk", "other": "Archive"}

_counter = iter(range(1, 10_000))


def mail(
    type_: str,
    institution: str | None = None,
    role: str = "inbox",
    *,
    genuine: bool = True,
    reporting: str | None = None,
    **fields: str,
) -> ScannedMessage:
    n = next(_counter)
    values = dict(fields)
    if institution:
        values["institution"] = institution
    if reporting:
        values["reporting_institution"] = reporting
    return ScannedMessage(
        folder=FOLDERS[role],
        folder_role=role,
        locator=f"uid:{n}",
        uid=n,
        sha256=f"{n:064x}",
        size=100,
        type=type_,
        message_id=f"m{n}@example",
        date=datetime(2023, 11, 1) + timedelta(hours=n),  # made in date order
        rule=None if type_ == OT else type_,
        fields=values,
        genuine=genuine,
        reasons=() if genuine else (SPOOFED,),
    )


def facts(
    institution: str | None = None,
    address: str | None = None,
    answers: tuple[tuple[str | None, str], ...] = (),
    quota: Quota | None = None,
    **kw,
) -> AccountFacts:
    return AccountFacts("acc", institution, address, quota, None, answers, **kw)


def run(rules, messages, **kw):
    return assess_account(facts(**kw), messages, rules, 0.9)


def by_institution(assessments):
    return {a.institution: a for a in assessments}


def test_genuine_account_mail_founds_one_group_per_institution(rules):
    result = run(
        rules,
        [
            mail(PW, "さくら病院", login_id="kgs-sakura"),
            mail(UC, "あおば病院", reporting="あおば病院", login_id="kgs-aoba"),
            mail(AN, "みどりクリニック", role="junk"),
        ],
    )
    groups = by_institution(result)
    assert set(groups) == {"さくら病院", "あおば病院", "みどりクリニック"}
    assert groups["さくら病院"].decision.path == "method4"
    assert groups["さくら病院"].login_id == "kgs-sakura"
    assert groups["あおば病院"].decision.path == "none"
    assert groups["あおば病院"].login_id == "kgs-aoba"
    assert groups["みどりクリニック"].decision.path == "contact"
    assert all(a.account == "acc" for a in result)


def test_names_written_differently_are_one_institution(rules):
    result = run(rules, [mail(AN, "さくら 病院"), mail(PW, "さくら病院", role="junk")])
    [one] = result
    assert one.decision.path == "method2"
    assert one.key == "さくら病院"


def test_reporting_institution_names_the_group(rules):
    [one] = run(rules, [mail(UC, "ご担当者", reporting="医療法人あおば会 あおば病院")])
    assert one.institution == "医療法人あおば会 あおば病院"


def test_spoof_never_creates_a_group_and_warns_every_group(rules):
    result = run(
        rules,
        [
            mail(PW, "さくら病院"),
            mail(UC, "あおば病院"),
            mail(PW, "にせもの病院", genuine=False, login_id="phish-1"),
        ],
    )
    groups = by_institution(result)
    assert set(groups) == {"さくら病院", "あおば病院"}
    for a in result:
        assert any("suspicious" in w and "sender_mismatch" in w for w in a.warnings)
        assert any(not m.genuine for m in a.evidence)
        assert a.login_id != "phish-1"
    assert groups["さくら病院"].decision.path == "method4"
    assert groups["あおば病院"].decision.path == "none"


def test_spoof_naming_a_real_institution_does_not_count(rules):
    [one] = run(
        rules, [mail(AN, "さくら病院"), mail(PW, "さくら病院", genuine=False, login_id="x")]
    )
    assert one.decision.path == "contact"
    assert one.login_id is None


def test_spoof_only_uses_the_config_institution(rules):
    [one] = run(rules, [mail(PW, "にせもの病院", genuine=False)], institution="さくら病院")
    assert one.institution == "さくら病院"
    assert one.decision.state == "suspicious_only"
    assert one.decision.path == "review"


def test_config_institution_only_when_no_genuine_mail_names_one(rules):
    [named] = run(rules, [mail(PW, "あおば病院")], institution="さくら病院")
    assert named.institution == "あおば病院"
    [unnamed] = run(rules, [], institution="さくら病院")
    assert unnamed.institution == "さくら病院"
    assert unnamed.key == "さくら病院"
    assert unnamed.decision.path == "register"
    [nothing] = run(rules, [])
    assert (nothing.institution, nothing.key, nothing.decision.path) == (None, "", "register")


def test_genuine_mail_without_a_name_joins_every_group(rules):
    result = run(rules, [mail(PW, "さくら病院"), mail(UC, "あおば病院"), mail(OT)])
    for a in result:
        assert [m.type for m in a.evidence].count(OT) == 1


def test_other_gmis_naming_an_institution_joins_its_group_only(rules):
    result = run(rules, [mail(PW, "さくら病院"), mail(UC, "あおば病院"), mail(OT, "さくら病院")])
    groups = by_institution(result)
    assert OT in [m.type for m in groups["さくら病院"].evidence]
    assert OT not in [m.type for m in groups["あおば病院"].evidence]


ANSWER_CASES = [
    # (name, answers oldest first, path of さくら病院, path of あおば病院)
    ("none", (), "method4", "method4"),
    ("per institution", (("さくら病院", "login_done"),), "none", "method4"),
    ("per institution, spaced", (("さくら 病院", "url_unreachable"),), "method3", "method4"),
    ("whole account", ((None, "url_unreachable"),), "method3", "method3"),
    (
        "newest wins",
        ((None, "url_unreachable"), ("さくら病院", "login_done")),
        "none",
        "method3",
    ),
    (
        "account-wide after institution",
        (("さくら病院", "login_done"), (None, "url_unreachable")),
        "method3",
        "method3",
    ),
    ("cannot login stays method4", ((None, "cannot_login"),), "method4", "method4"),
]


@pytest.mark.parametrize(
    "answers,sakura,aoba", [c[1:] for c in ANSWER_CASES], ids=[c[0] for c in ANSWER_CASES]
)
def test_staff_answers_per_institution_and_per_account(rules, answers, sakura, aoba):
    result = run(rules, [mail(PW, "さくら病院"), mail(PW, "あおば病院")], answers=answers)
    groups = by_institution(result)
    assert (groups["さくら病院"].decision.path, groups["あおば病院"].decision.path) == (
        sakura,
        aoba,
    )


def test_latest_login_id_and_application_number_win(rules):
    messages = [  # as the store returns them: by date
        mail(PW, "さくら病院", login_id="kgs-old"),
        mail(UC, "さくら病院", application_number="A-1", login_id="kgs-mid"),
        mail(PW, "さくら病院", login_id="kgs-new"),
        mail(UC, "さくら病院", application_number="A-2"),
    ]
    [one] = run(rules, messages)
    assert (one.login_id, one.application_number) == ("kgs-new", "A-2")


def test_spoofed_login_id_is_never_reported(rules):
    [one] = run(
        rules,
        [
            mail(PW, "さくら病院", login_id="kgs-real"),
            mail(PW, "さくら病院", genuine=False, login_id="kgs-phish"),
        ],
    )
    assert one.login_id == "kgs-real"


def test_address_from_mail_beats_config_and_picks_the_contact(rules):
    mail_address = "鹿児島県霧島市国分中央3丁目45番1号"
    [one] = run(
        rules,
        [mail(UC, "あおば病院", address=mail_address)],
        address="鹿児島県鹿屋市札元1丁目1番1号",
    )
    assert one.address == mail_address
    assert one.contact.phone == "0995-44-7963"
    [two] = run(rules, [mail(PW, "さくら病院")], address="鹿児島県鹿屋市札元1丁目1番1号")
    assert two.address == "鹿児島県鹿屋市札元1丁目1番1号"
    assert two.contact.phone == "0994-52-2125"
    [three] = run(rules, [mail(PW, "さくら病院")])
    assert three.contact.phone == ""


def test_account_warnings_reach_every_institution(rules):
    unparseable = ScannedMessage(
        "INBOX", "inbox", "/m/x", None, "f" * 64, 0, "unparseable", parse_error="empty message"
    )
    result = assess_account(
        AccountFacts("acc", None, None, None, "TimeoutError", (), scanned=True),
        [mail(PW, "さくら病院"), mail(UC, "あおば病院"), unparseable],
        rules,
        0.9,
    )
    assert len(result) == 2
    for a in result:
        assert "unparseable message in INBOX: empty message" in a.warnings
        assert any("last scan of this account failed: TimeoutError" in w for w in a.warnings)
        assert all(m.type != "unparseable" for m in a.evidence)


def test_not_scanned_yet_is_a_warning(rules):
    [one] = assess_account(facts(scanned=False), [], rules, 0.9)
    assert "this account has not been scanned yet" in one.warnings


def test_quota_reaches_the_decision(rules):
    [full] = run(rules, [], quota=Quota(95, 100))
    assert full.decision.path == "method1"
    assert full.quota == Quota(95, 100)
    [notice] = run(rules, [mail(AN, "さくら病院")], quota=Quota(50, 100))
    assert notice.decision.path == "contact"


def test_spoof_naming_one_institution_warns_on_that_row_only(rules):
    """A hospital group's report must not cry wolf on every row for one spoof."""
    result = run(
        rules,
        [
            mail(PW, "さくら病院"),
            mail(UC, "あおば病院"),
            mail(PW, "さくら 病院", genuine=False),  # names さくら病院 (written differently)
        ],
    )
    groups = by_institution(result)
    assert any("suspicious" in w for w in groups["さくら病院"].warnings)
    assert not groups["あおば病院"].warnings
    assert all(m.genuine for m in groups["あおば病院"].evidence)
    assert groups["さくら病院"].decision.path == "method4"


def test_archive_copy_counts_by_the_other_folders(rules):
    """Gmail's \\All holds a copy of INBOX and junk mail: the other folder decides."""
    junk = mail(PW, "さくら病院", "junk")
    archived_copy = replace(junk, folder="[Gmail]/All Mail", folder_role="archive")
    [one] = run(rules, [junk, archived_copy])
    assert [(m.folder, m.folder_role) for m in one.evidence] == [("Junk", "junk")]
    assert one.decision.path == "method2"


def test_mail_found_only_in_the_archive_is_non_junk_mail(rules):
    archived = mail(PW, "さくら病院")
    archived = replace(archived, folder="[Gmail]/All Mail", folder_role="archive")
    sent = replace(mail(PW, "さくら病院", genuine=False), folder="Sent", folder_role="sent")
    [one] = run(rules, [archived, sent])
    assert [(m.folder, m.folder_role) for m in one.evidence] == [
        ("[Gmail]/All Mail", "other"),
        ("Sent", "other"),
    ]
    assert (one.decision.row, one.decision.path) == (5, "method4")
