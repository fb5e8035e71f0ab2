"""IMAP account → folders with roles, mailbox usage, and new matching messages in batches.

The mailbox is only read: folders are opened with EXAMINE (read-only select) and messages
fetched with BODY.PEEK[], which sets no \\Seen flag. The server is asked for likely G-MIS
mail newer than the last UID seen (UID n:* OR FROM … SUBJECT …; a big folder's first scan
asks in windows of UIDs, each message still searched once); the parsed From is checked
exactly later, since a server search is a substring match.

Round trips, not bytes, are the cost on a real link (a hosted server 20–60 ms away): the
folder list comes with every folder's STATUS (LIST-STATUS, or STATUS commands in one write),
unchanged folders are not opened, and the others are opened, searched and fetched in
pipelined flights (fetch_many), each one write whose answers are read in order.
"""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import logging
import queue
import re
import socket
import ssl
import threading
from collections.abc import Callable, Collection, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import cast

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imapclient import JUNK, SocketTimeout, _normalise_search_criteria, _parse_quota
from imapclient.response_parser import parse_fetch_response, parse_message_list, parse_response

from ..config import Account, Config, ImapSettings
from ..credentials import CredentialError, read_password, run_secret_command
from ..records import FolderRole, RawMessage
from ..rules import Rules
from . import Batch, Folder, FolderState, FolderStatus, Quota, SourceError, name_matches

log = logging.getLogger(__name__)

#: SPECIAL-USE flags of folders that hold no received mail (or only copies of it).
_SKIP_FLAGS = {b"\\Drafts", b"\\Flagged"}
#: Folders of every message (RFC 6154 \\All; Gmail's XLIST says \\AllMail): read as non-junk.
_ARCHIVE_FLAGS = {b"\\All", b"\\AllMail"}
FETCH_ITEM = b"BODY.PEEK[]"
FETCH_KEY = b"BODY[]"  # what the server answers BODY.PEEK[] with
#: A first scan searches a big folder in windows of this many UIDs (each message still once),
#: so that the matches of one window are parsed while the server searches the next.
SEARCH_WINDOW = 10_000
#: What a rescan asks of every known folder instead of opening it (see FolderState.unchanged).
_STATUS = "(UIDNEXT UIDVALIDITY MESSAGES)"
StatusMap = dict[str, FolderStatus]
#: One command's answer in a flight: its type, data and the untagged responses before it.
Reply = tuple[str, list, dict]
#: An untagged STATUS response's text whose folder name is a quoted string or an atom.
_STATUS_LINE = re.compile(rb'(?:"((?:[^"\\]|\\.)*)"|([^\s"(){]+)) \(([A-Za-z0-9 ]*)\)')
_UNQUOTE = re.compile(rb"\\(.)")
#: An untagged LIST response's text: (flags) "delimiter" or NIL, a quoted or atom name.
_LIST_LINE = re.compile(
    rb'\(([^()]*)\) (?:"((?:[^"\\]|\\.)*)"|NIL) (?:"((?:[^"\\]|\\.)*)"|([^\s"(){]+))'
)
#: Folders opened and searched in one write. Each answers a few hundred bytes, so a flight's
#: answers stay within the socket buffers while the server works through it.
FLIGHT_FOLDERS = 128
_GETQUOTAROOT = b'GETQUOTAROOT "INBOX"'


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ssl_context(settings: ImapSettings) -> ssl.SSLContext:
    """Verify the server certificate and host name: the system store, or the given CA file."""
    try:
        return ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(f"ca_file {settings.ca_file}: cannot load: {exc}") from None


def search_criteria(rules: Rules) -> list:
    """OR FROM t1 OR FROM t2 … SUBJECT tn, as one nested IMAP search key."""
    terms = [("FROM", t) for t in rules.server_search_from] + [
        ("SUBJECT", t) for t in rules.server_search_subject
    ]
    criteria: list = list(terms[-1])
    for key, value in reversed(terms[:-1]):
        criteria = ["OR", key, value, criteria]  # a nested list is sent in parentheses
    return criteria


