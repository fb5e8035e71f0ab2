"""The decision table (SPEC §3), row by row and in its order of precedence."""

from __future__ import annotations

import pytest

from gmis_mailscan.decide import decide
from gmis_mailscan.records import Evidence, EvidenceItem, Reason

SPOOF = Reason("sender_mismatch", "sender", "差出人")


def mail(type_: str, role: str = "inbox", genuine: bool = True) -> EvidenceItem:
    folder = {"inbox": "INBOX", "junk": "Junk", "other": "Archive"}[role]
    return EvidenceItem(type_, folder, role, genuine, () if genuine else (SPOOF,))


def forward(type_: str, role: str = "inbox") -> EvidenceItem:
    fwd = Reason("forwarded_copy", "Forwarded copy from jimu@x: login ID kgs-1", "転送")
    return EvidenceItem(type_, {"inbox": "INBOX", "other": "Sent"}[role], role, False, (fwd,))


PW, UC, AN, OT = "password_registration", "user_confirmation", "account_notice", "other_gmis"

CASES = [
    # (name, items, quota_ratio, staff_answer, row, state, path)
    ("confirmation", [mail(UC)], None, None, 1, "existing_account", "none"),
    (
        "confirmation beats password",
        [mail(PW), mail(UC, "junk")],
        None,
        None,
        1,
        "existing_account",
        "none",
    ),
    ("confirmation in junk", [mail(UC, "junk")], 0.99, None, 1, "existing_account", "none"),
    ("login done", [mail(PW)], None, "login_done", 2, "login_completed", "none"),
    ("login done beats junk", [mail(PW, "junk")], None, "login_done", 2, "login_completed", "none"),
    ("url unreachable", [mail(PW)], None, "url_unreachable", 3, "url_unreachable", "method3"),
    ("only in junk", [mail(PW, "junk")], None, None, 4, "password_mail_in_junk", "method2"),
    (
        "junk twice",
        [mail(PW, "junk"), mail(PW, "junk")],
        0.95,
        None,
        4,
        "password_mail_in_junk",
        "method2",
    ),
    ("inbox", [mail(PW)], None, None, 5, "password_mail_received", "method4"),
    ("other folder", [mail(PW, "other")], None, None, 5, "password_mail_received", "method4"),
    (
        "inbox and junk",
        [mail(PW, "junk"), mail(PW)],
        None,
        None,
        5,
        "password_mail_received",
        "method4",
    ),
    (
        "cannot login stays 4",
        [mail(PW)],
        None,
        "cannot_login",
        5,
        "password_mail_received",
        "method4",
    ),
    ("notice only", [mail(AN)], 0.5, None, 6, "notice_only", "contact"),
    ("notice, quota unknown", [mail(AN)], None, None, 6, "notice_only", "contact"),
    ("notice, mailbox full", [mail(AN)], 0.95, None, 7, "mailbox_full", "method1"),
    ("full, nothing", [], 0.9, None, 7, "mailbox_full", "method1"),
    ("full, other gmis only", [mail(OT)], 0.97, None, 7, "mailbox_full", "method1"),
    ("not full", [], 0.89, None, 8, "no_mail", "register"),
    ("quota unknown", [], None, None, 8, "no_mail", "register"),
    ("other gmis only", [mail(OT)], None, None, 8, "no_mail", "register"),
    ("answer without mail ignored", [], None, "login_done", 8, "no_mail", "register"),
    ("spoof only", [mail(PW, genuine=False)], None, None, 9, "suspicious_only", "review"),
    (
        "spoof beats full mailbox",
        [mail(PW, genuine=False)],
        0.99,
        None,
        9,
        "suspicious_only",
        "review",
    ),
    (
        "spoof and other gmis",
        [mail(PW, genuine=False), mail(OT)],
        None,
        None,
        9,
        "suspicious_only",
        "review",
    ),
    (
        "spoof confirmation only",
        [mail(UC, genuine=False)],
        None,
        None,
        9,
        "suspicious_only",
        "review",
    ),
    (
        "genuine beats spoof",
        [mail(PW, genuine=False), mail(PW)],
        None,
        None,
        5,
        "password_mail_received",
        "method4",
    ),
    (
        "spoof in inbox, genuine in junk",
        [mail(PW, genuine=False), mail(PW, "junk")],
        None,
        None,
        4,
        "password_mail_in_junk",
        "method2",
    ),
    (
        "notice with spoof",
        [mail(AN), mail(PW, genuine=False)],
        None,
        None,
        6,
        "notice_only",
        "contact",
    ),
    # Row 10: a forwarded copy of an account mail is proof it arrived, never evidence.
    ("forward only", [forward(PW)], None, None, 10, "forwarded_copy", "review"),
    ("forward in sent", [forward(PW, "other")], 0.99, None, 10, "forwarded_copy", "review"),
    ("forward beats spoof", [forward(PW), mail(PW, genuine=False)], None, None, 10,
     "forwarded_copy", "review"),
    ("forward beats notice", [forward(PW), mail(AN)], None, None, 10, "forwarded_copy", "review"),
    ("genuine beats forward", [forward(PW), mail(PW, "junk")], None, None, 4,
     "password_mail_in_junk", "method2"),
    ("forward of other gmis", [forward(OT)], None, None, 8, "no_mail", "register"),
]  # fmt: skip


@pytest.mark.parametrize(
    "items,quota,answer,row,state,path", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decision_table(items, quota, answer, row, state, path):
    decision = decide(Evidence(tuple(items), quota, 0.9, answer))
    assert (decision.row, decision.state, decision.path) == (row, state, path)


def test_every_row_is_covered():
    assert {c[4] for c in CASES} == set(range(1, 11))


def test_a_spoof_adds_a_warning_but_never_counts():
    decision = decide(Evidence((mail(PW, genuine=False), mail(PW)), None))
    assert decision.path == "method4"
    assert any("sender_mismatch" in w for w in decision.warnings)
    assert not decide(Evidence((mail(PW),), None)).warnings


def test_threshold_is_configurable():
    assert decide(Evidence((), 0.8, 0.75)).path == "method1"
    assert decide(Evidence((), 0.8, 0.85)).path == "register"


def test_reasons_name_the_folders():
    decision = decide(Evidence((mail(PW, "junk"),), None))
    assert "Junk (junk)" in decision.reasons[0]


def test_a_forward_names_forwarder_and_login_id_and_adds_no_warning():
    decision = decide(Evidence((forward(PW),), None))
    assert "forwarded copy of password_registration in INBOX" in decision.reasons[0]
    assert "jimu@x" in decision.reasons[0] and "kgs-1" in decision.reasons[0]
    assert not decide(Evidence((forward(PW), mail(PW)), None)).warnings
