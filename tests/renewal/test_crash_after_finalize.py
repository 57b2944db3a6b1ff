"""Done-when of #12 item 1, through the real CLI and a real crash: alicertd is SIGKILLed the
moment Pebble has finalized a renewal (the CA has issued and marked the old certificate as
replaced), before the answer reaches it. The next ``--run-now`` completes the renewal.

The kill needs to know when finalize happened, so the ACME traffic goes through a loopback
proxy that terminates TLS with Pebble's own listener certificate and forwards every request
unchanged (Host header included, so Pebble's URLs and the JWS ``url`` checks stay as they are).
"""

from __future__ import annotations

import os
import signal
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.e2e.helpers import pebble_issued
from tests.support.world import World, wait_for

pytestmark = pytest.mark.pebble
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class KillingProxy:
    """Forwards to Pebble; after forwarding a finalize while ``victim`` is set, SIGKILLs it
    and drops the connection unanswered."""

    def __init__(self, pebble):
        self.upstream = f"https://127.0.0.1:{pebble.port}"
        self.victim: int | None = None
        self.killed = threading.Event()
        session = requests.Session()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                resp = session.request(self.command, outer.upstream + self.path, data=body or None,
                                       headers=headers, verify=pebble.ca_bundle, timeout=30)
                victim = outer.victim
                if self.command == "POST" and "/finalize-order/" in self.path and victim and victim > 1:
                    os.kill(victim, signal.SIGKILL)
                    outer.victim = None
                    outer.killed.set()
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

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/dir"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_killed_right_after_finalize_then_the_next_run_completes_the_renewal(world, tmp_path):
    with KillingProxy(world.pebble) as proxy:
        config = world.write_config(tmp_path, [world.cert("www", ["example.com"])],
                                    extra={"acme": {"directory": proxy.directory_url}})
        state = tmp_path / "state"
        assert world.cli(config, "--run-now").returncode == 0
        first = World.chain_serial(state, "www")

        proc = world.spawn(config, "--run-now", "--force", "www", log_path=tmp_path / "killed.log")
        proxy.victim = proc.pid  # set long before the process gets to finalize (Python starts first)
        wait_for(proxy.killed.is_set, 60, "the kill right after finalize")
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert World.chain_serial(state, "www") == first, "nothing may be stored: the answer was lost"
        # ... although the CA issues the renewal: Pebble answers finalize with "processing" and
        # issues in the background, so the log line may come a moment after the kill.
        wait_for(lambda: len(pebble_issued(world)) == 2, 30, "Pebble to issue the finalized order")

        rerun = world.cli(config, "--run-now", "--force", "www")

        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        second = World.chain_serial(state, "www")
        assert second not in (None, first)
        assert "alreadyReplaced" not in rerun.stderr
        # The order the crash left was picked up: its certificate is the one now stored.
        assert second == pebble_issued(world)[1], (second, pebble_issued(world))
        assert world.txt_records() == [], "the crashed run's challenge records were not cleaned up"
