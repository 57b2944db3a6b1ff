"""A threading TCP server that remembers its open connections, so that stop() can cut them
(the DNS server's TCP side and the TLS edge both keep connections open past shutdown())."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading


class TrackingTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler):
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(addr, handler)

    def track(self, conn, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_all(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
