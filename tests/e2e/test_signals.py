"""Signals to the daemon: SIGTERM in the middle of a cycle (exit 0 within 10 s, no challenge
record left behind), SIGHUP reloads (a new certificate is issued; a broken file is refused and
the daemon keeps running on the old configuration, failing /healthz, its metrics, a notification
and ``status`` until a reload succeeds)."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request

from tests.e2e.helpers import (
    WWW_TARGETS,
    WebhookReceiver,
    assert_serves,
    call_count,
    cert_status,
    log_text,
    net_cert,
    pebble_issued,
    pebble_orders,
    run_ok,
    running_daemon,
    wait_log,
    www_cert,
)
from tests.support.pebble import free_port
from tests.support.world import World, wait_for


def test_sigterm_while_waiting_for_dns_exits_0_within_10s_and_leaves_no_record(world, tmp_path):
    world.sandbox.set_dns_delay(5)  # every cycle now waits ~5 s for the TXT records to show
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    with running_daemon(world, config, log) as proc:
        wait_for(lambda: call_count(world, "AddDomainRecord") >= 3, 20, "the challenge records")
        wait_for(lambda: len(world.txt_records()) == 3, 5, "the records in the sandbox")
        assert World.chain_serial(state, "www") is None, "the cycle should still be waiting for DNS"

        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=12)
        took = time.monotonic() - start
    assert code == 0, log_text(log)[-3000:]
    assert took < 10, f"took {took:.1f}s to stop"
    assert world.txt_records() == [], "SIGTERM left challenge records behind"
    assert len(world.sandbox.calls(action="DeleteDomainRecord")) == 3
    assert not any((state / "journal" / "dns").glob("*.json")), "the DNS journal still has entries"
    assert pebble_issued(world) == [], "nothing should have been finalized"
    # A shutdown is not a failure: no error logged, no backoff recorded.
    assert " ERROR " not in log_text(log)
    for name in ("www", "net"):
        entry = cert_status(world, config, name)
        assert entry["last_error"] is None and entry.get("next_attempt") is None, entry

    # The next run starts from a clean slate and converges.
    world.sandbox.set_dns_delay(0)
    run_ok(world, config)
    assert_serves(world, state, "www", WWW_TARGETS)
    assert world.txt_records() == []


def test_sighup_adds_a_certificate_and_a_broken_file_keeps_the_old_config(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()], extra={"schedule": {"interval": "2s", "jitter": "0s"}})
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    with running_daemon(world, config, log) as proc:
        wait_log(log, r"cycle done", 30)
        www = World.chain_serial(state, "www")
        assert www and World.chain_serial(state, "net") is None

        # A broken file: refused, logged, and the daemon keeps cycling with what it had.
        good = config.read_text()
        config.write_text(good + '\n[[certificate]]\nname = "BAD NAME"\n')
        proc.send_signal(signal.SIGHUP)
        wait_log(log, r"reload refused.*BAD NAME", 10)
        done = log_text(log).count("cycle done")
        wait_log(log, r"cycle done", 15, count=done + 2)
        assert proc.poll() is None, "a bad reload killed the daemon"
        assert "configuration reloaded" not in log_text(log)
        assert World.chain_serial(state, "www") == www

        # A good file adding a certificate: reloaded, and the new one issued.
        world.write_config(tmp_path, [www_cert(), net_cert()],
                           extra={"schedule": {"interval": "2s", "jitter": "0s"}})
        orders = pebble_orders(world)
        proc.send_signal(signal.SIGHUP)
        wait_log(log, r"configuration reloaded", 10)
        wait_for(lambda: World.chain_serial(state, "net"), 30, "the added certificate")
        assert cert_status(world, config, "net")["serial"] == World.chain_serial(state, "net")
        assert pebble_orders(world) == orders + 1, "only the new certificate is issued"
        assert World.chain_serial(state, "www") == www
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert "Traceback" not in log_text(log)


def test_sigterm_while_waiting_for_a_cdn_rollout_exits_0_within_10s(world, tmp_path):
    world.sandbox.set_cdn_rollout_seconds(6)  # verification waits for the rollout
    with WebhookReceiver() as hook:
        config = world.write_config(tmp_path, [www_cert()], verify_timeout="2m",
                                    extra={"notify": [{"kind": "webhook", "url": hook.url}]})
        state = tmp_path / "state"
        log = tmp_path / "daemon.log"
        with running_daemon(world, config, log) as proc:
            wait_for(lambda: call_count(world, "SetCdnDomainSSLCertificate") >= 2, 30, "the CDN binds")
            serial = World.chain_serial(state, "www")
            assert serial and world.served_serial("cdn.example.com") != serial, "still rolling out"

            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=12)
            took = time.monotonic() - start
        assert code == 0 and took < 10, f"exit {code} after {took:.1f}s"
        # A shutdown is not a failure: nothing alarming logged, recorded or sent.
        assert " ERROR " not in log_text(log)
        assert hook.bodies("failure") == [], hook.bodies("failure")
        assert cert_status(world, config, "www")["last_error"] is None

    # The next run picks the rollout up where the daemon left it: no new certificate, no rebind.
    since = time.time()
    run_ok(world, config)
    assert World.chain_serial(state, "www") == serial
    assert_serves(world, state, "www", WWW_TARGETS)
    assert call_count(world, "SetCdnDomainSSLCertificate", since) == 0


def _healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _metric(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310
        m = re.search(rf"^{name} (\S+)$", resp.read().decode(), re.M)
    return float(m.group(1)) if m else None


def test_a_refused_reload_fails_healthz_metrics_notify_and_status_until_a_good_one(world, tmp_path):
    """The commonest refusal under systemd: the new config names a variable that the env file
    gained after the start (EnvironmentFile= is read once). ``status`` in the operator's shell
    has it, so it reads the file and shows what the daemon recorded."""
    port = free_port()
    with WebhookReceiver() as hook:
        extra = {"metrics": {"listen": f"127.0.0.1:{port}"},
                 "notify": [{"kind": "webhook", "url": hook.url, "events": ["failure"]}]}
        config = world.write_config(tmp_path, [www_cert()], extra=extra)
        good = config.read_text()
        log = tmp_path / "daemon.log"
        shell = {"ROBOT_TOKEN": "t0ken-only-in-the-shell"}
        with running_daemon(world, config, log) as proc:
            wait_log(log, r"cycle done", 30)
            status, doc = _healthz(port)
            assert (status, doc["status"], doc["reload_refused"]) == (200, "ok", None), doc
            assert _metric(port, "alicertd_config_last_reload_successful") == 1
            started = _metric(port, "alicertd_config_last_reload_success_timestamp_seconds")

            config.write_text(good + '\n[[notify]]\nkind = "webhook"\n'
                              'url = "https://hooks.example.com/x?token=${ROBOT_TOKEN}"\n')
            proc.send_signal(signal.SIGHUP)
            status, doc = wait_for(lambda: (h := _healthz(port))[0] == 503 and h, 10, "/healthz failing")
            assert doc["status"] == "failing"
            assert doc["reload_refused"]["reasons"] == [
                f"{config}: notify[1].url: environment variable ROBOT_TOKEN is not set"]
            assert _metric(port, "alicertd_config_last_reload_successful") == 0
            assert _metric(port, "alicertd_config_reloads_refused_total") == 1
            wait_for(lambda: hook.bodies("failure"), 10, "the refusal's notification")
            assert [b["title"] for b in hook.bodies("failure")] == ["alicertd: configuration reload refused"]

            text = world.cli(config, "status", env=shell)
            assert text.returncode == 0, text.stderr
            assert "configuration reload refused at" in text.stdout
            assert "notify[1].url: environment variable ROBOT_TOKEN is not set" in text.stdout
            listed = world.cli(config, "status", "--json", env=shell)
            assert json.loads(listed.stdout)["reload_refused"] == doc["reload_refused"]
            assert proc.poll() is None

            config.write_text(good)
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: _healthz(port)[0] == 200, 10, "/healthz ok again")
            assert _healthz(port)[1]["reload_refused"] is None
            assert _metric(port, "alicertd_config_last_reload_successful") == 1
            assert _metric(port, "alicertd_config_last_reload_success_timestamp_seconds") > started
            assert _metric(port, "alicertd_config_reloads_refused_total") == 1
            text = world.cli(config, "status")
            assert text.returncode == 0 and "reload refused" not in text.stdout, text.stdout
            assert json.loads(world.cli(config, "status", "--json").stdout)["reload_refused"] is None
            wait_log(log, r"cycle done", 30, count=2)  # the reload's cycle
            assert _healthz(port)[0] == 200
        assert len(hook.bodies("failure")) == 1, hook.bodies("failure")
    assert "Traceback" not in log_text(log)
