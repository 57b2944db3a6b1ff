"""Shared pieces of the alicertd benchmarks (bench/*.py, driven by bench/run.sh).

- The local world: ``world(fixture, dns_delay=...)`` is tests.support.world.World with the
  benchmark Pebble settings (``PEBBLE_ENV``); ``fixture(...)`` builds sandbox fixtures as dicts.
- Running alicertd as its users do: ``run_cli`` starts ``python -m daemon`` in a subprocess
  (process start included in the wall time) and stamps every stderr line on arrival with
  ``time.time()`` (text logs carry whole seconds; ``Run.log_time`` reads the JSON log's own
  millisecond ``ts``).
- Statistics (median, min–max) and the result files: each benchmark writes
  ``bench/work/results/<name>.json`` (a markdown section plus its targets); bench/report.py
  turns them into bench/RESULTS.md.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.world import World  # noqa: E402

WORK = ROOT / "bench" / "work"
RESULTS = WORK / "results"
PYTHON = sys.executable

#: Pebble for every benchmark: no artificial validation sleeps, no authorization reuse (every
#: certificate needs its own DNS-01), and no injected badNonce errors (Pebble rejects 5 % of
#: good nonces by default to exercise clients; a real CA does not, and it only adds noise).
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0", "PEBBLE_WFE_NONCEREJECT": "0"}

#: alicertd runs with its bytecode cached, as an installed package has it (pip and Debian compile
#: on install). This machine's environment sets PYTHONDONTWRITEBYTECODE=1, under which the
#: source tree's modules would be compiled again at every start; the cache lives in bench/work.
PYCACHE = WORK / "pycache"


def alicertd_env(w: World, extra: Mapping[str, str] | None = None, *, bytecode: bool = True) -> dict[str, str]:
    env = w.env(**dict(extra or {}))
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


ACCESS_KEY = {"id": "LTAIbench00000000001", "secret": "bench-secret-not-a-real-key", "name": "bench",
              "permissions": ["*"]}


# --------------------------------------------------------------------------- the world


def fixture(*, zones: Sequence[str] = ("example.com",), cdn_domains: Sequence[str] = (),
            apigateway_groups: Sequence[Mapping[str, Any]] = (), **settings: Any) -> dict[str, Any]:
    """A sandbox fixture (the schema of sandbox/README.md) as a dict."""
    data: dict[str, Any] = {
        "settings": {"account_id": "1234567890123456", **settings},
        "access_key": [dict(ACCESS_KEY)],
        "zone": [{"name": z} for z in zones],
    }
    if cdn_domains:
        data["cdn_domain"] = [{"name": d} for d in cdn_domains]
    if apigateway_groups:
        data["apigateway_group"] = [dict(g) for g in apigateway_groups]
    return data


def world(fx: Mapping[str, Any], *, dns_delay: float | None = None) -> World:
    return World(fixture=dict(fx), pebble_env=PEBBLE_ENV, dns_delay=dns_delay)


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --------------------------------------------------------------------------- running alicertd


@dataclass
class Run:
    argv: list[str]
    started: float  # time.time() just before the process was created
    wall: float  # seconds from process creation to exit
    returncode: int
    stdout: str
    lines: list[tuple[float, str]] = field(default_factory=list)  # (arrival time.time(), stderr line)

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def json_lines(self) -> list[tuple[float, dict[str, Any]]]:
        out = []
        for t, line in self.lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append((t, obj))
        return out

    @staticmethod
    def log_time(obj: Mapping[str, Any]) -> float | None:
        """The JSON log line's own ``ts`` as epoch seconds (None unless it carries milliseconds)."""
        ts = str(obj.get("ts", ""))
        m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z", ts)
        if not m:
            return None
        base = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
        return base + int(m.group(2)) / 1000

    def check(self, what: str) -> Run:
        if self.returncode != 0:
            raise RuntimeError(f"{what}: alicertd exited {self.returncode}\n--- stdout\n{self.stdout[-3000:]}"
                               f"\n--- stderr\n{self.stderr[-5000:]}")
        return self


