"""ESA against the sandbox through the SDK: a site named by name gets the CAS certificate by
id; read back, verify (API + TLS edge); second run writes nothing; a renewal replaces our
previous certificate in place (no free slot needed, foreign ones untouched); a full site is
reported, never emptied; bad config named; permission error names the RAM action."""

from __future__ import annotations

import time

import pytest

from providers.base import ConfigDefaults, ConfigErrors, CredentialError, ProviderError
from providers.esa import EsaProvider, EsaSettings
from sandbox.certs import validate_pair
from sandbox.products.esa import EsaCert
from sandbox.state import StoredCert

from .certs import make_bundle
from .conftest import eventually, provider_for
from .targets_support import ctx_for, now, world, writes


@pytest.fixture
def sb():
    with world() as sandbox:
        yield sandbox


def target(site="example.com", site_id=None):
    return EsaProvider.expand(EsaSettings(site=site, site_id=site_id, region="cn-hangzhou"))[0]


def site_certs(sb, site_id=7000001):
    with sb.world.lock:
        return {c.id: c.cas.info.fingerprint for c in sb.world.esa_sites[site_id].certs.values()}


def add_foreign(sb, bundle, site_id=7000001):
    """A certificate someone else put on the site (uploaded to CAS by the console)."""
    with sb.world.lock:
        w = sb.world
        cas = StoredCert(cert_id=w.new_cert_id(), name=f"console-{bundle.serial[:8]}",
                         chain_pem=bundle.fullchain_pem, key_pem=bundle.key_pem,
                         info=validate_pair(bundle.fullchain_pem, bundle.key_pem), created=time.time())
        w.certs_by_id[cas.cert_id] = cas
        c = EsaCert(id=f"foreign{cas.cert_id}", cas=cas, cas_id=cas.cert_id, region="cn-hangzhou",
                    created=time.time() - 10, updated=time.time() - 10)
        w.esa_sites[site_id].certs[c.id] = c
        return c.id


def test_bind_by_site_name_read_verify_and_second_run_writes_nothing(sb, state_dir):
    bundle = make_bundle("www", ["example.com", "www.example.com"])
    ctx = ctx_for(sb, state_dir)
    provider = provider_for(EsaProvider, ctx)
    t = target()
    assert provider.read_bindings([t])[t].state == "none"
    provider.bind(t, bundle)
    binding = provider.verify(t, bundle, time.monotonic() + 20)
    assert binding.serves(bundle)
    assert list(site_certs(sb).values()) == [bundle.fingerprint]
    [set_call] = sb.calls(action="SetCertificate")
    assert (set_call["params"]["Type"], set_call["params"]["Region"], set_call["params"]["SiteId"]) == (
        "cas", "cn-hangzhou", "7000001")
    assert "Id" not in set_call["params"]
    assert eventually(lambda: {"example.com", "www.example.com"} <= {e.get("sni") for e in sb.edge_log()})

    since = now()
    ctx2 = ctx_for(sb, state_dir)
    ctx2.bundles["www"] = bundle
    again = provider_for(EsaProvider, ctx2)
    assert again.read_bindings([t])[t].serves(bundle)
    assert sb.call_counts(since=since) == {"ListSites": 1, "ListCertificates": 1}
    provider.bind(t, bundle)  # a retry: the certificate is there already
    assert writes(sb, since) == []


def test_renewal_replaces_ours_in_place_when_the_site_is_full(sb, state_dir):
    old = make_bundle("www", ["www.example.com"])
    new = make_bundle("www", ["www.example.com"])
    ctx = ctx_for(sb, state_dir)
    provider = provider_for(EsaProvider, ctx)
    t = target()
    provider.bind(t, old)
    provider.verify(t, old, time.monotonic() + 20)
    foreign = add_foreign(sb, make_bundle("other", ["shop.example.com"]))
    assert len(site_certs(sb)) == 2  # the quota of the site: full

    provider.bind(t, new)
    certs = site_certs(sb)
    assert sorted(certs.values()) == sorted([new.fingerprint, certs[foreign]])
    assert provider.verify(t, new, time.monotonic() + 20).serves(new)
    last = sb.calls(action="SetCertificate")[-1]
    assert last["params"].get("Id") and last["status"] == 200  # replaced in place, by id
    assert sb.calls(action="DeleteCertificate") == []
    assert foreign in site_certs(sb)


