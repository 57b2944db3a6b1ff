"""Drift: someone replaces our certificate on a target (console, another tool); the next run
notices ("changed by someone else") and puts ours back."""

from __future__ import annotations

import time

from tests.e2e.helpers import (
    WWW_TARGETS,
    assert_serves,
    call_count,
    foreign_certificate,
    pebble_orders,
    run_ok,
    www_cert,
)


def test_run_now_rebinds_a_cdn_domain_changed_by_someone_else(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()])
    state = tmp_path / "state"
    run_ok(world, config)
    ours = assert_serves(world, state, "www", WWW_TARGETS)
    cert_pem, key_pem, foreign = foreign_certificate(["cdn.example.com"])
    world.sandbox.replace_cdn_binding("cdn.example.com", cert_pem=cert_pem, key_pem=key_pem,
                                      cert_name="someone-else")
    assert world.served_serial("cdn.example.com") == foreign
    orders = pebble_orders(world)
    since = time.time()

    proc = run_ok(world, config)

    line = next(line for line in proc.stderr.splitlines() if "binding serial" in line)
    assert "cdn.example.com" in line and "changed by someone else" in line
    assert_serves(world, state, "www", WWW_TARGETS)
    assert world.served_serial("cdn.example.com") == ours
    sets = world.sandbox.calls(since=since, action="SetCdnDomainSSLCertificate")
    assert [c["params"].get("DomainName") for c in sets] == ["cdn.example.com"], "only the drifted domain"
    assert call_count(world, "SetDomainCertificate", since) == 0
    assert pebble_orders(world) == orders, "drift is a redeploy, not a reissue"


def test_run_now_rebinds_an_api_gateway_domain_changed_by_someone_else(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()])
    state = tmp_path / "state"
    run_ok(world, config)
    cert_pem, key_pem, foreign = foreign_certificate(["api.example.com"])
    world.sandbox.replace_apigateway_binding("cn-shanghai", "abc123", "api.example.com", cert_pem=cert_pem,
                                             key_pem=key_pem, cert_name="someone_else")
    assert world.served_serial("api.example.com") == foreign
    since = time.time()

    proc = run_ok(world, config)

    assert "changed by someone else" in proc.stderr
    assert_serves(world, state, "www", WWW_TARGETS)
    assert call_count(world, "SetDomainCertificate", since) == 1
    assert call_count(world, "SetCdnDomainSSLCertificate", since) == 0
