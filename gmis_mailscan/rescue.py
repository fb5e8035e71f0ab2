"""`rescue`: 対応方法2 step ① done for the user — genuine account mail out of junk, by UID.

The one command that changes a mailbox. Only messages the database holds as genuine G-MIS
account mail in a junk folder are candidates, and each is re-checked on the server before it
moves: same UIDVALIDITY and UID, and the same size, SHA-256, Message-ID and verdict as when it
was scanned, so a stale database can never move another message. A suspicious message never
moves. The IMAP writes themselves are in sources/imapwrite.py.

The order makes a cut connection harmless: the destination is searched for a copy first (a
copy left by an earlier, interrupted run is not made twice, only its original removed), the
move is recorded as started before the first write, and the message's new location is stored
once the server shows the copy. The next run (or scan) finds every message in one place.
"""

from __future__ import annotations

import getpass
import hashlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from imapclient import IMAPClient

from .config import Account, Config
from .decide import ACCOUNT_TYPES
from .records import RawMessage, ScannedMessage
from .rules import Rules
from .scan import describe_error, examine, open_source, verify_policy
from .sources import imapwrite
from .store.repo import Repo
from .store.rescues import RescueLog, Target

FETCH_ITEMS = [b"RFC822.SIZE", b"FLAGS", b"BODY.PEEK[]"]

#: What happened to one candidate; the first five change nothing.
ACTIONS = ("would_move", "left", "refused", "gone", "kept", "moved", "copied")


@dataclass(frozen=True)
class Outcome:
    """One message's line in the rescue output."""

    folder: str
    uid: int
    subject: str | None
    action: str  # one of ACTIONS
    detail: str


@dataclass
class AccountRescue:
    name: str
    to_folder: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None

    def count(self, action: str) -> int:
        return sum(o.action == action for o in self.outcomes)


