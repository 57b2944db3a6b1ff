"""DCDN against the sandbox through the SDK: bind by CAS id, read back, verify (API + TLS
edge, wildcard included), drift repaired, second run writes nothing, bad config named,
permission error naming the RAM action, ServiceBusy on a retry."""

from __future__ import annotations

import time

import pytest

from daemon.domains import dot_wildcard
from providers.base import ConfigDefaults, ConfigErrors, CredentialError
from providers.dcdn import DcdnProvider, DcdnSettings

from .certs import make_bundle
from .conftest import eventually, provider_for
from .targets_support import ctx_for, now, world, writes


@pytest.fixture
def sb():
    with world() as sandbox:
        yield sandbox


def targets(*domains):
    return DcdnProvider.expand(DcdnSettings(tuple(domains)))


def served(sb, domain):
    with sb.world.lock:
        d = sb.world.dcdn[dot_wildcard(domain)]
        d.settle(time.time())
        return d.served.cert.info.fingerprint if d.served.cert else None


def test_bind_read_verify_and_second_run_writes_nothing(sb, state_dir):
    www = make_bundle("www", ["dcdn.example.com", "api.example.com"])
    dyn = make_bundle("dyn", ["*.dyn.example.com"])
    provider = provider_for(DcdnProvider, ctx_for(sb, state_dir))
    ts = targets("dcdn.example.com", "api.example.com", "*.dyn.example.com")
    assert all(b.state == "none" for b in provider.read_bindings(ts).values())

    for t in ts:
        provider.bind(t, dyn if t.domain.startswith("*.") else www)
    for t in ts:
        bundle = dyn if t.domain.startswith("*.") else www
        assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)
        assert served(sb, t.domain) == bundle.fingerprint
    # one CAS upload per certificate, bound by id on every domain
    assert [c["action"] for c in sb.calls()].count("UploadUserCertificate") == 2
    set_calls = sb.calls(action="SetDcdnDomainSSLCertificate")
    assert {c["params"]["CertType"] for c in set_calls} == {"cas"}
    assert {c["params"]["DomainName"] for c in set_calls} == {"dcdn.example.com", "api.example.com",
                                                              ".dyn.example.com"}
    assert "SSLPri" not in "".join(str(c["params"]) for c in set_calls)
    assert eventually(lambda: any(e.get("sni") == "alicertd-verify.dyn.example.com"
                                  for e in sb.edge_log()))

    # a second run: one list page tells all three, nothing is written
    since = now()
    ctx = ctx_for(sb, state_dir)
    ctx.bundles.update(www=www, dyn=dyn)  # the daemon hands over the current bundles
    provider = provider_for(DcdnProvider, ctx)
    bindings = provider.read_bindings(ts)
    assert bindings[ts[0]].serves(www) and bindings[ts[1]].serves(www) and bindings[ts[2]].serves(dyn)
    assert sb.call_counts(since=since) == {"DescribeDcdnHttpsDomainList": 1}
    assert writes(sb, since) == []


def test_drift_is_seen_and_repaired(sb, state_dir):
    ours = make_bundle("www", ["dcdn.example.com"])
    theirs = make_bundle("console", ["dcdn.example.com"])
    provider = provider_for(DcdnProvider, ctx_for(sb, state_dir))
    [t] = targets("dcdn.example.com")
    provider.bind(t, ours)
    provider.verify(t, ours, time.monotonic() + 20)
    # someone binds another CAS certificate in the console
    other = provider_for(DcdnProvider, ctx_for(sb, state_dir / "other"))
    (state_dir / "other").mkdir()
    other.bind(t, theirs)
    other.verify(t, theirs, time.monotonic() + 20)

    binding = provider_for(DcdnProvider, ctx_for(sb, state_dir)).read_bindings([t])[t]
    assert not binding.serves(ours) and binding.fingerprint == theirs.fingerprint
    provider.bind(t, ours)
    assert provider.verify(t, ours, time.monotonic() + 20).serves(ours)
    assert served(sb, "dcdn.example.com") == ours.fingerprint


def test_retry_while_the_rollout_runs_is_done(sb, state_dir):
    bundle = make_bundle("www", ["dcdn.example.com"])
    provider = provider_for(DcdnProvider, ctx_for(sb, state_dir))
    [t] = targets("dcdn.example.com")
    provider.bind(t, bundle)
    provider.bind(t, bundle)  # ServiceBusy (still configuring), but ours: done
    assert "ServiceBusy" in {c["code"] for c in sb.calls(action="SetDcdnDomainSSLCertificate")}
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)


def test_unknown_domain_and_permission_errors_name_the_problem(sb, state_dir):
    bundle = make_bundle("www", ["nope.example.com"])
    provider = provider_for(DcdnProvider, ctx_for(sb, state_dir))
    [t] = targets("nope.example.com")
    assert provider.read_bindings([t])[t].state == "none"  # not in the HTTPS list
    with pytest.raises(Exception, match="InvalidDomain.NotFound"):
        provider.bind(t, bundle)

    limited = provider_for(DcdnProvider, ctx_for(sb, state_dir, limited=True))
    [t] = targets("dcdn.example.com")
    with pytest.raises(CredentialError, match="must allow dcdn:SetDcdnDomainSSLCertificate$"):
        limited.bind(t, make_bundle("www", ["dcdn.example.com"]))


@pytest.mark.parametrize("raw, message", [
    ({}, "certificate[0].deploy[0].domains: missing required key"),
    ({"domains": []}, "certificate[0].deploy[0].domains: must not be an empty list"),
    ({"domains": ["ok.example.com"], "domain": "x"}, "certificate[0].deploy[0].domain: unknown key"),
    ({"domains": ["ok.example.com"], "account": 3},
     "certificate[0].deploy[0].account: expected a string, got an integer"),
])
def test_bad_config_is_named(raw, message):
    errors = ConfigErrors()
    assert DcdnProvider.parse_config(raw, "certificate[0].deploy[0]", errors,
                                     ConfigDefaults(region="cn-hangzhou")) is None
    assert errors.messages == [message]
