"""CLB against the sandbox through the real access layer: the CAS certificate referenced in the
CLB store once per region, listener and domain-extension (SNI) certificates, drift, foreign
certificates left alone, our superseded store entries deleted, permissions, bad config."""

from __future__ import annotations

import time

import pytest

from daemon.config import AliyunConfig, VerifyConfig
from providers.base import Binding, ConfigDefaults, ConfigErrors, CredentialError
from providers.clb import ClbProvider
from sandbox import Sandbox
from sandbox.products import slb as sandbox_slb

from .certs import make_bundle
from .conftest import SANDBOX_AK, SANDBOX_SECRET, eventually, make_ctx, provider_for

LB = "lb-shop0001"
REGION = "cn-shanghai"
DOMAIN = "shop.example.com"
SNI = "api.example.com"
OTHER = "other.example.com"
WRITES = {"UploadServerCertificate", "SetLoadBalancerHTTPSListenerAttribute", "SetDomainExtensionAttribute",
          "DeleteServerCertificate", "UploadUserCertificate"}


def fixture(permissions=("*",)):
    return {
        "access_key": [{"id": SANDBOX_AK, "secret": SANDBOX_SECRET, "permissions": list(permissions)}],
        "clb_listener": [{"load_balancer_id": LB, "region": REGION, "port": 443, "domains": [SNI, OTHER]},
                         {"load_balancer_id": LB, "region": REGION, "port": 8443}],
    }


@pytest.fixture
def sb():
    with Sandbox(fixture()) as sandbox:
        yield sandbox


def ctx_for(sb, state_dir, *, tls=True):
    aliyun = AliyunConfig(access_key_id=SANDBOX_AK, access_key_secret=SANDBOX_SECRET,
                          region="cn-hangzhou", endpoints={"cas": sb.api_url, "slb": sb.api_url})
    verify = VerifyConfig(tls=tls, connect_to=f"127.0.0.1:{sb.edge_port}", timeout=20.0)
    return make_ctx(state_dir, aliyun=aliyun, verify=verify)


def target(slot="default", domain=DOMAIN, port=443, lb=LB):
    errors = ConfigErrors()
    settings = ClbProvider.parse_config({"load_balancer_id": lb, "listener_port": port, "domain": domain,
                                         "region": REGION, "slot": slot}, "certificate[0].deploy[0]",
                                        errors, ConfigDefaults("cn-hangzhou"))
    assert not errors.messages
    return ClbProvider.expand(settings)[0]


def writes(sb) -> list[str]:
    return [e["action"] for e in sb.calls() if e["action"] in WRITES and e["status"] == 200]


def test_default_bind_verify_then_zero_writes(sb, state_dir):
    bundle = make_bundle("shop", [DOMAIN])
    ctx = ctx_for(sb, state_dir)
    ctx.bundles["shop"] = bundle
    provider = provider_for(ClbProvider, ctx)
    t, t2 = target(), target(port=8443)
    assert provider.read_bindings([t, t2]) == {t: Binding("none"), t2: Binding("none")}
    for x in (t, t2):
        provider.bind(x, bundle)
        assert provider.verify(x, bundle, time.monotonic() + 20).serves(bundle)
    # the CAS certificate went into the region's CLB store once, by reference (no PEM sent)
    uploads = sb.calls(action="UploadServerCertificate")
    assert len(uploads) == 1 and "PrivateKey" not in uploads[0]["params"]
    assert uploads[0]["params"]["AliCloudCertificateRegionId"] == "cn-hangzhou"
    assert eventually(lambda: any(e.get("sni") == DOMAIN and e.get("served") == bundle.fingerprint
                                  for e in sb.edge_log()))

    sb.clear_calls()
    again = provider_for(ClbProvider, ctx)
    read = again.read_bindings([t, t2])
    assert all(b.serves(bundle) and b.serial == bundle.serial for b in read.values())
    assert dict(again.api.calls) == {"slb:DescribeLoadBalancerListeners": 1,  # both instances at once
                                     "slb:DescribeServerCertificates": 1}
    again.bind(t, bundle)
    assert writes(sb) == []


def test_sni_renewal_leaves_foreign_alone_and_deletes_our_superseded(sb, state_dir):
    other = make_bundle("other", [OTHER])
    foreign = sandbox_slb.add_server_certificate(sb.world, REGION, other.fullchain_pem, other.key_pem,
                                                 time.time())
    sandbox_slb.force(sb.world, LB, 443, extensions={OTHER: foreign})
    ctx = ctx_for(sb, state_dir)
    old = make_bundle("api", [SNI])
    ctx.bundles["api"] = old
    t = target("sni", SNI)
    provider = provider_for(ClbProvider, ctx)
    assert provider.read_bindings([t])[t] == Binding("none")
    provider.bind(t, old)
    old_sid = provider.verify(t, old, time.monotonic() + 20).cert_name

    new = make_bundle("api", [SNI])
    ctx.bundles["api"] = new
    provider = provider_for(ClbProvider, ctx)
    assert not provider.read_bindings([t])[t].serves(new)
    provider.bind(t, new)
    new_sid = provider.verify(t, new, time.monotonic() + 20).cert_name
    view = sandbox_slb.view(sb.world, LB, 443)
    assert view["extensions"] == {SNI: new_sid, OTHER: foreign}
    assert old_sid not in view["certificates"] and foreign in view["certificates"]
    assert [e["params"]["ServerCertificateId"] for e in sb.calls(action="DeleteServerCertificate")] == [old_sid]


