"""Accounts against a real Pebble: register, find, info, contact update, key rollover,
deactivation, ensure_account, EAB, and directory failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon import keys
from daemon.acme import AcmeClient, ExternalAccountBinding
from daemon.acme import problems as p
from daemon.acme.account import client_for, ensure_account
from daemon.config import AcmeConfig
from tests.support.pebble import Pebble, free_port

pytestmark = pytest.mark.pebble

EAB_KID = "kid-1"
EAB_KEY = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


def config_for(ca: Pebble, **kw) -> AcmeConfig:
    return AcmeConfig(directory=ca.directory_url, directory_name=ca.directory_url, ca_bundle=Path(ca.ca_bundle),
                      email="ops@example.com", **kw)


def test_register_is_idempotent_and_find_returns_the_same_account(make_client, pebble):
    client = make_client(register=False)
    created = client.new_account(["mailto:ops@example.com"], tos_agreed=True)
    assert created.created and created.status == "valid" and created.contact == ("mailto:ops@example.com",)
    again = client.new_account(["mailto:ops@example.com"], tos_agreed=True)
    assert not again.created and again.url == created.url

    same_key = AcmeClient(pebble.directory_url, client.account_key, ca_bundle=pebble.ca_bundle)
    found = same_key.find_account()
    assert found.url == created.url and same_key.account_url == created.url
    info = same_key.account_info()
    assert info.status == "valid" and info.contact == ("mailto:ops@example.com",)
    same_key.close()


def test_find_account_for_an_unknown_key(make_client):
    client = make_client(register=False)
    with pytest.raises(p.AccountDoesNotExist) as info:
        client.find_account()
    assert client.account_url is None
    assert "\n" not in str(info.value) and "HTTP 400" in str(info.value)


def test_update_contact(client):
    updated = client.update_account(["mailto:new@example.com", "mailto:second@example.com"])
    assert updated.contact == ("mailto:new@example.com", "mailto:second@example.com")
    assert client.account_info().contact == updated.contact
    with pytest.raises((p.UnsupportedContact, p.InvalidContact)):
        client.update_account(["tel:+123456"])


def test_key_rollover(client, pebble):
    old_key, url = client.account_key, client.account_url
    new_key = keys.generate_private_key("ec384")
    account = client.key_change(new_key)
    assert account.url == url and account.status == "valid"
    assert account.contact == ("mailto:test@example.com",)  # read back with the new key
    assert client.account_key is new_key  # the client now signs with the new key
    assert client.account_info().url == url

    with AcmeClient(pebble.directory_url, old_key, ca_bundle=pebble.ca_bundle) as old, \
            pytest.raises(p.AccountDoesNotExist):
        old.find_account()
    with AcmeClient(pebble.directory_url, new_key, ca_bundle=pebble.ca_bundle) as new:
        assert new.find_account().url == url


def test_deactivate(client, pebble):
    account = client.deactivate_account()
    assert account.status == "deactivated"
    with pytest.raises(p.Unauthorized):
        client.account_info()
    with AcmeClient(pebble.directory_url, client.account_key, ca_bundle=pebble.ca_bundle) as again, \
            pytest.raises(p.Unauthorized, match="deactivated"):
        again.find_account()


# ----------------------------------------------------------------------------- ensure_account


def test_ensure_account_registers_once_then_reuses_and_recovers(pebble):
    config = config_for(pebble)
    key = keys.generate_private_key("ec256")
    told: list[str] = []
    with client_for(config, key) as client:
        first = ensure_account(client, config, None, on_tos=told.append)
    assert first.created and not first.recovered
    assert first.account.contact == ("mailto:ops@example.com",)
    assert told == ["data:text/plain,Do%20what%20thou%20wilt"]

    with client_for(config, key) as client:  # the URL saved: one check, nothing registered
        second = ensure_account(client, config, first.url)
        assert (second.url, second.created, second.recovered) == (first.url, False, False)
        assert client.account_url == first.url

    with client_for(config, key) as client:  # the URL lost: found again, not re-registered
        third = ensure_account(client, config, None)
    assert (third.url, third.created, third.recovered) == (first.url, False, True)

    stale = first.url.rsplit("/", 1)[0] + "/does-not-exist"
    with client_for(config, key) as client:  # a URL the CA forgot: the key's account is found
        fourth = ensure_account(client, config, stale)
    assert (fourth.url, fourth.created, fourth.recovered) == (first.url, False, True)


def test_ensure_account_refuses_a_deactivated_account(client, pebble):
    config = config_for(pebble)
    url = client.account_url
    client.deactivate_account()
    with client_for(config, client.account_key) as again, pytest.raises(p.AcmeError, match="deactivated"):
        ensure_account(again, config, url)


def test_profile_not_offered_is_a_config_error(client):
    with pytest.raises(p.AcmeConfigError) as info:
        client.new_order(["a.example.com"], profile="tlsserver")
    assert "acme.profile" in str(info.value) and "default, shortlived" in str(info.value)


# ----------------------------------------------------------------------------- EAB


@pytest.fixture(scope="module")
def pebble_eab(challtestsrv):
    with Pebble(dns_server=challtestsrv.dns_addr, eab={EAB_KID: EAB_KEY}) as ca:
        yield ca


def test_eab_registration(pebble_eab):
    config = config_for(pebble_eab, eab_kid=EAB_KID, eab_hmac_key=EAB_KEY)
    assert "eab_hmac_key" not in repr(config) or EAB_KEY not in repr(config)
    with client_for(config, keys.generate_private_key("ec256")) as client:
        assert client.directory.meta.external_account_required
        result = ensure_account(client, config, None)
        assert result.created and result.account.status == "valid"


def test_eab_required_but_not_configured(pebble_eab):
    config = config_for(pebble_eab)
    with client_for(config, keys.generate_private_key("ec256")) as client:
        with pytest.raises(p.AcmeConfigError, match=r"acme.eab_kid and acme.eab_hmac_key"):
            ensure_account(client, config, None)
        with pytest.raises(p.ExternalAccountRequired):  # the CA itself says so too
            client.new_account([], tos_agreed=True)
    half = config_for(pebble_eab, eab_kid=EAB_KID)
    with client_for(half, keys.generate_private_key("ec256")) as client, \
            pytest.raises(p.AcmeConfigError, match="acme.eab_hmac_key is missing"):
        ensure_account(client, half, None)


def test_eab_with_a_wrong_mac_key(pebble_eab):
    wrong = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH"
    with AcmeClient(pebble_eab.directory_url, keys.generate_private_key("ec256"),
                    ca_bundle=pebble_eab.ca_bundle) as client, \
            pytest.raises(p.Unauthorized, match="external account binding"):
        client.new_account([], tos_agreed=True, eab=ExternalAccountBinding(EAB_KID, wrong))


# ----------------------------------------------------------------------------- directory failures


def test_unreachable_directory_is_one_line_naming_the_url():
    url = f"https://127.0.0.1:{free_port()}/dir"
    slept: list[float] = []
    with AcmeClient(url, keys.generate_private_key("ec256"), sleep=slept.append) as client, \
            pytest.raises(p.AcmeUnreachable) as info:
        _ = client.directory
    message = str(info.value)
    assert message.startswith("acme: unreachable: cannot fetch the ACME directory")
    assert url in message and "\n" not in message and "Traceback" not in message
    assert len(slept) == 4  # bounded retries, each wait injectable
    assert info.value.retryable


def test_a_url_that_is_not_a_directory(challtestsrv):
    url = f"{challtestsrv.management_url}/no-such-directory"
    with AcmeClient(url, keys.generate_private_key("ec256")) as client, \
            pytest.raises(p.AcmeProtocolError) as info:
        _ = client.directory
    assert url in str(info.value) and "HTTP 404" in str(info.value) and "\n" not in str(info.value)


def test_wrong_ca_bundle_is_a_tls_error(pebble, tmp_path):
    other = tmp_path / "other-ca.pem"
    from tests.support.pebble import make_listener_certificate

    other.write_bytes(make_listener_certificate(["127.0.0.1"])[0])
    with AcmeClient(pebble.directory_url, keys.generate_private_key("ec256"), ca_bundle=str(other),
                    sleep=lambda s: None) as client, \
            pytest.raises(p.AcmeUnreachable, match="TLS error") as info:
        _ = client.directory
    assert pebble.directory_url in str(info.value) and not info.value.retryable
    assert client.round_trips == 1  # not retried
