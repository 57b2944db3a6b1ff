"""Footprint: the daemon idle after its first cycle, and ``--run-now`` with nothing due.

    .venv/bin/python bench/footprint.py [--quick] [--idle 60] [--reps N]

1. ``alicertd`` (daemon mode, ``schedule.interval = 12h``, no jitter) with one certificate bound
   to one CDN domain, fresh state: its first cycle issues and deploys. At the ``cycle done`` line,
   and again after the idle period (60 s; 15 s with ``--quick``), read VmRSS/VmHWM from
   /proc/PID/status and utime+stime from /proc/PID/stat (RSS also sampled every second in
   between). CPU while idle = the difference. Then SIGTERM.
2. ``--run-now`` on the same state (nothing due), wall from fork to exit, N runs.
3. Where start-up goes: ``python -X importtime`` of the modules ``--run-now`` imports, and
   cProfile of one nothing-due ``--run-now`` (in-process ``daemon.cli.main``).
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAME = "fp.example.com"
RUN_NOW_MODULES = ("daemon.cli, daemon.config_load, daemon.oneshot, daemon.cycle, daemon.issuer, "
                   "daemon.reporting, providers.registry, providers.alidns, providers.cdn, providers.apigateway")


def import_profile(top: int = 12) -> tuple[float, list[list[str]], float]:
    """(total import seconds, top packages by cumulative time, RSS MB after the imports)."""
    code = (f"import {RUN_NOW_MODULES}\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(C.PYCACHE)
    out = subprocess.run([C.PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         cwd=C.ROOT, check=True, env=env)
    rss = float(out.stdout.strip()) / 1024
    self_us: dict[str, int] = {}
    total_us = 0
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not m:
            continue
        root = m.group(4).split(".")[0]
        self_us[root] = self_us.get(root, 0) + int(m.group(1))
        total_us += int(m.group(1))
    total = total_us / 1e6
    rows = [[f"`{name}`", f"{us / 1000:.0f} ms", f"{100 * us / total_us:.0f} %"] for name, us in
            sorted(self_us.items(), key=lambda kv: -kv[1])[:top]]
    return total, rows, rss


RSS_PROBES = [
    ("bare interpreter", "pass"),
    ("requests", "import requests"),
    ("cryptography (x509, ec)", "import cryptography.x509; from cryptography.hazmat.primitives.asymmetric import ec"),
    ("aliyunsdkcore + a CDN request class (vendors its own requests/urllib3)",
     "import aliyunsdkcore.client, aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest"),
    ("dnspython (message, query, resolver)", "import dns.message, dns.query, dns.resolver"),
    ("APScheduler (background scheduler)", "import apscheduler.schedulers.background"),
    ("everything the daemon imports", f"import {RUN_NOW_MODULES}, daemon.service, daemon.scheduler"),
]


def import_rss_rows() -> list[list[str]]:
    """VmRSS of a fresh interpreter after importing only one package (shared parts overlap)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(C.PYCACHE)
    rows = []
    for label, code in RSS_PROBES:
        probe = code + "\nprint([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
        out = subprocess.run([C.PYTHON, "-c", probe], capture_output=True, text=True, cwd=C.ROOT, env=env,
                             check=True)
        rows.append([label, f"{float(out.stdout.strip()) / 1024:.1f} MB"])
    return rows


def bare_python() -> float:
    walls = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([C.PYTHON, "-c", "pass"], check=True)
        walls.append(time.perf_counter() - t)
    return min(walls)


def cprofile_run_now(w, config: Path, top: int = 12) -> tuple[float, str]:
    """cProfile of one nothing-due --run-now, run in a child interpreter (imports included)."""
    out_file = C.WORK / "footprint" / "run_now.prof"
    code = (f"import cProfile, sys; sys.argv=['alicertd','--config',{str(config)!r},'--run-now'];"
            f"from daemon.cli import main as m; cProfile.run('rc=m(sys.argv[1:])', {str(out_file)!r})")
    t = time.perf_counter()
    subprocess.run([C.PYTHON, "-c", code], cwd=C.ROOT, env=C.alicertd_env(w), capture_output=True, check=True)
    wall = time.perf_counter() - t
    buf = io.StringIO()
    stats = pstats.Stats(str(out_file), stream=buf)
    stats.sort_stats("cumulative").print_stats(r"/(daemon|providers)/", top)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return wall, "\n".join(lines[start:start + top + 1])