def test_drift_is_repaired(sb, state_dir):
    bundle = make_bundle("shop", [DOMAIN])
    ctx = ctx_for(sb, state_dir)
    ctx.bundles["shop"] = bundle
    provider = provider_for(ClbProvider, ctx)
    t = target()
    provider.bind(t, bundle)
    provider.verify(t, bundle, time.monotonic() + 20)
    other = make_bundle("other", [DOMAIN])
    foreign = sandbox_slb.add_server_certificate(sb.world, REGION, other.fullchain_pem, other.key_pem,
                                                 time.time())
    sandbox_slb.force(sb.world, LB, 443, default=foreign)
    provider = provider_for(ClbProvider, ctx)
    drifted = provider.read_bindings([t])[t]
    assert not drifted.serves(bundle) and drifted.cert_name == foreign
    provider.bind(t, bundle)
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)
    assert foreign in sandbox_slb.view(sb.world, LB, 443)["certificates"]  # foreign: never deleted


def test_a_missing_listener_is_named_when_batched(sb, state_dir):
    provider = provider_for(ClbProvider, ctx_for(sb, state_dir, tls=False))
    t = target(port=9443)
    read = provider.read_bindings([t])[t]
    assert read.state == "unknown" and "no HTTPS listener on port 9443" in read.detail


def test_missing_domain_extension_is_named(sb, state_dir):
    bundle = make_bundle("shop", ["new.example.com"])
    provider = provider_for(ClbProvider, ctx_for(sb, state_dir, tls=False))
    t = target("sni", "new.example.com")
    assert provider.read_bindings([t])[t].state == "error"
    with pytest.raises(Exception, match="no domain extension for new.example.com"):
        provider.bind(t, bundle)


def test_missing_permission_names_the_action(state_dir):
    perms = ("yundun-cert:*", "slb:Describe*")
    with Sandbox(fixture(permissions=perms)) as sandbox:
        bundle = make_bundle("shop", [DOMAIN])
        provider = provider_for(ClbProvider, ctx_for(sandbox, state_dir, tls=False))
        with pytest.raises(CredentialError, match="slb:UploadServerCertificate"):
            provider.bind(target(), bundle)


@pytest.mark.parametrize("raw, message", [
    ({"listener_port": 443, "domain": DOMAIN}, "certificate[0].deploy[0].load_balancer_id: missing required key"),
    ({"load_balancer_id": LB, "domain": DOMAIN}, "certificate[0].deploy[0].listener_port: missing required key"),
    ({"load_balancer_id": LB, "listener_port": 70000, "domain": DOMAIN},
     "certificate[0].deploy[0].listener_port: 70000 is out of range"),
    ({"load_balancer_id": LB, "listener_port": "443", "domain": DOMAIN},
     "certificate[0].deploy[0].listener_port: expected an integer"),
    ({"load_balancer_id": LB, "listener_port": 443, "domain": DOMAIN, "slot": "x"},
     "certificate[0].deploy[0].slot: invalid value"),
    ({"load_balancer_id": LB, "listener_port": 443, "domain": DOMAIN, "listener_id": "x"},
     "certificate[0].deploy[0].listener_id: unknown key"),
    ({"load_balancer_id": LB, "listener_port": 443, "domain": DOMAIN, "account": "nope"}, "certificate[0].deploy[0].account: unknown account 'nope' (known: default)"),
])
def test_bad_config_is_named(raw, message):
    errors = ConfigErrors()
    assert ClbProvider.parse_config(raw, "certificate[0].deploy[0]", errors, ConfigDefaults("cn-hangzhou")) is None
    assert any(m.startswith(message) for m in errors.messages), errors.messages


def test_a_configured_account_names_the_targets():
    errors = ConfigErrors()
    raw = {"load_balancer_id": LB, "listener_port": 443, "domain": DOMAIN, "account": "media"}
    settings = ClbProvider.parse_config(raw, "certificate[0].deploy[0]", errors,
                                     ConfigDefaults("cn-hangzhou", accounts=("default", "media")))
    assert not errors.messages and settings.account == "media"
    assert ClbProvider.expand(settings)[0].name.startswith("media:")
