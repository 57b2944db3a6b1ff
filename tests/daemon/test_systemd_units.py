"""The systemd units load cleanly and stay hardened (exposure <= 2.0, systemd-analyze's "OK")."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICES = ["alicertd.service", "alicertd-run-now.service"]
ALL_UNITS = SERVICES + ["alicertd-run-now.timer"]
ANALYZE = shutil.which("systemd-analyze")
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed on this host")


def directives(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for line in (UNITS / unit).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def runnable_copies(tmp_path_factory) -> Path:
    """Copies whose ExecStart points at /bin/true: verify checks that the binary exists, and
    alicertd is not installed in /usr/local/bin on a build host."""
    d = tmp_path_factory.mktemp("units")
    for unit in ALL_UNITS:
        text = (UNITS / unit).read_text().replace("/usr/local/bin/alicertd", "/bin/true")
        (d / unit).write_text(text)
    return d


@needs_analyze
def test_verify(runnable_copies):
    proc = subprocess.run([ANALYZE, "verify", "--man=no", *[f"./{u}" for u in ALL_UNITS]],
                          cwd=runnable_copies, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


@needs_analyze
@pytest.mark.parametrize("unit", SERVICES)
def test_security_exposure(unit):
    proc = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(UNITS / unit)],
                          capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    exposure = float(m.group(1))
    print(f"{unit}: exposure {exposure} {m.group(2)}")
    assert exposure <= MAX_EXPOSURE, proc.stdout


@pytest.mark.parametrize("unit", SERVICES)
def test_service_essentials(unit):
    d = directives(unit)
    assert d["Service.DynamicUser"] == ["yes"]
    assert d["Service.StateDirectory"] == ["alicertd"]
    assert d["Service.StateDirectoryMode"] == ["0700"]
    assert d["Service.ConfigurationDirectory"] == ["alicertd"]
    assert d["Service.EnvironmentFile"] == ["-/etc/alicertd/env"]
    assert d["Service.RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert d["Service.UMask"] == ["0077"]
    assert "Service.IPAddressDeny" not in d  # the CA and the cloud APIs are anywhere
    assert d["Service.ExecStart"][0].startswith("/usr/local/bin/alicertd --config %E/alicertd/config.toml")
    assert d["Unit.After"] == ["network-online.target"]


def test_daemon_unit():
    d = directives("alicertd.service")
    assert d["Service.Type"] == ["notify"]
    assert d["Service.NotifyAccess"] == ["main"]
    # check-config first (a broken config fails the reload itself), then a signal without procps
    assert d["Service.ExecReload"] == ["/usr/local/bin/alicertd --config %E/alicertd/config.toml check-config",
                                       "/bin/sh -c 'kill -HUP ${MAINPID}'"]
    assert d["Service.Restart"] == ["on-failure"]
    assert d["Service.TimeoutStopSec"] == ["15"]
    assert d["Service.WatchdogSec"]
    assert "--run-now" not in d["Service.ExecStart"][0]


def test_run_now_unit_and_timer():
    d = directives("alicertd-run-now.service")
    assert d["Service.Type"] == ["oneshot"]
    assert d["Service.ExecStart"][0].endswith(" --run-now")
    t = directives("alicertd-run-now.timer")
    assert len(t["Timer.OnCalendar"][0].split(",")) == 2 or len(t["Timer.OnCalendar"]) == 2
    assert t["Timer.Persistent"] == ["true"]
    assert t["Timer.RandomizedDelaySec"]
    assert t["Install.WantedBy"] == ["timers.target"]