class ImapSource:
    """One logged-in IMAP connection for one account."""

    def __init__(self, account: Account, config: Config, rules: Rules) -> None:
        assert account.imap is not None
        self.account = account
        self.settings = account.imap
        self.junk_names = rules.junk_names + account.junk_folders
        self.skip_names = rules.skip_names
        self.sent_names = rules.sent_names
        self.archive_names = rules.archive_names
        self.criteria = search_criteria(rules)
        #: The criteria as sent after "UID SEARCH UID n:m"; one that needs a literal (which
        #: waits for the server's go-ahead) cannot share a flight.
        self._search_words = b" ".join(_normalise_search_criteria(self.criteria))
        self._search_literal = max(self._search_words, default=0) > 127
        self.batch_size = config.batch_size
        self.timeout = config.timeout
        self.search_connections = config.search_connections
        self.client = _connect(self.settings, config.timeout)
        self._selected: str | None = None
        self._stop_fetching = threading.Event()  # see close()
        self._fetching: threading.Thread | None = None
        self._flight_quota: tuple[Quota | None] | None = None  # asked in a flight: see quota()
        self._early: _Searched | None = None  # INBOX opened before the list: _open_inbox
        try:
            _login(self.client, self.settings, config.timeout)
        except BaseException:
            self.close()
            raise

    # Source protocol ------------------------------------------------------------------------

    def folders(self, known: Collection[str] = ()) -> Iterator[Folder]:
        """INBOX, then every other folder but drafts ("auto") or the configured ones.

        A password mail a filter moved to another folder (or staff to Trash) was still received.
        Every listed folder comes with its STATUS, asked in one round trip (see _listing), so
        the caller skips those that did not change without opening them, and opens the others
        together (fetch_many).
        On a first scan INBOX is opened and searched before the folder list is asked for (it
        always exists, RFC 3501): on Dovecot the first open of a big INBOX after a LIST costs
        ~60 ms at 100,000 messages (it refreshes its list index), before it under 1 ms. A big
        INBOX comes without STATUS, and the caller fetches it before taking the next folder,
        so before the LIST is sent (see _open_inbox).
        """
        wanted = self.settings.folders
        inbox = wanted is None or "INBOX" in wanted
        early = inbox and "INBOX" not in known
        if early:
            yield self._open_inbox()
        listed, skipped, statuses = self._list()
        if wanted is not None:
            there = ", ".join(sorted(listed, key=lambda n: (n != "INBOX", n)))
            for name in wanted:
                if name not in listed and name != "INBOX":  # a warning: the rest is scanned
                    log.warning(
                        "%s: folder %r not found on the server, which has: %s (fix the "
                        'account\'s folders, or remove it for "auto"); its other folders are read',
                        self.account.name,
                        name,
                        there,
                    )
            names = [n for n in wanted if (n != "INBOX" or not early) and n in listed]
        else:
            names = [n for n in listed if n not in skipped]
        for name in names:
            if not (early and listed.get(name) == "inbox"):  # INBOX by another spelling
                yield Folder(name, listed[name], statuses.get(name))

    def quota(self) -> Quota | None:
        """Usage of the INBOX quota root's STORAGE and MESSAGE resources, None when unknown.

        A server may limit the message count alone (RFC 9208 MESSAGE) or beside the size.
        """
        if self._flight_quota is not None:  # asked with the folders (fetch_many)
            return self._flight_quota[0]
        if not self.client.has_capability("QUOTA"):
            return None
        typ, _, untagged = self._flight([_GETQUOTAROOT])[0]
        return _quota(typ, untagged.get("QUOTA", []))

    def fetch(self, folder: Folder, state: FolderState) -> Iterator[Batch]:
        """The folder's new likely-G-MIS messages in batches, the IMAP side one step ahead.

        The path of a folder fetch_many cannot put in a flight (a big folder searched in
        windows, or one without STATUS). Searching and fetching run in a thread while the
        caller parses and stores the batches before (see _ahead): the server works while we
        do. Nothing else uses the connection until the last batch has been taken.
        """
        opened = self._take_early(folder)  # INBOX, its first window searched: _open_inbox
        first = opened.uids if opened is not None else None
        if opened is None:
            info = self._select(folder.name)
            start = state.first_new_uid(int(info[b"UIDVALIDITY"]))
            opened = _Searched.of(folder, info, start, [])
        self._stop_fetching.clear()
        batches = self._batches(opened, first)
        yield from _ahead(batches, self._stop_fetching, self._started_fetching)

    def fetch_many(
        self, work: list[tuple[Folder, FolderState]], quota: bool = False
    ) -> Iterator[tuple[Folder, Batch]]:
        """The new likely-G-MIS messages of many folders, asked in a few round trips.

        Each folder whose STATUS told its UIDs is opened and searched in a flight: one write
        of EXAMINE + UID SEARCH for up to FLIGHT_FOLDERS folders, the answers read in order.
        The matches are then fetched in flights of up to batch_size messages (EXAMINE +
        UID FETCH per folder). When `quota`, GETQUOTAROOT rides on the last search flight
        (quota() then answers from it), unless a big folder is still to be opened: on Dovecot
        every open after it is slower. Yields (folder, batch): the folders without matches
        first, one final empty batch each, then those with matches, then those that need
        fetch() alone.
        """
        self._flight_quota = None
        early = [e for e in (self._take_early(f) for f, _ in work) if e is not None]
        flown: list[tuple[Folder, FolderState]] = []
        alone: list[tuple[Folder, FolderState]] = []
        for folder, state in work:
            if not any(e.folder == folder for e in early):
                (flown if self._flies(folder, state) else alone).append((folder, state))
        quota = quota and not alone and self.client.has_capability("QUOTA")
        found: list[_Searched] = early
        for i in range(0, len(flown), FLIGHT_FOLDERS):
            last = i + FLIGHT_FOLDERS >= len(flown)
            found += self._search_flight(flown[i : i + FLIGHT_FOLDERS], quota and last)
        for one in found:
            if not one.uids:
                yield one.folder, one.batch((), final=True)
        yield from self._fetch_flights([one for one in found if one.uids])
        for folder, state in alone:
            for batch in self.fetch(folder, state):
                yield folder, batch

    def _open_inbox(self) -> Folder:
        """INBOX opened and its first search window searched in one round trip.

        A small INBOX (one window) comes with the STATUS its EXAMINE told, its search done:
        fetch_many fetches its matches with the other folders'. A big one comes without: the
        caller fetches it at once (fetch), from its second window on. A search that needs a
        literal, or a server that tells no UIDNEXT, leaves INBOX to be opened by fetch().
        """
        if self._search_literal:
            return Folder("INBOX", "inbox")
        examined, searched = self._flight(
            [b"EXAMINE INBOX", self._search_command(1, SEARCH_WINDOW)]
        )
        info = self._examined("INBOX", examined)
        opened = _Searched.of(Folder("INBOX", "inbox"), info, 1, self._matches(searched, 1))
        if not opened.uidnext:
            return opened.folder
        if len(_windows(1, opened.uidnext)) == 1:
            status = FolderStatus(opened.uidvalidity, opened.uidnext, opened.exists)
            opened = replace(opened, folder=Folder("INBOX", "inbox", status))
        self._early = opened
        return opened.folder

    def _take_early(self, folder: Folder) -> _Searched | None:
        """INBOX as _open_inbox left it, once, if `folder` is that INBOX."""
        early = self._early
        if early is None or early.folder != folder:
            return None
        self._early = None
        return early

    def _flies(self, folder: Folder, state: FolderState) -> bool:
        """Whether the folder can be searched in a flight: its STATUS told its UIDs, the new
        ones fit in one search window, and the search needs no literal."""
        status = folder.status
        if status is None or self._search_literal:
            return False
        return len(_windows(state.first_new_uid(status.uidvalidity), status.uidnext)) == 1

    def _search_flight(
        self, work: list[tuple[Folder, FolderState]], quota: bool
    ) -> list[_Searched]:
        """EXAMINE + UID SEARCH of each folder in one write; GETQUOTAROOT last when `quota`.

        A folder that cannot be opened (deleted since the LIST) fails the account's scan
        once the whole flight has been read, so the connection stays in step.
        """
        starts = []
        commands = []
        for folder, state in work:
            assert folder.status is not None  # see _flies
            starts.append(state.first_new_uid(folder.status.uidvalidity))
            commands += [
                b"EXAMINE " + self.client._normalise_folder(folder.name),
                self._search_command(starts[-1]),
            ]
        if quota:
            commands.append(_GETQUOTAROOT)
        replies = self._flight(commands)
        if quota:  # Dovecot runs it beside the SEARCH before it: its lines may come first
            lines = [line for *_, untagged in replies for line in untagged.get("QUOTA", [])]
            self._flight_quota = (_quota(replies.pop()[0], lines),)
        return [
            _Searched.of(
                folder, self._examined(folder.name, examined), start, self._matches(searched, start)
            )
            for (folder, _), start, examined, searched in zip(
                work, starts, replies[::2], replies[1::2], strict=True
            )
        ]

    def _fetch_flights(self, found: list[_Searched]) -> Iterator[tuple[Folder, Batch]]:
        """Fetch the matches of searched folders, up to batch_size messages a flight.

        Each part of a flight is one folder's EXAMINE (unless it is open) + UID FETCH of its
        next UIDs; the batches come in folder order, each folder's last with its final state.
        """
        flights: list[list[tuple[_Searched, list[int]]]] = [[]]
        for one in found:
            for i in range(0, len(one.uids), self.batch_size):
                uids = one.uids[i : i + self.batch_size]
                if sum(len(u) for _, u in flights[-1]) + len(uids) > self.batch_size:
                    flights.append([])
                flights[-1].append((one, uids))
        client = self.client
        for flight in flights:
            commands = []
            opens = []
            for one, uids in flight:
                opens.append(one.folder.name != self._selected)
                if opens[-1]:
                    commands.append(b"EXAMINE " + client._normalise_folder(one.folder.name))
                    self._selected = one.folder.name
                commands.append(b"UID FETCH %s (%s)" % (_uid_set(uids).encode(), FETCH_ITEM))
            replies = iter(self._flight(commands))
            for (one, uids), opened in zip(flight, opens, strict=True):
                if opened:
                    info = self._examined(one.folder.name, next(replies))
                    if int(info[b"UIDVALIDITY"]) != one.uidvalidity:
                        raise SourceError(
                            f"{one.folder.name}: renumbered (new UIDVALIDITY) during the scan; "
                            "the next run reads it again"
                        )
                typ, data, untagged = next(replies)
                client._checkok("fetch", typ, data)
                items = parse_fetch_response(untagged.get("FETCH", []), False, True)
                messages = tuple(
                    RawMessage(one.folder.name, one.folder.role, f"uid:{uid}", item[FETCH_KEY], uid)
                    for uid in uids
                    if FETCH_KEY in (item := items.get(uid, {}))
                )
                yield one.folder, one.batch(messages, final=uids[-1] == one.uids[-1], last=uids[-1])

    def _search_command(self, low: int, high: int | None = None) -> bytes:
        """UID SEARCH of the UIDs from `low` (to `high`, else to the last) by the criteria."""
        uids = f"{low}:{high if high is not None else '*'}".encode()
        return b"UID SEARCH UID " + uids + b" " + self._search_words

    def _examined(self, name: str, reply: Reply) -> dict:
        """An EXAMINE's reply from a flight → its answer as select_folder gives it; the
        folder is now the one open (read-only)."""
        typ, data, untagged = reply
        self.client._checkok("examine", typ, data)
        self.client._imap.state, self.client._imap.is_readonly = "SELECTED", True
        self._selected = name
        return self.client._process_select_response(untagged)

    def _matches(self, reply: Reply, low: int) -> list[int]:
        """A UID SEARCH's reply from a flight → the matching UIDs from `low`, in order
        (n:* always includes the last UID, even below n)."""
        typ, data, untagged = reply
        self.client._checkok("search", typ, data)
        return sorted(u for u in parse_message_list(untagged.get("SEARCH", [None])) if u >= low)

    def _flight(self, commands: list[bytes]) -> list[Reply]:
        """Send `commands` in one write; each one's type, data and untagged responses."""
        imap = self.client._imap
        imap.untagged_responses = {}
        replies = []
        for typ, data in pipeline(self.client, "pipelined", commands):
            replies.append((typ, data, imap.untagged_responses))
            imap.untagged_responses = {}
        return replies

    def _started_fetching(self, thread: threading.Thread) -> None:
        self._fetching = thread

    def _batches(self, opened: _Searched, first: list[int] | None) -> Iterator[Batch]:
        windows = _windows(opened.start, opened.uidnext) if opened.exists else []
        hits = self._window_hits(opened.folder.name, windows, first)
        with contextlib.closing(hits):  # its extra connections are closed on any way out
            yield from self._fetch_hits(opened, windows, hits)

    def _fetch_hits(
        self, opened: _Searched, windows: list[tuple[int, str]], hits: Iterator[list[int]]
    ) -> Iterator[Batch]:
        """Fetch each window's matches in batches, each with the folder state it completes.

        The last batch carries the folder's message count (EXAMINE's, as UIDNEXT).
        """
        folder, uidvalidity, uidnext = opened.folder, opened.uidvalidity, opened.uidnext
        count = opened.exists if uidnext else None  # without UIDNEXT, no count's moment
        last_uid = max(opened.start - 1, 0)
        found = 0
        for index, uids in enumerate(hits):
            last = index == len(windows) - 1
            found += len(uids)
            for i in range(0, len(uids), self.batch_size):
                chunk = uids[i : i + self.batch_size]
                data = self.client.fetch(chunk, [FETCH_ITEM])
                messages = tuple(
                    RawMessage(folder.name, folder.role, f"uid:{uid}", data[uid][FETCH_KEY], uid)
                    for uid in chunk
                    if uid in data and FETCH_KEY in data[uid]
                )
                last_uid = chunk[-1]
                final = last and i + self.batch_size >= len(uids)
                state_uid = max(last_uid, uidnext - 1) if final else last_uid
                yield Batch(
                    messages,
                    uidvalidity,
                    state_uid,
                    total=found if last else None,
                    exists=count if final else None,
                )
                if final:
                    return
        yield Batch((), uidvalidity, max(last_uid, uidnext - 1), total=found, exists=count)

    def _window_hits(
        self, folder: str, windows: list[tuple[int, str]], first: list[int] | None = None
    ) -> Generator[list[int], None, None]:
        """The matching UIDs of each window, in window order (`first`: the first window's,
        searched already).

        Several windows (a big folder's first scan) are searched on up to [scan]
        search_connections extra connections at once while this one fetches the matches.
        Dovecot serves each connection in its own process, so its reading of every header,
        most of a first scan, runs on several cores; each message is still searched once.
        Without extra connections (refused, or none configured) the windows are searched here.
        """
        count = min(self.search_connections, len(windows) - 1)
        if first is not None and windows:
            yield first
            windows = windows[1:]
        helpers = self._open_helpers(folder, count)
        if not helpers:
            for window in windows:
                yield self._search(self.client, *window)
            return
        idle: queue.SimpleQueue = queue.SimpleQueue()
        for helper in helpers:
            idle.put(helper)

        def search(window: tuple[int, str]) -> list[int]:
            client = idle.get()  # never waits: as many pool threads as connections
            try:
                return self._search(client, *window)
            finally:
                idle.put(client)

        pool = ThreadPoolExecutor(len(helpers), thread_name_prefix="imap-search")
        futures = [pool.submit(search, window) for window in windows]
        try:
            for future in futures:
                yield future.result()
        finally:  # the caller stopped, or a search failed: end after the current commands
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
            for helper in helpers:
                _logout(helper)

    def _open_helpers(self, folder: str, count: int) -> list[IMAPClient]:
        """Up to `count` more logged-in connections with `folder` open read-only.

        Opened at once; one the server refuses (a per-user connection limit, say) is left
        out, and with none the search stays on the main connection.
        """
        if count <= 0:
            return []

        def open_one(_: int) -> IMAPClient | None:
            client = None
            try:
                client = _connect(self.settings, self.timeout)
                _login(client, self.settings, self.timeout)
                client.select_folder(folder, readonly=True)  # EXAMINE
                return client
            except Exception as exc:
                log.info("%s: no extra search connection: %s", self.account.name, exc)
                if client is not None:
                    _logout(client)
                return None

        with ThreadPoolExecutor(count, thread_name_prefix="imap-login") as pool:
            return [c for c in pool.map(open_one, range(count)) if c is not None]

    def _search(self, client: IMAPClient, low: int, window: str) -> list[int]:
        hits = client.search(["UID", window, *self.criteria])
        return sorted(u for u in hits if u >= low)  # n:* always includes the last UID

    def present(self, folder: Folder, locators: set[str]) -> set[str]:
        """Which of the known messages (uid:N) are still in the folder."""
        uids = sorted(int(loc[4:]) for loc in locators if loc.startswith("uid:"))
        if not uids:
            return set()
        if self._selected != folder.name:  # fetch() left it open: opening again costs the server
            self._select(folder.name)
        found = set(self.client.search(["UID", _uid_set(uids)]))
        return {f"uid:{u}" for u in uids if u in found}

    def close(self) -> None:
        # A fetch the caller left unfinished (an error while storing) ends its thread after the
        # current command, before the connection is logged out under it.
        self._stop_fetching.set()
        if self._fetching is not None:
            self._fetching.join()
        _logout(self.client)

    # helpers -----------------------------------------------------------------------------

    def capabilities(self) -> list[str]:
        return sorted(c.decode() for c in self.client.capabilities())

    def _list(self) -> tuple[dict[str, FolderRole], set[str], StatusMap]:
        """Every selectable folder → role (INBOX first), those "auto" leaves out, and the
        folders' STATUS."""
        listing, statuses = self._listing()
        roles: dict[str, FolderRole] = {}
        skipped: set[str] = set()
        for flags, delimiter, name in listing:
            if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                continue
            delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter or ""
            roles[name] = self._role(name, set(flags), delim)
            if roles[name] == "other" and (
                _SKIP_FLAGS & set(flags) or name_matches(name, self.skip_names, delim)
            ):
                skipped.add(name)
        ordered = dict(sorted(roles.items(), key=lambda item: (item[1] != "inbox", item[0])))
        return ordered, skipped, statuses

    def _listing(self) -> tuple[list[tuple], StatusMap]:
        """LIST, and every folder's STATUS in the same round trip where it can.

        With LIST-STATUS (RFC 5819) one command answers both; otherwise the STATUS commands
        of every selectable folder go in one write after the LIST.
        """
        client = self.client
        if not client.has_capability("SPECIAL-USE") and client.has_capability("XLIST"):
            listing = client.xlist_folders()
        elif client.has_capability("LIST-STATUS"):
            imap = client._imap
            # RETURN options replace the defaults: without SPECIAL-USE asked for, a server may
            # leave out \Junk, \All, \Sent and \Flagged (RFC 6154 §5.1), and roles would be lost.
            special = "SPECIAL-USE " if client.has_capability("SPECIAL-USE") else ""
            returned = f"({special}STATUS {_STATUS})"
            typ, data = imap._simple_command("LIST", '""', '"*"', "RETURN", returned)
            client._checkok("list", typ, data)
            lines = imap._untagged_response(typ, data, "LIST")[1]
            listing = parse_listing(lines, client.folder_encode)
            return listing, parse_statuses(
                imap.untagged_responses.pop("STATUS", []), client.folder_encode
            )
        else:
            listing = client.list_folders()
        names = [name for flags, _, name in listing if b"\\Noselect" not in flags]
        commands = [
            b"STATUS %s %s" % (client._normalise_folder(n), _STATUS.encode()) for n in names
        ]
        for _ in pipeline(client, "STATUS", commands):
            pass  # a folder gone since the LIST answers NO: it has no STATUS, it is opened
        return listing, parse_statuses(
            client._imap.untagged_responses.pop("STATUS", []), client.folder_encode
        )

    def _role(self, name: str, flags: set[bytes], delim: str) -> FolderRole:
        """A folder's role by its SPECIAL-USE flag, else by its name (rules/gmis.toml)."""
        if name.upper() == "INBOX" or b"\\Inbox" in flags:
            return "inbox"
        if JUNK in flags or b"\\Spam" in flags or name_matches(name, self.junk_names, delim):
            return "junk"
        if _ARCHIVE_FLAGS & flags or name_matches(name, self.archive_names, delim):
            return "archive"
        if b"\\Sent" in flags or name_matches(name, self.sent_names, delim):
            return "sent"
        return "other"

    def _select(self, name: str) -> dict:
        info = self.client.select_folder(name, readonly=True)  # EXAMINE
        self._selected = name
        return info


