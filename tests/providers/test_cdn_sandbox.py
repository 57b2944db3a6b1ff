"""CDN against the sandbox: bind, read back, verify (API + TLS edge), drift, crash retries,
call counts at scale, faults. Everything goes through the SDK and our access layer."""

from __future__ import annotations

import time

import pytest

from daemon import planner
from providers.base import Binding, ProviderError, VerificationError
from providers.cdn import CdnProvider, CdnSettings
from providers.certnames import CDN_NAME_MAX, cert_name

from .certs import make_bundle
from .conftest import eventually, fast_api, provider_for, sandbox_ctx
from .tlsserver import TlsServer

DEMO = ("cdn.example.com", "img.example.com", "*.static.example.com")


def targets(*domains):
    return CdnProvider.expand(CdnSettings(tuple(domains)))


def test_bind_read_verify_with_tls_including_wildcard(sb, state_dir):
    www = make_bundle("www", ["cdn.example.com", "img.example.com"])
    static = make_bundle("static", ["*.static.example.com"])
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    ts = targets(*DEMO)
    assert provider.read_bindings(ts) == {t: Binding("none") for t in ts}

    for t in ts:
        provider.bind(t, static if t.domain.startswith("*.") else www)
    for t in ts:
        bundle = static if t.domain.startswith("*.") else www
        binding = provider.verify(t, bundle, time.monotonic() + 20)
        assert binding.serves(bundle) and binding.state == "ok"
        assert binding.cert_name == cert_name(bundle.name, bundle.fingerprint, CDN_NAME_MAX)
        served = sb.cdn_binding(t.domain)["served"]
        assert served["fingerprint"] == bundle.fingerprint

    # the wildcard domain was checked with a concrete name under it (the edge logs each
    # handshake from its own thread: give it a moment)
    assert eventually(lambda: any(e.get("sni") == "alicertd-verify.static.example.com"
                                  for e in sb.edge_log()))

    sb.clear_calls()
    provider.api.calls.clear()
    bindings = provider.read_bindings(ts)
    assert bindings[ts[0]].serves(www) and bindings[ts[1]].serves(www)
    assert bindings[ts[2]].serves(static) and not bindings[ts[2]].serves(www)
    assert dict(provider.api.calls) == {"cdn:DescribeCdnHttpsDomainList": 1}
    assert sb.call_counts() == {"DescribeCdnHttpsDomainList": 1}


def test_verify_waits_for_the_rollout(sb, state_dir):
    sb.set_cdn_rollout_seconds(1.0)
    old = make_bundle("www", ["img.example.com"])
    new = make_bundle("www", ["img.example.com"])
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    [t] = targets("img.example.com")
    provider.bind(t, old)
    provider.verify(t, old, time.monotonic() + 20)

    bound = time.time()  # the sandbox's clock: the rollout starts after this, lasts 1 s
    provider.bind(t, new)
    assert sb.cdn_binding("img.example.com")["served"]["fingerprint"] == old.fingerprint
    pending = provider.read_bindings([t])[t]
    assert pending.serves(new)  # the list shows the configuration, not the rollout
    assert provider.verify(t, new, time.monotonic() + 20).serves(new)
    assert time.time() >= bound + 1.0  # verify waited out the rollout
    assert sb.cdn_binding("img.example.com")["served"]["fingerprint"] == new.fingerprint


def test_verify_gives_up_at_the_deadline_naming_what_is_served(sb, state_dir):
    sb.set_cdn_rollout_seconds(30)
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    [t] = targets("img.example.com")
    bundle = make_bundle("www", ["img.example.com"])
    provider.bind(t, bundle)
    with pytest.raises(VerificationError) as info:
        provider.verify(t, bundle, time.monotonic() + 1.0)
    assert str(info.value) in ("cdn: img.example.com is still rolling out (Status checking) after 1s",
                               "cdn: img.example.com is still rolling out (Status checking) after 0s")


def test_verify_fails_when_the_edge_serves_something_else(sb, state_dir):
    bundle = make_bundle("www", ["img.example.com"])
    stale = make_bundle("www", ["img.example.com"])
    with TlsServer(default=stale) as wrong_edge:
        ctx = sandbox_ctx(sb, state_dir)
        ctx.config = ctx.config.__class__(**{**ctx.config.__dict__, "verify": ctx.config.verify.__class__(
            tls=True, connect_to=f"127.0.0.1:{wrong_edge.port}", timeout=5)})
        provider = provider_for(CdnProvider, ctx)
        [t] = targets("img.example.com")
        provider.bind(t, bundle)
        with pytest.raises(VerificationError,
                           match=rf"^cdn: img\.example\.com still serves serial {stale.serial} after \d+s$"):
            provider.verify(t, bundle, time.monotonic() + 1.5)


