"""IMAP account → folders with roles, mailbox usage, and new matching messages in batches.

The mailbox is only read: folders are opened with EXAMINE (read-only select) and messages
fetched with BODY.PEEK[], which sets no \\Seen flag. The server is asked for likely G-MIS
mail newer than the last UID seen (UID n:* OR FROM … SUBJECT …; a big folder's first scan
asks in windows of UIDs, each message still searched once); the parsed From is checked
exactly later, since a server search is a substring match.
"""

from __future__ import annotations

import ipaddress
import queue
import ssl
import threading
from collections.abc import Callable, Iterator

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.imapclient import JUNK, SocketTimeout

from ..config import Account, Config, ImapSettings
from ..credentials import CredentialError, read_password, run_secret_command
from ..records import RawMessage
from ..rules import Rules
from . import Batch, Folder, FolderState, Quota, SourceError, name_matches

#: SPECIAL-USE flags of folders that hold no received mail (or only copies of it).
_SKIP_FLAGS = {b"\\Sent", b"\\Drafts", b"\\All", b"\\Flagged"}
FETCH_ITEM = b"BODY.PEEK[]"
FETCH_KEY = b"BODY[]"  # what the server answers BODY.PEEK[] with
#: A first scan searches a big folder in windows of this many UIDs (each message still once),
#: so that the matches of one window are parsed while the server searches the next.
SEARCH_WINDOW = 10_000


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
        self.criteria = search_criteria(rules)
        self.batch_size = config.batch_size
        self.client = _connect(self.settings, config.timeout)
        self._selected: str | None = None
        self._stop_fetching = threading.Event()  # see close()
        self._fetching: threading.Thread | None = None
        try:
            _login(self.client, self.settings, config.timeout)
        except BaseException:
            self.close()
            raise

    # Source protocol ------------------------------------------------------------------------

    def folders(self) -> list[Folder]:
        """Every folder but sent/drafts ("auto"), or the configured list, with roles.

        A password mail a filter moved to another folder (or staff to Trash) was still received.
        """
        listed, skipped = self._list()
        if self.settings.folders is not None:
            missing = [f for f in self.settings.folders if f not in listed]
            if missing:
                raise SourceError(f"folder {missing[0]!r} not found on the server")
            return [Folder(name, listed[name]) for name in self.settings.folders]
        return [Folder(name, role) for name, role in listed.items() if name not in skipped]

    def quota(self) -> Quota | None:
        """Usage of the INBOX quota root's STORAGE resource, or None when unknown."""
        if not self.client.has_capability("QUOTA"):
            return None
        try:
            _, quotas = self.client.get_quota_root("INBOX")
        except (IMAPClientError, IndexError):  # e.g. Dovecot's "OK No quota" without a root
            return None
        for q in quotas:
            if q.resource.upper() == "STORAGE" and q.limit:
                return Quota(int(q.usage), int(q.limit))
        return None

    def fetch(self, folder: Folder, state: FolderState) -> Iterator[Batch]:
        """The folder's new likely-G-MIS messages in batches, the IMAP side one step ahead.

        Searching and fetching run in a thread while the caller parses and stores the batches
        before (see _ahead): the server works while we do. Nothing else uses the connection
        until the last batch has been taken.
        """
        info = self._select(folder.name)
        uidvalidity = int(info[b"UIDVALIDITY"])
        uidnext = int(info.get(b"UIDNEXT", 0) or 0)
        start = state.last_uid + 1 if uidvalidity == state.uidvalidity else 1
        exists = int(info.get(b"EXISTS", 0) or 0)
        self._stop_fetching.clear()
        batches = self._batches(folder, uidvalidity, uidnext, start, exists)
        yield from _ahead(batches, self._stop_fetching, self._started_fetching)

    def _started_fetching(self, thread: threading.Thread) -> None:
        self._fetching = thread

    def _batches(
        self, folder: Folder, uidvalidity: int, uidnext: int, start: int, exists: int
    ) -> Iterator[Batch]:
        last_uid = max(start - 1, 0)
        found = 0
        low = start
        while exists:
            last = uidnext <= 0 or low + SEARCH_WINDOW >= uidnext
            window = f"{low}:*" if last else f"{low}:{low + SEARCH_WINDOW - 1}"
            hits = self.client.search(["UID", window, *self.criteria])
            uids = sorted(u for u in hits if u >= low)  # n:* always includes the last UID
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
                yield Batch(messages, uidvalidity, state_uid, total=found if last else None)
                if final:
                    return
            if last:
                break
            low += SEARCH_WINDOW
        yield Batch((), uidvalidity, max(last_uid, uidnext - 1), total=found)

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
        try:
            self.client.logout()
        except Exception:  # already closed or the connection dropped
            try:
                self.client.shutdown()
            except Exception:
                pass

    # helpers -----------------------------------------------------------------------------

    def capabilities(self) -> list[str]:
        return sorted(c.decode() for c in self.client.capabilities())

    def _list(self) -> tuple[dict[str, str], set[str]]:
        """Every selectable folder → role (INBOX first), and those "auto" leaves out."""
        if not self.client.has_capability("SPECIAL-USE") and self.client.has_capability("XLIST"):
            listing = self.client.xlist_folders()
        else:
            listing = self.client.list_folders()
        roles: dict[str, str] = {}
        skipped: set[str] = set()
        for flags, delimiter, name in listing:
            if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                continue
            delim = delimiter.decode() if isinstance(delimiter, bytes) else delimiter or ""
            if name.upper() == "INBOX" or b"\\Inbox" in flags:
                roles[name] = "inbox"
            elif JUNK in flags or b"\\Spam" in flags or name_matches(name, self.junk_names, delim):
                roles[name] = "junk"
            else:
                roles[name] = "other"
                if _SKIP_FLAGS & set(flags) or name_matches(name, self.skip_names, delim):
                    skipped.add(name)
        ordered = dict(sorted(roles.items(), key=lambda item: (item[1] != "inbox", item[0])))
        return ordered, skipped

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
        client = IMAPClient(
            settings.host,
            port=settings.port,
            ssl=settings.security == "tls",
            ssl_context=context,
            timeout=SocketTimeout(connect=timeout, read=timeout),
        )
        if settings.security == "starttls":
            client.starttls(context)
        return client
    except ssl.SSLCertVerificationError as exc:
        raise SourceError(
            f"TLS certificate of {where} not trusted ({exc.verify_message}); "
            "give the server's CA in ca_file"
        ) from None
    except (TimeoutError, ssl.SSLError, OSError) as exc:
        raise SourceError(f"cannot connect to {where}: {exc}") from None
    except IMAPClientAbortError as exc:
        raise SourceError(f"connection to {where} lost before login: {exc}") from None
    except IMAPClientError as exc:
        raise SourceError(f"{where}: {exc}") from None


def _login(client: IMAPClient, settings: ImapSettings, timeout: float) -> None:
    try:
        if settings.auth == "oauth2":
            token = run_secret_command(settings.token_command or "", "token_command", timeout)
            client.oauth2_login(settings.username, token)
        else:
            assert settings.password is not None
            client.login(settings.username, read_password(settings.password, timeout))
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
