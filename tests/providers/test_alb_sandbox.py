"""ALB against the sandbox through the real access layer: default and SNI certificates by CAS
id, Configuring listeners, drift, foreign certificates left alone, permissions, bad config."""

from __future__ import annotations

import time

import pytest

from daemon.config import AliyunConfig, VerifyConfig
from providers.alb import AlbProvider
from providers.base import Binding, ConfigDefaults, ConfigErrors, CredentialError, ProviderError
from sandbox import Sandbox
from sandbox.certs import validate_pair
from sandbox.products import alb as sandbox_alb
from sandbox.state import StoredCert

from .certs import make_bundle
from .conftest import SANDBOX_AK, SANDBOX_SECRET, eventually, make_ctx, provider_for

LISTENER = "lsn-shop0001"
REGION = "cn-shanghai"
DOMAIN = "shop.example.com"
WRITES = {"alb:UpdateListenerAttribute", "alb:AssociateAdditionalCertificatesWithListener",
          "alb:DissociateAdditionalCertificatesFromListener", "cas:UploadUserCertificate"}


def fixture(configuring: float = 0.3, permissions=("*",), **listener):
    return {
        "access_key": [{"id": SANDBOX_AK, "secret": SANDBOX_SECRET, "permissions": list(permissions)}],
        "alb_listener": [{"id": LISTENER, "region": REGION, "configuring_seconds": configuring,
                          **listener}],
    }


@pytest.fixture
def sb():
    with Sandbox(fixture()) as sandbox:
        yield sandbox


def ctx_for(sb, state_dir, *, tls=True, timeout=20.0):
    aliyun = AliyunConfig(access_key_id=SANDBOX_AK, access_key_secret=SANDBOX_SECRET,
                          region="cn-hangzhou", endpoints={"cas": sb.api_url, "alb": sb.api_url})
    verify = VerifyConfig(tls=tls, connect_to=f"127.0.0.1:{sb.edge_port}", timeout=timeout)
    return make_ctx(state_dir, aliyun=aliyun, verify=verify)


def target(slot="default", domain=DOMAIN, listener=LISTENER, region=REGION):
    errors = ConfigErrors()
    settings = AlbProvider.parse_config({"listener_id": listener, "domain": domain, "region": region,
                                         "slot": slot}, "certificate[0].deploy[0]", errors,
                                        ConfigDefaults("cn-hangzhou"))
    assert not errors.messages
    return AlbProvider.expand(settings)[0]


def foreign_cas_id(sb, domains) -> str:
    """A CAS certificate somebody else uploaded (alicertd has no record of it)."""
    other = make_bundle("other", domains)
    with sb.world.lock:
        cert = StoredCert(cert_id=sb.world.new_cert_id(), name="uploaded-by-hand",
                          chain_pem=other.fullchain_pem, key_pem=other.key_pem,
                          info=validate_pair(other.fullchain_pem, other.key_pem), created=time.time(),
                          region="cn-hangzhou", source="cas")
        sb.world.certs_by_id[cert.cert_id] = cert
    return f"{cert.cert_id}-cn-hangzhou"


def writes(sb) -> list[str]:
    return [f"{e['product'].lower()}:{e['action']}" for e in sb.calls()
            if f"{e['product'].lower()}:{e['action']}" in WRITES and e["status"] == 200]


def test_default_bind_read_verify_then_zero_writes(sb, state_dir):
    bundle = make_bundle("shop", [DOMAIN])
    ctx = ctx_for(sb, state_dir)
    ctx.bundles["shop"] = bundle
    provider = provider_for(AlbProvider, ctx)
    t = target()
    assert provider.read_bindings([t]) == {t: Binding("none")}

    provider.bind(t, bundle)
    binding = provider.verify(t, bundle, time.monotonic() + 20)
    assert binding.serves(bundle)
    view = sandbox_alb.view(sb.world, LISTENER, time.time())
    assert view["served_default"] == binding.cert_name and view["served_default"].endswith("-cn-hangzhou")
    assert eventually(lambda: any(e.get("sni") == DOMAIN and e.get("served") == bundle.fingerprint
                                  for e in sb.edge_log()))
    # every ALB call went to the listener's region; the CAS id names the CAS region
    assert {e["region"] for e in sb.calls() if e["product"] == "Alb"} == {REGION}

    # the next run: one read call, it serves, nothing written
    sb.clear_calls()
    again = provider_for(AlbProvider, ctx)
    read = again.read_bindings([t])[t]
    assert read.serves(bundle) and read.state == "ok" and read.serial == bundle.serial
    assert dict(again.api.calls) == {"alb:GetListenerAttribute": 1}
    again.bind(t, bundle)  # idempotent: already the default
    assert writes(sb) == []


