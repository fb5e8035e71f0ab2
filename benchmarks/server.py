"""A Dovecot whose mail outlives the process: tests/dovecot.py's server in a fixed directory.

The test server lives in a throw-away temp dir; the benchmark's 100,000-message mailbox is
built once and reused, so this subclass keeps its directory (config, TLS material, users and
their Maildirs) across stops and runs, and can drop Dovecot's caches for a cold measurement.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from dovecot import DovecotServer, User  # noqa: E402

_LOGOUT_RE = re.compile(
    r"imap\((?P<user>[^)]+)\)<[^\n]*? in=(?P<in>\d+) out=(?P<out>\d+)[^\n]*?"
    r"body_count=(?P<bodies>\d+) body_bytes=(?P<bb>\d+)"
)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its live descendants, and the children it has reaped.

    Dovecot's master forks a process per IMAP connection (and for login and auth); the
    connection's CPU is counted while it runs and, once the master has reaped it, in the
    master's children times: the difference of two readings is the server's work between.
    """
    import psutil

    master = psutil.Process(pid)
    t = master.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in master.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += c.user + c.system
    return total


class PersistentDovecot(DovecotServer):
    """DovecotServer in `base`, kept on stop(); users remembered in base/users.json."""

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.fixed_base = base

    @property
    def users_file(self) -> Path:
        return self.fixed_base / "users.json"

    def start(self) -> PersistentDovecot:
        if self.running:
            return self
        self.base = self.fixed_base
        fresh = not (self.base / "tls" / "ca.pem").exists()
        if fresh:
            self.base.mkdir(parents=True, exist_ok=True)
            self.base.chmod(0o755)
            for sub in ("run", "state", "log", "tls", "home"):
                (self.base / sub).mkdir(mode=0o755, exist_ok=True)
            if self._is_root:
                os.chown(self.base / "home", self._mail_uid, self._mail_gid)
            self._make_tls()
            self.passwd_dir.mkdir(mode=0o755, exist_ok=True)
        self._kill_leftover()
        for log in ("info.log", "error.log", "master.stderr"):
            with contextlib.suppress(FileNotFoundError):
                (self.base / "log" / log).unlink()
        self._load_users()
        if not self.imap_port:
            self._pick_ports()
        self.conf_path.write_text(
            self._config() + "imap_logout_format = in=%i out=%o deleted=%{deleted} "
            "expunged=%{expunged} hdr_count=%{fetch_hdr_count} body_count=%{fetch_body_count} "
            "body_bytes=%{fetch_body_bytes}\n",
            encoding="utf-8",
        )
        try:
            self._spawn(time.monotonic() + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the processes (their group, which we started); keep every file."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        # The master waits for its children; make sure none is left holding the ports.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _kill_leftover(self) -> None:
        """A benchmark killed mid-run leaves its Dovecot running: stop that one (by its pid)."""
        pid_file = self.base / "run" / "master.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if str(self.conf_path).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)

    # users --------------------------------------------------------------------------------

    def add_user(self, name: str, password: str, **kwargs) -> User:  # type: ignore[override]
        user = super().add_user(name, password, **kwargs)
        self._save_users()
        return user

    def _save_users(self) -> None:
        data = {
            u.name: {"password": u.password, "home": str(u.home), "junk": u.junk_name}
            for u in self.users.values()
        }
        self.users_file.write_text(json.dumps(data, indent=1), encoding="utf-8")

    def _load_users(self) -> None:
        if not self.users_file.exists():
            return
        for name, u in json.loads(self.users_file.read_text(encoding="utf-8")).items():
            self.users[name] = User(name, u["password"], Path(u["home"]), u["junk"], None)

    # caches -------------------------------------------------------------------------------

    def drop_caches(self, users: list[str]) -> int:
        """Cold start: stop Dovecot, delete the users' dovecot.index.cache files, start again.

        The cache file is where Dovecot keeps the header fields it has parsed (From, Subject,
        sizes…) and its decisions about what to cache; without it the next SEARCH FROM must
        open every message file and parse its header again. The message files stay in the
        OS page cache (dropping that needs the host's /proc/sys/vm/drop_caches): "cold" here
        is Dovecot cold, as after a server restart, not a cold disk.
        """
        self.stop()
        removed = 0
        for name in users:
            for path in Path(self.users[name].home).rglob("dovecot.index.cache"):
                path.unlink()
                removed += 1
        self.start()
        return removed

    def cpu_seconds(self) -> float:
        """CPU time the whole Dovecot has used so far (master, services, connections)."""
        assert self._proc is not None
        return process_tree_cpu(self._proc.pid)

    # logs ---------------------------------------------------------------------------------

    def log_offset(self) -> int:
        try:
            return self.mail_log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def sessions_since(self, offset: int, sessions: int, timeout: float = 10.0) -> list[dict]:
        """The logout lines (bytes out, bodies fetched) of the next `sessions` sessions."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.mail_log_path.open("rb") as fh:
                    fh.seek(offset)
                    text = fh.read().decode("utf-8", errors="replace")
            except FileNotFoundError:
                text = ""
            found = [
                {
                    "user": m["user"],
                    "out": int(m["out"]),
                    "in": int(m["in"]),
                    "bodies": int(m["bodies"]),
                    "body_bytes": int(m["bb"]),
                }
                for m in _LOGOUT_RE.finditer(text)
            ]
            if len(found) >= sessions or time.monotonic() > deadline:
                return found
            time.sleep(0.02)
