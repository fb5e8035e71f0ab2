"""parse_head() sets unrelated mail aside on its header alone: it must read From and Subject
exactly as parse() does, or a G-MIS-looking message could be dropped unread."""

from __future__ import annotations

import mailfactory
import pytest

from gmis_mailscan.classify import is_candidate
from gmis_mailscan.config import no_config
from gmis_mailscan.parse import UnparseableMessage, parse, parse_head
from gmis_mailscan.records import RawMessage
from gmis_mailscan.scan import examine, verify_policy

CORPUS = [
    *mailfactory.spoof_variants(),
    *mailfactory.genuine_variants(),
    ("unrelated", mailfactory.build("unrelated")),
    ("unrelated/jis", mailfactory.build("unrelated", charset="iso-2022-jp")),
    ("lf_only", mailfactory.build("password_registration").replace(b"\r\n", b"\n")),
]


@pytest.mark.parametrize("name,raw", CORPUS, ids=[name for name, _ in CORPUS])
def test_head_reads_from_and_subject_as_the_full_parse(name, raw, rules):
    head = parse_head(raw)
    try:
        full = parse(raw)
    except UnparseableMessage:
        return  # examine() then records it as unparseable, whatever the head says
    if head is None:
        assert not full.from_addresses and not full.subject
        return
    assert head.from_addresses == full.from_addresses
    assert head.subject == full.subject
    assert is_candidate(head, rules, body=False) == is_candidate(full, rules, body=False)
    assert is_candidate(full, rules) <= is_candidate(head, rules, body=False)  # never drops one


@pytest.mark.parametrize(
    "raw",
    [b"", b"\r\n\r\nno header section\r\n", b"X-Other: 1\r\n\r\nFrom: info@g-mis.net\r\n"],
)
def test_messages_without_from_and_subject_are_left_to_the_full_parse(raw, rules):
    assert parse_head(raw) is None
    policy = verify_policy(no_config(), rules)
    scanned = examine(RawMessage("INBOX", "inbox", "uid:1", raw, 1), rules, policy)
    assert scanned is not None and scanned.type == "unparseable"


def test_unrelated_mail_is_set_aside_and_gmis_mail_is_not(rules):
    policy = verify_policy(no_config(), rules)
    unrelated = RawMessage("INBOX", "inbox", "uid:1", mailfactory.build("unrelated"), 1)
    gmis = RawMessage("INBOX", "inbox", "uid:2", mailfactory.build("password_registration"), 2)
    assert examine(unrelated, rules, policy) is None
    assert examine(gmis, rules, policy).type == "password_registration"