LAZY_PROBE = """
import sys
from daemon import cli
from providers import registry
import daemon.service, daemon.scheduler  # what the daemon imports besides the config path
rc = cli.main(["--config", sys.argv[1], "check-config"])
if sys.argv[2] == "eager":  # what a registry importing every provider up front would cost
    r = registry.load_providers()
    [r[name] for name in r]
rss = int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]) / 1024
names = sorted(m for m in sys.modules if m.startswith("providers.") and m.count(".") == 1
               and m.split(".")[1] in registry.load_providers())
print(rc, round(rss, 1), ",".join(names) or "-", len(registry.load_providers()))
"""


def providers_lazy(work: Path) -> tuple[list[list[str]], dict[str, float]]:
    """RSS after ``check-config`` of a CDN-only config (plus the daemon's own imports): as
    shipped (providers imported by name, lazily) and with every registered provider imported."""
    config = work / "cdn-only.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'state_dir = "{work / "state"}"\n[acme]\ndirectory = "letsencrypt-staging"\n'
        '[aliyun]\naccess_key_id = "LTAIfootprint"\naccess_key_secret = "x"\n'
        '[[certificate]]\nname = "www"\ndomains = ["example.com"]\n'
        '[[certificate.deploy]]\nprovider = "cdn"\ndomains = ["cdn.example.com"]\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(C.PYCACHE)
    rows, figures = [], {}
    for mode, label in (("lazy", "as shipped: providers imported by name"),
                        ("eager", "every registered provider imported (an eager registry)")):
        runs = [subprocess.run([C.PYTHON, "-c", LAZY_PROBE, str(config), mode], capture_output=True,
                               text=True, cwd=C.ROOT, env=env, check=True).stdout.strip().splitlines()[-1].split()
                for _ in range(3)]
        rc, _, names, count = runs[-1]
        rss = sorted(float(r[1]) for r in runs)[1]
        figures[mode] = rss
        rows.append([label, f"{rss:.1f} MB", names.replace(",", ", "), count, rc])
    return rows, figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--idle", type=float, default=None)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--providers-only", action="store_true",
                    help="only the lazy-provider measurement (seconds, no daemon, no CA)")
    args = ap.parse_args(argv)
    if args.providers_only:
        rows, _ = providers_lazy(C.fresh_dir(C.WORK / "footprint-providers"))
        print(C.md_table(["CDN-only config, check-config + daemon imports", "VmRSS (median of 3)",
                          "provider modules imported", "providers registered", "exit"], rows))
        return 0
    idle = args.idle or (15.0 if args.quick else 60.0)
    reps = args.reps or C.reps(args.quick, full=10, quick=4)

    fx = C.fixture(cdn_domains=[NAME])
    work = C.fresh_dir(C.WORK / "footprint")
    with C.world(fx) as w:
        config = w.write_config(work / "cfg", [w.cert("fp", [NAME], cdn=[NAME])])
        d = C.Spawned(w, config)
        try:
            t_done = d.wait_line("cycle done", timeout=120)
            at_done = C.proc_status(d.pid)
            samples = [at_done["VmRSS"]]
            while time.time() < t_done + idle:
                time.sleep(min(1.0, max(0.0, t_done + idle - time.time())))
                samples.append(C.proc_status(d.pid)["VmRSS"])
            at_end = C.proc_status(d.pid)
        finally:
            rc = d.stop()
        first_cycle_line = next((line for _, line in d.lines if "cycle done" in line), "")
        print(f"daemon: at first cycle done RSS {at_done['VmRSS']:.1f} MB cpu {at_done['cpu']:.2f} s; "
              f"after {idle:g} s idle RSS {at_end['VmRSS']:.1f} MB (HWM {at_end['VmHWM']:.1f}) "
              f"cpu {at_end['cpu']:.2f} s; exit {rc}")

        walls = [C.run_cli(w, config, "--run-now").check("nothing-due run").wall for _ in range(reps + 1)][1:]
        print(f"--run-now nothing due: {C.fmt(walls)}")
        nocache = [C.run_cli(w, config, "--run-now", bytecode=False).check("nothing-due run").wall
                   for _ in range(max(2, reps // 2))]
        print(f"--run-now nothing due, no bytecode cache: {C.fmt(nocache)}")
        prof_wall, prof_text = cprofile_run_now(w, config)

    lazy_rows, lazy = providers_lazy(work / "providers")
    imports, import_rows, import_rss = import_profile()
    rss_rows = import_rss_rows()
    bare = bare_python()
    idle_cpu = at_end["cpu"] - at_done["cpu"]
    rss_max = max(samples + [at_end["VmRSS"]])
    md = [
        f"Daemon with one certificate (one CDN domain), `schedule.interval = 12h`, jitter 0. First cycle "
        f"(issue + deploy) then idle for **{idle:g} s**"
        + (" (shortened from 60 s by `--quick`)" if idle < 60 else "") + ".",
        "",
        C.md_table(["measure", "at `cycle done`", f"after {idle:g} s idle", "difference"], [
            ["VmRSS", f"{at_done['VmRSS']:.1f} MB", f"{at_end['VmRSS']:.1f} MB",
             f"{at_end['VmRSS'] - at_done['VmRSS']:+.1f} MB (max sampled {rss_max:.1f} MB)"],
            ["VmHWM (peak RSS)", f"{at_done['VmHWM']:.1f} MB", f"{at_end['VmHWM']:.1f} MB", ""],
            ["CPU (utime + stime)", f"{at_done['cpu']:.2f} s", f"{at_end['cpu']:.2f} s",
             f"**{idle_cpu:.2f} s** while idle"],
            ["threads", f"{at_done['Threads']:.0f}", f"{at_end['Threads']:.0f}", ""],
        ]),
        "",
        f"First cycle, as logged: `{first_cycle_line.strip()[-90:]}`. CPU resolution is one clock tick "
        f"(10 ms).",
        "",
        C.md_table(["`--run-now`, nothing due, one certificate", "wall (median, min–max)", "runs"],
                   [["fork → exit (bytecode cached, as installed)", f"**{C.fmt(walls)}**", len(walls)],
                    ["same, `PYTHONDONTWRITEBYTECODE=1` and no cache (this machine's default environment)",
                     C.fmt(nocache), len(nocache)]]),
        "",
        f"Where the start-up goes: a bare `python -c pass` takes {bare * 1000:.0f} ms here; importing the "
        f"modules `--run-now` needs takes **{imports:.2f} s** by `python -X importtime` (which inflates it "
        f"somewhat) and leaves RSS at {import_rss:.1f} MB before any work. By package (sum of the "
        f"modules' own import time):",
        "",
        C.md_table(["package (all its modules)", "import time (self)", "share"], import_rows),
        "",
        "Providers are imported by name, when a config names them (providers/registry.py): a "
        "CDN-only config does not pay for the SDKs of DCDN, ESA, OSS or the load balancers. VmRSS "
        "after `check-config` of a CDN-only config plus the daemon's own imports:",
        "",
        C.md_table(["CDN-only config", "VmRSS (median of 3)", "provider modules imported",
                    "providers registered", "exit"], lazy_rows),
        "",
        "Memory: VmRSS of a fresh interpreter after importing only the named package(s) (the "
        "parts they share, e.g. OpenSSL, count in each row):",
        "",
        C.md_table(["imported", "VmRSS"], rss_rows),
        "",
        f"cProfile of one nothing-due `--run-now` ({prof_wall:.2f} s under the profiler), alicertd's "
        f"own functions by cumulative time (imports they trigger included):",
        "",
        "```",
        prof_text,
        "```",
    ]
    targets = [
        C.Target("daemon RSS, idle after first cycle", "< 60 MB",
                 f"{at_end['VmRSS']:.1f} MB (peak {at_end['VmHWM']:.1f} MB)", rss_max < 60),
        C.Target(f"daemon CPU while idle ({idle:g} s)" + (" [shortened from 60 s]" if idle < 60 else ""),
                 "< 0.5 CPU s", f"{idle_cpu:.2f} s", idle_cpu < 0.5),
        C.Target("imports for a CDN-only config, however many providers are registered", "<= 55 MB",
                 f"{lazy['lazy']:.1f} MB (all providers imported: {lazy['eager']:.1f} MB)",
                 lazy["lazy"] <= 55),
        C.Target("`--run-now` nothing due, one certificate", "< 1 s", C.fmt(walls),
                 sorted(walls)[len(walls) // 2] < 1.0),
    ]
    C.write_result("5-footprint", "5. Footprint", "\n".join(md), targets,
                   data={"idle": idle, "at_done": at_done, "at_end": at_end, "rss_samples": samples,
                         "run_now_walls": walls, "import_seconds": imports, "import_rss": import_rss})
    return 0


if __name__ == "__main__":
    sys.exit(main())
