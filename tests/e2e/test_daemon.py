"""The long-lived daemon (no ``--run-now``): it issues and deploys at start, renews on its
schedule, puts drifted targets back, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import time

from tests.e2e.helpers import (
    WWW_TARGETS,
    cert_status,
    foreign_certificate,
    log_text,
    pebble_issued,
    running_daemon,
    wait_log,
    www_cert,
)
from tests.support.pebble import DEFAULT_PROFILES, ensure_pebble
from tests.support.world import World, wait_for

FAST = {"schedule": {"interval": "2s", "jitter": "0s"}}


def _deployed(world: World, state, name: str, targets: list[str]) -> str | None:
    """NAME's current serial once every target serves it, else None."""
    serial = World.chain_serial(state, name)
    if serial and all(world.served_serial(t) == serial for t in targets):
        return serial
    return None


def _stop(proc, timeout: float = 10.0) -> tuple[int, float]:
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=timeout)
    return code, time.monotonic() - start


def test_daemon_issues_at_start_and_renews_on_schedule(tmp_path):
    # Certificates of 20 seconds: the daemon renews each at its own renewal time (a fixed
    # window as long as the lifetime, which used to force a renewal every cycle, is now ignored).
    ensure_pebble()
    profiles = {**DEFAULT_PROFILES, "seconds": {"description": "20 s", "validityPeriod": 20}}
    with World(pebble_config={"profiles": profiles}) as world:
        _renews_on_schedule(world, tmp_path)


def _renews_on_schedule(world: World, tmp_path) -> None:
    config = world.write_config(tmp_path, [www_cert()],
                                extra={**FAST, "acme": {"profile": "seconds", "renew_before_days": 7}})
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    with running_daemon(world, config, log) as proc:
        first = wait_for(lambda: _deployed(world, state, "www", WWW_TARGETS), 30, "the first deployment")
        status = cert_status(world, config, "www")
        assert status["serial"] == first and status["days_left"] == 0

        # Two more renewals, each deployed everywhere, without anyone asking. Each comes at a
        # random pick between a third and five sixths of its certificate's 20 s, and each cycle
        # that issues also deploys (over a second of CDN rollout): the two can take 35 s on a
        # quiet machine, so the deadline leaves room for a loaded one.
        wait_for(lambda: len(pebble_issued(world)) >= 3, 90, "two scheduled renewals")
        wait_for(lambda: (s := _deployed(world, state, "www", WWW_TARGETS)) and s != first, 30,
                 "a renewed certificate on every target")
        issued = pebble_issued(world)
        assert len(set(issued)) == len(issued), "a serial issued twice"
        assert proc.poll() is None
        assert "issuing (ARI window)" in log_text(log) and "ignoring it" in log_text(log)

        code, took = _stop(proc)
    assert code == 0
    assert took < 10
    assert world.txt_records() == [], "a challenge record outlived the daemon"
    assert "Traceback" not in log_text(log)


def test_daemon_puts_a_drifted_target_back(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()], extra=FAST)
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    with running_daemon(world, config, log) as proc:
        wait_log(log, r"cycle done", 30)  # drift only after the first cycle has verified
        ours = wait_for(lambda: _deployed(world, state, "www", WWW_TARGETS), 5, "the first deployment")
        issued = len(pebble_issued(world))
        cert_pem, key_pem, foreign = foreign_certificate(["img.example.com"])
        world.sandbox.replace_cdn_binding("img.example.com", cert_pem=cert_pem, key_pem=key_pem,
                                          cert_name="someone-else")
        assert world.served_serial("img.example.com") == foreign

        wait_for(lambda: world.served_serial("img.example.com") == ours, 30, "our certificate back on img")
        wait_log(log, r"img\.example\.com.*changed by someone else", 5)
        assert len(pebble_issued(world)) == issued, "drift must not cause a reissue"
        assert World.chain_serial(state, "www") == ours

        code, took = _stop(proc)
    assert code == 0 and took < 10


def test_idle_daemon_stops_on_sigterm_and_sigint(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()])  # 12 h interval: idle after the first cycle
    log = tmp_path / "daemon.log"
    with running_daemon(world, config, log) as proc:
        wait_log(log, r"cycle done", 30)
        code, took = _stop(proc)
    assert code == 0 and took < 10
    assert "stopped" in log_text(log)

    log2 = tmp_path / "daemon2.log"
    with running_daemon(world, config, log2) as proc:
        wait_log(log2, r"cycle done", 30)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - start < 10