def test_drift_on_default_is_repaired(sb, state_dir):
    bundle = make_bundle("shop", [DOMAIN])
    ctx = ctx_for(sb, state_dir)
    ctx.bundles["shop"] = bundle
    provider = provider_for(AlbProvider, ctx)
    t = target()
    provider.bind(t, bundle)
    provider.verify(t, bundle, time.monotonic() + 20)

    foreign = foreign_cas_id(sb, [DOMAIN])
    sandbox_alb.force_certificates(sb.world, LISTENER, default=foreign)
    drifted = provider.read_bindings([t])[t]
    assert not drifted.serves(bundle) and drifted.cert_name == foreign

    provider.bind(t, bundle)
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)
    assert provider.read_bindings([t])[t].serves(bundle)


def test_sni_replacement_leaves_foreign_certificates_alone(sb, state_dir):
    foreign = foreign_cas_id(sb, ["other.example.com"])
    sandbox_alb.force_certificates(sb.world, LISTENER, additional=(foreign,))
    ctx = ctx_for(sb, state_dir)
    old = make_bundle("shop", [DOMAIN])
    ctx.bundles["shop"] = old
    t = target("sni")
    provider = provider_for(AlbProvider, ctx)
    assert provider.read_bindings([t])[t] == Binding("none")  # the foreign one is not ours
    provider.bind(t, old)
    old_binding = provider.verify(t, old, time.monotonic() + 20)
    assert set(sandbox_alb.view(sb.world, LISTENER, time.time())["additional"]) == {foreign,
                                                                                   old_binding.cert_name}

    # renewal: the new one is associated and verified, then only our old one goes
    new = make_bundle("shop", [DOMAIN])
    ctx.bundles["shop"] = new
    provider = provider_for(AlbProvider, ctx)
    assert not provider.read_bindings([t])[t].serves(new)
    provider.bind(t, new)
    new_binding = provider.verify(t, new, time.monotonic() + 20)
    assert new_binding.serves(new)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        view = sandbox_alb.view(sb.world, LISTENER, time.time())
        if set(view["served_additional"]) == {foreign, new_binding.cert_name}:
            break
        time.sleep(0.05)
    assert set(view["additional"]) == {foreign, new_binding.cert_name}
    dissociated = [e["params"] for e in sb.calls(action="DissociateAdditionalCertificatesFromListener")]
    assert dissociated and all(foreign not in p.values() for p in dissociated)
    assert provider.read_bindings([t])[t].serves(new)


def test_waits_while_the_listener_is_configuring(sb, state_dir):
    bundle = make_bundle("shop", [DOMAIN])
    ctx = ctx_for(sb, state_dir, tls=False)
    ctx.bundles["shop"] = bundle
    provider = provider_for(AlbProvider, ctx)
    t = target()
    held = time.time()  # the sandbox's clock: the listener is Configuring until held + 1.0
    sandbox_alb.hold_configuring(sb.world, LISTENER, 1.0, held)
    assert provider.read_bindings([t])[t].state == "none"
    provider.bind(t, bundle)
    assert time.time() >= held + 1.0  # it waited for Running instead of being refused
    assert not sb.calls(action="UpdateListenerAttribute")[0]["code"]
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)


def test_a_listener_that_stays_configuring_fails_by_name(sb, state_dir):
    bundle = make_bundle("shop", [DOMAIN])
    ctx = ctx_for(sb, state_dir, tls=False, timeout=1.0)
    ctx.bundles["shop"] = bundle
    provider = provider_for(AlbProvider, ctx)
    sandbox_alb.hold_configuring(sb.world, LISTENER, 60.0, time.time())
    with pytest.raises(ProviderError, match="stayed Configuring"):
        provider.bind(target(), bundle)
    assert sb.calls(action="UpdateListenerAttribute") == []


def test_missing_permission_names_the_action(state_dir):
    perms = ("yundun-cert:*", "alb:GetListenerAttribute", "alb:ListListenerCertificates")
    with Sandbox(fixture(permissions=perms)) as sandbox:
        bundle = make_bundle("shop", [DOMAIN])
        ctx = ctx_for(sandbox, state_dir, tls=False)
        ctx.bundles["shop"] = bundle
        provider = provider_for(AlbProvider, ctx)
        with pytest.raises(CredentialError, match="alb:UpdateListenerAttribute"):
            provider.bind(target(), bundle)


