"""A counting TCP proxy on loopback: how many bytes the server really sends (TLS included)."""

from __future__ import annotations

import socket
import threading


class CountingProxy:
    """Listen on 127.0.0.1:<port>, forward each connection to the target, count both ways."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.to_client = 0  # bytes the server sent
        self.to_server = 0
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def reset(self) -> None:
        self.wait_idle()
        with self.lock:
            self.to_client = self.to_server = self.connections = 0

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every forwarded connection has been closed by both sides."""
        for t in list(self._threads):
            t.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def close(self) -> None:
        self._stop = True
        self.listener.close()
        self.wait_idle(2)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=30)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += 1
            for src, dst, up in ((client, server, True), (server, client, False)):
                t = threading.Thread(target=self._pump, args=(src, dst, up), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                with self.lock:
                    if up:
                        self.to_server += len(data)
                    else:
                        self.to_client += len(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass
