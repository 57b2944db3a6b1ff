"""Several accounts in the sandbox and STS AssumeRole, through the unchanged SDK over HTTP."""

from __future__ import annotations

import json
import time
import urllib.request

import dns.message
import dns.query
import pytest
from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkcdn.request.v20180510.DescribeUserDomainsRequest import DescribeUserDomainsRequest
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from conftest import call, call_error

from sandbox import Sandbox
from sandbox.fixture import FixtureError, build_world, demo_fixture_path

FIXTURE = demo_fixture_path().parent / "accounts.toml"
DEPLOY = "acs:ram::2000000000000002:role/alicertd-deploy"
C_KEY, C_SECRET = "LTAIaccountc000000003", "sandbox-account-c-secret-not-real"


@pytest.fixture(scope="module")
def asb():
    with Sandbox(fixture=FIXTURE) as sandbox:
        yield sandbox


@pytest.fixture
def accounts(asb):
    asb.reset()
    return asb


def _instance_client(sb) -> AcsClient:
    creds = json.loads(urllib.request.urlopen(
        f"{sb.metadata_url}/latest/meta-data/ram/security-credentials/alicertd-role", timeout=5).read())
    return AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(
        creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"]))


def _assume(arn=DEPLOY, session="alicertd", duration=None) -> CommonRequest:
    req = CommonRequest(domain="sts.aliyuncs.com", version="2015-04-01", action_name="AssumeRole")
    req.add_query_param("RoleArn", arn)
    req.add_query_param("RoleSessionName", session)
    if duration is not None:
        req.add_query_param("DurationSeconds", str(duration))
    req.set_method("POST")
    return req


def _zones(sb, client):
    return sorted(d["DomainName"] for d in call(sb, client, DescribeDomainsRequest())["Domains"]["Domain"])


def test_each_account_sees_only_its_own_resources(accounts):
    a = _instance_client(accounts)
    c = AcsClient(C_KEY, C_SECRET, "cn-hangzhou")
    assert _zones(accounts, a) == ["example.com"]
    assert _zones(accounts, c) == ["example.org"]


def test_assume_role_from_the_instance_role_into_account_b(accounts):
    from alibabacloud_sts20150401.models import AssumeRoleResponseBody

    body = call(accounts, _instance_client(accounts), _assume())
    parsed = AssumeRoleResponseBody().from_map(body)
    assert parsed.to_map() == body  # every field the model knows, nothing it does not
    creds = parsed.credentials
    assert creds.access_key_id.startswith("STS.") and creds.expiration.endswith("Z")
    assert parsed.assumed_role_user.arn.endswith("/alicertd")
    b = AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(
        creds.access_key_id, creds.access_key_secret, creds.security_token))
    names = sorted(d["DomainName"] for d in
                   call(accounts, b, DescribeUserDomainsRequest())["Domains"]["PageData"])
    assert names == ["cdn.example.com", "img.example.com"]
    err = call_error(accounts, b, DescribeDomainsRequest())  # the role has no alidns permission
    assert err.get_error_code() == "Forbidden.RAM"
    entry = accounts.calls(action="AssumeRole")[-1]
    assert entry["product"] == "Sts" and entry["params"]["RoleArn"] == DEPLOY


def test_untrusted_caller_missing_role_and_bad_parameters(accounts):
    c = AcsClient(C_KEY, C_SECRET, "cn-hangzhou")  # C's policy lacks sts:AssumeRole
    assert call_error(accounts, c, _assume()).get_error_code() == "Forbidden.RAM"
    a = _instance_client(accounts)
    cases = [
        (_assume("acs:ram::2000000000000002:role/nope"), 404, "EntityNotExist.Role"),
        (_assume("arn:aws:iam::1:role/x"), 400, "InvalidParameter.RoleArn"),
        (_assume(session="x"), 400, "InvalidParameter.RoleSessionName"),
        (_assume(duration=600), 400, "InvalidParameter.DurationSeconds"),
    ]
    for req, status, code in cases:
        err = call_error(accounts, a, req)
        assert (err.get_http_status(), err.get_error_code()) == (status, code)


def test_untrusted_account_is_refused(accounts):
    """C's key may call sts:AssumeRole (its policy would allow it with sts:*), but the role
    trusts only A's instance role."""
    with accounts.world.lock:
        accounts.world.accounts["3000000000000003"].access_keys[C_KEY].permissions = ("*",)
    err = call_error(accounts, AcsClient(C_KEY, C_SECRET, "cn-hangzhou"), _assume())
    assert (err.get_http_status(), err.get_error_code()) == (403, "NoPermission")


def test_assumed_credentials_expire(accounts):
    body = call(accounts, _instance_client(accounts), _assume())
    creds = body["Credentials"]
    b = AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(
        creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"]))
    assert call(accounts, b, DescribeUserDomainsRequest())
    b_world = accounts.world.accounts["2000000000000002"]
    assert b_world.expire_sts(time.time()) == 1
    err = call_error(accounts, b, DescribeUserDomainsRequest())
    assert err.get_error_code() == "InvalidSecurityToken.Expired"


def test_nameservers_serve_every_account(accounts):
    q = dns.message.make_query("example.org", "A")
    r = dns.query.udp(q, "127.0.0.1", port=accounts.dns_port, timeout=2)
    assert [rr.to_text() for rrset in r.answer for rr in rrset] == ["192.0.2.30"]


def test_fixture_problems_in_an_account_are_named():
    with pytest.raises(FixtureError) as info:
        build_world({"account": [{"account_id": "1"},
                                 {"account_id": "2000000000000002", "zone": [{"name": ""}]}]})
    text = str(info.value)
    assert "account[0].account_id" in text and "account[1].zone[0].name" in text
