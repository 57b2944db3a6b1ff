"""kill -9 of ``--run-now`` at awkward moments (right after a challenge record was created,
right after a certificate was bound, at seeded random instants); then one more ``--run-now``
converges: same ACME account, no challenge record left, every target serving the final chain,
every state file intact."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import time

import pytest

from tests.e2e.helpers import (
    WWW_TARGETS,
    assert_serves,
    assert_state_parses,
    log_text,
    net_cert,
    pebble_accounts,
    pebble_log,
    run_ok,
    status_json,
    www_cert,
)
from tests.support.world import World, wait_for

SEED = 20250611


def _kill_when(world: World, config, log_path, args, *, action: str | None = None,
               pebble: str | None = None, delay: float | None = None) -> int | None:
    """Run ``--run-now`` ARGS and SIGKILL it right after the sandbox logs ACTION, right after
    Pebble logs the text PEBBLE, or after DELAY seconds. Returns the exit code, or None when it
    was killed."""
    since = time.time()
    marks = pebble_log(world).count(pebble) if pebble else 0
    proc = world.spawn(config, "--run-now", *args, log_path=log_path)
    try:
        if action is not None:
            wait_for(lambda: proc.poll() is not None or world.sandbox.calls(since=since, action=action),
                     60, f"{action} (or the end of the run)", step=0.005)
        elif pebble is not None:
            wait_for(lambda: proc.poll() is not None or pebble_log(world).count(pebble) > marks,
                     60, f"{pebble!r} in Pebble's log (or the end of the run)", step=0.005)
        else:
            with contextlib.suppress(subprocess.TimeoutExpired):  # let it run DELAY seconds
                proc.wait(timeout=delay)
    finally:
        finished = proc.poll()
        proc.kill()
        proc.wait(timeout=10)
    return finished


@pytest.mark.slow
def test_kill_9_at_awkward_moments_then_one_run_converges(world, tmp_path):
    rng = random.Random(SEED)
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    state = tmp_path / "state"
    registered = world.cli(config, "account", "register", "--json")
    assert registered.returncode == 0, registered.stderr
    account_url = json.loads(registered.stdout)["url"]

    moments = [
        ((), {"action": "AddDomainRecord"}),              # a challenge record exists, the order is pending
        ((), {"pebble": "Issued certificate serial"}),    # the CA issued, we have not stored it yet
        ((), {"action": "SetCdnDomainSSLCertificate"}),   # stored and bound, not yet verified
        *[(("--force", "www"), {"delay": round(rng.uniform(0.1, 2.0), 2)}) for _ in range(4)],
    ]
    killed = []
    for i, (args, when) in enumerate(moments):
        code = _kill_when(world, config, tmp_path / f"run{i}.log", args, **when)
        killed.append(code is None)
        assert code in (None, 0), f"run {i} ({when}) exited {code}:\n{log_text(tmp_path / f'run{i}.log')}"
        # Whatever the crash left, `status` still reads the state dir.
        status_json(world, config)
    assert all(killed[:3]), f"the targeted kills must land mid-run: {killed}"

    proc = run_ok(world, config)

    assert json.loads((state / "account" / "account.json").read_text())["url"] == account_url
    assert pebble_accounts(world) == 1, "a crash must never lead to a second ACME account"
    assert world.txt_records() == [], "challenge records outlived the crashes"
    assert not any((state / "journal" / "dns").glob("*.json")), "the DNS journal still has entries"
    assert_serves(world, state, "www", WWW_TARGETS)
    assert World.chain_serial(state, "net")
    assert_state_parses(state)
    doc = status_json(world, config)
    for cert in doc["certificates"]:
        assert cert["last_error"] is None, cert
        assert all(t["state"] == "ok" and t["serial"] == cert["serial"] for t in cert["targets"]), cert
    assert "cycle succeeded" in proc.stdout
