"""#12 item 6: an unreadable deploy record affects only its own certificate, and an error
that escapes a cycle (here: a state dir that cannot be created, as on a read-only disk)
counts as a failed cycle everywhere: notification, metrics, /healthz, ``--run-now`` exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from daemon.config_load import parse_config
from daemon.cycle import Cycle
from daemon.metrics import DaemonMetrics, MetricsServer
from daemon.service import Service
from daemon.state import StateStore
from tests.e2e.helpers import WebhookReceiver
from tests.providers.certs import make_bundle
from tests.renewal.helpers import ScriptedIssuer
from tests.support.world import dump_toml

ROOT = Path(__file__).resolve().parents[2]


def raw_config(tmp_path: Path, state_dir: Path, names=("www", "api"), notify_url: str | None = None) -> dict:
    raw = {
        "state_dir": str(state_dir),
        "acme": {"directory": "https://127.0.0.1:1/dir"},
        "aliyun": {"access_key_id": "id", "access_key_secret": "secret", "region": "cn-hangzhou"},
        "schedule": {"interval": "12h", "jitter": "0s"},
        "certificate": [{"name": n, "domains": [f"{n}.example.com"],
                         "deploy": [{"provider": "local", "directory": str(tmp_path / "out" / n)}]}
                        for n in names],
    }
    if notify_url:
        raw["notify"] = [{"kind": "webhook", "url": notify_url}]
    return raw


def test_an_unreadable_deploy_record_fails_only_its_certificate(tmp_path):
    cfg = parse_config(raw_config(tmp_path, tmp_path / "state"), tmp_path / "a.toml", env={})
    store = StateStore(cfg.state_dir)
    store.ensure()
    for name in ("www", "api"):
        b = make_bundle(name, [f"{name}.example.com"])
        store.commit_certificate(name, b.serial, b.key_pem, b.fullchain_pem,
                                 {"domains": [f"{name}.example.com"], "key_type": "ec256"})
    ca = ScriptedIssuer(None)
    with store.lock(5):
        assert Cycle(cfg, store, issuer_factory=ca.factory).run().ok
    (cfg.state_dir / "deploy" / "www.json").write_text("{ truncated")

    with store.lock(5):
        result = Cycle(cfg, store, issuer_factory=ca.factory).run()

    by_cert = {t.certificate: t for t in result.targets}
    assert by_cert["www"].action == "failed" and "not valid JSON" in by_cert["www"].error
    assert by_cert["api"].action == "none" and by_cert["api"].error is None
    assert not result.ok
    assert store.read_deploy("api")["local:" + str(tmp_path / "out" / "api")]["state"] == "ok"


def test_a_cycle_that_cannot_run_counts_as_failed_in_the_daemon(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with WebhookReceiver() as hook:
        cfg = parse_config(raw_config(tmp_path, blocker / "state", notify_url=hook.url), tmp_path / "a.toml",
                           env={})
        service = Service(cfg, lambda: cfg)
        service.metrics = DaemonMetrics()
        server = MetricsServer(service.metrics, "127.0.0.1:0", health=service.health)
        server.start()
        try:
            service.run_cycle()  # used to raise into the scheduler, which only logged it
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
                metrics = r.read().decode()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz")
                raise AssertionError("/healthz answered 200 after a cycle that could not run")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503 and json.loads(exc.read())["status"] == "failing"
        finally:
            server.stop()
        failures = hook.bodies("failure")
    assert failures and "could not run" in json.dumps(failures[0])
    assert 'alicertd_failures_total{provider="cycle"} 1' in metrics


def test_a_cycle_that_cannot_run_exits_1_and_notifies(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with WebhookReceiver() as hook:
        path = tmp_path / "alicertd.toml"
        path.write_text(dump_toml(raw_config(tmp_path, blocker / "state", notify_url=hook.url)))
        proc = subprocess.run([sys.executable, "-m", "daemon", "--config", str(path), "--run-now"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
        failures = hook.bodies("failure")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert failures, "no failure notification"
