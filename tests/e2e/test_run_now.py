"""``alicertd --run-now`` against the sandbox and Pebble: one cycle issues, deploys and verifies;
the next one has nothing to do and changes nothing."""

from __future__ import annotations

import json
import stat
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tests.e2e.helpers import (
    WWW_TARGETS,
    assert_serves,
    assert_state_parses,
    net_cert,
    pebble_orders,
    run_ok,
    write_calls,
    www_cert,
)
from tests.support.world import World


def test_run_now_issues_deploys_and_cleans_up(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    state = tmp_path / "state"

    proc = run_ok(world, config)

    assert "cycle succeeded" in proc.stdout
    www = assert_serves(world, state, "www", WWW_TARGETS)
    net = World.chain_serial(state, "net")
    assert net and net != www
    assert pebble_orders(world) == 2
    assert world.txt_records() == [], "a challenge record was left behind"
    # The sandbox's own view agrees with the handshake.
    for domain in ("cdn.example.com", "img.example.com"):
        binding = world.sandbox.cdn_binding(domain)
        assert binding["serial"] == www and binding["served"]["serial"] == www

    # Contract: state dir 0700, keys 0600, certificates/NAME/{fullchain,privkey}.pem.
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("www", "net"):
        chain_path = state / "certificates" / name / "fullchain.pem"
        key_path = state / "certificates" / name / "privkey.pem"
        assert chain_path.is_file() and key_path.is_file()
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        leaf = x509.load_pem_x509_certificates(chain_path.read_bytes())[0]
        key = load_pem_private_key(key_path.read_bytes(), password=None)
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        assert leaf.public_key().public_bytes(serialization.Encoding.DER, pub) == \
            key.public_key().public_bytes(serialization.Encoding.DER, pub), f"{name}: key does not match"
    sans = x509.load_pem_x509_certificate((state / "certificates/www/fullchain.pem").read_bytes()) \
        .extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sorted(sans) == ["*.example.com", "example.com"]
    assert_state_parses(state)


def test_second_run_now_does_nothing(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert(), net_cert()])
    state = tmp_path / "state"
    run_ok(world, config)
    serials = {n: World.chain_serial(state, n) for n in ("www", "net")}
    orders = pebble_orders(world)
    since = time.time()

    proc = run_ok(world, config)

    assert write_calls(world, since) == [], "an idle run changed something in the sandbox"
    assert pebble_orders(world) == orders, "an idle run created an ACME order"
    assert {n: World.chain_serial(state, n) for n in ("www", "net")} == serials
    assert "issued" not in proc.stdout.split("certificate  provider")[0]
    assert_serves(world, state, "www", WWW_TARGETS)


def test_invalid_config_exits_2_and_contacts_nothing(world, tmp_path):
    config = world.write_config(tmp_path, [www_cert()])
    config.write_text(config.read_text() + "\n[bogus]\nkey = 1\n")
    since = time.time()

    proc = world.cli(config, "--run-now")

    assert proc.returncode == 2, proc.stderr
    assert "bogus" in proc.stderr
    assert world.sandbox.calls(since=since) == []
    assert not (tmp_path / "state").exists()
    assert pebble_orders(world) == 0


def test_a_failed_issuance_backs_off_across_runs_and_force_overrides_it(world, tmp_path):
    world.sandbox.set_dns_delay(5)
    config = world.write_config(tmp_path, [www_cert()], propagation_timeout="1s")
    state = tmp_path / "state"

    failed = world.cli(config, "--run-now")
    assert failed.returncode == 1
    assert "propagation" in failed.stdout + failed.stderr
    assert world.txt_records() == []
    world.sandbox.set_dns_delay(0)

    for _ in range(2):  # the backoff survives runs that respect it
        since = time.time()
        proc = world.cli(config, "--run-now")
        assert proc.returncode == 1, "no certificate: not a success"
        assert "backing off" in proc.stdout
        assert world.sandbox.calls(since=since, action="AddDomainRecord") == [], "retried during the backoff"
    status = world.cli(config, "status", "--json")
    www = json.loads(status.stdout)["certificates"][0]
    assert www["serial"] is None and www["last_error"] and "propagation" in www["last_error"]

    run_ok(world, config, "--force", "www")
    assert_serves(world, state, "www", WWW_TARGETS)
