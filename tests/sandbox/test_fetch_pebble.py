"""scripts/fetch-pebble.sh picks the Debian mirror from apt's own sources (no host of its own).
Only --print-mirror runs here: the choice is made offline from sources files the test writes."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fetch-pebble.sh"
DEFAULT_KEY = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _mirror(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "sources.list.d").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "APT_SOURCES_DIR": str(tmp_path)}
    return subprocess.run(["bash", str(SCRIPT), "--print-mirror"], capture_output=True, text=True,
                          env=env, timeout=30)


def test_script_names_no_host():
    code = [ln for ln in SCRIPT.read_text().splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in code if re.search(r"[a-z]+://", ln)]


@pytest.mark.parametrize("files,expected", [
    ({"sources.list.d/debian.sources":
      "Types: deb\nURIs: http://security.mirror.test/debian-security\nSuites: bookworm-security\n"
      "Components: main\n\n"
      "Types: deb-src\nURIs: http://src.mirror.test/debian\nSuites: bookworm\n\n"
      "Types: deb\nURIs: http://off.mirror.test/debian\nSuites: bookworm\nEnabled: no\n\n"
      "Types: deb\nURIs: http://mirror.test/debian http://second.test/debian\n"
      "Suites: bookworm bookworm-updates\nComponents: main\n"
      "Signed-By: /usr/share/keyrings/mine.gpg\n"},
     "http://mirror.test/debian /usr/share/keyrings/mine.gpg"),
    ({"sources.list":
      "# deb http://commented.test/debian sid main\n"
      "deb http://security.test/debian-security bookworm-security main\n"
      "deb [arch=amd64 signed-by=/k/one.gpg] http://one.test/debian bookworm main\n"},
     "http://one.test/debian /k/one.gpg"),
    ({"sources.list.d/a.list": "deb http://plain.test/debian trixie main\n",
      "sources.list.d/z.sources": "Types: deb\nURIs: http://later.test/debian\nSuites: trixie\n"},
     f"http://plain.test/debian {DEFAULT_KEY}"),
])
def test_first_debian_release_entry_wins(tmp_path, files, expected):
    out = _mirror(tmp_path, files)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_no_debian_mirror_is_a_clear_error(tmp_path):
    out = _mirror(tmp_path, {"sources.list.d/x.sources":
                             "Types: deb\nURIs: http://s.test/debian-security\nSuites: trixie-security\n",
                             "sources.list.d/ignored.list.disabled": "deb http://no.test/debian sid main\n"})
    assert out.returncode == 1 and "no Debian mirror" in out.stderr
