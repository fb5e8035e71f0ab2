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
from .scan import describe_error, examine, verify_policy
from .sources import SourceError, imapwrite
from .sources.imap import ImapSource
from .store.repo import Repo
from .store.rescues import RescueLog, Target
from .verify import VerifyPolicy

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
        raise SourceError("rescue moves mail on IMAP accounts only; move the file by hand")
    source = ImapSource(account, config, rules)
    try:
        client = source.client
        target = _target(client, source, result.to_folder)
        # 1. Copies already in the destination: left by an interrupted run, never made twice.
        client.select_folder(target.folder, readonly=True)
        before = {c.message.sha256: _copies(client, c.message) for c in candidates}
        # 2. Re-check and move, folder by folder.
        policy = verify_policy(config, rules)
        mover = _Mover(client, log, account.name, target, result, dry_run, actor, rules, policy)
        for folder in dict.fromkeys(c.message.folder for c in candidates):
            mover.folder([c for c in candidates if c.message.folder == folder], before)
        # 3. Where each message is now, stored with the completed record.
        if mover.pending:
            info = client.select_folder(target.folder, readonly=True)
            target = Target(target.folder, target.role, int(info[b"UIDVALIDITY"]))
        for cand, rescue_id, status in mover.pending:
            copies = _copies(client, cand.message)
            if not copies:
                raise SourceError(
                    f"{cand.message.folder} uid {cand.uid}: no copy found in {target.folder} "
                    "after the move; run `gmis-mailscan scan` and check both folders"
                )
            log.finish(
                rescue_id, target, max(copies), original_gone=status == "moved", status=status
            )
    finally:
        source.close()


def _target(client: IMAPClient, source: ImapSource, name: str) -> Target:
    """The destination folder with its role; a junk folder or a missing one is refused."""
    roles = {f.name: f.role for f in source.folders()}
    role = "inbox" if name.upper() == "INBOX" else roles.get(name)
    if role is None:
        if not client.folder_exists(name):
            raise SourceError(
                f"folder {name!r} not found on the server: create it or name another with --to"
            )
        role = "other"
    if role == "junk":
        raise SourceError(f"folder {name!r} is a junk folder: name a safe one with --to")
    return Target(name, role, 0)


class _Mover:
    """Re-checks and moves the candidates of one account, one junk folder at a time."""

    def __init__(
        self,
        client: IMAPClient,
        log: RescueLog,
        account: str,
        target: Target,
        result: AccountRescue,
        dry_run: bool,
        actor: str,
        rules: Rules,
        policy: VerifyPolicy,
    ) -> None:
        self.client, self.log, self.account, self.target = client, log, account, target
        self.result, self.dry_run, self.actor = result, dry_run, actor
        self.rules, self.policy = rules, policy
        self.can_move = client.has_capability("MOVE")
        self.uidplus = client.has_capability("UIDPLUS")
        self.pending: list[tuple[_Candidate, int, str]] = []  # moves to record: id, status
        self.copied: set[str] = set()  # SHA-256 of what this run put in the target

    def folder(self, candidates: list[_Candidate], before: dict[str, list[int]]) -> None:
        folder = candidates[0].message.folder
        if self.dry_run:
            info = self.client.select_folder(folder, readonly=True)
        else:
            info = imapwrite.open_for_writing(self.client, folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        keywords = imapwrite.keywords_allowed(info)
        data = self.client.fetch([c.uid for c in candidates], FETCH_ITEMS)
        try:
            for cand in candidates:
                # The same mail in two junk folders: the second is the original of a copy.
                sha256 = cand.message.sha256
                copied = bool(before.get(sha256)) or sha256 in self.copied
                self._one(cand, folder, uidvalidity, data.get(cand.uid, {}), keywords, copied)
        finally:
            imapwrite.leave_folder(self.client)

    def _one(
        self,
        cand: _Candidate,
        folder: str,
        uidvalidity: int,
        item: dict,
        keywords: bool,
        copied: bool,
    ) -> None:
        """Re-check one message and move it, or say why not. `copied`: a copy is in the
        target already (an earlier run was cut off after COPY), so only the original goes."""
        msg, uid, to = cand.message, cand.uid, self.target.folder

        def say(action: str, detail: str) -> None:
            self.result.outcomes.append(Outcome(folder, uid, msg.subject, action, detail))

        if cand.uidvalidity != uidvalidity:
            return say("refused", _changed_uidvalidity(folder))
        if b"BODY[]" not in item:
            return say(*self._gone(msg, folder, uidvalidity, copied))
        problem = _differs(msg, item, self.rules, self.policy, folder, uid)
        if problem:
            return say("refused", problem)
        if copied and not self.uidplus:
            return say("kept", f"already copied to {to}; {_no_uidplus(folder)}")
        if copied or not self.can_move:
            method = "copy+expunge" if self.uidplus else "copy"
        else:
            method = "move"
        if self.dry_run:
            how = "a copy is there already; original by UID EXPUNGE" if copied else method.upper()
            return say("would_move", f"would move to {to} ({how})")
        rescue_id = self.log.start(
            self.account, sha256=msg.sha256, message_id=msg.message_id, folder=folder,
            uidvalidity=uidvalidity, uid=uid, to_folder=to, method=method, who=self.actor,
        )  # fmt: skip
        if keywords:
            imapwrite.mark_not_junk(self.client, uid, tuple(item.get(b"FLAGS", ())))
        if method == "move":
            imapwrite.move(self.client, uid, to)
        elif not copied:
            imapwrite.copy(self.client, uid, to)
        self.copied.add(msg.sha256)
        if method == "copy":
            say("copied", f"copied to {to}; {_no_uidplus(folder)}")
            self.pending.append((cand, rescue_id, "copied"))
            return None
        if method == "copy+expunge":
            imapwrite.expunge_exactly(self.client, uid)
        how = "a copy was there already; original expunged by UID" if copied else method.upper()
        say("moved", f"moved to {to} ({how})")
        self.pending.append((cand, rescue_id, "moved"))
        return None

    def _gone(
        self, msg: ScannedMessage, folder: str, uidvalidity: int, copied: bool
    ) -> tuple[str, str]:
        """The message left the junk folder since the scan: moved by an interrupted run (its
        record is completed), by someone else, or deleted."""
        to = self.target.folder
        if not copied:
            return "gone", f"no longer in {folder}; nothing moved (run `gmis-mailscan scan`)"
        uid = msg.uid or 0
        rescue_id = self.log.unfinished(self.account, msg.sha256, folder, uidvalidity, uid)
        if rescue_id is None:
            return "gone", f"no longer in {folder}, found in {to}: nothing to do"
        if not self.dry_run:
            self.pending.append((_Candidate(msg, uid, uidvalidity), rescue_id, "moved"))
        return "gone", f"already in {to}: the interrupted move is recorded as done"


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


def _differs(
    msg: ScannedMessage, item: dict, rules: Rules, policy: VerifyPolicy, folder: str, uid: int
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
    """UIDs in the selected folder holding exactly these bytes (same SHA-256).

    Searched by size, which the server keeps in its index (a header search would read every
    message of a big INBOX); the few messages of that exact size are compared by hash.
    """
    hits = client.search(["LARGER", str(msg.size - 1), "SMALLER", str(msg.size + 1)])
    if not hits:
        return []
    bodies = client.fetch(hits, [b"BODY.PEEK[]"])
    return sorted(
        u
        for u in hits
        if hashlib.sha256(bytes(bodies.get(u, {}).get(b"BODY[]", b""))).hexdigest() == msg.sha256
    )
