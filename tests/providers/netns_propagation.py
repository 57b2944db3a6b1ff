"""Run inside a fresh network namespace (see test_propagation_netns.py): loopback only, no IPv6
route. Checks TXT propagation against the sandbox's DNS on 127.0.0.1 with nameserver names that
also publish an IPv6 address, which this namespace cannot reach. Prints one JSON object."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

from providers.base import ProviderError
from providers.propagation import Nameserver, query_txt, wait_for_txt
from sandbox import Sandbox, demo_fixture_path

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
log = logging.getLogger("netns")
out: dict = {}
with Sandbox(fixture=demo_fixture_path()) as sb:
    fqdn = "_acme-challenge.netns.example.com"
    sb.add_record("example.com", "_acme-challenge.netns", "TXT", "v1", 600)
    v4 = Nameserver("127.0.0.1", sb.dns_port, "ns1.test")
    v6 = Nameserver("2001:db8::53", sb.dns_port, "ns1.test")
    out["v6_status"] = query_txt(fqdn, v6, 1.0)[0]
    t0 = time.monotonic()
    try:
        wait_for_txt({fqdn: {"v1"}}, {fqdn: [v4, v6]}, time.monotonic() + 10, log=log)
        out["mixed"] = "ok"
    except ProviderError as exc:
        out["mixed"] = str(exc)
    out["mixed_seconds"] = time.monotonic() - t0
    only_v6 = Nameserver("2001:db8::54", sb.dns_port, "ns2.test")
    try:
        wait_for_txt({fqdn: {"v1"}}, {fqdn: [v4, only_v6]}, time.monotonic() + 10, log=log)
        out["v6_only_name"] = "ok"
    except ProviderError as exc:
        out["v6_only_name"] = str(exc)
    silent = Nameserver("127.0.0.1", 9, "ns1.test")  # reachable, nobody answers: still required
    try:
        wait_for_txt({fqdn: {"v1"}}, {fqdn: [v4, v6, silent]}, time.monotonic() + 1.5, log=log)
        out["silent"] = "ok"
    except ProviderError as exc:
        out["silent"] = str(exc)
print(json.dumps(out))
