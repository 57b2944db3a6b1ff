"""A tiny TLS server for tests: serves one certificate per SNI name (or a default)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
from pathlib import Path

from providers.base import CertificateBundle


class TlsServer:
    """``with TlsServer({"a.example.com": bundle_a}, default=bundle_b) as srv: srv.port``.
    ``serve(name, bundle)`` swaps what a name gets while running."""

    def __init__(self, by_name: dict[str, CertificateBundle] | None = None,
                 default: CertificateBundle | None = None):
        self._dir = tempfile.TemporaryDirectory()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._default: ssl.SSLContext | None = None
        for name, bundle in (by_name or {}).items():
            self.serve(name, bundle)
        if default is not None:
            self._default = self._context(default)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _context(self, bundle: CertificateBundle) -> ssl.SSLContext:
        base = Path(self._dir.name) / bundle.fingerprint[:16]
        chain, key = base.with_suffix(".crt"), base.with_suffix(".key")
        chain.write_text(bundle.fullchain_pem)
        key.write_text(bundle.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        return ctx

    def serve(self, name: str, bundle: CertificateBundle) -> None:
        self._contexts[name] = self._context(bundle)

    def _sni(self, sock: ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
        chosen = self._contexts.get(name or "")
        if chosen is not None:
            sock.context = chosen

    def _run(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            base = self._default or next(iter(self._contexts.values()))
            base.sni_callback = self._sni
            try:
                with base.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    with contextlib.suppress(OSError):
                        tls.recv(1)
            except (OSError, ssl.SSLError):
                conn.close()

    def __enter__(self) -> TlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        self._dir.cleanup()
