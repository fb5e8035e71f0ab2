"""A small threaded TCP proxy on 127.0.0.1 that can cut or stall a connection on purpose.

Why: a mail server or the network may drop the connection at any byte of an IMAP session
(greeting, LOGIN, LIST, EXAMINE, SEARCH, in the middle of a FETCH literal). The proxy sits
between the scanner and the real Dovecot and fails exactly where a test asks it to:

* ``cut_server=N`` forwards the first N bytes the server sends (counted over every
  connection through the proxy), then closes both sides;
* ``cut_client=N`` does the same for bytes the client sends;
* ``cut_server_after=b"..."`` forwards the server's bytes up to the end of the first
  occurrence of that text (e.g. a command's reply), then cuts as ``cut_server`` does;
* ``mode="hang"`` stops forwarding at the cut instead of closing: both sockets stay open,
  as with a half-open connection or a frozen server, so only the client's timeout helps;
* ``pause()``/``resume()`` hold and release server bytes without losing any (a scanner
  that must be kept busy while another one starts).

It also records every byte the server sent (``server_stream``), so a test can find where
each IMAP phase begins and place its cut points inside them. Loopback only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Literal

Mode = Literal["close", "hang"]
_CHUNK = 4096


class TcpProxy:
    host = "127.0.0.1"

    def __init__(
        self,
        upstream_port: int,
        *,
        cut_server: int | None = None,
        cut_client: int | None = None,
        mode: Mode = "close",
        upstream_host: str = "127.0.0.1",
        cut_server_after: bytes | None = None,
    ) -> None:
        if upstream_host != "127.0.0.1":
            raise ValueError("the test proxy only talks to loopback")
        self.upstream = (upstream_host, upstream_port)
        self.cut = {"server": cut_server, "client": cut_client}
        self.mode = mode
        self.cut_server_after = cut_server_after
        self.sent = {"server": 0, "client": 0}  # bytes forwarded in each direction
        self.server_stream = bytearray()
        self.connections = 0
        self.cuts = 0  # how many times a cut was applied
        self.refused = 0  # connections closed at once while held (drop(hold=True))
        self._lock = threading.Lock()
        self._running = threading.Event()  # cleared by pause()
        self._running.set()
        self._stopped = threading.Event()
        self._holding = threading.Event()  # set by drop(hold=True)
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    # lifecycle ------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._running.set()  # release paused pumps so they can see the stop
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        self._acceptor.join(timeout=5)
        _close(self._listener)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def pause(self) -> None:
        """Hold bytes from the server (the connection stays up, nothing is lost)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def drop(self, hold: bool = False) -> None:
        """Cut every open connection, as a server restart does; with `hold`, also refuse
        new ones (closed at once) until release()."""
        if hold:
            self._holding.set()
        with self._lock:
            sockets, self._sockets = list(self._sockets), []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            _close(sock)

    def release(self) -> None:
        self._holding.clear()

    # internals ------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._holding.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets += [client, server]
            pair = (client, server)
            for direction, src, dst in (("server", server, client), ("client", client, server)):
                thread = threading.Thread(
                    target=self._pump, args=(direction, src, dst, pair), daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _pump(self, direction: str, src: socket.socket, dst: socket.socket, pair) -> None:
        while not self._stopped.is_set():
            try:
                data = src.recv(_CHUNK)
            except OSError:
                break
            if not data:
                break
            if direction == "server":
                self._running.wait()
                if self._stopped.is_set():
                    break
            with self._lock:
                if direction == "server":
                    self._place_pattern_cut(data)
                limit = self.cut[direction]
                room = len(data) if limit is None else max(0, limit - self.sent[direction])
                part = data[:room]
                self.sent[direction] += len(part)
                if direction == "server":
                    self.server_stream += part
                cutting = len(part) < len(data)
                if cutting:
                    self.cuts += 1
            try:
                if part:
                    dst.sendall(part)
            except OSError:
                break
            if cutting:
                if self.mode == "hang":
                    self._stopped.wait()  # keep both sockets open, forward nothing more
                break
        # One side ended (or was cut): end the whole connection, as a dropped link does.
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            _close(sock)

    def _place_pattern_cut(self, data: bytes) -> None:
        """Turn cut_server_after into a byte count once the text shows up (under _lock)."""
        pattern = self.cut_server_after
        if not pattern or self.cut["server"] is not None:
            return
        tail = bytes(self.server_stream[max(0, len(self.server_stream) - len(pattern) + 1) :])
        at = (tail + data).find(pattern)
        if at >= 0:
            self.cut["server"] = self.sent["server"] - len(tail) + at + len(pattern)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