def test_verify_without_tls_uses_the_api_only(sb, state_dir):
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir, tls=False))
    [t] = targets("cdn.example.com")
    bundle = make_bundle("www", ["cdn.example.com"])
    provider.bind(t, bundle)
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)
    assert sb.edge_log() == []


def test_drift_is_seen(sb, state_dir):
    ours = make_bundle("www", ["cdn.example.com", "img.example.com"])
    theirs = make_bundle("console", ["img.example.com"])
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    ts = targets("cdn.example.com", "img.example.com")
    for t in ts:
        provider.bind(t, ours)
    sb.replace_cdn_binding("img.example.com", theirs.fullchain_pem, theirs.key_pem)

    provider.api.calls.clear()
    bindings = provider.read_bindings(ts)
    assert bindings[ts[0]].serves(ours)
    drifted = bindings[ts[1]]
    assert not drifted.serves(ours)
    assert (drifted.serial, drifted.fingerprint) == (theirs.serial, theirs.fingerprint)
    assert drifted.cert_name.startswith("console-")
    # one page, plus one close look where the page showed a name we did not make
    assert dict(provider.api.calls) == {"cdn:DescribeCdnHttpsDomainList": 1,
                                        "cdn:DescribeDomainCertificateInfo": 1}
    decision = planner.plan_target(drifted, serial=ours.serial, fingerprint=ours.fingerprint,
                                   last_deployed_fingerprint=ours.fingerprint)
    assert decision == planner.TargetDecision(True, planner.DRIFT)

    sb.replace_cdn_binding("cdn.example.com", None)  # HTTPS switched off in the console
    assert provider.read_bindings(ts)[ts[0]] == Binding("none")


def test_retry_after_a_crash_reuses_the_cert_name(sb, state_dir):
    bundle = make_bundle("www", ["cdn.example.com", "img.example.com"])
    [t1, t2] = targets("cdn.example.com", "img.example.com")
    provider_for(CdnProvider, sandbox_ctx(sb, state_dir)).bind(t1, bundle)  # then the run "crashes"
    first = sb.cdn_binding("cdn.example.com")["cert"]

    rerun = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))  # a new process, nothing remembered
    rerun.bind(t1, bundle)
    rerun.bind(t2, bundle)  # the same upload serves a second domain
    again, other = sb.cdn_binding("cdn.example.com")["cert"], sb.cdn_binding("img.example.com")["cert"]
    assert first["cert_name"] == again["cert_name"] == other["cert_name"]
    assert first["cert_id"] == again["cert_id"] == other["cert_id"]
    assert rerun.verify(t2, bundle, time.monotonic() + 20).serves(bundle)


def test_a_lost_answer_is_retried_and_converges(sb, state_dir):
    """SetCdnDomainSSLCertificate is applied but the connection drops before the answer: the
    access layer sends it again (ServiceBusy while the rollout runs, then success)."""
    sb.set_faults("SetCdnDomainSSLCertificate", script=["drop_after"])
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    [t] = targets("cdn.example.com")
    bundle = make_bundle("www", ["cdn.example.com"])
    provider.bind(t, bundle)
    assert provider.api.calls["cdn:SetCdnDomainSSLCertificate"] >= 2
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)


def test_a_fresh_run_identifies_our_name_without_close_looks(sb, state_dir):
    bundle = make_bundle("www", ["cdn.example.com", "img.example.com"])
    ts = targets("cdn.example.com", "img.example.com")
    first = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    for t in ts:
        first.bind(t, bundle)

    unknown_here = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    assert all(b.serves(bundle) for b in unknown_here.read_bindings(ts).values())
    assert unknown_here.api.calls["cdn:DescribeDomainCertificateInfo"] == 2  # exact, but per domain

    ctx = sandbox_ctx(sb, state_dir)
    ctx.bundles[bundle.name] = bundle  # what the daemon hands over
    known = provider_for(CdnProvider, ctx)
    assert all(b.serves(bundle) for b in known.read_bindings(ts).values())
    assert dict(known.api.calls) == {"cdn:DescribeCdnHttpsDomainList": 1}


def bulk_fixture(n: int) -> dict:
    return {
        "access_key": [{"id": "LTAIsandboxdemo000001", "secret": "sandbox-demo-secret-not-a-real-key"}],
        "cdn_domain": [{"name": f"d{i:04d}.bulk.example.com"} for i in range(n)]
                      + [{"name": "other.example.com"}],
        "settings": {"cdn_rollout_seconds": 0.0},
    }


