"""``--run-now --force NAME``: a new certificate for NAME only, redeployed everywhere."""

from __future__ import annotations

import time

from tests.e2e.helpers import (
    WWW_TARGETS,
    assert_serves,
    call_count,
    net_cert,
    pebble_issued,
    run_ok,
    tree_snapshot,
    www_cert,
)
from tests.support.world import World


def test_force_renews_only_that_certificate_and_redeploys_it(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    state = tmp_path / "state"
    run_ok(world, config)
    old_www = assert_serves(world, state, "www", WWW_TARGETS)
    old_net = World.chain_serial(state, "net")
    net_files = {k: v for k, v in tree_snapshot(state).items()
                 if k.startswith(("archive/net", "certificates/net"))}
    assert net_files
    issued_before = len(pebble_issued(world))
    since = time.time()

    proc = run_ok(world, config, "--force", "www")

    new_www = assert_serves(world, state, "www", WWW_TARGETS)
    assert new_www != old_www
    assert pebble_issued(world)[issued_before:] == [new_www], "exactly one issuance, for www"
    assert World.chain_serial(state, "net") == old_net
    after = tree_snapshot(state)
    assert {k: after.get(k) for k in net_files} == net_files, "net's certificate files changed"
    assert call_count(world, "SetCdnDomainSSLCertificate", since) == 2
    assert call_count(world, "SetDomainCertificate", since) == 1
    assert "forced" in proc.stdout
    assert world.txt_records() == []


def test_force_of_an_unknown_name_is_a_usage_error(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()])
    since = time.time()

    proc = world.cli(config, "--run-now", "--force", "nope")

    assert proc.returncode == 2
    assert "nope" in proc.stderr
    assert world.sandbox.calls(since=since) == []
    assert not (tmp_path / "state").exists()