def _ahead(
    batches: Iterator[Batch],
    stop: threading.Event,
    started: Callable[[threading.Thread], None],
    depth: int = 2,
) -> Iterator[Batch]:
    """Run `batches` in a thread, at most `depth` batches ahead of the caller.

    An error of the thread reaches the caller after the batches made before it, as if read
    in line. When the caller stops early, or `stop` is set, the thread ends after its
    current IMAP command.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)

    def hand_over(item: tuple) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(("batch", batch)):
                    return
            hand_over(("end", None))
        except BaseException as exc:  # handed to the caller, raised there
            hand_over(("error", exc))
        finally:  # a generator left early cleans up here, in this thread, not at some GC
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="imap-fetch", daemon=True)
    worker.start()
    started(worker)
    try:
        while True:
            kind, item = ready.get()
            if kind == "error":
                raise item
            if kind == "end":
                return
            yield item
    finally:
        stop.set()
        worker.join()


def pipeline(client: IMAPClient, name: str, commands: list[bytes]) -> Iterator[tuple[str, list]]:
    """Send `commands` (without tag or CRLF) in one write; each one's (type, data) in turn.

    The server answers in order; untagged responses collect in imaplib's untagged_responses
    as for a command sent alone (ImapSource._flight takes them after each answer). A BAD
    answer is handed over like the others, so that the rest of the flight is still read.
    """
    imap = client._imap
    tags = [imap._new_tag() for _ in commands]
    if tags:
        imap.send(b"".join(t + b" " + c + b"\r\n" for t, c in zip(tags, commands, strict=True)))
    for tag in tags:
        try:
            yield imap._command_complete(name, tag)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:  # BAD: its tagged answer has been read
            yield "BAD", [str(exc).encode()]


@dataclass(frozen=True)
class _Searched:
    """A folder opened and searched in a flight: its state then, and the matching UIDs."""

    folder: Folder
    uidvalidity: int
    uidnext: int
    exists: int
    start: int  # the first UID searched
    uids: list[int]

    @classmethod
    def of(cls, folder: Folder, info: dict, start: int, uids: list[int]) -> _Searched:
        uidnext = int(info.get(b"UIDNEXT", 0) or 0)
        exists = int(info.get(b"EXISTS", 0) or 0)
        return cls(folder, int(info[b"UIDVALIDITY"]), uidnext, exists, start, uids)

    def batch(self, messages: tuple[RawMessage, ...], final: bool, last: int = 0) -> Batch:
        """The batch ending at UID `last`; the final one carries the folder's end state:
        its last UID as UIDNEXT tells and (when UIDNEXT was told) its message count."""
        if not final:
            return Batch(messages, self.uidvalidity, last, total=len(self.uids))
        end = max(last, self.start - 1, self.uidnext - 1)
        count = self.exists if self.uidnext else None
        return Batch(messages, self.uidvalidity, end, total=len(self.uids), exists=count)


def parse_listing(lines: list, utf7: bool = True) -> list[tuple]:
    """Untagged LIST responses → (flags, delimiter, name), as IMAPClient.list_folders gives.

    The usual line (delimiter and name quoted strings or atoms) is read with _LIST_LINE, the
    others (a name sent as a literal) by imapclient's general parser, as parse_statuses does.
    """
    lines = [line for line in lines if line not in (b"", None)]
    matches = [_LIST_LINE.fullmatch(line) if isinstance(line, bytes) else None for line in lines]
    if not all(matches):
        parsed = parse_response(lines)
        return [
            (flags, delim, _folder_name(name, utf7))
            for flags, delim, name in zip(parsed[::3], parsed[1::3], parsed[2::3], strict=True)
        ]
    out = []
    for match in cast(list[re.Match], matches):
        flags, delim, quoted, atom = match.groups()
        delim = _unquoted(delim) if delim is not None else None
        out.append((tuple(flags.split()), delim, _folder_name(_unquoted(quoted, atom), utf7)))
    return out


def _unquoted(quoted: bytes | None, atom: bytes | None = None) -> bytes:
    """A quoted string's text (backslash escapes undone), else the atom."""
    if quoted is None:
        return cast(bytes, atom)
    return _UNQUOTE.sub(rb"\1", quoted)


