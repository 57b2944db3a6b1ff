"""``python -m sandbox serve ...`` (and ``alicertd sandbox ...``, which forwards to ``main``).

One command starts everything, prints one line per API call, writes a ready file with the
actual ports once every listener is up (so scripts wait for the file, not for a sleep), and
stops cleanly on SIGTERM/SIGINT, removing the ready file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .app import Sandbox
from .fixture import FixtureError, build_world, read_fixture


def _parser(prog: str = "python -m sandbox") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog,
                                description="Local Alibaba Cloud sandbox for alicertd.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the sandbox until SIGTERM/SIGINT")
    s.add_argument("--fixture", help="TOML or JSON fixture (default: the bundled demo)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--api-port", type=int, default=18080, help="RPC + metadata + admin (0 = any)")
    s.add_argument("--dns-port", type=int, default=15353, help="ns1, UDP and TCP (0 = any)")
    s.add_argument("--dns2-port", type=int, default=0, help="ns2 (0 = any free port)")
    s.add_argument("--no-dns2", action="store_true", help="run only one nameserver")
    s.add_argument("--edge-port", type=int, default=18443, help="TLS edge (0 = any)")
    s.add_argument("--dns-delay", type=float, default=None, help="propagation delay, seconds")
    s.add_argument("--dns2-extra-delay", type=float, default=None, help="ns2 lags this much more")
    s.add_argument("--cdn-rollout-seconds", type=float, default=None)
    s.add_argument("--ready-file", help="write the actual ports here as JSON once listening")
    s.add_argument("--quiet", action="store_true", help="do not log calls to stdout")
    c = sub.add_parser("check-fixture", help="validate a fixture and exit")
    c.add_argument("path")
    return p


def _call_line(entry: dict) -> str:
    ts = dt.datetime.fromtimestamp(entry["time"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    status = "DROP" if entry.get("dropped") else entry.get("status")
    fault = f" fault={entry['fault']}" if entry.get("fault") else ""
    return (f"{ts[:-4]}Z {status} {entry['product']} {entry['action'] or '-'} "
            f"ak={entry.get('access_key_id') or '-'} code={entry.get('code') or '-'} "
            f"{entry.get('duration_ms', 0)}ms{fault}")


def _write_ready(path: str, info: dict) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(dict(info, pid=os.getpid()), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def serve(args) -> int:
    out_lock = threading.Lock()

    def log_call(entry: dict) -> None:
        with out_lock:
            print(_call_line(entry), flush=True)

    try:
        sb = Sandbox(args.fixture, host=args.host, api_port=args.api_port, dns_port=args.dns_port,
                     dns2_port=None if args.no_dns2 else args.dns2_port, edge_port=args.edge_port,
                     dns_delay=args.dns_delay, dns2_extra_delay=args.dns2_extra_delay,
                     cdn_rollout_seconds=args.cdn_rollout_seconds,
                     on_call=None if args.quiet else log_call)
    except (FixtureError, OSError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    try:
        sb.start()
    except OSError as exc:
        print(f"sandbox: cannot listen: {exc}", file=sys.stderr)
        return 2
    try:
        info = sb.info()
        if args.ready_file:
            _write_ready(args.ready_file, info)
        ns2 = f" ns2 {args.host}:{info['dns2_port']}" if info["dns2_port"] else ""
        with out_lock:
            print(f"sandbox ready: api {info['api_url']} dns {args.host}:{info['dns_port']}{ns2} "
                  f"edge {args.host}:{info['edge_port']} metadata {info['metadata_url']}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
        if args.ready_file:
            with contextlib.suppress(OSError):
                os.unlink(args.ready_file)
        with out_lock:
            print("sandbox stopped", flush=True)
    return 0


def check_fixture(args) -> int:
    try:
        world = build_world(read_fixture(args.path))
    except (FixtureError, OSError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"ok: {len(world.zones)} zones, {len(world.cdn)} CDN domains, "
          f"{len(world.groups)} API groups, {len(world.access_keys)} access keys, "
          f"{len(world.roles)} roles")
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m sandbox") -> int:
    args = _parser(prog).parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return check_fixture(args)
