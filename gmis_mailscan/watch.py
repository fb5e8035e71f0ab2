"""`gmis-mailscan watch`: scan as soon as new mail arrives, instead of once a day from cron.

One IMAP IDLE connection per watched folder (INBOX and each junk folder, at most
[watch] connections per account); an account with more such folders, a server without IDLE,
or mail on disk is polled every [watch] poll_seconds instead. Every account is scanned in
full at start and every [watch] full_scan_minutes. A dropped connection is retried with
exponential backoff and jitter; an IDLE is ended and the login renewed before the server's
30-minute limit. After every reconnect the account is scanned, so mail that arrived while
the connection was down is not missed. Scans are the ordinary read-only ones (EXAMINE,
BODY.PEEK[]); the IDLE connections only EXAMINE. stop() (SIGTERM/SIGINT in the CLI) ends
the loop after the scan in hand.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable

from . import notify
from .config import Account, Config
from .rules import Rules
from .scan import describe_error, open_source, scan
from .sources.imap import _connect, _login
from .status import assess_all
from .store.db import scan_lock
from .store.repo import Repo

log = logging.getLogger(__name__)

IDLE_CHECK = 1.0  # seconds an IDLE waits for the server before looking at the stop flag
DEBOUNCE = 0.3  # seconds to gather the events of one delivery (INBOX and a filter's copy)
LOCK_WAIT = 30.0  # seconds to wait for another scan (cron's) before trying again later


class Watcher:
    """Runs until stop(): watch threads report events, the calling thread scans."""

    def __init__(
        self,
        config: Config,
        rules: Rules,
        repo: Repo,
        *,
        send_notifications: bool = False,
        on_scan: Callable[[int, str], None] | None = None,
    ) -> None:
        self.config = config
        self.rules = rules
        self.repo = repo
        self.settings = config.watch
        self.send_notifications = send_notifications
        self.on_scan = on_scan or (lambda run_id, status: None)
        self.stopping = threading.Event()
        self.requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.polled: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def stop(self) -> None:
        self.stopping.set()

    def request(self, account: str) -> None:
        """Ask for a scan of `account` (from any thread)."""
        self.requests.put(account)

    # main loop ------------------------------------------------------------------------------

    def run(self) -> None:
        names = [a.name for a in self.config.accounts]
        self.scan(names)  # first a full scan: the state at start, and folders to watch
        for account in self.config.accounts:
            if self.stopping.is_set():
                break
            self._start_watching(account)
        next_full = time.monotonic() + self.settings.full_scan
        next_poll = time.monotonic() + self.settings.poll
        while not self.stopping.is_set():
            wanted = self._wait(min(next_full, next_poll))
            now = time.monotonic()
            if now >= next_full:
                wanted |= set(names)
                next_full = now + self.settings.full_scan
            if now >= next_poll:
                with self._lock:
                    wanted |= self.polled
                next_poll = now + self.settings.poll
            if wanted and not self.stopping.is_set():
                self.scan([n for n in names if n in wanted])
        for thread in self._threads:
            thread.join(timeout=self.config.timeout)

    def _wait(self, until: float) -> set[str]:
        """Account names asked for before `until` (or the stop), gathered for DEBOUNCE."""
        wanted: set[str] = set()
        while not self.stopping.is_set() and time.monotonic() < until:
            try:
                wanted.add(self.requests.get(timeout=min(0.5, max(0.01, until - time.monotonic()))))
            except queue.Empty:
                continue
            deadline = time.monotonic() + DEBOUNCE
            while time.monotonic() < deadline:
                try:
                    wanted.add(self.requests.get(timeout=max(0.01, deadline - time.monotonic())))
                except queue.Empty:
                    break
            return wanted
        return wanted

    def scan(self, names: list[str]) -> None:
        """One ordinary scan of these accounts, its assessment, and the mail if asked."""
        accounts = [self.config.accounts_by_name[n] for n in names]
        with scan_lock(self.repo.engine, LOCK_WAIT) as got:
            if not got:
                log.warning("another scan holds the database; trying again in a while")
                for name in names:
                    self.request(name)
                self.stopping.wait(LOCK_WAIT)
                return
            outcome = scan(self.config, self.rules, self.repo, accounts=accounts)
            assessments = assess_all(
                self.config, self.rules, self.repo, cause="scan", scan_run=outcome.run_id
            )
            for a in outcome.accounts:
                if a.error:
                    log.warning("%s: FAILED: %s", a.name, a.error)
            if self.send_notifications and self.config.notify is not None:
                try:
                    notify.send_changes(
                        self.config.notify, self.rules, self.repo, assessments,
                        self.config.rules_dir,
                    )  # fmt: skip
                except notify.NotifyError as exc:
                    log.warning("notification not sent (the next scan retries): %s", exc)
        log.info("scanned %s: run %d %s", ", ".join(names), outcome.run_id, outcome.status)
        self.on_scan(outcome.run_id, outcome.status)

    # watching ------------------------------------------------------------------------------

    def _start_watching(self, account: Account) -> None:
        folders = self._folders_to_watch(account)
        if folders is None:
            with self._lock:
                self.polled.add(account.name)
            return
        watched, rest = folders[: self.settings.connections], folders[self.settings.connections :]
        if rest or not watched:
            log.info("%s: polling every %gs (%s)", account.name, self.settings.poll, rest)
            with self._lock:
                self.polled.add(account.name)
        for folder in watched:
            thread = threading.Thread(
                target=self._idle_loop,
                args=(account, folder),
                name=f"idle {account.name} {folder}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _folders_to_watch(self, account: Account) -> list[str] | None:
        """INBOX and the junk folders, or None when the account can only be polled."""
        if account.imap is None:
            return None
        try:
            source = open_source(account, self.config, self.rules)
        except Exception as exc:  # unreachable now: polled, so it is picked up when back
            log.warning("%s: cannot list folders, polling: %s", account.name, describe_error(exc))
            return None
        try:
            if not source.client.has_capability("IDLE"):  # type: ignore[attr-defined]
                log.info("%s: the server has no IDLE; polling", account.name)
                return None
            return [f.name for f in source.folders() if f.role in ("inbox", "junk")]
        except Exception as exc:
            log.warning("%s: cannot list folders, polling: %s", account.name, describe_error(exc))
            return None
        finally:
            try:
                source.close()
            except Exception:
                pass

    def _idle_loop(self, account: Account, folder: str) -> None:
        """Keep an IDLE on one folder until stop; every event asks for a scan."""
        settings = account.imap
        assert settings is not None
        delay = self.settings.backoff_initial
        connected_before = False
        while not self.stopping.is_set():
            client = None
            try:
                client = _connect(settings, self.config.timeout)
                _login(client, settings, self.config.timeout)
                client.select_folder(folder, readonly=True)  # EXAMINE
                if connected_before:  # mail may have come while we were away
                    self.request(account.name)
                connected_before = True
                delay = self.settings.backoff_initial
                log.info("%s: waiting for new mail in %s (IDLE)", account.name, folder)
                self._idle(client, account.name)
            except Exception as exc:  # dropped, refused, server restarting
                wait = delay * (0.5 + random.random() / 2)  # jitter: not all at once
                log.warning(
                    "%s: %s: %s; reconnecting in %.1fs",
                    account.name,
                    folder,
                    describe_error(exc, account, self.config.timeout),
                    wait,
                )
                self.stopping.wait(wait)
                delay = min(delay * 2, self.settings.backoff_max)
            finally:
                if client is not None:
                    try:
                        client.logout()
                    except Exception:
                        pass

    def _idle(self, client, account: str) -> None:
        """One IDLE, ended before the re-login time or at stop.

        imapclient's idle_check hides a closed connection: at EOF it returns no responses at
        once, every time. Several such empty returns in a row, each well before the timeout,
        are taken as the connection lost (a live but quiet one waits the whole timeout).
        """
        client.idle()
        renew = time.monotonic() + self.settings.relogin
        early_empty = 0
        try:
            while not self.stopping.is_set() and time.monotonic() < renew:
                started = time.monotonic()
                responses = client.idle_check(timeout=IDLE_CHECK)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    self.request(account)
                quick = not responses and time.monotonic() - started < IDLE_CHECK / 2
                early_empty = early_empty + 1 if quick else 0
                if early_empty >= 3:
                    raise ConnectionError("connection closed by the server during IDLE")
        finally:
            client.idle_done()
