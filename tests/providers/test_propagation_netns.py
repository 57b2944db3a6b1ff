"""Issue #10 item 4 for real: in a network namespace this test creates (loopback only, no IPv6
route, so no traffic leaves the machine), a nameserver name with an IPv4 and an IPv6 address is
checked on IPv4 alone; a name with only unreachable addresses is an error; a reachable address
that does not answer is still waited for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _netns_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _netns_available(), reason="needs unshare --net (root or user namespaces)")
def test_ipv6_addresses_unreachable_from_an_ipv4_only_host_are_skipped():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["unshare", "--net", sys.executable,
                           str(ROOT / "tests" / "providers" / "netns_propagation.py")],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["v6_status"] == "unreachable: ENETUNREACH"
    assert out["mixed"] == "ok" and out["mixed_seconds"] < 5
    assert "no address of nameserver ns2.test is reachable" in out["v6_only_name"]
    assert "127.0.0.1:9" in out["silent"] and "timeout" in out["silent"]
    assert "not checking nameserver ns1.test ([2001:db8::53]" in proc.stderr
