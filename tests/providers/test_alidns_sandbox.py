"""AlidnsProvider end to end against the sandbox (its API through the official SDK, its
authoritative DNS servers through dnspython). Nothing of ours is mocked."""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
import tomllib
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from daemon.config import AliyunConfig, DnsConfig
from daemon.state import DnsJournal
from providers.alidns import AlidnsProvider
from providers.base import CredentialError, DnsChallenge, DnsProvider, ProviderContext, ProviderError

from .conftest import make_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = tomllib.loads((ROOT / "sandbox" / "fixtures" / "demo.toml").read_text())
KEY_ID = DEMO["access_key"][0]["id"]
SECRET = DEMO["access_key"][0]["secret"]
LOG = logging.getLogger("test.alidns")


def fixture_with(**zone_records) -> dict:
    """The demo fixture plus records: ``example_com=[{"rr":…, "type":…, "value":…}]``."""
    fx = copy.deepcopy(DEMO)
    for zone_key, records in zone_records.items():
        zone = zone_key.replace("_", ".")
        for z in fx["zone"]:
            if z["name"] == zone:
                z.setdefault("record", []).extend(records)
                break
        else:
            fx["zone"].append({"name": zone, "record": list(records)})
    return fx


class World:
    """A provider wired to the sandbox, its journal, and DNS probes."""

    def __init__(self, sb, tmp_path: Path, *, key=(KEY_ID, SECRET), nameservers=None, api=None):
        self.sb = sb
        self.journal = DnsJournal(tmp_path / "state")
        cfg = make_config(tmp_path, aliyun=AliyunConfig(
            access_key_id=key[0], access_key_secret=key[1],
            endpoints={"alidns": sb.api_url}))
        ns = nameservers if nameservers is not None else (f"127.0.0.1:{sb.dns_port}",
                                                          f"127.0.0.1:{sb.dns2_port}")
        self.config = dataclasses.replace(cfg, dns=DnsConfig(nameservers=tuple(ns), ttl=600,
                                                              propagation_timeout=30.0))
        self.stop = threading.Event()
        self.ctx = ProviderContext(config=self.config, journal=self.journal, log=LOG, stop=self.stop)
        self.provider = AlidnsProvider(self.ctx, None, api=api)

    def new_provider(self) -> AlidnsProvider:
        """A fresh instance, as the next run (after a crash) would create it."""
        return AlidnsProvider(self.ctx, None)

    def txt(self, fqdn: str) -> list[dict]:
        return [r for r in self.sb.records() if r["FQDN"] == fqdn and r["Type"] == "TXT"]

    def served(self, fqdn: str, port: int) -> set[str]:
        q = dns.message.make_query(fqdn, dns.rdatatype.TXT)
        resp = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        return {b"".join(rd.strings).decode() for rrset in resp.answer
                if rrset.rdtype == dns.rdatatype.TXT for rd in rrset}

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.sb.call_counts().items() if not k.startswith("Metadata")}


@pytest.fixture
def world(sandbox, tmp_path):
    return World(sandbox, tmp_path)


def challenge(domain: str, value: str) -> DnsChallenge:
    base = domain[2:] if domain.startswith("*.") else domain
    return DnsChallenge(domain=domain, record_name=f"_acme-challenge.{base}", value=value)


def deadline(seconds: float = 20.0) -> float:
    return time.monotonic() + seconds


# --------------------------------------------------------------------------- shape


def test_is_a_dns_provider(world):
    assert isinstance(world.provider, DnsProvider)
    assert (AlidnsProvider.kind, AlidnsProvider.name) == ("dns", "alidns")


def test_parse_config_accepts_empty_and_refuses_unknown_keys():
    from providers.base import ConfigDefaults, ConfigErrors

    errors = ConfigErrors()
    assert AlidnsProvider.parse_config({}, "dns", errors, ConfigDefaults("cn-hangzhou")) is None
    assert not errors
    AlidnsProvider.parse_config({"foo": 1}, "dns", errors, ConfigDefaults("cn-hangzhou"))
    assert errors.messages == ["dns.foo: unknown key (alidns has no settings of its own)"]


# --------------------------------------------------------------------------- zones


def test_zone_discovery_longest_suffix(world):
    p = world.provider
    assert p.zone_of("_acme-challenge.example.com").name == "example.com"
    assert p.zone_of("_acme-challenge.app.dev.example.com").name == "dev.example.com"
    assert p.zone_of("dev.example.com").name == "dev.example.com"
    assert p.zone_of("_acme-challenge.www.acme-validation.example.org").name == "acme-validation.example.org"
    assert p.zone_of("example.org") is None
    assert p.zone_of("notexample.com") is None
    assert world.counts() == {"DescribeDomains": 1}  # cached per instance