def _folder_name(name: object, utf7: bool) -> str:
    """A parsed folder name as text (imapclient reads a name of digits as a number)."""
    if isinstance(name, bytes):
        return decode_utf7(name) if utf7 else name.decode()
    return str(name)


def parse_statuses(lines: list, utf7: bool = True) -> StatusMap:
    """Untagged STATUS responses → folder name → FolderStatus (`utf7`: names in modified UTF-7).

    The usual line (the name an atom or a quoted string) is read with _STATUS_LINE;
    imapclient's general parser, ~25 µs a line, reads the others (a name sent as a
    literal): on a 120-folder rescan it was most of our CPU beside the database.
    """
    out: StatusMap = {}
    general = []
    for line in lines:
        match = _STATUS_LINE.fullmatch(line) if isinstance(line, bytes) else None
        if match is not None:
            quoted, atom, items = match.groups()
            words = items.split()
            pairs = list(zip(words[::2], words[1::2], strict=False))
            _status(out, _unquoted(quoted, atom), pairs, utf7)
        elif line not in (b"", None):
            general.append(line)
    parsed = parse_response(general) if general else []
    for name, items in zip(parsed[::2], parsed[1::2], strict=True):
        _status(out, name, list(zip(items[::2], items[1::2], strict=False)), utf7)
    return out


