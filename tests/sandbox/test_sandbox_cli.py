"""``python -m sandbox serve``: ready file, one log line per call, clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkcore.client import AcsClient
from conftest import AK, SECRET, call, wait_until

from sandbox.cli import main

ROOT = Path(__file__).resolve().parents[2]


class _Info:
    def __init__(self, info):
        self.api_host = info["api_host"]


def test_serve_writes_ready_file_logs_calls_and_stops(tmp_path):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--api-port", "0", "--dns-port", "0",
         "--edge-port", "0", "--dns-delay", "0.25", "--ready-file", str(ready)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=10)
        assert proc.poll() is None, proc.stderr.read()
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid and info["dns2_port"] and info["edge_port"]
        body = call(_Info(info), AcsClient(AK, SECRET, "cn-hangzhou"), DescribeDomainsRequest())
        assert body["TotalCount"] == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert not ready.exists()
    lines = out.splitlines()
    assert lines[0].startswith("sandbox ready: api http://127.0.0.1:")
    assert any(" 200 Alidns DescribeDomains ak=LTAIsandboxdemo000001 code=- " in ln for ln in lines)
    assert lines[-1] == "sandbox stopped"


def test_check_fixture(tmp_path, capsys):
    assert main(["check-fixture", str(ROOT / "sandbox" / "fixtures" / "demo.toml")]) == 0
    assert "4 zones, 3 CDN domains, 1 API groups" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[[zone]]\nname = 5\n')
    assert main(["check-fixture", str(bad)]) == 1
    assert "zone[0].name" in capsys.readouterr().err