def test_sixty_domains_cost_pages_not_sixty_calls(state_dir):
    from sandbox import Sandbox
    bundle = make_bundle("bulk", ["*.bulk.example.com"])
    with Sandbox(bulk_fixture(60)) as sandbox:
        ctx = sandbox_ctx(sandbox, state_dir, tls=False)
        provider = provider_for(CdnProvider, ctx)
        ts = targets(*(f"d{i:04d}.bulk.example.com" for i in range(60)))
        for t in ts:
            provider.bind(t, bundle)
        sandbox.replace_cdn_binding("other.example.com", *_pair(["other.example.com"]))
        ctx.bundles[bundle.name] = bundle  # what the daemon hands over

        provider = provider_for(CdnProvider, ctx)
        assert all(b.serves(bundle) for b in provider.read_bindings(ts).values())
        assert dict(provider.api.calls) == {"cdn:DescribeCdnHttpsDomainList": 1}

        small_pages = provider_for(CdnProvider, ctx)
        small_pages.page_sizes = (20,)
        sandbox.clear_calls()
        assert all(b.serves(bundle) for b in small_pages.read_bindings(ts).values())
        assert dict(small_pages.api.calls) == {"cdn:DescribeCdnHttpsDomainList": 3}  # all found by page 3
        assert sandbox.call_counts() == {"DescribeCdnHttpsDomainList": 3}


def _pair(domains):
    b = make_bundle("x", domains)
    return b.fullchain_pem, b.key_pem


def test_a_thousand_domains(state_dir):
    """The bench target: 1,000 domains read in two pages; close looks only where changed."""
    from sandbox import Sandbox
    bundle = make_bundle("bulk", ["*.bulk.example.com"])
    name = cert_name(bundle.name, bundle.fingerprint, CDN_NAME_MAX)
    domains = [f"d{i:04d}.bulk.example.com" for i in range(1000)]
    with Sandbox(bulk_fixture(1000)) as sandbox:
        for d in domains:  # planted through the admin API: 1,000 API binds would only slow the test
            sandbox.replace_cdn_binding(d, bundle.fullchain_pem, bundle.key_pem, cert_name=name)
        for d in domains[:3]:
            sandbox.replace_cdn_binding(d, *_pair([d]))
        ctx = sandbox_ctx(sandbox, state_dir, tls=False)
        ctx.bundles[bundle.name] = bundle  # what the daemon hands over
        provider = provider_for(CdnProvider, ctx)
        ts = targets(*domains)
        bindings = provider.read_bindings(ts)
        assert sum(b.serves(bundle) for b in bindings.values()) == 997
        assert dict(provider.api.calls) == {"cdn:DescribeCdnHttpsDomainList": 2,
                                            "cdn:DescribeDomainCertificateInfo": 3}


def test_thirty_percent_faults_still_converge(sb, state_dir):
    sb.set_faults("*", throttle=0.15, unavailable=0.15, seed=20240601)
    www = make_bundle("www", ["cdn.example.com", "img.example.com"])
    static = make_bundle("static", ["*.static.example.com"])
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    ts = targets(*DEMO)
    for t in ts:
        bundle = static if t.domain.startswith("*.") else www
        provider.bind(t, bundle)
        assert provider.verify(t, bundle, time.monotonic() + 30).serves(bundle)
    bindings = provider.read_bindings(ts)
    assert bindings[ts[0]].serves(www) and bindings[ts[2]].serves(static)
    faults = sum(1 for e in sb.calls() if e.get("fault"))
    assert faults > 0, "the fault rule did not fire: the test proves nothing"


def test_errors_are_one_line_and_name_the_product(sb, state_dir):
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    [t] = targets("missing.example.com")
    bundle = make_bundle("www", ["missing.example.com"])
    with pytest.raises(ProviderError) as info:
        provider.bind(t, bundle)
    assert str(info.value).startswith("cdn: SetCdnDomainSSLCertificate failed: InvalidDomain.NotFound")
    assert "\n" not in str(info.value) and "PRIVATE KEY" not in str(info.value)
    assert provider.read_bindings([t])[t] == Binding("none")


def test_stop_interrupts_verification(sb, state_dir):
    sb.set_cdn_rollout_seconds(30)
    ctx = sandbox_ctx(sb, state_dir)
    provider = provider_for(CdnProvider, ctx)
    [t] = targets("img.example.com")
    bundle = make_bundle("www", ["img.example.com"])
    provider.bind(t, bundle)
    import threading
    threading.Timer(0.3, ctx.stop.set).start()
    started = time.monotonic()
    with pytest.raises(ProviderError, match="interrupted"):
        provider.verify(t, bundle, time.monotonic() + 60)
    assert time.monotonic() - started < 5


def test_shared_api_instance(sb, state_dir):
    ctx = sandbox_ctx(sb, state_dir)
    api = fast_api(ctx)
    a, b = provider_for(CdnProvider, ctx, api=api), provider_for(CdnProvider, ctx, api=api)
    assert a.api is b.api


