"""Steady state for the load balancer targets: 50 ALB, 50 NLB and 50 CLB listeners, nothing due.

    .venv/bin/python bench/steady_state_lb.py [--quick] [--reps N]

Setup (reported, not the benchmark): one certificate per listener kind, bound and verified on
every listener through the providers against the sandbox (ALB: 25 default + 25 SNI targets;
CLB: 25 listener + 25 domain-extension targets over two regions), listener changes settling at
once (``configuring_seconds = 0``) so the setup stays short.

Measured: what a daemon cycle with nothing due costs per kind: ``read_bindings`` for all 50
targets through a fresh provider (as each run builds one), with the API calls by action from
the access layer's counter, and the wall time. No writes may happen: the script fails if one does.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.config import (  # noqa: E402
    AcmeConfig,
    AliyunConfig,
    Config,
    DnsConfig,
    MetricsConfig,
    RuntimeConfig,
    ScheduleConfig,
    VerifyConfig,
)
from providers.alb import AlbProvider  # noqa: E402
from providers.base import ConfigDefaults, ConfigErrors, ProviderContext  # noqa: E402
from providers.clb import ClbProvider  # noqa: E402
from providers.nlb import NlbProvider  # noqa: E402
from sandbox import Sandbox  # noqa: E402
from tests.providers.certs import make_bundle  # noqa: E402

AK, SECRET = "LTAIbenchlb000000001", "bench-lb-secret-not-a-real-key"
N = 50
WRITES = ("Update", "Associate", "Dissociate", "Set", "Upload", "Delete")


def fixture() -> dict:
    return {
        "access_key": [{"id": AK, "secret": SECRET, "permissions": ["*"]}],
        "alb_listener": [{"id": f"lsn-alb{i:03d}", "region": "cn-shanghai", "configuring_seconds": 0}
                         for i in range(N)],
        "nlb_listener": [{"id": f"lsn-nlb{i:03d}@443", "region": "cn-beijing", "configuring_seconds": 0}
                         for i in range(N)],
        "clb_listener": [{"load_balancer_id": f"lb-clb{i:03d}", "port": 443,
                          "region": "cn-hangzhou" if i % 2 else "cn-shenzhen",
                          "domains": [f"sni{i:03d}.clb.example.com"]} for i in range(N)],
    }


def ctx_for(sb: Sandbox, state_dir: Path) -> ProviderContext:
    api = sb.api_url
    config = Config(
        path=state_dir / "config.toml", state_dir=state_dir,
        acme=AcmeConfig(directory="https://acme.invalid/directory", directory_name="bench"),
        aliyun=AliyunConfig(access_key_id=AK, access_key_secret=SECRET, region="cn-hangzhou",
                            endpoints={"cas": api, "alb": api, "nlb": api, "slb": api}),
        dns=DnsConfig(), verify=VerifyConfig(tls=False, timeout=60.0), schedule=ScheduleConfig(),
        metrics=MetricsConfig(), runtime=RuntimeConfig(), certificates=())
    return ProviderContext(config=config, journal=None,  # type: ignore[arg-type]
                           log=logging.getLogger("bench"), stop=threading.Event())


def targets(cls, blocks):
    out = []
    for raw in blocks:
        errors = ConfigErrors()
        settings = cls.parse_config(raw, "certificate[0].deploy[0]", errors, ConfigDefaults("cn-hangzhou"))
        assert settings is not None, errors.messages
        out += cls.expand(settings)
    return out


def kinds():
    alb = [{"listener_id": f"lsn-alb{i:03d}", "region": "cn-shanghai", "domain": f"a{i:03d}.alb.example.com",
            "slot": "sni" if i % 2 else "default"} for i in range(N)]
    nlb = [{"listener_id": f"lsn-nlb{i:03d}@443", "region": "cn-beijing", "domain": f"n{i:03d}.nlb.example.com"}
           for i in range(N)]
    clb = [{"load_balancer_id": f"lb-clb{i:03d}", "listener_port": 443,
            "region": "cn-hangzhou" if i % 2 else "cn-shenzhen",
            "domain": f"sni{i:03d}.clb.example.com" if i % 2 else f"c{i:03d}.clb.example.com",
            "slot": "sni" if i % 2 else "default"} for i in range(N)]
    return [("alb", AlbProvider, alb, ["*.alb.example.com"]), ("nlb", NlbProvider, nlb, ["*.nlb.example.com"]),
            ("clb", ClbProvider, clb, ["*.clb.example.com"])]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="two repetitions")
    args = parser.parse_args()
    if args.quick:
        args.reps = 2
    with tempfile.TemporaryDirectory() as tmp, Sandbox(fixture()) as sb:
        ctx = ctx_for(sb, Path(tmp))
        print(f"# steady state, {N} listeners per load balancer kind, nothing due")
        print("| kind | targets | setup (bind+verify all) | calls per cycle | by action | wall per cycle (median) |")
        print("|---|---|---|---|---|---|")
        for name, cls, blocks, domains in kinds():
            bundle = make_bundle(name, domains)
            ctx.bundles[name] = bundle
            ts = targets(cls, blocks)
            started = time.monotonic()
            provider = cls(ctx)
            for t in ts:
                provider.bind(t, bundle)
            for t in ts:
                provider.verify(t, bundle, time.monotonic() + 60)
            setup = time.monotonic() - started
            walls, calls = [], Counter()
            for _ in range(args.reps):
                fresh = cls(ctx)
                fresh.api.calls.clear()
                t0 = time.monotonic()
                bindings = fresh.read_bindings(ts)
                walls.append(time.monotonic() - t0)
                assert all(b.serves(bundle) for b in bindings.values()), name
                calls = Counter(fresh.api.calls)
                wrote = [a for a in calls if a.split(":", 1)[1].startswith(WRITES)]
                assert not wrote, f"{name}: a steady-state read wrote: {wrote}"
            by = ", ".join(f"{a.split(':', 1)[1]} {n}" for a, n in sorted(calls.items()))
            print(f"| {name} | {len(ts)} | {setup:.2f} s | {sum(calls.values())} | {by} | "
                  f"{statistics.median(walls) * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