def test_zone_discovery_reads_every_page(sandbox, tmp_path):
    fx = copy.deepcopy(DEMO)
    fx["zone"] += [{"name": f"z{i:03d}.example.info"} for i in range(230)]
    sandbox.load_fixture(fx)
    w = World(sandbox, tmp_path)
    assert w.provider.zone_of("_acme-challenge.z229.example.info").name == "z229.example.info"
    assert w.provider.zone_of("_acme-challenge.example.net").name == "example.net"
    pages = [c["params"]["PageNumber"] for c in sandbox.calls(action="DescribeDomains")]
    assert pages == ["1", "2", "3"]
    assert {c["params"]["PageSize"] for c in sandbox.calls(action="DescribeDomains")} == {"100"}


def test_name_in_no_zone_is_an_error_naming_it(world):
    with pytest.raises(ProviderError) as info:
        world.provider.present([challenge("shop.example.io", "v1")])
    msg = str(info.value)
    assert msg.startswith("alidns: ") and "_acme-challenge.shop.example.io" in msg
    assert world.journal.entries("alidns") == {}
    assert "AddDomainRecord" not in world.counts()


def test_idn_names_are_punycode(sandbox, tmp_path):
    sandbox.load_fixture(fixture_with(**{"xn--bcher-kva_example": []}))
    w = World(sandbox, tmp_path)
    ch = DnsChallenge("bücher.example", "_acme-challenge.bücher.example", "idn-value")
    handle = w.provider.present([ch])
    w.provider.wait(handle, deadline())
    assert [r["Value"] for r in w.txt("_acme-challenge.xn--bcher-kva.example")] == ["idn-value"]
    w.provider.cleanup(handle)
    assert w.txt("_acme-challenge.xn--bcher-kva.example") == []


# --------------------------------------------------------------------------- the flow


def test_wildcard_and_apex_present_wait_cleanup(world, caplog):
    spf = world.txt("example.com")
    p = world.provider
    chs = [challenge("example.com", "apex-value"), challenge("*.example.com", "wildcard-value")]
    with caplog.at_level(logging.INFO, logger=LOG.name):
        handle = p.present(chs)
        recs = world.txt("_acme-challenge.example.com")
        assert sorted(r["Value"] for r in recs) == ["apex-value", "wildcard-value"]
        assert {r["TTL"] for r in recs} == {600}
        entries = world.journal.entries("alidns")
        assert sorted(e["value"] for e in entries.values()) == ["apex-value", "wildcard-value"]
        assert {e["record_id"] for e in entries.values()} == {r["RecordId"] for r in recs}
        assert {(e["zone"], e["rr"]) for e in entries.values()} == {("example.com", "_acme-challenge")}

        p.wait(handle, deadline())
        for port in (world.sb.dns_port, world.sb.dns2_port):
            assert {"apex-value", "wildcard-value"} <= world.served("_acme-challenge.example.com", port)

        p.cleanup(handle)
    assert world.txt("_acme-challenge.example.com") == []
    assert world.journal.entries("alidns") == {}
    assert world.txt("example.com") == spf  # the SPF record next door is untouched
    assert any("propagated to 2 nameservers in" in r.getMessage() for r in caplog.records)
    counts = world.counts()
    assert counts == {"DescribeDomains": 1, "DescribeSubDomainRecords": 1,
                      "AddDomainRecord": 2, "DeleteDomainRecord": 2}
    assert p.api.calls == {"alidns:DescribeDomains": 1, "alidns:DescribeSubDomainRecords": 1,
                           "alidns:AddDomainRecord": 2, "alidns:DeleteDomainRecord": 2}
    p.cleanup(handle)  # idempotent: nothing more is sent
    assert world.counts() == counts


def test_wait_returns_only_when_every_nameserver_serves_every_value(sandbox, tmp_path):
    sandbox.set_dns_delay(0.8, ns2_extra=0.7)
    w = World(sandbox, tmp_path)
    handle = w.provider.present([challenge("example.net", "a1"), challenge("*.example.net", "a2")])
    started = time.monotonic()
    assert w.served("_acme-challenge.example.net", sandbox.dns_port) == set()
    w.provider.wait(handle, deadline())
    # at the moment wait returns, both servers answer with both values
    for port in (sandbox.dns_port, sandbox.dns2_port):
        assert {"a1", "a2"} <= w.served("_acme-challenge.example.net", port)
    assert time.monotonic() - started >= 1.0  # it did wait for ns2's lag (1.5 s after creation)
    w.provider.cleanup(handle)


