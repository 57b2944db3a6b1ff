"""RAM-role credentials from the sandbox's instance metadata in each access mode, used for a real
signed API call through the SDK (issue #10 item 3: hardened instances refuse plain GETs)."""

from __future__ import annotations

import logging

from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest

from daemon.config import AliyunConfig
from providers.aliyun.client import AliyunApi
from providers.aliyun.credentials import CredentialSource

LOG = logging.getLogger("test.metadata")


def _api(sb) -> AliyunApi:
    cfg = AliyunConfig(ram_role="alicertd-role", metadata_endpoint=sb.metadata_url,
                       region="cn-hangzhou", endpoints={"alidns": sb.api_url})
    return AliyunApi(cfg, log=LOG, credentials=CredentialSource(cfg, log=LOG, env={}))


def _metadata_calls(sb):
    return [(c["action"], c["method"], c["status"]) for c in sb.calls() if c["product"] == "Metadata"]


def test_hardened_instance_gives_credentials_through_a_token(sandbox):
    sandbox.set_metadata_mode("hardened")
    api = _api(sandbox)
    assert api.call("alidns", DescribeDomainsRequest())["TotalCount"] >= 1
    assert _metadata_calls(sandbox) == [("MetadataToken", "PUT", 200),
                                        ("MetadataRoleCredentials", "GET", 200)]


def test_normal_instance_also_gets_the_token_path(sandbox):
    api = _api(sandbox)
    api.call("alidns", DescribeDomainsRequest())
    assert _metadata_calls(sandbox)[0] == ("MetadataToken", "PUT", 200)


def test_service_without_token_endpoint_falls_back_once_logged(sandbox, caplog):
    sandbox.set_metadata_mode("legacy")
    api = _api(sandbox)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        api.call("alidns", DescribeDomainsRequest())
        sandbox.expire_sts_credentials()
        api.call("alidns", DescribeDomainsRequest())  # refreshed after InvalidSecurityToken.Expired
    assert _metadata_calls(sandbox).count(("MetadataRoleCredentials", "GET", 200)) == 2
    assert ("MetadataToken", "PUT", 404) in _metadata_calls(sandbox)
    assert len([r for r in caplog.records if "plain GET" in r.getMessage()]) == 1