def test_a_thousand_domains_one_wildcard_certificate_one_upload(state_dir):
    """Issue #11: 1,000 CDN domains, one wildcard certificate: one CAS upload, 1,000 binds by id,
    no private key (nor any PEM) in any CDN call; a rerun finds everything bound by pages."""
    from concurrent.futures import ThreadPoolExecutor

    from sandbox import Sandbox
    bundle = make_bundle("bulk", ["*.bulk.example.com"])
    domains = [f"d{i:04d}.bulk.example.com" for i in range(1000)]
    with Sandbox(bulk_fixture(1000)) as sandbox:
        ctx = sandbox_ctx(sandbox, state_dir, tls=False)
        ctx.bundles[bundle.name] = bundle
        provider = provider_for(CdnProvider, ctx)
        ts = targets(*domains)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda t: provider.bind(t, bundle), ts))
        counts = sandbox.call_counts()
        assert counts["UploadUserCertificate"] == 1
        assert counts["SetCdnDomainSSLCertificate"] == 1000
        cdn_calls = [c for c in sandbox.calls() if c["product"] == "Cdn"]
        assert len(cdn_calls) == 1000
        for c in cdn_calls:
            assert not {"SSLPri", "SSLPub"} & set(c["params"]), c["params"]
            assert c["params"]["CertType"] == "cas" and c["params"]["CertRegion"] == "cn-hangzhou"
        [cas] = [c for c in sandbox.cas_certificates() if c["source"] == "cas"]
        assert len(cas["bound"]) == 1000
        assert {c["params"]["CertId"] for c in cdn_calls} == {cas["cert_id"]}

        sandbox.clear_calls()
        rerun = provider_for(CdnProvider, ctx)
        assert all(b.serves(bundle) for b in rerun.read_bindings(ts).values())
        assert sandbox.call_counts() == {"DescribeCdnHttpsDomainList": 2}


def test_our_pem_in_a_cas_certificate_we_did_not_upload_is_drift(sb, state_dir):
    """Someone uploads our very chain to CAS by hand and binds a domain to that copy: the domain
    does not count as ours (the copy is not ours to keep or delete), so it is rebound to our
    upload."""
    from providers.cas import _request
    bundle = make_bundle("www", ["cdn.example.com"])
    ctx = sandbox_ctx(sb, state_dir)
    ctx.bundles[bundle.name] = bundle
    provider = provider_for(CdnProvider, ctx)
    [t] = targets("cdn.example.com")
    copy = provider.api.call("cas", _request("UploadUserCertificate", Name="copy-by-hand",
                                             Cert=bundle.fullchain_pem, Key=bundle.key_pem))["CertId"]
    sb.set_cdn_rollout_seconds(0)
    provider.api.call("cdn", _request_cdn_by_id("cdn.example.com", copy))
    binding = provider.read_bindings([t])[t]
    assert not binding.serves(bundle) and "not uploaded by alicertd" in binding.detail
    assert planner.plan_target(binding, serial=bundle.serial, fingerprint=bundle.fingerprint,
                               last_deployed_fingerprint=None).due
    provider.bind(t, bundle)
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)
    info = sb.cdn_binding("cdn.example.com")["cert"]
    assert int(info["cert_id"]) == provider.hub.current("www").cert_id != copy


def _request_cdn_by_id(domain, cert_id):
    from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import (
        SetCdnDomainSSLCertificateRequest,
    )
    req = SetCdnDomainSSLCertificateRequest()
    for k, v in dict(DomainName=domain, SSLProtocol="on", CertType="cas", CertId=cert_id).items():
        req.add_query_param(k, v)
    return req


def test_our_upload_deleted_by_hand_is_uploaded_again(sb, state_dir):
    """The state dir remembers a CAS id that someone deleted in the console: the bind is
    refused, the listing confirms the certificate is gone, the hub uploads again, the bind
    succeeds (decided from the listing, not from the refusal's code)."""
    from providers.cas import _request
    bundle = make_bundle("www", ["cdn.example.com", "img.example.com"])
    provider = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    [t1, t2] = targets("cdn.example.com", "img.example.com")
    provider.bind(t1, bundle)
    first = provider.hub.ensure(bundle)
    sb.replace_cdn_binding("cdn.example.com", None)
    provider.api.call("cas", _request("DeleteUserCertificate", CertId=first.cert_id))

    rerun = provider_for(CdnProvider, sandbox_ctx(sb, state_dir))
    rerun.bind(t2, bundle)
    second = rerun.hub.ensure(bundle)
    assert second.cert_id != first.cert_id and rerun.hub.identify(first.cert_id) is None
    assert rerun.verify(t2, bundle, time.monotonic() + 20).serves(bundle)
