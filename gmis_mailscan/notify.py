"""The summary mail: what changed since the last notified run, sent once by SMTP.

A watermark in the database (the last history row a sent mail covered) makes delivery
at-least-once and never twice after a success: it moves on only after the server accepted
the mail, so a failed send leaves the changes for the next run. The first notification lists
every institution that needs action. Text taken from mail (institution names, warnings) may
be hostile: it is stripped of control characters in headers, escaped in HTML, and its URLs
are shown defanged (hxxps://host[.]example) so that nothing in the mail is clickable.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import unicodedata
from dataclasses import dataclass, replace
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from html import escape
from pathlib import Path
from typing import cast

from .assess import Assessment
from .config import NotifySettings
from .credentials import CredentialError, read_password
from .history import Change, texts
from .rules import Rules
from .store.repo import Repo

_URL = re.compile(r"(?i)\b(h)(ttps?)(://)([^\s/?#]*)")
SUBJECT_NAME_LENGTH = 40


class NotifyError(RuntimeError):
    """The mail could not be sent; str() says where and why, never a password."""


@dataclass(frozen=True)
class Item:
    """One institution in the mail: its changes (none in a first notification) and now."""

    account: str
    institution: str | None
    changes: tuple[str, ...]
    assessment: Assessment | None  # None: no longer named in the mail


@dataclass(frozen=True)
class Summary:
    subject: str
    text: str
    html: str
    report: str | None = None  # the full HTML report (with the flowcharts), attached


REPORT_FILENAME = "gmis-mailscan-report.html"


def send_changes(
    settings: NotifySettings,
    rules: Rules,
    repo: Repo,
    assessments: list[Assessment],
    rules_dir: Path | None = None,
) -> Summary | None:
    """Mail what changed since the last notified run (None: nothing to tell, nothing sent)."""
    up_to = repo.last_history_id()
    mark = repo.notified_up_to()
    changes = (
        None if mark is None else [c for c in repo.history(after_id=mark) if (c.id or 0) <= up_to]
    )
    items = pending_items(assessments, changes, settings.lang)
    if not items:
        repo.set_notified(up_to, sent=False)
        return None
    from . import report
    from .report.html import render_html

    # The report document gives the warnings in the mail's language and the attached page.
    doc = report.build(assessments, rules, repo.last_run(), rules_dir)
    alerts = {
        (i["account"], i["institution"]): dict(
            zip(i["warnings"], (x[settings.lang] for x in i["alerts"]), strict=True)
        )
        for i in doc["institutions"]
    }
    summary = compose(settings, rules, items, changes is None, rules_dir, alerts)
    summary = replace(summary, report=render_html(doc, settings.lang, rules_dir=rules_dir))
    send(settings, message(settings, summary))
    repo.set_notified(up_to, sent=True)
    return summary


def send_test(settings: NotifySettings, rules_dir: Path | None = None) -> Summary:
    t = texts(rules_dir)["mail"][settings.lang]
    body = f"{t['test_body']}\n\nSMTP: {settings.security}://{settings.smtp_host}:{settings.smtp_port}\n"
    summary = Summary(
        subject=_subject(settings, t["subject_test"], []),
        text=body,
        html=_html(t["subject_test"], [f"<p>{escape(line)}</p>" for line in body.splitlines()]),
    )
    send(settings, message(settings, summary))
    return summary


def pending_items(
    assessments: list[Assessment], changes: list[Change] | None, lang: str
) -> list[Item]:
    """First notification (changes None): who needs action; later: who changed, grouped."""
    if changes is None:
        return [
            Item(a.account, a.institution, (), a) for a in assessments if a.decision.path != "none"
        ]
    now = {(a.account, a.key): a for a in assessments}
    grouped: dict[tuple[str, str], list[Change]] = {}
    for c in changes:
        grouped.setdefault((c.account, c.key), []).append(c)
    items = []
    for (account, key), group in grouped.items():
        lines = [getattr(r, lang) for c in group for r in c.changes]
        current = now.get((account, key))
        name = current.institution if current else group[-1].institution
        items.append(Item(account, name, tuple(dict.fromkeys(lines)), current))
    return items


def compose(
    settings: NotifySettings,
    rules: Rules,
    items: list[Item],
    first: bool,
    rules_dir: Path | None = None,
    alerts: dict[tuple[str, str | None], dict[str, str]] | None = None,
) -> Summary:
    """Subject, plain text and HTML of one summary mail."""
    t = texts(rules_dir)["mail"][settings.lang]
    action = sum(1 for i in items if i.assessment and i.assessment.decision.path != "none")
    base = t["subject_first" if first else "subject_changes"].format(
        count=len(items), action=action
    )
    intro = t["intro_first" if first else "intro_changes"]
    blocks = [_fields(i, rules, t, alerts or {}) for i in items]
    helpdesk = f"{t['helpdesk']}: {rules.helpdesk.name} {rules.helpdesk.phone}"
    text_parts = [intro, ""]
    html_parts = [f"<p>{escape(intro)}</p>"]
    for title, rows in blocks:
        text_parts.append(f"■ {title}")
        for label, values in rows:
            text_parts.append(f"  {label}: {values[0]}" if values else f"  {label}:")
            text_parts += [f"    ・{v}" for v in values[1:]]
        text_parts.append("")
        cells = "".join(
            f"<tr><th>{escape(label)}</th><td>{'<br>'.join(escape(v) for v in values)}</td></tr>"
            for label, values in rows
        )
        html_parts.append(
            f'<h2>{escape(title)}</h2><table border="1" cellpadding="4">{cells}</table>'
        )
    text_parts += [helpdesk, "", t["footer"], ""]
    html_parts += [f"<p>{escape(helpdesk)}</p>", f"<p>{escape(t['footer'])}</p>"]
    names = [i.institution or i.account for i in items]
    return Summary(
        subject=_subject(settings, base, names),
        text="\n".join(text_parts),
        html=_html(base, html_parts),
    )


def _fields(
    item: Item, rules: Rules, t: dict, alerts: dict[tuple[str, str | None], dict[str, str]]
) -> tuple[str, list[tuple[str, list[str]]]]:
    """(heading, [(label, [first line, further lines…])]) of one institution; its warnings
    as the report words them (`alerts`: stored warning → text), also inside change lines."""
    worded = alerts.get((item.account, item.institution), {})
    title = f"{_safe(item.institution or t['unknown'])}（{t['account']}: {_safe(item.account)}）"
    rows: list[tuple[str, list[str]]] = []
    if item.changes:
        rows.append((t["changes"], [_safe(_reword(c, worded)) for c in item.changes]))
    a = item.assessment
    if a is None:
        rows.append((t["state"], [t["gone"]]))
        return title, rows
    path = rules.paths[a.decision.path]
    remedy = f"{path.label}（{path.title}）" if path.title else path.label
    rows += [
        (t["state"], [rules.states.get(a.decision.state, a.decision.state)]),
        (t["remedy"], [remedy, *path.instructions]),
        (t["login_id"], [_safe(a.login_id or t["unknown"])]),
        (t["contact"], [" ".join(p for p in (a.contact.name, a.contact.phone) if p)]),
    ]
    if a.warnings:
        rows.append((t["warnings"], [_safe(worded.get(w, w)) for w in a.warnings]))
    return title, rows


def _html(title: str, parts: list[str]) -> str:
    """A small self-contained HTML page; every text in `parts` is escaped already.

    The one place the HTML part is made (the full report's HTML may replace it).
    """
    return (
        '<!DOCTYPE html>\n<html lang="ja"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body>{''.join(parts)}</body></html>\n"
    )


def _reword(line: str, worded: dict[str, str]) -> str:
    """A history line that quotes a stored warning, with the warning as the report words it."""
    for stored, text in worded.items():
        line = line.replace(stored, text)
    return line


def defang(text: str) -> str:
    """URLs made unclickable: https://evil.example/x → hxxps://evil[.]example/x."""
    return _URL.sub(lambda m: f"{m[1]}xx{m[2][2:]}{m[3]}{m[4].replace('.', '[.]')}", text)


def _safe(text: str) -> str:
    """Text from mail or config as one defanged line: it cannot fake lines of the mail."""
    return header_text(defang(text))


def header_text(text: str) -> str:
    """One line for a header: control and format characters (CR, LF, …) become spaces."""
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    return " ".join(cleaned.split())


def _subject(settings: NotifySettings, base: str, names: list[str]) -> str:
    subject = f"{settings.subject_prefix} {base}".strip()
    if names:
        first = _safe(names[0])
        if len(first) > SUBJECT_NAME_LENGTH:
            first = first[:SUBJECT_NAME_LENGTH] + "…"
        more = (" ほか" if settings.lang == "ja" else " and others") if len(names) > 1 else ""
        subject += f" - {first}{more}"
    return header_text(subject)


def message(settings: NotifySettings, summary: Summary) -> MIMEMultipart:
    """The MIME message: UTF-8 plain text with an HTML alternative (base64), the full report
    attached when there is one, the subject RFC 2047-encoded as a whole.

    email.message.EmailMessage's header folding drops the space between two encoded words
    (「メール: 要対応」 reads 「メール:要対応」); email.header.Header keeps it inside one.
    """
    body = MIMEMultipart("alternative")
    body.attach(MIMEText(summary.text, "plain", "utf-8"))
    body.attach(MIMEText(summary.html, "html", "utf-8"))
    if summary.report is None:
        msg = body
    else:
        msg = MIMEMultipart("mixed")
        msg.attach(body)
        attachment = MIMEText(summary.report, "html", "utf-8")
        attachment.add_header("Content-Disposition", "attachment", filename=REPORT_FILENAME)
        msg.attach(attachment)
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    # A compat32 message takes a Header as a value (typeshed's stubs allow only str).
    msg["Subject"] = cast(str, Header(header_text(summary.subject), "utf-8"))
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid("gmis-mailscan", domain=settings.sender.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    return msg


def send(settings: NotifySettings, msg: MIMEMultipart) -> None:
    """Hand the message to the SMTP server; NotifyError with one line when it cannot."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise NotifyError(f"[notify] ca_file {settings.ca_file}: cannot load: {exc}") from None
    try:
        if settings.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=settings.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout)
        with smtp:
            if settings.security == "starttls":
                smtp.starttls(context=context)
            if settings.username is not None and settings.password is not None:
                smtp.login(settings.username, read_password(settings.password, settings.timeout))
            smtp.send_message(msg, from_addr=settings.sender, to_addrs=list(settings.to))
    except CredentialError as exc:
        raise NotifyError(f"[notify] {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise NotifyError(
            f"TLS certificate of {where} not trusted ({exc.verify_message}); "
            "give the server's CA in [notify] ca_file"
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(
            f"login refused for {settings.username} at {where}: {exc.smtp_code}"
        ) from None
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise NotifyError(
            f"{where} refused the mail: {exc.smtp_code} {' '.join(reply.split())}"
        ) from None
    except smtplib.SMTPException as exc:
        raise NotifyError(f"{where}: {' '.join(str(exc).split())}") from None
    except (TimeoutError, OSError) as exc:
        raise NotifyError(f"cannot connect to {where}: {exc.strerror or exc}") from None
