"""API Gateway against the sandbox: regional calls, one DescribeApiGroup per group, drift,
DomainBindingStatus (BINDING = bound, BOUND = inactive), verification through the TLS edge,
faults."""

from __future__ import annotations

import time

import pytest

from providers.apigateway import ApiGatewayProvider
from providers.base import Binding, ConfigDefaults, ConfigErrors, ProviderError, VerificationError
from providers.certnames import APIGATEWAY_NAME_MAX, cert_name

from .certs import make_bundle
from .conftest import SANDBOX_AK, SANDBOX_SECRET, eventually, provider_for, sandbox_ctx

DEMO_DOMAIN = "api.example.com"


def target(domain=DEMO_DOMAIN, group_id="abc123", region="cn-shanghai"):
    errors = ConfigErrors()
    settings = ApiGatewayProvider.parse_config({"group_id": group_id, "domain": domain, "region": region},
                                               "certificate[0].deploy[0]", errors, ConfigDefaults("cn-hangzhou"))
    assert not errors.messages
    return ApiGatewayProvider.expand(settings)[0]


def test_bind_read_verify_with_tls(sb, state_dir):
    bundle = make_bundle("api", [DEMO_DOMAIN])
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir))
    t = target()
    assert provider.read_bindings([t]) == {t: Binding("none")}

    provider.bind(t, bundle)
    view = sb.apigateway_domain("cn-shanghai", "abc123", DEMO_DOMAIN)
    assert view["cert_name"] == cert_name("api", bundle.fingerprint, APIGATEWAY_NAME_MAX)
    assert view["serial"] == bundle.serial

    binding = provider.verify(t, bundle, time.monotonic() + 20)
    assert binding.serves(bundle) and binding.state == "ok"
    assert eventually(lambda: any(e.get("sni") == DEMO_DOMAIN for e in sb.edge_log()))

    provider.api.calls.clear()
    assert provider.read_bindings([t])[t].serves(bundle)
    assert dict(provider.api.calls) == {"apigateway:DescribeApiGroup": 1}
    # every call went to the group's region, none to the client's default
    # every call went to the group's region, none to the client's default; POST only (the
    # CloudAPI request classes default to GET, which would put the key into the URL)
    assert {(e["region"], e["method"]) for e in sb.calls()} == {("cn-shanghai", "POST")}


def test_bind_twice_is_idempotent(sb, state_dir):
    bundle = make_bundle("api", [DEMO_DOMAIN])
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir))
    t = target()
    provider.bind(t, bundle)
    provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir)).bind(t, bundle)
    assert provider.read_bindings([t])[t].serves(bundle)


def test_one_describe_api_group_per_group(state_dir):
    from sandbox import Sandbox
    fixture = {
        "access_key": [{"id": SANDBOX_AK, "secret": SANDBOX_SECRET}],
        "apigateway_group": [
            {"id": "g1", "region": "cn-shanghai", "domains": [f"a{i}.example.com" for i in range(5)]},
            {"id": "g2", "region": "cn-beijing", "domains": ["b0.example.com", "b1.example.com"]},
        ],
    }
    bundle = make_bundle("api", ["*.example.com"])
    with Sandbox(fixture) as sandbox:
        provider = provider_for(ApiGatewayProvider, sandbox_ctx(sandbox, state_dir, tls=False))
        ts = [target(f"a{i}.example.com", "g1", "cn-shanghai") for i in range(5)] + \
             [target(f"b{i}.example.com", "g2", "cn-beijing") for i in range(2)]
        for t in ts:
            provider.bind(t, bundle)
        sandbox.replace_apigateway_binding("cn-beijing", "g2", "b1.example.com",
                                           *_pair(["b1.example.com"]))
        provider.api.calls.clear()
        bindings = provider.read_bindings(ts)
        assert [bindings[t].serves(bundle) for t in ts] == [True] * 6 + [False]
        assert bindings[ts[-1]].cert_name.startswith("console_") and bindings[ts[-1]].serial
        assert dict(provider.api.calls) == {"apigateway:DescribeApiGroup": 2,
                                            "apigateway:DescribeDomain": 1}  # only the drifted one


def _pair(domains):
    b = make_bundle("x", domains)
    return b.fullchain_pem, b.key_pem


def test_drift_is_seen(sb, state_dir):
    ours = make_bundle("api", [DEMO_DOMAIN])
    theirs = make_bundle("console", [DEMO_DOMAIN])
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir))
    t = target()
    provider.bind(t, ours)
    sb.replace_apigateway_binding("cn-shanghai", "abc123", DEMO_DOMAIN, theirs.fullchain_pem, theirs.key_pem)
    binding = provider.read_bindings([t])[t]
    assert not binding.serves(ours)
    assert (binding.serial, binding.fingerprint) == (theirs.serial, theirs.fingerprint)


