"""The contract every registered deploy provider passes (lego's "every provider has the same
shape"): config errors by key path, targets named for the provider, bind -> read_bindings
serves the bundle, bind twice is harmless, verify returns for a bound certificate.

CDN and API Gateway run against the sandbox (TLS verification through its edge), local in a
temporary directory. A new built-in deploy provider must add its case here: the first test
fails until it does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from providers import registry
from providers.base import Binding, ConfigDefaults, ConfigErrors, DeployProvider, Target

from .certs import make_bundle
from .conftest import make_ctx, sandbox_ctx


@dataclass(frozen=True)
class Case:
    raw: Callable[[Path], dict]  # a valid deploy block (without "provider")
    required: tuple[str, ...]
    domains: tuple[str, ...]  # what the test certificate must cover
    sandbox: bool


CASES = {
    "cdn": Case(lambda tmp: {"domains": ["img.example.com", "*.static.example.com"]}, ("domains",),
                ("img.example.com", "*.static.example.com"), True),
    "apigateway": Case(lambda tmp: {"group_id": "abc123", "domain": "api.example.com", "region": "cn-shanghai"},
                       ("group_id", "domain"), ("api.example.com",), True),
    "local": Case(lambda tmp: {"directory": str(tmp / "tls")}, ("directory",), ("example.com",), False),
    "dcdn": Case(lambda tmp: {"domains": ["dcdn.example.com"]}, ("domains",), ("dcdn.example.com",), True),
    "esa": Case(lambda tmp: {"site": "example.net"}, ("site",), ("www.example.net",), True),
    "oss": Case(lambda tmp: {"bucket": "demo-assets", "domains": ["files.example.com"]}, ("bucket", "domains"),
                ("files.example.com",), True),
    # the demo fixture's listeners (sandbox/fixtures/demo.toml)
    "alb": Case(lambda tmp: {"listener_id": "lsn-demo0alb", "region": "cn-shanghai", "domain": "shop.example.com"},
                ("listener_id", "domain"), ("shop.example.com",), True),
    "nlb": Case(lambda tmp: {"listener_id": "lsn-demo0nlb@443", "region": "cn-beijing", "domain": "tls.example.com"},
                ("listener_id", "domain"), ("tls.example.com",), True),
    "clb": Case(lambda tmp: {"load_balancer_id": "lb-demo0clb", "listener_port": 443, "region": "cn-hangzhou",
                             "domain": "legacy.example.com"},
                ("load_balancer_id", "listener_port", "domain"), ("legacy.example.com",), True),
}
PATH = "certificate[2].deploy[1]"


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.load_providers.cache_clear()
    yield


def test_every_registered_deploy_provider_has_a_case():
    deploy = {n for n, cls in registry.load_providers().items() if cls.kind == "deploy"}
    assert deploy == set(CASES)


@pytest.fixture(params=sorted(CASES))
def name(request):
    return request.param


@pytest.fixture
def world(name, request, tmp_path, state_dir):
    """(provider instance, targets, bundle) for one case; the sandbox only where needed."""
    case = CASES[name]
    cls = registry.get(name)
    if case.sandbox:
        sb = request.getfixturevalue("sb")
        ctx = sandbox_ctx(sb, state_dir, tls=True)
    else:
        ctx = make_ctx(state_dir)
    errors = ConfigErrors()
    settings = cls.parse_config(case.raw(tmp_path), PATH, errors, ConfigDefaults("cn-hangzhou"))
    assert errors.messages == [] and settings is not None
    provider = cls(ctx)
    return provider, cls.expand(settings), make_bundle(f"contract-{name}", list(case.domains))


def test_parse_config_reports_unknown_keys_by_path(name, tmp_path):
    cls = registry.get(name)
    errors = ConfigErrors()
    raw = {**CASES[name].raw(tmp_path), "no_such_key": 1}
    assert cls.parse_config(raw, PATH, errors, ConfigDefaults("cn-hangzhou")) is None
    assert errors.messages == [f"{PATH}.no_such_key: unknown key"]


def test_parse_config_reports_missing_keys_by_path(name):
    cls = registry.get(name)
    errors = ConfigErrors()
    assert cls.parse_config({}, PATH, errors, ConfigDefaults("cn-hangzhou")) is None
    assert errors.messages == [f"{PATH}.{key}: missing required key" for key in CASES[name].required]


def test_parse_config_leaves_other_blocks_errors_alone(name, tmp_path):
    """An error elsewhere in the file must not make a valid block fail."""
    cls = registry.get(name)
    errors = ConfigErrors()
    errors.add("certificate[0].name", "invalid")
    assert cls.parse_config(CASES[name].raw(tmp_path), PATH, errors, ConfigDefaults("cn-hangzhou")) is not None
    assert len(errors) == 1


def test_expand_names_targets_for_the_provider(world, name):
    provider, targets, _ = world
    assert isinstance(provider, DeployProvider)
    assert targets and all(isinstance(t, Target) and t.provider == name == provider.name for t in targets)
    assert len({t.name for t in targets}) == len(targets)


def test_bind_read_bind_again_verify(world):
    provider, targets, bundle = world
    before = provider.read_bindings(targets)
    assert set(before) == set(targets)
    assert all(not b.serves(bundle) for b in before.values())

    for t in targets:
        provider.bind(t, bundle)
    after = provider.read_bindings(targets)
    assert all(isinstance(after[t], Binding) and after[t].serves(bundle) for t in targets)

    for t in targets:
        provider.bind(t, bundle)  # a retry of the same work changes nothing and does not fail
    assert all(b.serves(bundle) for b in provider.read_bindings(targets).values())

    for t in targets:
        binding = provider.verify(t, bundle, time.monotonic() + 30)
        assert binding.serves(bundle)
