"""The systemd units under a real systemd: a Debian bookworm root booted with
``systemd-nspawn --boot``, alicertd installed in it as README's systemd section says, run
against the sandbox and Pebble on the host's loopback (the booted root shares the host's
network: no --private-network).

The commands run inside the booted system (through nsenter into its namespaces) are README's,
word for word; the test adds only what it needs to look (systemctl show, journalctl) and, for
the watchdog, a drop-in with a short WatchdogSec so that pings can be seen within seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.runmodes.conftest import (
    MODULE_TIMEOUT,
    config_text,
    files_under,
    pip_mounts,
    readme_commands,
    run,
    wait_until,
)
from tests.support.pebble import ensure_pebble
from tests.support.world import REPO_ROOT, SECRET_ENV, World

pytestmark = [pytest.mark.runmodes, pytest.mark.pebble, pytest.mark.timeout(MODULE_TIMEOUT)]

MACHINE = f"alicertd-runmodes-{os.getpid()}"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WWW = World.cert("www", ["example.com", "cdn.example.com"], cdn=["cdn.example.com"])
IMG = World.cert("img", ["img.example.com"], cdn=["img.example.com"])
APP = World.cert("app", ["app.dev.example.com"])
DYNAMIC_UIDS = range(61184, 65520)  # systemd's DynamicUser= range


class Booted:
    """A root directory booted with systemd-nspawn, and a way to run commands inside it."""

    def __init__(self, root: Path, binds: list[str], log: Path):
        self.root = root
        self.log = log
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--directory", str(root), "--machine", MACHINE,
             "--register=no", "--keep-unit", "--console=pipe", *binds],
            stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.leader = wait_until(self._leader, 60, "the booted system's PID 1", step=0.2)

    def _leader(self) -> int | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited {self.proc.returncode}:\n{self.log.read_text()}")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    status = (entry / "status").read_text()
                except OSError:
                    continue
                # nspawn's own helper child has the same parent for a moment: the leader is
                # the one that is PID 1 of its own namespace and has become systemd (entering
                # the helper instead finds no bus, which a loaded machine made likely)
                nspid = re.search(r"^NSpid:\s+(.+)$", status, re.M)
                if (re.search(rf"^PPid:\s+{self.proc.pid}$", status, re.M) and nspid
                        and nspid.group(1).split()[-1] == "1"
                        and re.search(r"^Name:\s+systemd$", status, re.M)):
                    return int(entry.name)
        return None

    def sh(self, script: str, *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``script`` with /bin/sh inside the booted system, as root, in /root."""
        return run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
                    "env", "-i", f"PATH={PATH}", "HOME=/root", "sh", "-euc", f"cd /root\n{script}"],
                   check=check, timeout=timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> list[dict]:
        out = self.sh(f"journalctl --no-pager -o json -u {unit}").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def messages(self, unit: str) -> list[str]:
        return [str(e.get("MESSAGE", "")) for e in self.journal(unit)]

    def halt(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn: a clean poweroff of the container
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def world():
    ensure_pebble()
    with World() as w:
        yield w


@pytest.fixture(scope="module")
def booted(runmodes_cache, wheel, world, tmp_path_factory):
    work = tmp_path_factory.mktemp("nspawn")
    root = work / "root"
    started = time.monotonic()
    subprocess.run(["cp", "-a", "--reflink=auto", str(runmodes_cache / "boot"), str(root)], check=True)
    # what README's commands read from "the source tree": the wheel and the units
    shutil.copy(wheel, root / "root" / wheel.name)
    shutil.copytree(REPO_ROOT / "systemd", root / "root" / "systemd")
    # this machine's pip configuration, for the pip inside (README's `pip install`)
    conf, paths = pip_mounts(work / "pip")
    binds = [f"--bind-ro={conf}:/etc/pip.conf"] + [f"--bind-ro={p}" for p in paths]
    machine = Booted(root, binds, work / "console.log")
    try:
        # systemctl --wait waits for the boot, not for systemd's socket: until PID 1 has made it,
        # systemctl fails with "Failed to connect to bus"
        wait_until(lambda: machine.sh("test -S /run/systemd/private", check=False).returncode == 0,
                   60, "systemd's private socket in the booted system", step=0.2)
        state = machine.sh("systemctl is-system-running --wait", check=False, timeout=180).stdout.strip()
        assert state in ("running", "degraded"), machine.sh("systemctl --failed --no-pager").stdout
        print(f"boot: {time.monotonic() - started:.1f}s")
        # the configuration and the secret, as README's Quick start has them
        (root / "etc" / "alicertd").mkdir(mode=0o755, exist_ok=True)
        shutil.copy(world.pebble.ca_bundle, root / "etc" / "alicertd" / "pebble-ca.pem")
        write_config(world, root, [WWW])
        env = root / "etc" / "alicertd" / "env"
        env.write_text(f"{SECRET_ENV}={world.access_key_secret}\n")
        env.chmod(0o600)
        yield machine
    finally:
        machine.halt()
        shutil.rmtree(root, ignore_errors=True)


def write_config(world: World, root: Path, certificates, *, broken: bool = False) -> None:
    path = root / "etc" / "alicertd" / "config.toml"
    tmp = path.with_suffix(".new")
    tmp.write_text(config_text(world, certificates, broken=broken))
    tmp.chmod(0o644)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the daemon


@pytest.fixture(scope="module")
def installed(booted, world):
    """README's systemd section, except the two commands that follow the journal / reload."""
    started = time.monotonic()
    booted.sh(readme_commands("systemd (recommended on ECS)", skip=("journalctl", "systemctl reload")),
              timeout=600)
    print(f"install + enable --now: {time.monotonic() - started:.1f}s")
    return booted


def test_ready_before_active_then_issues_and_deploys(installed, world):
    m = installed
    props = m.show("alicertd", "ActiveState", "SubState", "Type", "StatusText",
                   "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    assert (props["ActiveState"], props["SubState"], props["Type"]) == ("active", "running", "notify"), props
    assert props["StatusText"] == "running", props  # sent over $NOTIFY_SOCKET by the daemon
    # the unit became active after the process started AND after the daemon had set up (the
    # line it logs right before READY=1): Type=notify waited for the daemon, not for the exec
    ready_line = next(e for e in m.journal("alicertd") if "scheduler started" in str(e.get("MESSAGE")))
    exec_at, ready_at, active_at = (int(props["ExecMainStartTimestampMonotonic"]),
                                    int(ready_line["__MONOTONIC_TIMESTAMP"]),
                                    int(props["ActiveEnterTimestampMonotonic"]))
    assert exec_at < ready_at < active_at, (exec_at, ready_at, active_at)
    print(f"exec -> ready line {(ready_at - exec_at) / 1e6:.2f}s, -> active {(active_at - exec_at) / 1e6:.2f}s")

    wait_until(lambda: any("cycle done" in s for s in m.messages("alicertd")), 240, "the first cycle")
    served = world.served_serial("cdn.example.com")
    chain = m.root / "var" / "lib" / "private" / "alicertd" / "certificates" / "www" / "fullchain.pem"
    assert served and chain.exists(), "\n".join(m.messages("alicertd"))
    assert served == World.chain_serial(m.root / "var" / "lib" / "private" / "alicertd", "www"), \
        "\n".join(m.messages("alicertd"))


def test_dynamic_user_owns_a_0700_state_directory(installed):
    m = installed
    pid = m.show("alicertd", "MainPID")["MainPID"]
    uid = int(re.search(r"^Uid:\s+(\d+)", m.sh(f"cat /proc/{pid}/status").stdout, re.M).group(1))
    assert uid in DYNAMIC_UIDS, uid
    mode, owner = m.sh("stat -L -c '%a %u' /var/lib/alicertd").stdout.split()
    assert mode == "700" and int(owner) == uid
    files = [p for p in files_under(m.root / "var" / "lib" / "private" / "alicertd") if p.is_file()]
    assert files and all(p.stat().st_uid == uid for p in files)
    keys = [p for p in files if p.name.endswith("key.pem") or p.name == "privkey.pem"]
    assert keys and all(p.stat().st_mode & 0o077 == 0 for p in keys), [oct(p.stat().st_mode) for p in keys]


def test_reload_applies_a_changed_config_and_refuses_a_broken_one(installed, world):
    m = installed
    pid = m.show("alicertd", "MainPID")["MainPID"]
    write_config(world, m.root, [WWW, IMG])
    m.sh("systemctl reload alicertd")
    wait_until(lambda: world.served_serial("img.example.com") == World.chain_serial(
        m.root / "var/lib/private/alicertd", "img") is not None, 240, "img deployed after the reload")

    write_config(world, m.root, [WWW], broken=True)
    before = len(m.journal("alicertd"))
    # ExecReload validates first: the reload itself fails, and says why at priority 3.
    failed = m.sh("systemctl reload alicertd", check=False)
    assert failed.returncode != 0, failed
    checked = wait_until(lambda: [e for e in m.journal("alicertd")[before:]
                                  if "acme.profile" in str(e.get("MESSAGE"))], 60, "the check-config line")
    assert checked[0]["PRIORITY"] == "3", checked[0]
    # A SIGHUP that bypasses ExecReload is refused by the daemon itself, which keeps running.
    before = len(m.journal("alicertd"))
    m.sh("systemctl kill --kill-who=main -s HUP alicertd")
    refused = wait_until(lambda: [e for e in m.journal("alicertd")[before:]
                                  if "reload refused" in str(e.get("MESSAGE"))], 60, "the refusal")
    assert "acme.profile" in refused[0]["MESSAGE"] and refused[0]["PRIORITY"] == "3"
    props = m.show("alicertd", "ActiveState", "MainPID", "NRestarts")
    assert props == {"ActiveState": "active", "MainPID": pid, "NRestarts": "0"}, props
    write_config(world, m.root, [WWW, IMG])
    m.sh("systemctl reload alicertd")


def test_journal_has_one_line_per_event_with_its_priority(installed):
    entries = [e for e in installed.journal("alicertd") if e.get("_PID") != "1" and e.get("SYSLOG_IDENTIFIER") != "systemd"]
    assert entries
    for e in entries:
        msg = str(e["MESSAGE"])
        assert "\n" not in msg and not re.match(r"<\d>", msg) and not re.match(r"\d{4}-\d\d-\d\dT", msg), e
    prio = {str(e["MESSAGE"]): e["PRIORITY"] for e in entries}
    assert any("cycle done" in s and p == "6" for s, p in prio.items()), prio
    assert any("reload refused" in s and p == "3" for s, p in prio.items()), prio


def test_security_rating_at_most_the_offline_figure(installed):
    def exposure(out: str) -> float:
        return float(re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out).group(1))

    inside = exposure(installed.sh("systemd-analyze security --no-pager alicertd.service").stdout)
    offline = exposure(run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                            str(REPO_ROOT / "systemd" / "alicertd.service")], check=False).stdout)
    print(f"systemd-analyze security: {inside} booted, {offline} offline")
    assert inside <= offline, (inside, offline)