def test_wait_uses_the_zones_nameservers_when_none_configured(sandbox, tmp_path):
    """Without [dns] nameservers the zone's NS names (DescribeDomains DnsServers) are asked;
    the sandbox's NS names do not resolve here, so the error must name them."""
    w = World(sandbox, tmp_path, nameservers=())
    handle = w.provider.present([challenge("example.com", "v")])
    try:
        with pytest.raises(ProviderError) as info:
            w.provider.wait(handle, deadline(3))
        assert str(info.value).startswith("alidns: ") and "ns1.sandbox.alicertd.test" in str(info.value)
    finally:
        w.provider.cleanup(handle)


def test_wait_deadline_then_cleanup(sandbox, tmp_path):
    sandbox.set_dns_delay(30.0)
    w = World(sandbox, tmp_path)
    handle = w.provider.present([challenge("example.com", "late")])
    t0 = time.monotonic()
    with pytest.raises(ProviderError) as info:
        w.provider.wait(handle, time.monotonic() + 1.0)
    assert time.monotonic() - t0 < 4.0
    assert str(info.value).startswith("alidns: ") and "_acme-challenge.example.com" in str(info.value)
    w.provider.cleanup(handle)
    assert w.txt("_acme-challenge.example.com") == []
    assert w.journal.entries("alidns") == {}


