"""API Gateway deploy blocks: keys, defaults, target names."""

from __future__ import annotations

import pytest

from providers.apigateway import ApiGatewayProvider, ApiGatewaySettings
from providers.base import ConfigDefaults, ConfigErrors

PATH = "certificate[0].deploy[1]"


def parse(raw):
    errors = ConfigErrors()
    return ApiGatewayProvider.parse_config(raw, PATH, errors, ConfigDefaults("cn-hangzhou")), errors.messages


def test_region_defaults_to_aliyun_region():
    settings, errors = parse({"group_id": "abc123", "domain": "API.example.com"})
    assert errors == []
    assert settings == ApiGatewaySettings(region="cn-hangzhou", group_id="abc123", domain="api.example.com")


def test_target_name_and_domain():
    settings, _ = parse({"group_id": "abc123", "domain": "api.example.com", "region": "cn-shanghai"})
    [target] = ApiGatewayProvider.expand(settings)
    assert (target.provider, target.name, target.domain) == (
        "apigateway", "cn-shanghai/abc123/api.example.com", "api.example.com")


@pytest.mark.parametrize("raw, expected", [
    ({}, [f"{PATH}.group_id: missing required key", f"{PATH}.domain: missing required key"]),
    ({"group_id": "abc123", "domain": "api.example.com", "region": "Shanghai"},
     [f"{PATH}.region: invalid region 'Shanghai' (e.g. \"cn-shanghai\")"]),
    ({"group_id": "abc 123", "domain": "api.example.com"}, [f"{PATH}.group_id: invalid API group id 'abc 123'"]),
    ({"group_id": 5, "domain": "api.example.com"}, [f"{PATH}.group_id: expected a string, got an integer"]),
    ({"group_id": "abc123", "domain": "api.example.com", "domains": ["x"]}, [f"{PATH}.domains: unknown key"]),
])
def test_errors_by_path(raw, expected):
    settings, errors = parse(raw)
    assert settings is None
    assert errors == expected
