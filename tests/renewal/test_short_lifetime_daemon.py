"""Done-when of #12: against Pebble 2.10 with a profile of one minute's lifetime and
``interval = "12h"``, the daemon keeps a deployed certificate valid through three lifetimes
in a row, with no reissue loop. It can only do so by waking at each certificate's own renewal
time: the 12-hour interval alone would let every one of them expire."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from cryptography import x509

from tests.e2e.helpers import cert_status, pebble_issued, running_daemon
from tests.support.pebble import DEFAULT_PROFILES, ensure_pebble
from tests.support.world import World, wait_for

pytestmark = [pytest.mark.pebble, pytest.mark.slow]

LIFETIME = 60  # seconds: Pebble's validityPeriod for the profile below
PROFILES = {**DEFAULT_PROFILES, "minute": {"description": "one-minute certificates", "validityPeriod": LIFETIME}}


def _not_after(path) -> datetime | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
    except (OSError, ValueError):
        return None


def test_the_daemon_keeps_a_one_minute_certificate_valid_for_three_lifetimes(tmp_path):
    ensure_pebble()
    with World(pebble_config={"profiles": PROFILES}) as world:
        deployed = tmp_path / "deployed"
        cert = world.cert("www", ["example.com"], deploy=[{"provider": "local", "directory": str(deployed)}])
        config = world.write_config(tmp_path, [cert], extra={"acme": {"profile": "minute"},
                                                             "schedule": {"interval": "12h", "jitter": "10m"}})
        log = tmp_path / "daemon.log"
        gaps: list[str] = []
        stop = threading.Event()

        def watch() -> None:
            # Twice a second: is what the target holds valid right now?
            while not stop.wait(0.5):
                not_after = _not_after(deployed / "fullchain.pem")
                now = datetime.now(UTC)
                if not_after is None or not_after <= now:
                    gaps.append(f"{now.isoformat()}: deployed certificate expired at {not_after}")

        with running_daemon(world, config, log) as proc:
            wait_for(lambda: _not_after(deployed / "fullchain.pem"), 30, "the first deployment")
            started = time.monotonic()
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                wait_for(lambda: time.monotonic() - started >= 3 * LIFETIME, 3 * LIFETIME + 30,
                         "three lifetimes", step=1.0)
            finally:
                stop.set()
                watcher.join(5)
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            status = cert_status(world, config, "www")

        issued = pebble_issued(world)
        assert gaps == [], "\n".join(gaps[:5]) + "\n" + log.read_text(errors="replace")[-3000:]
        # At least one renewal per lifetime; at most one per third of a lifetime (the earliest
        # a renewal may come): more would be a reissue loop.
        elapsed = time.monotonic() - started
        assert 3 <= len(issued) <= elapsed / (LIFETIME / 3) + 2, issued
        assert len(set(issued)) == len(issued)
        assert status["next_renewal"] and status["next_renewal_reason"], status