def who() -> str:
    """The person (login) and machine a move is recorded under."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container without passwd entry)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def rescue(
    config: Config,
    rules: Rules,
    repo: Repo,
    accounts: Iterable[Account],
    *,
    to: str | None = None,
    dry_run: bool = False,
    actor: str | None = None,
) -> list[AccountRescue]:
    """Move each account's genuine account mail out of its junk folders (or, dry, say what
    would move). One account failing (connection lost) does not stop the others."""
    log = RescueLog(repo)
    results = []
    for account in accounts:
        result = AccountRescue(account.name, to or account.rescue_folder or "INBOX")
        try:
            _rescue_account(config, rules, repo, log, account, result, dry_run, actor or who())
        except Exception as exc:  # unreachable, refused login, dropped connection
            result.error = describe_error(exc, account, config.timeout)
        results.append(result)
    return results


@dataclass(frozen=True)
class _Candidate:
    message: ScannedMessage
    uid: int
    uidvalidity: int | None  # of its folder when scanned


def _candidates(repo: Repo, account: str, result: AccountRescue) -> list[_Candidate]:
    """Stored account mail present in a junk folder; suspicious mail is listed as left."""
    found = []
    for m in repo.messages(account):
        if not (m.present and m.folder_role == "junk" and m.uid is not None):
            continue
        if m.type not in ACCOUNT_TYPES:
            continue
        if not m.genuine:
            codes = ", ".join(r.code for r in m.reasons) or "unverified"
            result.outcomes.append(
                Outcome(m.folder, m.uid, m.subject, "left", f"suspicious ({codes}): never moved")
            )
            continue
        state = repo.folder_state(account, m.folder)
        found.append(_Candidate(m, m.uid, state.uidvalidity))
    return found


def _rescue_account(
    config: Config,
    rules: Rules,
    repo: Repo,
    log: RescueLog,
    account: Account,
    result: AccountRescue,
    dry_run: bool,
    actor: str,
) -> None:
    candidates = _candidates(repo, account.name, result)
    if not candidates:
        return
    if account.imap is None:
        raise RuntimeError("rescue moves mail on IMAP accounts only; move the file by hand")
    source = open_source(account, config, rules)
    try:
        client: IMAPClient = source.client  # type: ignore[attr-defined]
        target = _target(client, source, result.to_folder)
        # 1. Copies already in the destination: left by an interrupted run, never made twice.
        client.select_folder(target.folder, readonly=True)
        before = {c.uid: _copies(client, c.message) for c in candidates}
        # 2. Re-check and move, folder by folder.
        policy = verify_policy(config, rules)
        pending: list[tuple[_Candidate, int, str]] = []
        for folder in dict.fromkeys(c.message.folder for c in candidates):
            here = [c for c in candidates if c.message.folder == folder]
            pending += _rescue_folder(
                client, log, account.name, folder, here, before, target, result, dry_run,
                actor, rules, policy,
            )  # fmt: skip
        # 3. Where each message is now: stored with the completed record.
        if pending:
            info = client.select_folder(target.folder, readonly=True)
            target = Target(target.folder, target.role, int(info[b"UIDVALIDITY"]))
        for cand, rescue_id, status in pending:
            copies = _copies(client, cand.message)
            if not copies:
                raise RuntimeError(
                    f"{cand.message.folder} uid {cand.uid}: no copy found in {target.folder} "
                    "after the move; run `gmis-mailscan scan` and check both folders"
                )
            log.finish(
                rescue_id, target, max(copies), original_gone=status == "moved", status=status
            )
    finally:
        source.close()


def _target(client: IMAPClient, source, name: str) -> Target:
    """The destination folder with its role; a junk folder or a missing one is refused."""
    roles = {f.name: f.role for f in source.folders()}
    role = "inbox" if name.upper() == "INBOX" else roles.get(name)
    if role is None:
        if not client.folder_exists(name):
            raise RuntimeError(
                f"folder {name!r} not found on the server: create it or name another with --to"
            )
        role = "other"
    if role == "junk":
        raise RuntimeError(f"folder {name!r} is a junk folder: name a safe one with --to")
    return Target(name, role, 0)


def _rescue_folder(
    client: IMAPClient,
    log: RescueLog,
    account: str,
    folder: str,
    candidates: list[_Candidate],
    before: dict[int, list[int]],
    target: Target,
    result: AccountRescue,
    dry_run: bool,
    actor: str,
    rules: Rules,
    policy,
) -> list[tuple[_Candidate, int, str]]:
    """Re-check each candidate of one junk folder and move it; returns the moves to record."""
    if dry_run:
        info = client.select_folder(folder, readonly=True)
    else:
        info = imapwrite.open_for_writing(client, folder)
    uidvalidity = int(info[b"UIDVALIDITY"])
    keywords = imapwrite.keywords_allowed(info)
    can_move = client.has_capability("MOVE")
    uidplus = client.has_capability("UIDPLUS")
    data = client.fetch([c.uid for c in candidates], FETCH_ITEMS)
    pending = []
    try:
        for cand in candidates:
            msg = cand.message

            def say(action: str, detail: str, m: ScannedMessage = msg, uid: int = cand.uid):
                result.outcomes.append(Outcome(folder, uid, m.subject, action, detail))

            if cand.uidvalidity != uidvalidity:
                say("refused", _changed_uidvalidity(folder))
                continue
            copies = before.get(cand.uid, [])
            if cand.uid not in data or b"BODY[]" not in data[cand.uid]:
                say(*_gone(log, account, msg, folder, uidvalidity, copies, target, dry_run))
                continue
            problem = _differs(msg, data[cand.uid], rules, policy, folder, cand.uid)
            if problem:
                say("refused", problem)
                continue
            if copies and not uidplus:
                say("kept", f"already copied to {target.folder}; {_no_uidplus(folder)}")
                continue
            method = "move" if can_move and not copies else "copy+expunge" if uidplus else "copy"
            if dry_run:
                how = "finish an interrupted move" if copies else f"{method.upper()}"
                say("would_move", f"would move to {target.folder} ({how})")
                continue
            rescue_id = log.start(
                account, sha256=msg.sha256, message_id=msg.message_id, folder=folder,
                uidvalidity=uidvalidity, uid=cand.uid, to_folder=target.folder, method=method,
                who=actor,
            )  # fmt: skip
            if keywords:
                imapwrite.mark_not_junk(client, cand.uid, tuple(data[cand.uid][b"FLAGS"]))
            if copies:  # an earlier run copied it and was cut off: only the original goes
                imapwrite.expunge_exactly(client, cand.uid)
            elif method == "move":
                imapwrite.move(client, cand.uid, target.folder)
            else:
                imapwrite.copy(client, cand.uid, target.folder)
                if uidplus:
                    imapwrite.expunge_exactly(client, cand.uid)
            if uidplus or method == "move":
                say("moved", f"moved to {target.folder} ({method.upper()})")
                pending.append((cand, rescue_id, "moved"))
            else:
                say("copied", f"copied to {target.folder}; {_no_uidplus(folder)}")
                pending.append((cand, rescue_id, "copied"))
    finally:
        imapwrite.leave_folder(client)
    return pending


def _changed_uidvalidity(folder: str) -> str:
    return (
        f"refused: {folder} was renumbered on the server since the scan (UIDVALIDITY changed); "
        "run `gmis-mailscan scan`, then rescue again"
    )


def _no_uidplus(folder: str) -> str:
    return (
        f"the server cannot expunge by UID (no UIDPLUS), so the original stays in {folder}: "
        "delete it there by hand"
    )


def _gone(
    log: RescueLog,
    account: str,
    msg: ScannedMessage,
    folder: str,
    uidvalidity: int,
    copies: list[int],
    target: Target,
    dry_run: bool,
) -> tuple[str, str]:
    """The message left the junk folder since the scan: moved by an interrupted run (its
    record is completed), by someone else, or deleted."""
    if not copies:
        return (
            "gone",
            f"no longer in {folder}; nothing moved (run `gmis-mailscan scan` to see where it is)",
        )
    rescue_id = log.unfinished(account, msg.sha256, folder, uidvalidity, msg.uid or 0)
    if rescue_id is None:
        return "gone", f"no longer in {folder}, found in {target.folder}: nothing to do"
    if not dry_run:
        log.finish(rescue_id, target, max(copies), original_gone=True, status="moved")
    return "gone", f"already in {target.folder}: the interrupted move is recorded as done"


def _differs(
    msg: ScannedMessage, item: dict, rules: Rules, policy, folder: str, uid: int
) -> str | None:
    """Why the message on the server is not the one scanned (or is no longer trusted)."""
    body = bytes(item[b"BODY[]"])
    size = int(item.get(b"RFC822.SIZE", len(body)))
    if size != msg.size or len(body) != msg.size:
        return (
            f"refused: changed on the server since the scan (size {size} bytes, scanned "
            f"{msg.size}); nothing moved — run `gmis-mailscan scan` and check it"
        )
    if hashlib.sha256(body).hexdigest() != msg.sha256:
        return (
            "refused: content changed on the server since the scan (SHA-256 differs); "
            "nothing moved — run `gmis-mailscan scan` and check it"
        )
    now = examine(RawMessage(folder, "junk", f"uid:{uid}", body, uid), rules, policy)
    if now is None or now.message_id != msg.message_id:
        return "refused: Message-ID differs from the one scanned; nothing moved"
    if not now.genuine:
        codes = ", ".join(r.code for r in now.reasons) or "unverified"
        return f"refused: no longer verifies as genuine ({codes}); never moved"
    return None


def _copies(client: IMAPClient, msg: ScannedMessage) -> list[int]:
    """UIDs in the selected folder holding exactly these bytes (same SHA-256)."""
    mid = msg.message_id
    if mid and mid.isascii() and '"' not in mid and "\\" not in mid:
        criteria: list = ["HEADER", "Message-ID", mid]
    else:
        criteria = ["LARGER", str(msg.size - 1), "SMALLER", str(msg.size + 1)]
    hits = client.search(criteria)
    if not hits:
        return []
    data = client.fetch(hits, [b"RFC822.SIZE"])
    same_size = [u for u in hits if int(data.get(u, {}).get(b"RFC822.SIZE", -1)) == msg.size]
    if not same_size:
        return []
    bodies = client.fetch(same_size, [b"BODY.PEEK[]"])
    return sorted(
        u
        for u in same_size
        if hashlib.sha256(bytes(bodies.get(u, {}).get(b"BODY[]", b""))).hexdigest() == msg.sha256
    )