def test_a_full_site_without_ours_is_reported_and_left_alone(sb, state_dir):
    first = add_foreign(sb, make_bundle("a", ["a.example.com"]))
    second = add_foreign(sb, make_bundle("b", ["b.example.com"]))
    provider = provider_for(EsaProvider, ctx_for(sb, state_dir))
    with pytest.raises(ProviderError, match=r"^esa: example\.com: the site's plan allows no further "
                                            r"certificate \(CertQuotaCheckFailed\)"):
        provider.bind(target(), make_bundle("www", ["www.example.com"]))
    assert set(site_certs(sb)) == {first, second}


def test_leftover_superseded_ones_are_removed_after_verify(sb, state_dir):
    one, two, three = (make_bundle("www", ["www.example.org"]) for _ in range(3))
    ctx = ctx_for(sb, state_dir)
    provider = provider_for(EsaProvider, ctx)
    t = target("example.org")
    foreign = add_foreign(sb, make_bundle("x", ["x.example.org"]), site_id=7000002)
    provider.bind(t, one)
    # an earlier run added a second one beside it (e.g. before in-place replacement existed)
    with sb.world.lock:
        site = sb.world.esa_sites[7000002]
    from providers.cas import cas_hub
    cas_two = cas_hub(ctx).ensure(two)
    with sb.world.lock:
        site.certs["extra"] = EsaCert(id="extra", cas=sb.world.certs_by_id[cas_two.cert_id],
                                      cas_id=cas_two.cert_id, region="cn-hangzhou", created=time.time(),
                                      updated=time.time() + 5)
    provider.bind(t, three)  # replaces the newest of ours ("extra") in place
    assert provider.verify(t, three, time.monotonic() + 20).serves(three)
    assert sorted(site_certs(sb, 7000002).values()) == sorted(
        [three.fingerprint, site_certs(sb, 7000002)[foreign]])
    assert len(sb.calls(action="DeleteCertificate")) == 1


def test_drift_repaired_and_site_by_id(sb, state_dir):
    bundle = make_bundle("www", ["www.example.com", "elsewhere.example.org"])  # one name elsewhere
    ctx = ctx_for(sb, state_dir)
    ctx.bundles["www"] = bundle
    provider = provider_for(EsaProvider, ctx)
    t = target(site=None, site_id=7000001)
    provider.bind(t, bundle)
    provider.verify(t, bundle, time.monotonic() + 20)
    with sb.world.lock:  # someone removes it in the console and adds their own
        sb.world.esa_sites[7000001].certs.clear()
    add_foreign(sb, make_bundle("console", ["www.example.com"]))
    assert not provider.read_bindings([t])[t].serves(bundle)
    provider.bind(t, bundle)
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)
    assert sb.calls(action="ListSites") == []  # an id needs no lookup
    assert eventually(lambda: "www.example.com" in {e.get("sni") for e in sb.edge_log()})
    assert "elsewhere.example.org" not in {e.get("sni") for e in sb.edge_log()}  # only the site's names


def test_unknown_site_and_permission_errors(sb, state_dir):
    provider = provider_for(EsaProvider, ctx_for(sb, state_dir))
    t = target("nosuch.example")
    assert provider.read_bindings([t])[t].state == "unknown"
    limited = provider_for(EsaProvider, ctx_for(sb, state_dir, limited=True))
    with pytest.raises(CredentialError, match="must allow esa:SetCertificate$"):
        limited.bind(target(), make_bundle("www", ["www.example.com"]))


@pytest.mark.parametrize("raw, message", [
    ({}, "d.site: missing required key"),
    ({"site": "example.com", "site_id": 5}, "d.site_id: give site or site_id, not both"),
    ({"site": "example.com", "region": "us-east-1"},
     "d.region: invalid value 'us-east-1' (expected one of: cn-hangzhou, ap-southeast-1)"),
    ({"site_id": 0}, "d.site_id: 0 is out of range (1..)"),
    ({"site": "example.com", "domains": ["a"]}, "d.domains: unknown key"),
])
def test_bad_config_is_named(raw, message):
    errors = ConfigErrors()
    assert EsaProvider.parse_config(raw, "d", errors, ConfigDefaults(region="cn-hangzhou")) is None
    assert errors.messages == [message]