def test_stop_event_cancels_wait(sandbox, tmp_path):
    sandbox.set_dns_delay(30.0)
    w = World(sandbox, tmp_path)
    handle = w.provider.present([challenge("example.com", "v")])
    threading.Timer(0.3, w.stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(ProviderError, match="cancelled"):
        w.provider.wait(handle, deadline(60))
    assert time.monotonic() - t0 < 5
    w.provider.cleanup(handle)  # cleanup still reaches the API while stopping
    assert w.txt("_acme-challenge.example.com") == []


# --------------------------------------------------------------------------- delegation


def test_cname_delegation_writes_at_the_target(sandbox, tmp_path):
    sandbox.load_fixture(fixture_with(example_com=[
        {"rr": "_acme-challenge.shop", "type": "CNAME", "value": "shop.acme-validation.example.org"}]))
    w = World(sandbox, tmp_path)
    handle = w.provider.present([challenge("shop.example.com", "delegated")])
    assert [r["Value"] for r in w.txt("shop.acme-validation.example.org")] == ["delegated"]
    assert w.txt("_acme-challenge.shop.example.com") == []
    (entry,) = w.journal.entries("alidns").values()
    assert (entry["zone"], entry["rr"]) == ("acme-validation.example.org", "shop")
    w.provider.wait(handle, deadline())
    assert "delegated" in w.served("shop.acme-validation.example.org", sandbox.dns2_port)
    w.provider.cleanup(handle)
    assert w.txt("shop.acme-validation.example.org") == []


def test_cname_chain_is_followed(sandbox, tmp_path):
    sandbox.load_fixture(fixture_with(
        example_net=[{"rr": "_acme-challenge", "type": "CNAME", "value": "hop.example.com"}],
        example_com=[{"rr": "hop", "type": "CNAME", "value": "net.acme-validation.example.org"}]))
    w = World(sandbox, tmp_path)
    handle = w.provider.present([challenge("example.net", "v1"), challenge("*.example.net", "v2")])
    assert sorted(r["Value"] for r in w.txt("net.acme-validation.example.org")) == ["v1", "v2"]
    w.provider.wait(handle, deadline())
    w.provider.cleanup(handle)
    assert w.txt("net.acme-validation.example.org") == []


def test_cname_to_a_foreign_zone_is_an_error(sandbox, tmp_path):
    sandbox.load_fixture(fixture_with(example_com=[
        {"rr": "_acme-challenge.x", "type": "CNAME", "value": "x.validation.example.io"}]))
    w = World(sandbox, tmp_path)
    with pytest.raises(ProviderError) as info:
        w.provider.present([challenge("x.example.com", "v")])
    msg = str(info.value)
    assert msg.startswith("alidns: x.validation.example.io") and "CNAME" in msg


# --------------------------------------------------------------------------- odd answers


def test_duplicate_with_our_value_is_adopted_and_cleaned(world):
    rid = world.sb.add_record("example.com", "_acme-challenge", "TXT", "same-value")
    handle = world.provider.present([challenge("example.com", "same-value")])
    (entry,) = world.journal.entries("alidns").values()
    assert entry["record_id"] == rid
    world.provider.cleanup(handle)
    assert world.txt("_acme-challenge.example.com") == []


def test_dropped_answer_to_add_is_recovered(world):
    """AddDomainRecord executed but its answer lost: the retry says DomainRecordDuplicate, the
    record is found by value and cleaned up by id."""
    world.sb.set_faults("AddDomainRecord", script=["drop_after", "ok"])
    handle = world.provider.present([challenge("example.com", "v")])
    (rec,) = world.txt("_acme-challenge.example.com")
    assert world.sb.calls(action="AddDomainRecord")[-1]["code"] == "DomainRecordDuplicate"
    (entry,) = world.journal.entries("alidns").values()
    assert entry["record_id"] == rec["RecordId"]
    world.provider.cleanup(handle)
    assert world.txt("_acme-challenge.example.com") == []


def test_failure_in_present_removes_what_was_created(world):
    world.sb.set_faults("AddDomainRecord", script=["ok"] + ["unavailable"] * 6)
    world.provider.api._sleep = lambda s: None  # no real backoff waits in this test
    with pytest.raises(ProviderError) as info:
        world.provider.present([challenge("example.com", "first"), challenge("*.example.com", "second")])
    assert info.value.code == "ServiceUnavailable"
    assert world.txt("_acme-challenge.example.com") == []
    assert world.journal.entries("alidns") == {}
    assert "DeleteSubDomainRecords" not in world.counts()


def test_missing_permission_to_add_names_the_action(sandbox, tmp_path):
    fx = copy.deepcopy(DEMO)
    fx["access_key"] = [{"id": "LTAIdescribeonly00001", "secret": "d-secret",
                         "permissions": ["alidns:Describe*"]}]
    sandbox.load_fixture(fx)
    w = World(sandbox, tmp_path, key=("LTAIdescribeonly00001", "d-secret"))
    with pytest.raises(CredentialError) as info:
        w.provider.present([challenge("example.com", "v")])
    assert "alidns:AddDomainRecord" in str(info.value) and "\n" not in str(info.value)
    assert w.journal.entries("alidns") == {}
    assert sandbox.call_counts().get("AddDomainRecord") == 1


# --------------------------------------------------------------------------- crashes


def test_leftover_with_record_id_is_removed_and_foreign_record_kept(world):
    foreign = world.sb.add_record("example.com", "_acme-challenge", "TXT", "someone-else")
    handle = world.provider.present([challenge("example.com", "ours")])
    del handle  # crash: the run never cleans up
    nxt = world.new_provider()
    assert nxt.cleanup_leftovers() == 1
    assert [r["RecordId"] for r in world.txt("_acme-challenge.example.com")] == [foreign]
    assert world.journal.entries("alidns") == {}
    assert nxt.cleanup_leftovers() == 0


def test_leftover_without_record_id_is_found_by_value(world):
    """Crash between journal.add and the journal update: the record exists, its id unknown."""
    foreign = world.sb.add_record("example.com", "_acme-challenge", "TXT", "someone-else")
    ours = world.sb.add_record("example.com", "_acme-challenge", "TXT", "ours")
    world.journal.add("alidns", {"zone": "example.com", "rr": "_acme-challenge",
                                 "fqdn": "_acme-challenge.example.com", "value": "ours"})
    assert world.new_provider().cleanup_leftovers() == 1
    ids = [r["RecordId"] for r in world.txt("_acme-challenge.example.com")]
    assert ids == [foreign] and ours not in ids
    assert world.journal.entries("alidns") == {}
    assert "DeleteSubDomainRecords" not in world.counts()


def test_leftover_never_created_just_leaves_the_journal(world):
    foreign = world.sb.add_record("example.com", "_acme-challenge", "TXT", "someone-else")
    world.journal.add("alidns", {"zone": "example.com", "rr": "_acme-challenge",
                                 "fqdn": "_acme-challenge.example.com", "value": "never-created"})
    assert world.new_provider().cleanup_leftovers() == 0
    assert [r["RecordId"] for r in world.txt("_acme-challenge.example.com")] == [foreign]
    assert world.journal.entries("alidns") == {}


def test_leftover_record_id_reused_for_another_value_is_left_alone(world):
    other = world.sb.add_record("example.com", "_acme-challenge", "TXT", "changed-by-someone")
    world.journal.add("alidns", {"zone": "example.com", "rr": "_acme-challenge",
                                 "fqdn": "_acme-challenge.example.com", "value": "ours",
                                 "record_id": other})
    assert world.new_provider().cleanup_leftovers() == 0
    assert [r["RecordId"] for r in world.txt("_acme-challenge.example.com")] == [other]


def test_leftover_already_deleted_is_fine(world):
    handle = world.provider.present([challenge("example.com", "ours")])
    (rec,) = world.txt("_acme-challenge.example.com")
    assert world.sb.delete_record(rec["RecordId"])
    del handle
    assert world.new_provider().cleanup_leftovers() == 0
    assert world.journal.entries("alidns") == {}


def test_cleanup_of_a_record_deleted_meanwhile_does_not_raise(world):
    handle = world.provider.present([challenge("example.com", "ours")])
    (rec,) = world.txt("_acme-challenge.example.com")
    world.sb.delete_record(rec["RecordId"])
    world.provider.cleanup(handle)
    assert world.journal.entries("alidns") == {}