def _pump(stream, sink: list[tuple[float, str]]) -> None:
    for raw in iter(stream.readline, b""):
        sink.append((time.time(), raw.decode("utf-8", "replace").rstrip("\n")))
    stream.close()


def run_cli(w: World, config: Path, *args: str, python_args: Sequence[str] = (),
            env: Mapping[str, str] | None = None, timeout: float = 900, bytecode: bool = True) -> Run:
    """``python [python_args] -m daemon --config CONFIG ARGS`` as the operator runs it; wall
    time from just before the fork to exit; stderr lines stamped on arrival."""
    argv = [PYTHON, *python_args, "-m", "daemon", "--config", str(config), *args]
    started = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=alicertd_env(w, env, bytecode=bytecode))
    lines: list[tuple[float, str]] = []
    out: list[tuple[float, str]] = []
    pumps = [threading.Thread(target=_pump, args=(proc.stderr, lines), daemon=True),
             threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True)]
    for p in pumps:
        p.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - t0
    for p in pumps:
        p.join(timeout=10)
    return Run(argv, started, wall, rc, "\n".join(line for _, line in out), lines)


class Spawned:
    """A long-running ``python -m daemon`` with its stderr lines stamped on arrival."""

    def __init__(self, w: World, config: Path, *args: str, env: Mapping[str, str] | None = None):
        self.argv = [PYTHON, "-m", "daemon", "--config", str(config), *args]
        self.started = time.time()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env=alicertd_env(w, env), start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._pump = threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True)
        self._pump.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_line(self, text: str, timeout: float) -> float:
        """Arrival time of the first line containing ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if text in line:
                    return t
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"no line with {text!r} within {timeout:g} s (exit {self.proc.poll()}):\n"
                           + "\n".join(line for _, line in self.lines[-40:]))

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS/VmHWM (MB) from /proc/PID/status and CPU seconds (utime+stime) from /proc/PID/stat."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            num = float(value.split()[0])
            out[key] = num / 1024 if key.startswith("Vm") else num
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    ticks = os.sysconf("SC_CLK_TCK")
    out["utime"] = int(fields[11]) / ticks
    out["stime"] = int(fields[12]) / ticks
    out["cpu"] = out["utime"] + out["stime"]
    return out


def alicertd_version() -> str:
    out = subprocess.run([PYTHON, "-m", "daemon", "--version"], capture_output=True, text=True, cwd=ROOT)
    return (out.stdout or out.stderr).strip().removeprefix("alicertd ").strip()


# --------------------------------------------------------------------------- statistics


def summary(values: Iterable[float]) -> dict[str, float]:
    vals = list(values)
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def fmt(values: Iterable[float] | Mapping[str, float], unit: str = "s", digits: int = 2) -> str:
    """``median (min–max)``."""
    s = values if isinstance(values, Mapping) else summary(values)
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{s['median']:.{digits}f} {unit}".rstrip()
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)


# --------------------------------------------------------------------------- results


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "goal": self.goal, "measured": self.measured, "met": self.met}


def write_result(name: str, title: str, markdown: str, targets: Sequence[Target] = (),
                 data: Mapping[str, Any] | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"name": name, "title": title, "markdown": markdown,
                                "targets": [t.as_dict() for t in targets], "data": dict(data or {})},
                               indent=2, default=str))
    print(f"\n## {title}\n\n{markdown}\n")
    for t in targets:
        print(f"  target {t.name}: {t.goal} — measured {t.measured} — {'met' if t.met else 'MISSED'}")
    return path


def reps(args_quick: bool, full: int, quick: int) -> int:
    env = os.environ.get("BENCH_REPS")
    if env:
        return int(env)
    return quick if args_quick else full


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
