"""ACME client throughput against a local Pebble: seconds and round trips per certificate.

    .venv/bin/python bench/acme_throughput.py [--count 20] [--concurrency 8] [--nonce-reject 0]

Issues ``--count`` single-name certificates (distinct names, EC P-256 keys) through
``daemon.acme.issue_certificate`` alone, against Pebble (PEBBLE_VA_NOSLEEP=1,
PEBBLE_AUTHZREUSE=0) with pebble-challtestsrv as the DNS, first one at a time, then with
``--concurrency`` in flight.

Concurrency model: one AcmeClient per worker thread (a thread-local), all sharing one account
key and account URL. An AcmeClient is not thread-safe (its requests.Session is not); one per
thread costs one directory GET and one HEAD newNonce per thread, counted apart as setup.

Round trips are HTTP requests as counted by the transport (every attempt, retries included).
The RFC 8555 floor for one name with a nonce in hand is 7 to 9: newOrder, authorization,
challenge, authorization poll, (order poll), finalize, (order poll while processing),
certificate download, plus newNonce and directory once per client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon import keys  # noqa: E402
from daemon.acme import AcmeClient, issue_certificate  # noqa: E402
from tests.support.pebble import ChallTestSolver, ChallTestSrv, Pebble  # noqa: E402

RFC_MINIMUM = 9  # newNonce, newOrder, authz, challenge, authz poll, order poll, finalize, order poll, cert


def run(ca: Pebble, dns: ChallTestSrv, *, count: int, concurrency: int, account_key, account_url: str,
        label: str) -> dict[str, float]:
    local = threading.local()
    clients: list[AcmeClient] = []
    lock = threading.Lock()

    def client() -> AcmeClient:
        if not hasattr(local, "client"):
            c = AcmeClient(ca.directory_url, account_key, account_url=account_url, ca_bundle=ca.ca_bundle)
            _ = c.directory  # setup: directory GET, counted apart from issuance
            with lock:
                clients.append(c)
            local.client = c
            local.setup = c.round_trips
        return local.client

    solver = ChallTestSolver(dns)  # stateless apart from its call log; safe to share
    per_cert: list[float] = []
    trips: list[int] = []

    def one(i: int) -> None:
        c = client()
        name = f"c{i}-{uuid.uuid4().hex[:8]}.bench.example.com"
        before, start = c.round_trips, time.perf_counter()
        issued = issue_certificate(c, [name], keys.generate_private_key("ec256"), solver, deadline_seconds=120)
        elapsed = time.perf_counter() - start
        assert issued.cert_info.sans == (name,)
        with lock:
            per_cert.append(elapsed)
            trips.append(c.round_trips - before)

    start = time.perf_counter()
    if concurrency == 1:
        for i in range(count):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for future in [pool.submit(one, i) for i in range(count)]:
                future.result()
    wall = time.perf_counter() - start
    total_trips = sum(c.round_trips for c in clients)
    bad_nonces = sum(c.transport.bad_nonce_retries for c in clients)
    for c in clients:
        c.close()
    result = {
        "wall_s": wall,
        "s_per_cert_wall": wall / count,
        "latency_median_s": statistics.median(per_cert),
        "latency_max_s": max(per_cert),
        "certs_per_s": count / wall,
        "trips_per_cert": sum(trips) / count,
        "trips_min": min(trips),
        "trips_max": max(trips),
        "setup_trips": total_trips - sum(trips),
        "bad_nonce_retries": bad_nonces,
        "clients": len(clients),
    }
    print(f"{label:<13} {count} certs in {wall:6.2f}s  {result['s_per_cert_wall']*1000:7.1f} ms/cert (wall)  "
          f"latency median {result['latency_median_s']*1000:6.1f} ms max {result['latency_max_s']*1000:6.1f} ms  "
          f"{result['certs_per_s']:5.1f} certs/s")
    print(f"{'':<13} round trips/cert {result['trips_per_cert']:.2f} (min {result['trips_min']}, max "
          f"{result['trips_max']}; RFC floor ~{RFC_MINIMUM})  + setup {result['setup_trips']} for "
          f"{result['clients']} client(s)  badNonce retries {bad_nonces}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--nonce-reject", type=int, default=0,
                        help="PEBBLE_WFE_NONCEREJECT percent (Pebble's own default is 5)")
    args = parser.parse_args(argv)

    env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0", "PEBBLE_WFE_NONCEREJECT": str(args.nonce_reject)}
    with ChallTestSrv() as dns, Pebble(dns_server=dns.dns_addr, env=env) as ca:
        account_key = keys.generate_private_key("ec256")
        with AcmeClient(ca.directory_url, account_key, ca_bundle=ca.ca_bundle) as registrar:
            account_url = registrar.new_account([], tos_agreed=True).url
        print(f"Pebble {ca.directory_url}  NOSLEEP=1 AUTHZREUSE=0 NONCEREJECT={args.nonce_reject}%")
        run(ca, dns, count=args.count, concurrency=1, account_key=account_key, account_url=account_url,
            label="sequential")
        run(ca, dns, count=args.count, concurrency=args.concurrency, account_key=account_key,
            account_url=account_url, label=f"{args.concurrency} in flight")
    return 0


if __name__ == "__main__":
    sys.exit(main())