def _status(out: StatusMap, name: object, items: list[tuple], utf7: bool) -> None:
    values = {bytes(key).upper(): value for key, value in items}
    try:
        out[_folder_name(name, utf7)] = FolderStatus(
            int(values[b"UIDVALIDITY"]), int(values[b"UIDNEXT"]), int(values[b"MESSAGES"])
        )
    except (KeyError, TypeError, ValueError):  # incomplete: the folder is opened
        pass


def _quota(typ: str, lines: list) -> Quota | None:
    """GETQUOTAROOT's QUOTA lines → usage of the STORAGE and MESSAGE resources, None when
    unknown.

    A server may limit the message count alone (RFC 9208 MESSAGE) or beside the size;
    Dovecot answers "OK No quota" with no QUOTA line where none is set.
    """
    if typ != "OK":
        return None
    quotas = _parse_quota(lines)
    limits = {q.resource.upper(): (int(q.usage), int(q.limit)) for q in quotas if q.limit}
    storage, count = limits.get("STORAGE"), limits.get("MESSAGE")
    if storage is None and count is None:
        return None
    return Quota(*(storage or (None, None)), *(count or (None, None)))


def _windows(start: int, uidnext: int) -> list[tuple[int, str]]:
    """(lowest UID, UID set) of each search window from `start` on; the last one is open."""
    windows = []
    low = start
    while uidnext > 0 and low + SEARCH_WINDOW < uidnext:
        windows.append((low, f"{low}:{low + SEARCH_WINDOW - 1}"))
        low += SEARCH_WINDOW
    windows.append((low, f"{low}:*"))
    return windows


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # already closed or the connection dropped
        try:
            client.shutdown()
        except Exception:
            pass


