"""``--run-now`` beside a running daemon on the same state dir: the state lock serializes them,
so each certificate is issued once. The second process either waits for the lock or gives up
with a clear message; it never issues alongside the daemon."""

from __future__ import annotations

import re

from tests.e2e.helpers import (
    WWW_TARGETS,
    assert_serves,
    call_count,
    net_cert,
    pebble_issued,
    pebble_orders,
    running_daemon,
    wait_log,
    www_cert,
)
from tests.support.world import World, dump_toml, wait_for


def _slow_dns_config(world, tmp_path, delay: float = 3):
    """A fresh config whose first cycle spends ``delay`` s waiting for DNS, holding the lock:
    once the challenge records exist, the daemon is mid-cycle."""
    world.sandbox.set_dns_delay(delay)
    return world.write_config(tmp_path, [www_cert(), net_cert()])


def test_run_now_waits_for_the_daemon_and_issues_nothing_more(world, tmp_path):
    config = _slow_dns_config(world, tmp_path)
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    with running_daemon(world, config, log):
        wait_for(lambda: call_count(world, "AddDomainRecord") >= 3, 20, "the daemon's challenge records")
        assert World.chain_serial(state, "www") is None

        proc = world.cli(config, "--run-now")  # lock_timeout 30 s: waits for the daemon's cycle

        assert proc.returncode == 0, proc.stdout + proc.stderr
        wait_log(log, r"cycle done", 10)
    assert pebble_orders(world) == 2, "one order per certificate"
    assert len(pebble_issued(world)) == 2
    assert call_count(world, "AddDomainRecord") == 3  # www: apex + wildcard values, net: one
    assert "issued" not in proc.stdout.split("certificate  provider")[0], "the second process issued"
    assert_serves(world, state, "www", WWW_TARGETS)
    assert world.txt_records() == []


def test_run_now_with_a_short_lock_timeout_gives_up_clearly(world, tmp_path):
    config = _slow_dns_config(world, tmp_path)
    state = tmp_path / "state"
    impatient = tmp_path / "impatient.toml"
    impatient.write_text(dump_toml(world.config_data(state, [www_cert(), net_cert()],
                                                      extra={"runtime": {"lock_timeout": "1s"}})))
    log = tmp_path / "daemon.log"
    with running_daemon(world, config, log):
        wait_for(lambda: call_count(world, "AddDomainRecord") >= 3, 20, "the daemon's challenge records")
        orders = pebble_orders(world)

        proc = world.cli(impatient, "--run-now")

        assert proc.returncode == 1
        assert re.search(r"another alicertd process", proc.stderr), proc.stderr
        assert "Traceback" not in proc.stderr
        assert pebble_orders(world) == orders
        wait_log(log, r"cycle done", 15)
    assert pebble_orders(world) == 2 and len(pebble_issued(world)) == 2
    assert call_count(world, "AddDomainRecord") == 3
    assert world.txt_records() == []
