"""``alicertd status --json``: the contract's document, before and after a run."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from cryptography import x509

from tests.e2e.helpers import WWW_API, WWW_CDN, net_cert, run_ok, status_json, www_cert
from tests.support.world import World

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
HEX = re.compile(r"^[0-9a-f]+$")
CERT_KEYS = {"name", "domains", "serial", "not_after", "days_left", "last_error", "targets"}
TARGET_KEYS = {"provider", "target", "serial", "state", "verified_at"}
WWW_TARGET_IDS = [("cdn", d) for d in WWW_CDN] + [("apigateway", f"cn-shanghai/abc123/{WWW_API}")]


def _check_shape(doc: dict) -> None:
    assert set(doc) >= {"certificates"} and isinstance(doc["certificates"], list)
    for c in doc["certificates"]:
        assert set(c) >= CERT_KEYS, f"missing {CERT_KEYS - set(c)}"
        assert isinstance(c["name"], str) and isinstance(c["domains"], list)
        assert c["serial"] is None or HEX.match(c["serial"]), c["serial"]
        assert c["not_after"] is None or RFC3339_UTC.match(c["not_after"]), c["not_after"]
        assert c["days_left"] is None or isinstance(c["days_left"], int)
        assert c["last_error"] is None or isinstance(c["last_error"], str)
        for t in c["targets"]:
            assert set(t) >= TARGET_KEYS, f"missing {TARGET_KEYS - set(t)}"
            assert t["serial"] is None or HEX.match(t["serial"]), t["serial"]
            assert t["verified_at"] is None or RFC3339_UTC.match(t["verified_at"]), t["verified_at"]


def test_status_before_any_run_is_all_nulls(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    since = time.time()

    doc = status_json(world, config)

    _check_shape(doc)
    by_name = {c["name"]: c for c in doc["certificates"]}
    assert list(by_name) == ["www", "net"]
    assert by_name["www"]["domains"] == ["example.com", "*.example.com"]
    for c in by_name.values():
        assert (c["serial"], c["not_after"], c["days_left"], c["last_error"]) == (None, None, None, None)
    assert [(t["provider"], t["target"]) for t in by_name["www"]["targets"]] == WWW_TARGET_IDS
    for t in by_name["www"]["targets"]:
        assert (t["serial"], t["state"], t["verified_at"]) == (None, None, None)
    assert by_name["net"]["targets"] == []
    assert world.sandbox.calls(since=since) == [], "status contacted Alibaba Cloud"
    assert not (tmp_path / "state").exists(), "status created the state dir"


def test_status_after_a_run_describes_the_certificates_and_targets(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    state = tmp_path / "state"
    run_ok(world, config)

    doc = status_json(world, config)

    _check_shape(doc)
    now = datetime.now(UTC)
    for c in doc["certificates"]:
        leaf = x509.load_pem_x509_certificate((state / "certificates" / c["name"] / "fullchain.pem").read_bytes())
        assert c["serial"] == format(leaf.serial_number, "x")
        assert c["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        days = int((leaf.not_valid_after_utc - now).total_seconds() // 86400)
        assert c["days_left"] in (days, days + 1)  # status ran a moment before `now`
        assert 85 <= c["days_left"] <= 90  # Pebble's default profile: 90 days
        assert c["last_error"] is None
    www = doc["certificates"][0]
    assert [(t["provider"], t["target"]) for t in www["targets"]] == WWW_TARGET_IDS
    for t in www["targets"]:
        assert t["serial"] == www["serial"] == World.chain_serial(state, "www")
        assert t["state"] == "ok"
        verified = datetime.fromisoformat(t["verified_at"].replace("Z", "+00:00"))
        assert abs((now - verified).total_seconds()) < 120


def test_status_reports_a_failed_target(world, tmp_path):
    cert = World.cert("www", ["example.com", "*.example.com"], cdn=["cdn.example.com", "nope.example.com"])
    config = world.write_config(tmp_path, [cert])
    proc = world.cli(config, "--run-now")
    assert proc.returncode == 1, proc.stdout + proc.stderr

    doc = status_json(world, config)

    _check_shape(doc)
    www = doc["certificates"][0]
    assert www["serial"] == World.chain_serial(tmp_path / "state", "www")
    assert www["last_error"] and "nope.example.com" in www["last_error"]
    targets = {t["target"]: t for t in www["targets"]}
    assert targets["cdn.example.com"]["state"] == "ok"
    assert targets["cdn.example.com"]["serial"] == www["serial"]
    assert targets["nope.example.com"]["state"] == "error"
    assert targets["nope.example.com"]["verified_at"] is None
