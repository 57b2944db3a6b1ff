"""The daemon and two ``--run-now`` started together on one state dir.

The state lock must serialise them: one issuance per certificate (one archive version, one
Pebble order, one bind per target), and the only complaint a loser may make is the clear
"another alicertd process is working on …" message. The lock timeout is 1 s, shorter than a
cycle that issues (the nameservers lag 1 s), so that losing the race is all but certain and
the loser's message gets checked.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

from tests.reliability.helpers import (
    STATIC,
    WWW,
    assert_apigateway_serves,
    assert_no_traceback,
    assert_serves,
    assert_state_parses,
    pebble_orders,
)
from tests.support.world import World, wait_for

LOCK_MESSAGE = re.compile(r"another alicertd process is working on \S+ \(waited 1s for its lock\)")


def _complaints(text: str) -> list[str]:
    """Lines at WARNING or worse, and ``alicertd:`` lines (what a user would read as trouble)."""
    return [line for line in text.splitlines()
            if re.search(r" (WARNING|ERROR|CRITICAL) ", line) or line.startswith("alicertd:")]


def test_daemon_and_two_run_nows_share_one_state_dir(slow_dns_world, tmp_path, transcripts):
    world = slow_dns_world
    config = world.write_config(tmp_path, [WWW, STATIC], extra={"runtime": {"lock_timeout": "1s"}})
    state = tmp_path / "state"

    daemon_log = tmp_path / "daemon.log"
    daemon = transcripts.spawn(world, config, log_path=daemon_log)
    runs = [transcripts.spawn(world, config, "--run-now", log_path=tmp_path / f"run-now-{i}.log")
            for i in range(2)]
    try:
        codes = [p.wait(timeout=120) for p in runs]
        # The daemon's first cycle either ran (and said so) or lost the lock (and said so).
        wait_for(lambda: re.search(r"cycle done|another alicertd process", daemon_log.read_text()),
                 timeout=60, what="the daemon's first cycle to finish or give way")
    finally:
        daemon_rc = World.terminate(daemon, signal.SIGTERM)
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert daemon_rc == 0, daemon_log.read_text()[-3000:]

    texts = {"daemon": daemon_log.read_text()} | {
        f"run-now {i}": (tmp_path / f"run-now-{i}.log").read_text() for i in range(2)}
    for who, text in texts.items():
        assert_no_traceback(text)
        for line in _complaints(text):
            assert LOCK_MESSAGE.search(line), f"{who}: unexpected complaint: {line}"
    for i, rc in enumerate(codes):
        text = texts[f"run-now {i}"]
        if rc != 0:
            # Contract: the lock could not be had -> exit 1, one line, and nothing else done.
            assert rc == 1 and LOCK_MESSAGE.search(text), f"run-now {i}: exit {rc}\n{text[-3000:]}"
            assert "cycle" not in text, f"run-now {i} both lost the lock and ran a cycle"
    lost = sum(bool(LOCK_MESSAGE.search(t)) for t in texts.values())
    assert lost >= 1, "no process had to wait: the race did not happen"

    # Exactly one issuance per certificate, one bind per target.
    for name in ("www", "static"):
        versions = [p for p in (state / "archive" / name).iterdir() if p.is_dir()]
        assert len(versions) == 1, f"{name} was issued {len(versions)} times"
    assert pebble_orders(world) == 2
    sets = {d: len([c for c in world.sandbox.calls(action="SetCdnDomainSSLCertificate")
                    if c["params"].get("DomainName") == d and c["status"] == 200])
            for d in ("cdn.example.com", "img.example.com", ".static.example.com")}  # the API's wildcard form
    assert sets == dict.fromkeys(sets, 1), f"binds per CDN domain: {sets}"
    assert len(world.sandbox.calls(action="SetDomainCertificate")) == 1
    assert_serves(world, state, "www", ["cdn.example.com", "img.example.com"])
    assert_serves(world, state, "static", ["*.static.example.com"])
    assert_apigateway_serves(world, state, "www")
    assert world.txt_records() == []
    assert_state_parses(state)

    # Whoever lost, a later run finds nothing to do.
    since = time.time()
    proc: subprocess.CompletedProcess = transcripts.cli(world, config, "--run-now")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [c for c in world.sandbox.calls(since=since) if c["action"].startswith(("Add", "Set"))]


def test_a_waiting_process_leaves_the_lock_holders_temp_files_alone(world, tmp_path, transcripts):
    """A process waiting for the lock must not sweep temp files: they belong to the holder's
    writes in progress (found by the test above: the holder's account key write failed with
    "No such file or directory" when a waiting run-now swept its temp file)."""
    import fcntl
    import os

    config = world.write_config(tmp_path, [STATIC], extra={"runtime": {"lock_timeout": "1s"}})
    state = tmp_path / "state"
    (state / "account").mkdir(parents=True, mode=0o700)
    in_progress = state / "account" / ".tmp-key.pem.0123abcd"
    in_progress.write_text("half a key\n")
    fd = os.open(state / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # we are the "other process" writing
        waiting = transcripts.cli(world, config, "--run-now")
        assert waiting.returncode == 1 and LOCK_MESSAGE.search(waiting.stderr), waiting.stderr
        assert in_progress.exists(), "a process that did not hold the lock swept the holder's temp file"
    finally:
        os.close(fd)
    # With the lock free, a crash's leftover is swept as before.
    proc = transcripts.cli(world, config, "--run-now")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not in_progress.exists()
    assert_state_parses(state)
