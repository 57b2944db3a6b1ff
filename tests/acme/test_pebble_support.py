"""The Pebble/challtestsrv helpers themselves (other suites and bench/ rely on them)."""

from __future__ import annotations

import dns.message
import dns.query
import pytest
import requests

from tests.support.pebble import Pebble, ensure_pebble

pytestmark = pytest.mark.pebble


def test_ensure_pebble_gives_the_bin_dir():
    bin_dir = ensure_pebble()
    assert (bin_dir / "pebble").exists() and (bin_dir / "pebble-challtestsrv").exists()


def test_challtestsrv_serves_several_values_and_clears_them(challtestsrv):
    name = "_acme-challenge.support-test.example.com"
    challtestsrv.set_txt(name, "one")
    challtestsrv.set_txt(name, "two")

    def served() -> set[str]:
        reply = dns.query.udp(dns.message.make_query(name + ".", "TXT"), "127.0.0.1",
                              port=challtestsrv.dns_port, timeout=2)
        return {b"".join(r.strings).decode() for rrset in reply.answer for r in rrset}

    assert served() == {"one", "two"}
    challtestsrv.clear_txt(name)
    assert served() == set()


def test_pebble_listener_and_management(pebble):
    directory = requests.get(pebble.directory_url, verify=pebble.ca_bundle, timeout=5).json()
    assert "renewalInfo" in directory and set(directory["meta"]["profiles"]) == {"default", "shortlived"}
    assert pebble.root_pem().startswith("-----BEGIN CERTIFICATE-----")
    assert pebble.root_pem(1) != pebble.root_pem(0)  # the session Pebble has an alternate root


def test_a_pebble_that_dies_at_start_raises_with_its_log():
    with pytest.raises(RuntimeError) as info:
        Pebble(extra_config={"certificate": "/nonexistent/cert.pem"}).start()
    assert "exited" in str(info.value) and "/nonexistent/cert.pem" in str(info.value)
