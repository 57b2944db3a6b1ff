"""The bad-config corpus, run through the real CLI: exit 2, every expected key path named on
stderr, no traceback, no state directory created (nothing written)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = sorted((Path(__file__).parent.parent / "configs" / "bad").glob("*.toml"))


def _expected(path: Path) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# expect:")]


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ALICERTD_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 25
    assert all(_expected(p) for p in CORPUS), "every corpus file names the key path it expects"


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
@pytest.mark.parametrize("mode", ["check-config", "--run-now"])
def test_bad_config_is_rejected(path: Path, mode: str, tmp_path: Path):
    config = tmp_path / "config.toml"
    shutil.copy(path, config)
    proc = run_cli("--config", str(config), mode, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for key in _expected(path):
        assert key in proc.stderr, f"{key!r} not named in: {proc.stderr}"
    for line in proc.stderr.strip().splitlines():
        assert line.startswith("alicertd: "), line
    assert not (tmp_path / "state").exists(), "a rejected config must not create the state dir"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_all_errors_reported_together(tmp_path: Path):
    path = next(p for p in CORPUS if p.stem.endswith("several-errors"))
    shutil.copy(path, tmp_path / "c.toml")
    proc = run_cli("--config", str(tmp_path / "c.toml"), "check-config", cwd=tmp_path)
    assert len(proc.stderr.strip().splitlines()) >= len(_expected(path))


def test_missing_config_file(tmp_path: Path):
    proc = run_cli("--config", str(tmp_path / "nope.toml"), "check-config", cwd=tmp_path)
    assert proc.returncode == 2
    assert "nope.toml" in proc.stderr and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_path_from_environment(tmp_path: Path):
    proc = run_cli("check-config", cwd=tmp_path, env={"ALICERTD_CONFIG": str(tmp_path / "env.toml")})
    assert proc.returncode == 2 and "env.toml" in proc.stderr


@pytest.mark.parametrize("argv, needle", [
    (["--dry-run"], "--dry-run and --force need --run-now"),
    (["--force", "www"], "need --run-now"),
    (["--log-format", "xml", "check-config"], "--log-format"),
    (["frobnicate"], "invalid choice"),
    (["status", "--run-now"], "unrecognized arguments"),
])
def test_bad_command_line(argv, needle, tmp_path: Path):
    proc = run_cli(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_force_unknown_certificate(tmp_path: Path):
    config = tmp_path / "c.toml"
    config.write_text('state_dir = "state"\n[acme]\ndirectory = "https://127.0.0.1:1/dir"\n'
                      '[[certificate]]\nname = "www"\ndomains = ["example.com"]\n')
    proc = run_cli("--config", str(config), "--run-now", "--force", "api", cwd=tmp_path)
    assert proc.returncode == 2 and "'api'" in proc.stderr
    assert not (tmp_path / "state").exists()