def test_watchdog_is_fed(installed):
    m = installed
    m.sh("mkdir -p /etc/systemd/system/alicertd.service.d && "
         "printf '[Service]\\nWatchdogSec=4s\\n' > /etc/systemd/system/alicertd.service.d/watchdog.conf && "
         "systemctl daemon-reload && systemctl restart alicertd")
    try:
        pid = m.show("alicertd", "MainPID")["MainPID"]
        seen = set()

        def pinged_three_times():
            seen.add(m.show("alicertd", "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])
            return len(seen) >= 4
        wait_until(pinged_three_times, 30, "three watchdog pings", step=1.0)
        props = m.show("alicertd", "ActiveState", "MainPID", "WatchdogUSec")
        assert props == {"ActiveState": "active", "MainPID": pid, "WatchdogUSec": "4s"}, props
    finally:
        m.sh("rm -r /etc/systemd/system/alicertd.service.d && systemctl daemon-reload")


def test_stop_in_flight_is_clean(installed, world):
    """``systemctl stop`` while an issuance waits for its TXT record to propagate: exit 0 well
    within TimeoutStopSec, the challenge record removed, nothing half-written."""
    m = installed
    world.sandbox.set_dns_delay(60)
    try:
        write_config(world, m.root, [WWW, IMG, APP])
        m.sh("systemctl reload alicertd")
        wait_until(world.txt_records, 120, "the challenge TXT record of the new certificate")
        started = time.monotonic()
        m.sh("systemctl stop alicertd", timeout=60)
        took = time.monotonic() - started
    finally:
        world.sandbox.set_dns_delay(0)
    props = m.show("alicertd", "ActiveState", "Result", "ExecMainStatus")
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, props
    assert took < 15, took
    assert world.txt_records() == [], "the challenge record was left behind"
    assert any(s == "stopped" for s in m.messages("alicertd"))
    state = m.root / "var" / "lib" / "private" / "alicertd"
    assert not [p for p in files_under(state) if p.name.startswith(".tmp-")]


def test_broken_config_at_start_fails_once_with_an_error_priority(installed, world):
    m = installed
    write_config(world, m.root, [WWW], broken=True)
    try:
        assert m.sh("systemctl start alicertd", check=False).returncode != 0
        props = m.show("alicertd", "ActiveState", "Result", "ExecMainStatus", "NRestarts")
        assert props == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "2",
                         "NRestarts": "0"}, props  # RestartPreventExitStatus=2
        errors = [e for e in m.journal("alicertd") if "acme.profile" in str(e.get("MESSAGE"))]
        assert errors and errors[-1]["PRIORITY"] == "3", errors[-1:]
        assert "Traceback" not in "\n".join(m.messages("alicertd"))
    finally:
        write_config(world, m.root, [WWW, IMG, APP])
        m.sh("systemctl reset-failed alicertd", check=False)


# --------------------------------------------------------------------------- the timer pair


def test_run_now_timer_pair_runs_once_and_exits_0(installed, world):
    m = installed
    m.sh("systemctl disable --now alicertd")
    m.sh(readme_commands("systemd (recommended on ECS)", 1))
    timer = m.show("alicertd-run-now.timer", "ActiveState", "Triggers", "NextElapseUSecRealtime")
    assert timer["ActiveState"] == "active" and timer["Triggers"] == "alicertd-run-now.service", timer
    assert timer["NextElapseUSecRealtime"] not in ("", "0")
    # what the timer starts, started now instead of at 00:00/12:00
    m.sh("systemctl start alicertd-run-now.service", timeout=300)
    props = m.show("alicertd-run-now.service", "Result", "ExecMainStatus", "ExecMainCode", "NRestarts")
    assert props["Result"] == "success" and props["ExecMainStatus"] == "0", props
    assert any("cycle" in s.lower() for s in m.messages("alicertd-run-now"))
    assert World.chain_serial(m.root / "var/lib/private/alicertd", "app") is not None