def _uid_set(uids: list[int]) -> str:
    """1,2,3,7,9,10 → "1:3,7,9:10" (keeps the command short for long lists)."""
    ranges: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:] + [None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        ranges.append(f"{start}:{prev}" if prev != start else str(start))
        if uid is not None:
            start = prev = uid
    return ",".join(ranges)


def _connect(settings: ImapSettings, timeout: float) -> IMAPClient:
    where = f"{settings.host}:{settings.port}"
    if settings.security == "plain" and not is_loopback(settings.host):
        raise SourceError(
            f'security = "plain" refused for {settings.host}: passwords would cross the network '
            "unencrypted (plain IMAP is allowed on loopback only); use tls or starttls"
        )
    context = ssl_context(settings) if settings.security != "plain" else None
    try:
        client = _open(settings, context, timeout)
        if settings.security == "starttls":
            client.starttls(context)
        _one_write_per_command(client)
        return client
    except ssl.SSLCertVerificationError as exc:
        raise SourceError(
            f"TLS certificate of {where} not trusted ({exc.verify_message}); "
            "give the server's CA in ca_file"
        ) from None
    except ssl.SSLError as exc:
        if settings.security == "tls" and _answers_plain(settings):
            raise SourceError(
                f'port {settings.port} answered in plain text: use security = "starttls" '
                'or port 993 with "tls"'
            ) from None
        raise SourceError(f"cannot connect to {where}: {exc}") from None
    except (TimeoutError, OSError) as exc:
        raise SourceError(f"cannot connect to {where}: {exc}") from None
    except IMAPClientAbortError as exc:
        raise SourceError(f"connection to {where} lost before login: {exc}") from None
    except IMAPClientError as exc:
        raise SourceError(f"{where}: {exc}") from None


#: Seconds to wait for a plain-text greeting before checking whether the port speaks TLS.
GREETING_WAIT = 3.0


def _open(settings: ImapSettings, context: ssl.SSLContext | None, timeout: float) -> IMAPClient:
    """Connect and read the greeting. A TLS port greets nobody who does not start TLS, so a
    starttls/plain client would wait the whole [scan] timeout and then say only "timed out":
    after a short wait the port is asked for a TLS handshake, and the mismatch named."""
    tls = settings.security == "tls"
    wait = timeout if tls else min(timeout, GREETING_WAIT)
    try:
        return _client(settings, context, wait, timeout)
    except TimeoutError:
        if tls or wait >= timeout:
            raise
        if _speaks_tls(settings, wait):
            raise SourceError(
                f'port {settings.port} expects TLS at once: use security = "tls" '
                'or port 143 with "starttls"'
            ) from None
        return _client(settings, context, timeout, timeout)  # a slow greeter after all


def _client(
    settings: ImapSettings, context: ssl.SSLContext | None, connect: float, read: float
) -> IMAPClient:
    return IMAPClient(
        settings.host,
        port=settings.port,
        ssl=settings.security == "tls",
        ssl_context=context,
        timeout=SocketTimeout(connect=connect, read=read),
    )


def _speaks_tls(settings: ImapSettings, wait: float) -> bool:
    """Whether the port completes a TLS handshake (certificate not checked: only asking)."""
    probe = ssl.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((settings.host, settings.port), timeout=wait) as raw:
            with probe.wrap_socket(raw, server_hostname=settings.host):
                return True
    except (OSError, ssl.SSLError):
        return False


def _answers_plain(settings: ImapSettings) -> bool:
    """Whether the port greets in plain text (a TLS client sees only "wrong version")."""
    try:
        with socket.create_connection((settings.host, settings.port), timeout=GREETING_WAIT) as s:
            return s.recv(16).startswith((b"* OK", b"* PREAUTH", b"* BYE"))
    except OSError:
        return False


def _one_write_per_command(client: IMAPClient) -> None:
    """Send each command line in one write, and do not let Nagle hold it back.

    IMAPClient sends a command's text and its CRLF in two send() calls: on a real link
    Nagle's algorithm holds the second until the server acknowledges the first, about one
    more round trip per command. The pieces are now joined until the line ends (a literal
    that waits for the server's continuation ends its line, so it still goes at once).
    """
    imap = client._imap
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending: list[bytes] = []
    send = imap.send

    def send_line(data: bytes) -> None:
        pending.append(data)
        if data.endswith(b"\r\n"):
            line = b"".join(pending)
            pending.clear()
            send(line)

    imap.send = send_line


def _login(client: IMAPClient, settings: ImapSettings, timeout: float) -> None:
    try:
        if settings.auth == "oauth2":
            token = run_secret_command(settings.token_command or "", "token_command", timeout)
            client.oauth2_login(settings.username, token)
        else:
            assert settings.password is not None
            client.login(settings.username, read_password(settings.password, timeout))
        client.capabilities()  # cached from the login answer, which the first EXAMINE flushes
    except CredentialError as exc:
        raise SourceError(str(exc)) from None
    except LoginError as exc:
        if isinstance(exc.__context__, IMAPClientAbortError):  # the link dropped: no refusal
            raise SourceError(
                f"connection to {settings.host}:{settings.port} lost during login: "
                f"{_server_text(exc)}"
            ) from None
        raise SourceError(
            f"login refused for {settings.username} at {settings.host}: {_server_text(exc)}"
        ) from None


def _server_text(exc: Exception) -> str:
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text or type(exc).__name__
