"""A loopback TLS proxy in front of Pebble that can lose an answer after Pebble has acted on it.

Tests that need "the CA did it, the client never heard" (a crash right after finalize, a
newOrder whose answer is dropped) point alicertd's ``acme.directory`` at ``directory_url``. The
proxy terminates TLS with Pebble's own listener certificate (so the configured ``ca_bundle``
still verifies it) and forwards every request unchanged, Host header included, so Pebble's URLs
and the JWS ``url`` checks stay as they are. alicertd's code runs unchanged: only the network
between it and the CA misbehaves.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

# Not forwarded: they describe one hop, and the proxy sets its own Content-Length.
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class PebbleProxy:
    """Forwards to Pebble. ``drop`` (override it) is asked about every answer once Pebble has
    given it; True closes the client's connection without an answer, as a connection dropped
    after sending does."""

    def __init__(self, pebble):
        self.upstream = f"https://127.0.0.1:{pebble.port}"
        session = requests.Session()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                resp = session.request(self.command, outer.upstream + self.path, data=body or None,
                                       headers=headers, verify=pebble.ca_bundle, timeout=30)
                if outer.drop(self.command, self.path, resp):
                    self.close_connection = True
                    return
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(resp.content)

            do_GET = do_POST = do_HEAD = _forward  # noqa: N815 - http.server API

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pebble.workdir / "listener-cert.pem", pebble.workdir / "listener-key.pem")
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)

    def drop(self, method: str, path: str, response: requests.Response) -> bool:
        return False

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/dir"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