def test_bound_domain_after_set_is_ok_not_pending(sb, state_dir):
    """DomainBindingStatus BINDING is the normal, bound state (CloudAPI's names read
    backwards): a freshly bound domain is ``ok`` at once, and verify needs one read."""
    bundle = make_bundle("api", [DEMO_DOMAIN])
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir, tls=False))
    t = target()
    provider.bind(t, bundle)
    assert sb.apigateway_domain("cn-shanghai", "abc123", DEMO_DOMAIN)["status"] == "BINDING"
    binding = provider.read_bindings([t])[t]
    assert (binding.state, binding.detail) == ("ok", None) and binding.serves(bundle)
    provider.api.calls.clear()
    assert provider.verify(t, bundle, time.monotonic() + 5).state == "ok"
    assert dict(provider.api.calls) == {"apigateway:DescribeDomain": 1}


def test_rollout_is_seen_only_at_the_edge(sb, state_dir):
    """No asynchronous state is documented, so the API reports the new certificate at once;
    the TLS check is what waits for the edge."""
    sb.set_apigateway_rollout_seconds(1.0)
    old = make_bundle("api", [DEMO_DOMAIN])
    new = make_bundle("api", [DEMO_DOMAIN])
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir))
    t = target()
    provider.bind(t, old)
    provider.verify(t, old, time.monotonic() + 20)
    provider.bind(t, new)
    binding = provider.read_bindings([t])[t]
    assert binding.state == "ok" and binding.serves(new)
    assert sb.apigateway_domain("cn-shanghai", "abc123", DEMO_DOMAIN)["served"]["fingerprint"] == old.fingerprint
    assert provider.verify(t, new, time.monotonic() + 20).state == "ok"
    assert sb.apigateway_domain("cn-shanghai", "abc123", DEMO_DOMAIN)["served"]["fingerprint"] == new.fingerprint


def test_verify_gives_up_at_the_deadline(sb, state_dir):
    sb.set_apigateway_rollout_seconds(30)
    old = make_bundle("api", [DEMO_DOMAIN])
    bundle = make_bundle("api", [DEMO_DOMAIN])
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir))
    t = target()
    sb.replace_apigateway_binding("cn-shanghai", "abc123", DEMO_DOMAIN, old.fullchain_pem, old.key_pem)
    provider.bind(t, bundle)
    with pytest.raises(VerificationError, match=rf"^apigateway: api\.example\.com still serves serial "
                                                rf"{old.serial} after \ds$"):
        provider.verify(t, bundle, time.monotonic() + 1)


def test_inactive_domain_is_an_error_not_a_rollout(sb, state_dir):
    """BOUND means the binding is not in effect: reported as ``error`` with the reason, and
    verify fails naming it instead of calling it a pending rollout."""
    bundle = make_bundle("api", [DEMO_DOMAIN])
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir, tls=False))
    t = target()
    provider.bind(t, bundle)
    sb.set_apigateway_domain_active("cn-shanghai", "abc123", DEMO_DOMAIN, False)
    binding = provider.read_bindings([t])[t]
    assert binding.state == "error" and binding.fingerprint == bundle.fingerprint
    assert binding.detail == "the custom domain is inactive (DomainBindingStatus BOUND)"
    assert not binding.serves(bundle)
    with pytest.raises(VerificationError, match=r"^apigateway: api\.example\.com \(group abc123, cn-shanghai\) "
                                                r"holds the certificate, but the custom domain is inactive "
                                                r"\(DomainBindingStatus BOUND\) after \ds$"):
        provider.verify(t, bundle, time.monotonic() + 1)
    sb.set_apigateway_domain_active("cn-shanghai", "abc123", DEMO_DOMAIN, True)
    assert provider.verify(t, bundle, time.monotonic() + 5).state == "ok"


def test_wrong_region_and_unbound_domain(sb, state_dir):
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir))
    wrong_region = target(region="cn-beijing")
    not_in_group = target(domain="other.example.com")
    bindings = provider.read_bindings([wrong_region, not_in_group])
    assert bindings[wrong_region].state == "unknown" and "NotFoundApiGroup" in bindings[wrong_region].detail
    assert bindings[not_in_group] == Binding(
        "error", detail="other.example.com is not a custom domain of API group abc123 in cn-shanghai")
    with pytest.raises(ProviderError, match="^apigateway: SetDomainCertificate failed: NotFoundApiGroup"):
        provider.bind(wrong_region, make_bundle("api", [DEMO_DOMAIN]))


def test_thirty_percent_faults_still_converge(sb, state_dir):
    sb.set_faults("*", throttle=0.15, internal=0.15, seed=99)
    bundle = make_bundle("api", [DEMO_DOMAIN])
    provider = provider_for(ApiGatewayProvider, sandbox_ctx(sb, state_dir))
    t = target()
    for _ in range(3):
        provider.bind(t, bundle)
        assert provider.verify(t, bundle, time.monotonic() + 30).serves(bundle)
        assert provider.read_bindings([t])[t].serves(bundle)
    assert sum(1 for e in sb.calls() if e.get("fault")) > 0


@pytest.mark.parametrize("status,expected", [
    ("BINDING", ("ok", None)),  # bound, normal
    (None, ("ok", None)),  # absent: the certificate fields decide
    ("BOUND", ("error", "the custom domain is inactive (DomainBindingStatus BOUND)")),
    ("REBINDING", ("unknown", "undocumented DomainBindingStatus 'REBINDING'")),
])
def test_binding_status_table(status, expected):
    from providers.apigateway import _state
    assert _state({} if status is None else {"DomainBindingStatus": status}) == expected
