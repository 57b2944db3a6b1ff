"""[dns] accounts (issue #16): zones searched across accounts, records written in the account
holding the zone (or the CNAME target's zone), duplicates refused; the sandbox's three-account
world (sandbox/fixtures/accounts.toml), A reached through its instance role, C by AccessKey."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import pytest

from daemon.config import AliyunConfig, DnsConfig
from daemon.state import DnsJournal
from providers.alidns import AlidnsProvider
from providers.base import DnsChallenge, ProviderContext, ProviderError
from sandbox import Sandbox
from sandbox.fixture import demo_fixture_path

from .conftest import make_config

LOG = logging.getLogger("test.alidns.accounts")
FIXTURE = demo_fixture_path().parent / "accounts.toml"
A, C = "1000000000000001", "3000000000000003"


@pytest.fixture
def asb():
    with Sandbox(fixture=FIXTURE) as sb:
        yield sb


def _provider(sb, tmp_path: Path, accounts=("default", "c")) -> AlidnsProvider:
    c = AliyunConfig(name="c", access_key_id="LTAIaccountc000000003",
                     access_key_secret="sandbox-account-c-secret-not-real",
                     endpoints={"alidns": sb.api_url}, metadata_endpoint=sb.metadata_url)
    aliyun = AliyunConfig(ram_role="alicertd-role", metadata_endpoint=sb.metadata_url,
                          endpoints={"alidns": sb.api_url}, accounts={"c": c})
    cfg = dataclasses.replace(
        make_config(tmp_path, aliyun=aliyun),
        dns=DnsConfig(nameservers=(f"127.0.0.1:{sb.dns_port}",), ttl=600, propagation_timeout=20.0,
                      accounts=tuple(accounts)))
    ctx = ProviderContext(config=cfg, journal=DnsJournal(tmp_path / "state"), log=LOG,
                          stop=threading.Event())
    return AlidnsProvider(ctx, None)


def _txt(sb, uid: str) -> list[str]:
    world = sb.world.accounts[uid]
    with world.lock:
        return sorted(f"{r.fqdn}={r.value}" for z in world.zones.values() for r in z.current.values()
                      if r.type == "TXT")


def _challenge(domain: str, value: str) -> DnsChallenge:
    return DnsChallenge(domain=domain, record_name=f"_acme-challenge.{domain}", value=value)


def test_records_land_in_the_account_holding_the_zone(asb, tmp_path):
    p = _provider(asb, tmp_path)
    handle = p.present([_challenge("www.example.com", "va"), _challenge("example.org", "vc")])
    assert _txt(asb, A) == ["_acme-challenge.www.example.com=va"]
    assert _txt(asb, C) == ["_acme-challenge.example.org=vc"]
    p.wait(handle, time.monotonic() + 20)
    entries = p.ctx.journal.entries("alidns").values()
    assert sorted(e.get("account", "default") for e in entries) == ["c", "default"]
    p.cleanup(handle)
    assert _txt(asb, A) == [] and _txt(asb, C) == []
    by_key = {c["access_key_id"][:4] for c in asb.calls(action="AddDomainRecord")}
    assert by_key == {"STS.", "LTAI"}  # A through its instance role, C through its own key


def test_cname_delegated_challenge_is_written_in_the_target_account(asb, tmp_path):
    asb.add_record("example.com", "_acme-challenge.shop", "CNAME", "shop.validation.example.org")
    p = _provider(asb, tmp_path)
    handle = p.present([_challenge("shop.example.com", "vd")])
    assert _txt(asb, C) == ["shop.validation.example.org=vd"] and _txt(asb, A) == []
    p.cleanup(handle)
    assert _txt(asb, C) == []


def test_longest_zone_wins_across_accounts(asb, tmp_path):
    c_world = asb.world.accounts[C]
    from sandbox.fixture import build_world
    sub = build_world({"settings": {"account_id": C}, "zone": [{"name": "deep.example.com"}]})
    with c_world.lock:
        c_world.zones.update(sub.zones)
    p = _provider(asb, tmp_path)
    assert p.zone_of("_acme-challenge.x.deep.example.com").name == "deep.example.com"
    assert p.account_of("deep.example.com") == "c" and p.account_of("example.com") == "default"


def test_same_zone_in_two_accounts_is_an_error_naming_both(asb, tmp_path):
    from sandbox.fixture import build_world
    sub = build_world({"settings": {"account_id": C}, "zone": [{"name": "example.com"}]})
    c_world = asb.world.accounts[C]
    with c_world.lock:
        c_world.zones.update(sub.zones)
    with pytest.raises(ProviderError) as info:
        _provider(asb, tmp_path).zone_of("example.com")
    msg = str(info.value)
    assert "example.com" in msg and "default and c" in msg


def test_only_listed_accounts_are_searched(asb, tmp_path):
    p = _provider(asb, tmp_path, accounts=("default",))
    with pytest.raises(ProviderError, match="no zone of this Alibaba Cloud account"):
        p.present([_challenge("example.org", "v")])
    assert not [c for c in asb.calls() if c["access_key_id"].startswith("LTAIaccountc")]
