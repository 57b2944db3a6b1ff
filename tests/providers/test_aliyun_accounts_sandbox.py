"""Per-account APIs against the sandbox's three-account world (issue #16): AssumeRole from the
instance role, tokens expiring inside one run renewed without a failed call reaching the caller,
and an untrusted or missing role failing only its own account."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import pytest
from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkcdn.request.v20180510.DescribeUserDomainsRequest import DescribeUserDomainsRequest

from daemon.config import AliyunConfig
from providers.aliyun.client import shared_api
from providers.base import CredentialError, ProviderContext
from sandbox import Sandbox
from sandbox.fixture import demo_fixture_path

from .conftest import make_config

LOG = logging.getLogger("test.accounts")
B = "2000000000000002"
ARN = f"acs:ram::{B}:role/alicertd-deploy"


@pytest.fixture
def asb():
    with Sandbox(fixture=demo_fixture_path().parent / "accounts.toml") as sb:
        yield sb


def _ctx(sb, **entries: AliyunConfig) -> ProviderContext:
    endpoints = {"alidns": sb.api_url, "cdn": sb.api_url, "sts": sb.api_url}
    shared = {"endpoints": endpoints, "metadata_endpoint": sb.metadata_url}
    aliyun = AliyunConfig(ram_role="alicertd-role", **shared,
                          accounts={n: dataclasses.replace(e, name=n, **shared) for n, e in entries.items()})
    return ProviderContext(config=make_config(Path("/tmp"), aliyun=aliyun), journal=None, log=LOG,
                           stop=threading.Event())


def _cdn_domains(api) -> list[str]:
    body = api.call("cdn", DescribeUserDomainsRequest())
    return sorted(d["DomainName"] for d in body["Domains"]["PageData"])


def test_assumed_role_renewed_when_it_expires_mid_run(asb):
    ctx = _ctx(asb, b=AliyunConfig(ram_role_arn=ARN, source_account="default"))
    b = shared_api(ctx, "b")
    assert _cdn_domains(b) == ["cdn.example.com", "img.example.com"]
    first = b.credentials.get().access_key_id
    for w in asb.world.all_accounts():  # every STS token of every account expires now
        w.expire_sts(time.time())
    assert _cdn_domains(b) == ["cdn.example.com", "img.example.com"]  # no error reaches us
    assert b.credentials.get().access_key_id != first
    # at start; after the expiry with the (expired) instance-role key; again once the source
    # account renewed its instance-role credentials
    assumed = asb.calls(action="AssumeRole")
    assert [(c["status"], c["code"]) for c in assumed] == [
        (200, None), (400, "InvalidSecurityToken.Expired"), (200, None)]
    assert assumed[1]["access_key_id"] == assumed[0]["access_key_id"] != assumed[2]["access_key_id"]
    failed = [c for c in asb.calls() if c["product"] == "Cdn" and c["status"] != 200]
    assert [c["code"] for c in failed] == ["InvalidSecurityToken.Expired"]


def test_untrusted_or_missing_role_fails_only_that_account(asb):
    ctx = _ctx(asb,
               c=AliyunConfig(access_key_id="LTAIaccountc000000003",
                              access_key_secret="sandbox-account-c-secret-not-real"),
               evil=AliyunConfig(access_key_id="LTAIaccountc000000003",
                                 access_key_secret="sandbox-account-c-secret-not-real",
                                 ram_role_arn=ARN),
               gone=AliyunConfig(ram_role_arn=f"acs:ram::{B}:role/nope", source_account="default"))
    for name, code in (("evil", "Forbidden.RAM"), ("gone", "EntityNotExist.Role")):
        with pytest.raises(CredentialError) as info:
            shared_api(ctx, name).call("cdn", DescribeUserDomainsRequest())
        msg = str(info.value)
        assert msg.startswith(f"aliyun: account {name}: cannot assume role") and code in msg, msg
        assert "sandbox-account-c-secret" not in msg
    # the other accounts are unaffected
    assert shared_api(ctx).call("alidns", DescribeDomainsRequest())["TotalCount"] == 1
    assert shared_api(ctx, "c").call("alidns", DescribeDomainsRequest())["TotalCount"] == 1
