"""#12 item 5: check-config refuses a fixed renewal window at or above the lifetime the
profile implies (exit 2, one line naming the key), and warns about a schedule too sparse for
the shortest lifetime configured. Through the real CLI, plus the dated rules as a table."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.renewal_rules import profile_lifetime, renewal_errors, renewal_warnings
from tests.renewal.helpers import config

ROOT = Path(__file__).resolve().parents[2]
LE = "https://acme-v02.api.letsencrypt.org/directory"


def check_config(tmp_path: Path, acme: str, schedule: str = 'interval = "12h"', cert: str = "") -> subprocess.CompletedProcess:
    path = tmp_path / "alicertd.toml"
    path.write_text(f"""
state_dir = "{tmp_path / 'state'}"
[acme]
directory = "letsencrypt"
{acme}
[aliyun]
access_key_id = "id"
access_key_secret = "secret"
region = "cn-hangzhou"
[schedule]
{schedule}
[[certificate]]
name = "www"
domains = ["example.com"]
{cert}
""")
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(path), "check-config"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_a_fixed_window_longer_than_shortlived_is_refused(tmp_path):
    proc = check_config(tmp_path, 'profile = "shortlived"\nrenew_before_days = 30')
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "acme.renew_before_days" in lines[0] and "shortlived" in lines[0], lines
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists()


def test_a_per_certificate_window_is_named_by_its_key(tmp_path):
    proc = check_config(tmp_path, 'profile = "tlsserver"', cert="renew_before_days = 45")
    assert proc.returncode == 2
    assert "certificate[0].renew_before_days" in proc.stderr and "45 days" in proc.stderr


def test_a_sparse_schedule_warns_but_passes(tmp_path):
    proc = check_config(tmp_path, 'profile = "shortlived"', schedule='interval = "3d"')
    assert proc.returncode == 0, proc.stderr
    assert "warning: schedule.interval" in proc.stderr
    cron = check_config(tmp_path, 'profile = "shortlived"', schedule='cron = "0 3 * * 1"')
    assert cron.returncode == 0 and "warning: schedule.cron" in cron.stderr


def test_a_sensible_config_is_quiet(tmp_path):
    proc = check_config(tmp_path, 'profile = "shortlived"\nrenew_before_days = 3')
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(("profile", "at", "lifetime"), [
    (None, datetime(2026, 12, 1, tzinfo=UTC), timedelta(days=90)),
    ("classic", datetime(2027, 2, 10, tzinfo=UTC), timedelta(days=64)),
    ("classic", datetime(2028, 3, 1, tzinfo=UTC), timedelta(days=45)),
    ("tlsserver", datetime(2026, 12, 1, tzinfo=UTC), timedelta(days=45)),
    ("shortlived", datetime(2026, 12, 1, tzinfo=UTC), timedelta(hours=160)),
    ("someprofile", datetime(2026, 12, 1, tzinfo=UTC), None),
])
def test_known_lifetimes(profile, at, lifetime):
    assert profile_lifetime(LE, profile, at) == lifetime


def test_unknown_cas_are_never_refused_offline(tmp_path):
    cfg = config(tmp_path, acme={"directory": "https://ca.example/dir", "renew_before_days": 365})
    assert renewal_errors(cfg) == [] and renewal_warnings(cfg) == []


def test_an_announced_shorter_classic_lifetime_is_warned_about(tmp_path):
    cfg = config(tmp_path, acme={"directory": "letsencrypt", "renew_before_days": 70})
    before = datetime(2026, 12, 1, tzinfo=UTC)
    assert renewal_errors(cfg, before) == []
    assert any("2027-02-10" in w for w in renewal_warnings(cfg, before))
    assert renewal_errors(cfg, datetime(2027, 3, 1, tzinfo=UTC))  # from then on, refused
