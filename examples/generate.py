"""Regenerate the example mailboxes in examples/mail/ (run from the repository root).

    python examples/generate.py

One account per outcome of the decision table that mail on disk can show (the quota row needs
an IMAP server). The mails come from tests/mailfactory.py, in the encodings real mailers use.
examples/config.toml names the accounts; examples/expected.json is what `report` must say.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import mailfactory  # noqa: E402

JST = timezone(timedelta(hours=9))
SPOOF_TOKEN = "Sp00fT0kenDoNotUse0123456789abcd"


def _maildir(root: Path, folder: str | None, messages: list[bytes]) -> None:
    """Write messages into a Maildir++ folder (None = INBOX), as seen (cur/, flag S).

    The flags follow '!' rather than ':', the Maildir convention on Windows (Python's
    mailbox.Maildir.colon), so that a Windows checkout can hold these files."""
    base = root if folder is None else root / f".{folder}"
    for sub in ("cur", "new", "tmp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(messages, 1):
        (base / "cur" / f"1699232400.M{i}P1.example!2,S").write_bytes(data)


def _unrelated(n: int) -> list[bytes]:
    subjects = ["会議室予約の件", "Re: 定例会議資料", "職員研修のお知らせ"]
    return [
        mailfactory.build(
            "unrelated", subject=subjects[i % 3], message_id=f"<u{n}-{i}@hospital.example>"
        )
        for i in range(3)
    ]


def main() -> None:
    mail = HERE / "mail"
    shutil.rmtree(mail, ignore_errors=True)
    b = mailfactory.build

    # Row 1: the institution already had an account (報告機関内でのG-MISご利用者の確認依頼).
    _maildir(
        mail / "existing",
        None,
        _unrelated(1)
        + [
            b(
                "user_confirmation",
                institution="鹿児島中央病院",
                address="鹿児島県鹿児島市山下町11番1号",
                login_id="kgs-chuo-007",
                application_number="A20230512-0101",
                charset="utf-8",
                cte="base64",
                message_id="<ex-1@g-mis.net>",
            ),
        ],
    )
    # Row 5 (rows 2/3 after `mark`): the password mail in INBOX, ISO-2022-JP as most mailers send.
    _maildir(
        mail / "inbox-password",
        None,
        _unrelated(2)
        + [
            b(
                "password_registration",
                institution="きりしま記念病院",
                login_id="kgs-kirishima-21",
                charset="iso-2022-jp",
                body="text",
                token="ExampleInboxTokenABCDEFGHIJ012345",
                message_id="<ex-2@g-mis.net>",
            ),
        ],
    )
    # Row 4: the password mail only in the junk folder 迷惑メール (Shift_JIS written as CP932).
    _maildir(mail / "junk-password", None, _unrelated(3))
    _maildir(
        mail / "junk-password",
        "&j,dg0TDhMPww6w-",
        [
            b(
                "password_registration",
                institution="医療法人①髙木病院～本院",
                login_id="kgs-takagi-03",
                charset="cp932",
                cte="8bit",
                body="text",
                token="ExampleJunkTokenABCDEFGHIJ0123456",
                message_id="<ex-3@g-mis.net>",
            ),
        ],
    )
    # Row 6: only the advance notice (アカウント発行にかかる事前のご連絡).
    _maildir(
        mail / "notice-only",
        None,
        _unrelated(4)
        + [
            b(
                "account_notice",
                institution="あまみ中央クリニック",
                message_id="<ex-4@g-mis.net>",
                date=datetime(2023, 11, 1, 9, 0, tzinfo=JST),
            ),
        ],
    )
    # Row 8: no G-MIS mail at all; a junk folder with ordinary spam only.
    _maildir(mail / "no-mail", None, _unrelated(5))
    _maildir(mail / "no-mail", "Junk", _unrelated(6))
    # Row 9: only a spoof (lookalike sender, link to a lookalike host).
    spoof = b(
        "password_registration",
        sender="info@g-rnis.net",
        institution="いずみ病院",
        token=SPOOF_TOKEN,
        message_id="<ex-6@g-rnis.net>",
    )
    spoof = spoof.replace(b"mhlw.go.jp/login", b"mhbw.go.jp/login")
    _maildir(mail / "spoof-only", None, _unrelated(7) + [spoof])
    # Row 5 with a warning: a genuine password mail in INBOX and a spoof in junk.
    _maildir(
        mail / "genuine-and-spoof",
        None,
        [
            b(
                "password_registration",
                institution="しぶし病院",
                login_id="kgs-shibushi-11",
                charset="utf-8",
                cte="quoted-printable",
                body="alternative",
                token="ExampleGenuineTokenABCDEFGH012345",
                message_id="<ex-7@g-mis.net>",
            ),
        ],
    )
    _maildir(
        mail / "genuine-and-spoof",
        "Junk",
        [
            b(
                "password_registration",
                display_name="info@g-mis.net",
                sender="gmis-office@mail.example",
                institution="しぶし病院",
                token=SPOOF_TOKEN,
                message_id="<ex-8@mail.example>",
            ),
        ],
    )
    # An mbox export: the password mail in Junk.mbox, an unknown G-MIS notice in INBOX.mbox,
    # and an empty (unparseable) message: row 4, with the notice listed and a warning.
    mbox_dir = mail / "mbox-export"
    mbox_dir.mkdir(parents=True)
    other = b("other", institution="いぶすき病院", message_id="<ex-9@g-mis.net>")
    pw = b(
        "password_registration",
        institution="いぶすき病院",
        login_id="kgs-ibusuki-05",
        charset="shift_jis",
        cte="base64",
        body="html",
        token="ExampleMboxTokenABCDEFGHIJ0123456",
        message_id="<ex-10@g-mis.net>",
    )
    (mbox_dir / "INBOX.mbox").write_bytes(_mbox([other, b"From: \r\n\r\n"]))
    (mbox_dir / "Junk.mbox").write_bytes(_mbox([pw]))

    expected = {
        "existing": "none",
        "inbox-password": "method4",
        "junk-password": "method2",
        "notice-only": "contact",
        "no-mail": "register",
        "spoof-only": "review",
        "genuine-and-spoof": "method4",
        "mbox-export": "method2",
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")


def _mbox(messages: list[bytes]) -> bytes:
    out = []
    for data in messages:
        body = data.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
        out.append(b"From MAILER-DAEMON Mon Nov  6 10:00:00 2023\n" + body.rstrip(b"\n") + b"\n\n")
    return b"".join(out)


if __name__ == "__main__":
    main()
