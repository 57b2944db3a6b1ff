"""Done-when of #12 item 1, through the real CLI and a real crash: alicertd is SIGKILLed the
moment Pebble has finalized a renewal (the CA has issued and marked the old certificate as
replaced), before the answer reaches it. The next ``--run-now`` completes the renewal.

The kill needs to know when finalize happened, so the ACME traffic goes through a loopback
proxy in front of Pebble (tests/support/acme_proxy.py) that forwards every request unchanged.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tests.e2e.helpers import pebble_issued
from tests.support.acme_proxy import PebbleProxy
from tests.support.world import World, wait_for

pytestmark = pytest.mark.pebble


class KillingProxy(PebbleProxy):
    """After forwarding a finalize while ``victim`` is set, SIGKILLs it and drops the
    connection unanswered."""

    def __init__(self, pebble):
        super().__init__(pebble)
        self.victim: int | None = None
        self.killed = threading.Event()

    def drop(self, method, path, response):
        victim = self.victim
        if method == "POST" and "/finalize-order/" in path and victim and victim > 1:
            os.kill(victim, signal.SIGKILL)
            self.victim = None
            self.killed.set()
            return True
        return False


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
