"""The TLS edge: what a browser would see at a CDN domain, an API Gateway custom domain, or any
other emulated product that serves TLS.

Verification by handshake is the daemon's last word on "deployed", so the edge must serve
exactly what the emulated service serves *now*: the certificate picked by SNI (exact CDN domain,
else the wildcard CDN domain one label up, else an API Gateway custom domain, else the first
product hook that claims the name), and the old one while a rollout is still running. Names
without a binding get a self-signed "sandbox default" certificate generated at start. Python's
ssl only loads chains from files, so each chain/key is written to a private temporary directory,
loaded, and unlinked at once.

The per-product hook: a product module under ``sandbox/products`` that serves TLS defines

    def served_for(world, server_name: str, port: int, now: float) -> Served | None

returning the ``(chain PEM, key PEM, SHA-256 fingerprint)`` it serves to ``server_name`` on
``port`` (the edge port the client connected to) at ``now``, or None when the name is not
its. ``sandbox/products/__init__.py`` collects the hooks into ``EDGE_HOOKS``; the edge calls
them in that order under the world lock, so a hook sees one consistent world.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import ssl
import tempfile
import threading
import time
from collections import OrderedDict, deque

from .certs import make_default_certificate
from .products import EDGE_HOOKS, Served
from .tcp import TrackingTCPServer

_CACHE_SIZE = 256


class TlsEdge:
    def __init__(self, sb, host: str, port: int) -> None:
        self.sb = sb
        self.log: deque[dict] = deque(maxlen=20000)
        self._tmpdir = tempfile.mkdtemp(prefix="alicertd-sandbox-edge-")
        os.chmod(self._tmpdir, 0o700)
        self._lock = threading.Lock()
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self.default_cert_pem, default_key = make_default_certificate()
        self.default_context = self._load(self.default_cert_pem, default_key)
        self.default_context.sni_callback = self._sni
        self.server = _EdgeServer((host, port), _EdgeHandler, self)
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def _load(self, chain_pem: str, key_pem: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        fd, path = tempfile.mkstemp(dir=self._tmpdir, suffix=".pem")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(key_pem.strip() + "\n" + chain_pem.strip() + "\n")
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
        return ctx

    def _context_for(self, fingerprint: str, chain_pem: str, key_pem: str) -> ssl.SSLContext:
        with self._lock:
            ctx = self._contexts.get(fingerprint)
            if ctx is not None:
                self._contexts.move_to_end(fingerprint)
                return ctx
        ctx = self._load(chain_pem, key_pem)
        with self._lock:
            self._contexts[fingerprint] = ctx
            while len(self._contexts) > _CACHE_SIZE:
                self._contexts.popitem(last=False)
        return ctx

    def served(self, server_name: str, now: float) -> Served | None:
        """What the edge presents for ``server_name``: the built-in products, then the hooks."""
        for world in self.sb.world.all_accounts():  # every account's targets are served
            with world.lock:
                pair = world.served_pair(server_name, now)
                if pair is not None:
                    return pair
                for hook in EDGE_HOOKS:
                    pair = hook(world, server_name.lower().rstrip("."), self.port, now)
                    if pair is not None:
                        return pair
        return None

    def _sni(self, sslsock, server_name, _ctx):
        sslsock.sandbox_served = "default"
        sslsock.sandbox_sni = server_name
        if not server_name:
            return None
        pair = self.served(server_name, time.time())
        if pair is None:
            return None
        chain, key, fingerprint = pair
        try:
            sslsock.context = self._context_for(fingerprint, chain, key)
            sslsock.sandbox_served = fingerprint
        except (ssl.SSLError, OSError):
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sandbox-edge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for a serve_forever that must have run
            self.server.shutdown()
        self.server.server_close()
        self.server.close_all()
        if self._thread:
            self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            os.rmdir(self._tmpdir)


class _EdgeServer(TrackingTCPServer):
    def __init__(self, addr, handler, edge: TlsEdge):
        self.edge = edge
        super().__init__(addr, handler)


class _EdgeHandler(socketserver.BaseRequestHandler):
    """Handshake, then answer one tiny HTTP request naming what was served."""

    def handle(self) -> None:
        edge: TlsEdge = self.server.edge
        raw = self.request
        self.server.track(raw, True)
        raw.settimeout(5)
        try:
            tls = edge.default_context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.server.track(raw, False)
            return
        served = getattr(tls, "sandbox_served", "default")
        sni = getattr(tls, "sandbox_sni", None)
        edge.log.append({"time": time.time(), "sni": sni, "served": served})
        try:
            tls.settimeout(2)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 8192:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data:
                body = json.dumps({"sni": sni, "served": served}).encode()
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Connection: close\r\nContent-Length: " + str(len(body)).encode()
                            + b"\r\n\r\n" + body)
        except (ssl.SSLError, OSError):
            pass
        finally:
            self.server.track(raw, False)
            with contextlib.suppress(OSError):
                tls.close()
