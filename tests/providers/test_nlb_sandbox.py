"""NLB against the sandbox through the real access layer: a TCPSSL listener's certificate by
CAS id, the asynchronous job, Configuring listeners, drift, permissions, bad config."""

from __future__ import annotations

import time

import pytest

from daemon.config import AliyunConfig, VerifyConfig
from providers.base import Binding, ConfigDefaults, ConfigErrors, CredentialError, ProviderError
from providers.nlb import NlbProvider
from sandbox import Sandbox
from sandbox.products import nlb as sandbox_nlb

from .certs import make_bundle
from .conftest import SANDBOX_AK, SANDBOX_SECRET, eventually, make_ctx, provider_for
from .test_alb_sandbox import foreign_cas_id

LISTENER = "lsn-tls0001@443"
REGION = "cn-beijing"
DOMAIN = "tls.example.com"
WRITES = {"UpdateListenerAttribute", "UploadUserCertificate"}


def fixture(permissions=("*",), configuring=0.3):
    return {
        "access_key": [{"id": SANDBOX_AK, "secret": SANDBOX_SECRET, "permissions": list(permissions)}],
        "nlb_listener": [{"id": LISTENER, "region": REGION, "configuring_seconds": configuring},
                         {"id": "lsn-plain@80", "region": REGION, "protocol": "TCP", "port": 80}],
    }


@pytest.fixture
def sb():
    with Sandbox(fixture()) as sandbox:
        yield sandbox


def ctx_for(sb, state_dir, *, tls=True, timeout=20.0):
    aliyun = AliyunConfig(access_key_id=SANDBOX_AK, access_key_secret=SANDBOX_SECRET,
                          region="cn-hangzhou", endpoints={"cas": sb.api_url, "nlb": sb.api_url})
    verify = VerifyConfig(tls=tls, connect_to=f"127.0.0.1:{sb.edge_port}", timeout=timeout)
    return make_ctx(state_dir, aliyun=aliyun, verify=verify)


def target(listener=LISTENER, domain=DOMAIN):
    errors = ConfigErrors()
    settings = NlbProvider.parse_config({"listener_id": listener, "domain": domain, "region": REGION},
                                        "certificate[0].deploy[0]", errors, ConfigDefaults("cn-hangzhou"))
    assert not errors.messages
    return NlbProvider.expand(settings)[0]


def test_bind_waits_for_the_job_verify_then_zero_writes(sb, state_dir):
    bundle = make_bundle("tls", [DOMAIN])
    ctx = ctx_for(sb, state_dir)
    ctx.bundles["tls"] = bundle
    provider = provider_for(NlbProvider, ctx)
    t = target()
    assert provider.read_bindings([t]) == {t: Binding("none")}
    provider.bind(t, bundle)
    jobs = [e["code"] for e in sb.calls(action="GetJobStatus")]
    assert jobs and all(c is None for c in jobs)  # the job was followed until it succeeded
    assert sandbox_nlb.view(sb.world, LISTENER, time.time())["served"] is not None
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)
    assert eventually(lambda: any(e.get("sni") == DOMAIN and e.get("served") == bundle.fingerprint
                                  for e in sb.edge_log()))
    assert {e["region"] for e in sb.calls() if e["product"] == "Nlb"} == {REGION}

    sb.clear_calls()
    again = provider_for(NlbProvider, ctx)
    read = again.read_bindings([t])[t]
    assert read.serves(bundle) and read.serial == bundle.serial
    assert dict(again.api.calls) == {"nlb:ListListeners": 1}
    again.bind(t, bundle)
    assert [e["action"] for e in sb.calls() if e["action"] in WRITES] == []


