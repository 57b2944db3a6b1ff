"""``[metrics] listen``: the daemon's /metrics and /healthz."""

from __future__ import annotations

import json
import re
import urllib.request

from cryptography import x509

from tests.e2e.helpers import running_daemon, wait_log, www_cert
from tests.support.pebble import free_port


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def _sample(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_metrics_and_healthz(world, tmp_path):
    port = free_port()
    config = world.write_config(tmp_path, [www_cert()], extra={"metrics": {"listen": f"127.0.0.1:{port}"}})
    log = tmp_path / "daemon.log"
    with running_daemon(world, config, log):
        wait_log(log, r"cycle done", 30)
        status, ctype, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and ctype.startswith("text/plain")

        leaf = x509.load_pem_x509_certificate((tmp_path / "state/certificates/www/fullchain.pem").read_bytes())
        not_after = _sample(text, "alicertd_certificate_not_after_seconds", '{certificate="www"}')
        assert not_after == leaf.not_valid_after_utc.timestamp()
        assert _sample(text, "alicertd_issuances_total", '{certificate="www"}') == 1
        assert "# TYPE alicertd_issuances_total counter" in text
        assert _sample(text, "alicertd_deployments_total", '{provider="cdn"}') == 2
        assert _sample(text, "alicertd_last_success_timestamp_seconds", '{certificate="www"}') is not None
        target = _sample(text, "alicertd_target_not_after_seconds",
                         '{certificate="www",provider="cdn",target="cdn.example.com"}')
        assert target == not_after

        status, ctype, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        health = json.loads(body)
        assert health["status"] == "ok" and health["last_cycle"].endswith("Z")
