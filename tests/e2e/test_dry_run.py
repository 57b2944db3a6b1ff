"""``--run-now --dry-run``: the plan, and nothing else — no write call to Alibaba Cloud, no ACME
order, no file written."""

from __future__ import annotations

import time

from tests.e2e.helpers import (
    WWW_CDN,
    foreign_certificate,
    net_cert,
    pebble_log,
    pebble_new_accounts,
    pebble_orders,
    run_ok,
    tree_snapshot,
    write_calls,
    www_cert,
)
from tests.support.world import SECRET_ENV


def _plan_rows(stdout: str) -> dict[str, list[str]]:
    """certificate name -> the cells of its row in the first (certificate) table."""
    rows: dict[str, list[str]] = {}
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("certificate") and "action" in line)
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = [c for c in line.split("  ") if c.strip()]
        rows[cells[0].strip()] = [c.strip() for c in cells]
    return rows


def test_dry_run_on_a_fresh_config_plans_everything_and_touches_nothing(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    state = tmp_path / "state"
    since = time.time()

    proc = world.cli(config, "--run-now", "--dry-run")

    assert proc.returncode == 0, f"the plan could be made: exit 0 (work due or not)\n{proc.stdout}\n{proc.stderr}"
    assert "dry run" in proc.stdout.lower()
    rows = _plan_rows(proc.stdout)
    assert rows["www"][1] == "issue" and rows["net"][1] == "issue"
    assert "no certificate" in rows["www"][2]
    for target in (*WWW_CDN, "api.example.com"):
        assert target in proc.stdout, f"{target} missing from the plan"
    assert write_calls(world, since) == []
    assert world.txt_records() == []
    assert not state.exists(), "a dry run created the state dir"
    assert pebble_orders(world) == 0 and pebble_new_accounts(world) == 0
    assert "/order-plz" not in pebble_log(world)  # Pebble's newOrder URL
    for domain in WWW_CDN:
        assert world.sandbox.cdn_binding(domain).get("serial") is None


def test_dry_run_with_nothing_due_exits_0_and_writes_nothing(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    state = tmp_path / "state"
    run_ok(world, config)
    before = tree_snapshot(state)
    orders = pebble_orders(world)
    since = time.time()

    proc = world.cli(config, "--run-now", "--dry-run")

    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    rows = _plan_rows(proc.stdout)
    assert rows["www"][1] == "keep" and rows["net"][1] == "keep"
    assert write_calls(world, since) == []
    assert pebble_orders(world) == orders
    assert tree_snapshot(state) == before, "a dry run changed the state dir"


def test_dry_run_with_drift_and_a_new_certificate_exits_0_and_changes_nothing(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()])
    state = tmp_path / "state"
    run_ok(world, config)
    cert_pem, key_pem, foreign = foreign_certificate(["cdn.example.com"])
    world.sandbox.replace_cdn_binding("cdn.example.com", cert_pem=cert_pem, key_pem=key_pem,
                                      cert_name="someone-else")
    world.write_config(tmp_path, [www_cert(), net_cert()])  # a certificate added since
    before = tree_snapshot(state)
    orders = pebble_orders(world)
    since = time.time()

    proc = world.cli(config, "--run-now", "--dry-run")

    assert proc.returncode == 0, f"work is due, but the plan could be made\n{proc.stdout}\n{proc.stderr}"
    rows = _plan_rows(proc.stdout)
    assert rows["net"][1] == "issue" and rows["www"][1] == "keep"
    drift_line = next(line for line in proc.stdout.splitlines() if "cdn.example.com" in line)
    assert "changed by someone else" in drift_line and "bind" in drift_line
    assert write_calls(world, since) == []
    assert pebble_orders(world) == orders
    assert tree_snapshot(state) == before
    assert world.sandbox.cdn_binding("cdn.example.com")["serial"] == foreign


def test_dry_run_that_cannot_read_a_target_exits_1_and_names_it(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()])
    state = tmp_path / "state"
    run_ok(world, config)
    before = tree_snapshot(state)
    since = time.time()

    # A wrong secret: every read of the CDN bindings is refused, so the plan is incomplete.
    proc = world.cli(config, "--run-now", "--dry-run", env={SECRET_ENV: "wrong"})

    assert proc.returncode == 1, f"{proc.stdout}\n{proc.stderr}"
    error_rows = [line for line in proc.stdout.splitlines() if "cdn.example.com" in line]
    assert error_rows and "error" in error_rows[0], proc.stdout
    assert write_calls(world, since) == []
    assert tree_snapshot(state) == before


def test_dry_run_with_a_bad_config_exits_2(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()])
    config.write_text(config.read_text().replace('interval = "12h"', 'interval = "12 hours"'))

    proc = world.cli(config, "--run-now", "--dry-run")

    assert proc.returncode == 2, f"{proc.stdout}\n{proc.stderr}"
    assert "schedule.interval" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists()