def test_drift_is_repaired_and_a_configuring_listener_waited_for(sb, state_dir):
    bundle = make_bundle("tls", [DOMAIN])
    ctx = ctx_for(sb, state_dir, tls=False)
    ctx.bundles["tls"] = bundle
    provider = provider_for(NlbProvider, ctx)
    t = target()
    provider.bind(t, bundle)
    provider.verify(t, bundle, time.monotonic() + 20)
    foreign = foreign_cas_id(sb, [DOMAIN])
    sandbox_nlb.force_certificate(sb.world, LISTENER, foreign)
    held = time.time()  # the sandbox's clock: the listener is Configuring until held + 1.0
    sandbox_nlb.hold_configuring(sb.world, LISTENER, 1.0, held)
    drifted = provider.read_bindings([t])[t]
    assert not drifted.serves(bundle) and drifted.cert_name == foreign and drifted.state == "pending"
    provider.bind(t, bundle)
    assert time.time() >= held + 1.0  # it waited for Running (however long the read above took)
    assert all(e["code"] is None for e in sb.calls(action="UpdateListenerAttribute"))
    assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)


def test_a_listener_that_stays_configuring_fails_by_name(sb, state_dir):
    bundle = make_bundle("tls", [DOMAIN])
    provider = provider_for(NlbProvider, ctx_for(sb, state_dir, tls=False, timeout=1.0))
    sandbox_nlb.hold_configuring(sb.world, LISTENER, 60.0, time.time())
    with pytest.raises(ProviderError, match="stayed Configuring"):
        provider.bind(target(), bundle)


def test_a_tcp_listener_is_refused_by_name(sb, state_dir):
    bundle = make_bundle("tls", [DOMAIN])
    provider = provider_for(NlbProvider, ctx_for(sb, state_dir, tls=False))
    with pytest.raises(ProviderError, match="IllegalParam"):
        provider.bind(target("lsn-plain@80"), bundle)


def test_missing_permission_names_the_action(state_dir):
    with Sandbox(fixture(permissions=("yundun-cert:*", "nlb:GetListenerAttribute"))) as sandbox:
        bundle = make_bundle("tls", [DOMAIN])
        provider = provider_for(NlbProvider, ctx_for(sandbox, state_dir, tls=False))
        with pytest.raises(CredentialError, match="nlb:UpdateListenerAttribute"):
            provider.bind(target(), bundle)


@pytest.mark.parametrize("raw, message", [
    ({"domain": DOMAIN}, "certificate[0].deploy[0].listener_id: missing required key"),
    ({"listener_id": LISTENER}, "certificate[0].deploy[0].domain: missing required key"),
    ({"listener_id": "lsn bad", "domain": DOMAIN}, "certificate[0].deploy[0].listener_id: invalid"),
    ({"listener_id": LISTENER, "domain": DOMAIN, "slot": "sni"}, "certificate[0].deploy[0].slot: unknown key"),
    ({"listener_id": LISTENER, "domain": DOMAIN, "account": "nope"}, "certificate[0].deploy[0].account: unknown account 'nope' (known: default)"),
])
def test_bad_config_is_named(raw, message):
    errors = ConfigErrors()
    assert NlbProvider.parse_config(raw, "certificate[0].deploy[0]", errors, ConfigDefaults("cn-hangzhou")) is None
    assert any(m.startswith(message) for m in errors.messages), errors.messages


def test_a_configured_account_names_the_targets():
    errors = ConfigErrors()
    raw = {"listener_id": LISTENER, "domain": DOMAIN, "account": "media"}
    settings = NlbProvider.parse_config(raw, "certificate[0].deploy[0]", errors,
                                     ConfigDefaults("cn-hangzhou", accounts=("default", "media")))
    assert not errors.messages and settings.account == "media"
    assert NlbProvider.expand(settings)[0].name.startswith("media:")


def test_reads_are_batched_twenty_listeners_per_call(state_dir):
    fx = fixture()
    fx["nlb_listener"] = [{"id": f"lsn-many{i:02d}@443", "region": REGION} for i in range(45)]
    with Sandbox(fx) as sandbox:
        provider = provider_for(NlbProvider, ctx_for(sandbox, state_dir, tls=False))
        ts = [target(f"lsn-many{i:02d}@443", f"m{i:02d}.example.com") for i in range(45)]
        ts.append(target("lsn-missing@443", "x.example.com"))
        bindings = provider.read_bindings(ts)
        assert dict(provider.api.calls) == {"nlb:ListListeners": 3}
        assert all(bindings[t] == Binding("none") for t in ts[:45])
        assert bindings[ts[45]].state == "unknown" and "not found" in bindings[ts[45]].detail
