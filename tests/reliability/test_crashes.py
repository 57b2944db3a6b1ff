"""SIGKILL at random moments, then one clean run: nothing a crash leaves behind may hurt.

15 ``--run-now`` processes are each killed after a seeded random delay (logged). All but the
first also ``--force`` a random non-empty set of certificates, so that there is issuance work
to interrupt in every run, not only in the first; the nameservers lag 1 s behind the API, which
keeps challenge records alive (and exposed to a kill) for a while in every issuance. Then one run without a kill must succeed and leave the world
as if nothing had happened: the same ACME account as the one the first run created, no
challenge record, no CDN upload-name collision, a state dir whose every file is whole.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

from tests.reliability.helpers import (
    APP,
    STATIC,
    WWW,
    assert_apigateway_serves,
    assert_no_traceback,
    assert_serves,
    assert_state_parses,
    sandbox_codes,
)

SEED = int(os.environ.get("RELIABILITY_SEED", "8555"))  # another seed: explore
KILLS = 15
# alicertd needs ~1 s to start (imports) and ~3 s for a cycle that issues these certificates:
# nearly every kill lands mid-run; a fast machine may finish a few runs first (asserted ≥ 10).
DELAY = (0.7, 3.4)


def _account_url(state) -> str | None:
    try:
        return json.loads((state / "account" / "account.json").read_text()).get("url")
    except (FileNotFoundError, ValueError):
        return None


def test_sigkill_at_random_moments_then_one_clean_run(slow_dns_world, tmp_path, transcripts, record_property):
    world = slow_dns_world
    config = world.write_config(tmp_path, [WWW, STATIC, APP])
    state = tmp_path / "state"
    rng = random.Random(SEED)
    names = ["www", "static", "app"]
    first_url: str | None = None
    urls: set[str] = set()
    killed = 0
    log: list[str] = []

    for i in range(KILLS):
        delay = rng.uniform(*DELAY)
        force = rng.sample(names, rng.randint(1, len(names))) if i else []
        args = ["--run-now", *(arg for name in force for arg in ("--force", name))]
        proc = transcripts.spawn(world, config, *args, log_path=tmp_path / f"kill-{i:02d}.log")
        try:
            rc = proc.wait(timeout=delay)  # finished before its moment came
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait(timeout=10)
        killed += rc == -signal.SIGKILL
        transcripts.harvest(state)  # a later run may prune this run's keys
        last = (tmp_path / f"kill-{i:02d}.log").read_text(errors="replace").strip().splitlines()[-1:]
        line = (f"run {i:02d}: {' '.join(args)}: delay {delay:.2f}s -> "
                f"{'killed' if rc == -9 else f'exit {rc}'} (last line: {last[0][:110] if last else '-'})")
        log.append(line)
        print(line)
        url = _account_url(state)
        if url:
            first_url = first_url or url
            urls.add(url)
    record_property("kills", "; ".join(log))
    assert killed >= 10, f"only {killed} of {KILLS} runs were killed mid-way: {log}"

    final = transcripts.cli(world, config, "--run-now")

    assert_no_traceback(final)
    assert final.returncode == 0, f"{final.stdout[-4000:]}\n{final.stderr[-3000:]}"
    assert first_url is not None or _account_url(state), "no account was ever saved"
    assert _account_url(state) == (first_url or _account_url(state))
    assert urls <= {first_url}, f"the account changed between crashes: {urls}"
    assert world.txt_records() == [], "a challenge record was left behind"
    assert not list((state / "journal" / "dns").glob("*.json")), "the DNS journal is not empty"
    codes = sandbox_codes(world)
    assert "CertName.AlreadyExists" not in codes, "a CDN upload name was reused for another certificate"
    assert_serves(world, state, "www", ["cdn.example.com", "img.example.com"])
    assert_serves(world, state, "static", ["*.static.example.com"])
    assert_apigateway_serves(world, state, "www")
    assert (state / "certificates" / "app" / "fullchain.pem").is_file()
    assert_state_parses(state)
    # Leftovers were handled by the final run; the one after it has nothing to do.
    since = time.time()
    idle = transcripts.cli(world, config, "--run-now")
    assert idle.returncode == 0, idle.stdout + idle.stderr
    writes = [c["action"] for c in world.sandbox.calls(since=since)
              if c["action"].startswith(("Add", "Delete", "Set", "Batch"))]
    assert writes == [], f"an idle run after recovery still changed things: {writes}"