def test_unknown_listener_is_named(sb, state_dir):
    bundle = make_bundle("shop", [DOMAIN])
    provider = provider_for(AlbProvider, ctx_for(sb, state_dir, tls=False))
    t = target(listener="lsn-nothere")
    read = provider.read_bindings([t])[t]
    assert read.state == "unknown" and "ResourceNotFound.Listener" in (read.detail or "")
    with pytest.raises(ProviderError, match="ResourceNotFound.Listener"):
        provider.bind(t, bundle)


@pytest.mark.parametrize("raw, message", [
    ({"domain": DOMAIN}, "certificate[0].deploy[0].listener_id: missing required key"),
    ({"listener_id": LISTENER}, "certificate[0].deploy[0].domain: missing required key"),
    ({"listener_id": LISTENER, "domain": DOMAIN, "slot": "extra"},
     "certificate[0].deploy[0].slot: invalid value 'extra'"),
    ({"listener_id": LISTENER, "domain": DOMAIN, "region": "Shanghai"},
     "certificate[0].deploy[0].region: invalid region"),
    ({"listener_id": "lsn bad", "domain": DOMAIN}, "certificate[0].deploy[0].listener_id: invalid"),
    ({"listener_id": LISTENER, "domain": DOMAIN, "port": 443},
     "certificate[0].deploy[0].port: unknown key"),
    ({"listener_id": LISTENER, "domain": DOMAIN, "account": "nope"}, "certificate[0].deploy[0].account: unknown account 'nope' (known: default)"),
])
def test_bad_config_is_named(raw, message):
    errors = ConfigErrors()
    assert AlbProvider.parse_config(raw, "certificate[0].deploy[0]", errors, ConfigDefaults("cn-hangzhou")) is None
    assert any(m.startswith(message) for m in errors.messages), errors.messages


def test_a_full_listener_makes_room_only_from_our_superseded_certificates(state_dir):
    with Sandbox(fixture(max_additional=2)) as sandbox:
        foreign = foreign_cas_id(sandbox, ["other.example.com"])
        sandbox_alb.force_certificates(sandbox.world, LISTENER, additional=(foreign,))
        ctx = ctx_for(sandbox, state_dir, tls=False)
        t = target("sni")
        old = make_bundle("shop", [DOMAIN])
        ctx.bundles["shop"] = old
        provider = provider_for(AlbProvider, ctx)
        provider.bind(t, old)
        old_id = provider.verify(t, old, time.monotonic() + 20).cert_name
        # renewal: the listener is full (foreign + our old one, which normally goes only once the
        # new one is Associated)
        new = make_bundle("shop", [DOMAIN])
        ctx.bundles["shop"] = new
        provider = provider_for(AlbProvider, ctx)
        provider.bind(t, new)  # QuotaExceeded first: our old one makes room, the foreign one stays
        assert [e["code"] for e in sandbox.calls(action="AssociateAdditionalCertificatesWithListener")][-2:] == \
            ["QuotaExceeded.ListenerAdditionalCertificatesNum", None]
        new_id = provider.verify(t, new, time.monotonic() + 20).cert_name
        additional = sandbox_alb.view(sandbox.world, LISTENER, time.time())["additional"]
        assert foreign in additional and new_id in additional and old_id not in additional


def test_another_certificates_current_sni_certificate_is_kept(sb, state_dir):
    ctx = ctx_for(sb, state_dir, tls=False)
    shop, api = make_bundle("shop", [DOMAIN]), make_bundle("api", ["api.example.com"])
    ctx.bundles.update(shop=shop, api=api)
    t_shop, t_api = target("sni"), target("sni", "api.example.com")
    provider = provider_for(AlbProvider, ctx)
    provider.bind(t_api, api)
    api_id = provider.verify(t_api, api, time.monotonic() + 20).cert_name
    provider.bind(t_shop, shop)
    provider.verify(t_shop, shop, time.monotonic() + 20)
    bindings = provider_for(AlbProvider, ctx).read_bindings([t_shop, t_api])
    assert bindings[t_shop].serves(shop) and bindings[t_api].serves(api)
    assert api_id in sandbox_alb.view(sb.world, LISTENER, time.time())["additional"]


def test_a_configured_account_names_the_targets():
    errors = ConfigErrors()
    raw = {"listener_id": LISTENER, "domain": DOMAIN, "account": "media"}
    settings = AlbProvider.parse_config(raw, "certificate[0].deploy[0]", errors,
                                     ConfigDefaults("cn-hangzhou", accounts=("default", "media")))
    assert not errors.messages and settings.account == "media"
    assert AlbProvider.expand(settings)[0].name.startswith("media:")
