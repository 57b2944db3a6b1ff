"""API Gateway (CloudAPI 2016-07-14): regional groups, certificate binding, the edge."""

from __future__ import annotations

import pytest
from aliyunsdkcloudapi.request.v20160714.DeleteDomainCertificateRequest import DeleteDomainCertificateRequest
from aliyunsdkcloudapi.request.v20160714.DescribeApiGroupRequest import DescribeApiGroupRequest
from aliyunsdkcloudapi.request.v20160714.DescribeApiGroupsRequest import DescribeApiGroupsRequest
from aliyunsdkcloudapi.request.v20160714.DescribeDomainRequest import DescribeDomainRequest
from aliyunsdkcloudapi.request.v20160714.SetDomainCertificateRequest import SetDomainCertificateRequest
from aliyunsdkcore.client import AcsClient
from conftest import AK, SECRET, call, call_error, handshake, serial_of, wait_until


@pytest.fixture
def sh():
    return AcsClient(AK, SECRET, "cn-shanghai")


def set_cert(chain, key, name="alicertd_abc", domain="api.example.com", group="abc123"):
    req = SetDomainCertificateRequest()
    req.set_GroupId(group)
    req.set_DomainName(domain)
    req.set_CertificateName(name)
    req.set_CertificateBody(chain)
    req.set_CertificatePrivateKey(key)
    return req


def describe_domain(sb, client):
    req = DescribeDomainRequest()
    req.set_GroupId("abc123")
    req.set_DomainName("api.example.com")
    return call(sb, client, req)


def test_set_certificate_post_then_describe_and_handshake(sb, sh, ca):
    chain, key, leaf = ca.issue(["api.example.com"])
    call(sb, sh, set_cert(chain, key), method="POST")
    assert sb.calls(action="SetDomainCertificate")[-1]["params"]["CertificatePrivateKey"] == "***"
    body = describe_domain(sb, sh)
    # BINDING is the bound, normal state (the names read backwards: BOUND is inactive)
    assert body["CertificateName"] == "alicertd_abc" and body["DomainBindingStatus"] == "BINDING"
    assert body["CertificateBody"] == chain
    assert body["CertificateValidEnd"] == int(leaf.not_valid_after_utc.timestamp() * 1000)
    assert body["CertificateValidStart"] == int(leaf.not_valid_before_utc.timestamp() * 1000)
    assert len(body["CertificateId"]) == 32
    assert handshake(sb, "api.example.com", ca.pem) == serial_of(leaf)

    req = DescribeApiGroupRequest()
    req.set_GroupId("abc123")
    group = call(sb, sh, req)
    item = group["CustomDomains"]["DomainItem"][0]
    assert (item["DomainName"], item["CertificateId"]) == ("api.example.com", body["CertificateId"])
    assert item["DomainBindingStatus"] == "BINDING"
    assert group["RegionId"] == "cn-shanghai"


def test_default_get_request_works_too(sb, sh, ca):
    chain, key, _ = ca.issue(["api.example.com"])
    call(sb, sh, set_cert(chain, key, name="GetStyle"))  # CloudAPI classes default to GET
    assert sb.calls(action="SetDomainCertificate")[-1]["method"] == "GET"
    assert describe_domain(sb, sh)["CertificateName"] == "GetStyle"


def test_group_in_wrong_region_is_not_found(sb):
    hz = AcsClient(AK, SECRET, "cn-hangzhou")
    req = DescribeApiGroupRequest()
    req.set_GroupId("abc123")
    err = call_error(sb, hz, req)
    # API Gateway's documented NotFound%s is a 400
    assert (err.get_http_status(), err.get_error_code()) == (400, "NotFoundApiGroup")
    assert call(sb, hz, DescribeApiGroupsRequest())["TotalCount"] == 0


@pytest.mark.parametrize("name", ["abc", "1abc", "a" * 51, "has space"])
def test_certificate_name_has_no_invented_rule(sb, sh, ca, name):
    """Alibaba documents no length or character rule for CertificateName (the "4-50
    characters, starting with a letter" rule is another cloud's): any non-empty name is taken."""
    chain, key, _ = ca.issue(["api.example.com"])
    call(sb, sh, set_cert(chain, key, name=name))
    assert describe_domain(sb, sh)["CertificateName"] == name


def test_certificate_name_is_required(sb, sh, ca):
    chain, key, _ = ca.issue(["api.example.com"])
    err = call_error(sb, sh, set_cert(chain, key, name=""))
    assert (err.get_http_status(), err.get_error_code()) == (400, "MissingCertificateName")


@pytest.mark.parametrize("case,code,status", [
    # API Gateway's documented patterns: Invalid%s and NotFound%s, both HTTP 400
    ("garbage", "InvalidCertificateBody", 400),
    ("mismatch", "InvalidCertificatePrivateKey", 400),
    ("uncovered", "InvalidCertificateBody", 400),
    ("unbound", "NotFoundDomain", 400),
])
def test_certificate_validation(sb, sh, ca, case, code, status):
    chain, key, _ = ca.issue(["api.example.com"])
    _, other_key, _ = ca.issue(["api.example.com"])
    req = {
        "garbage": set_cert("not a pem", key),
        "mismatch": set_cert(chain, other_key),
        "uncovered": set_cert(*ca.issue(["www.example.com"])[:2]),
        "unbound": set_cert(*ca.issue(["other.example.com"])[:2], domain="other.example.com"),
    }[case]
    err = call_error(sb, sh, req)
    assert (err.get_http_status(), err.get_error_code()) == (status, code)


def test_describe_api_groups_paging(sb, sh):
    req = DescribeApiGroupsRequest()
    req.set_PageSize(51)
    assert call_error(sb, sh, req).get_error_code() == "InvalidParameter"
    req.set_PageSize(50)
    body = call(sb, sh, req)
    assert (body["TotalCount"], body["PageSize"]) == (1, 50)
    attrs = body["ApiGroupAttributes"]["ApiGroupAttribute"][0]
    assert attrs["GroupId"] == "abc123" and attrs["RegionId"] == "cn-shanghai"


def test_delete_certificate(sb, sh, ca):
    chain, key, _ = ca.issue(["api.example.com"])
    call(sb, sh, set_cert(chain, key))
    cert_id = describe_domain(sb, sh)["CertificateId"]
    req = DeleteDomainCertificateRequest()
    req.set_GroupId("abc123")
    req.set_DomainName("api.example.com")
    req.set_CertificateId("0" * 32)
    assert call_error(sb, sh, req).get_error_code() == "NotFoundCertificate"
    req.set_CertificateId(cert_id)
    call(sb, sh, req)
    assert "CertificateId" not in describe_domain(sb, sh)
    assert sb.apigateway_domains()[0]["cert"] is None


def test_inactive_domain_is_bound_status_and_serves_nothing(sb, sh, ca):
    """BOUND is the inactive state: the domain keeps its certificate, the edge serves nothing."""
    chain, key, leaf = ca.issue(["api.example.com"])
    call(sb, sh, set_cert(chain, key))
    sb.set_apigateway_domain_active("cn-shanghai", "abc123", "api.example.com", False)
    body = describe_domain(sb, sh)
    assert (body["DomainBindingStatus"], body["CertificateBody"]) == ("BOUND", chain)
    req = DescribeApiGroupRequest()
    req.set_GroupId("abc123")
    assert call(sb, sh, req)["CustomDomains"]["DomainItem"][0]["DomainBindingStatus"] == "BOUND"
    assert handshake(sb, "api.example.com") != serial_of(leaf)
    wait_until(lambda: sb.edge_log() and sb.edge_log()[-1]["served"] == "default")

    sb.set_apigateway_domain_active("cn-shanghai", "abc123", "api.example.com", True)
    assert describe_domain(sb, sh)["DomainBindingStatus"] == "BINDING"
    assert handshake(sb, "api.example.com", ca.pem) == serial_of(leaf)


def test_rollout_delays_only_the_edge(sb, sh, ca):
    """No asynchronous state is documented: during the sandbox's optional rollout the API
    already reports the new certificate (BINDING), only the edge still serves the old one."""
    old_chain, old_key, old_leaf = ca.issue(["api.example.com"])
    call(sb, sh, set_cert(old_chain, old_key))
    sb.set_apigateway_rollout_seconds(30)
    chain, key, _ = ca.issue(["api.example.com"])
    call(sb, sh, set_cert(chain, key, name="alicertd_new"))
    body = describe_domain(sb, sh)
    assert (body["CertificateBody"], body["DomainBindingStatus"]) == (chain, "BINDING")
    assert handshake(sb, "api.example.com", ca.pem) == serial_of(old_leaf)


def test_inactive_through_the_admin_api(sb, sh):
    import requests
    url = f"{sb.api_url}/_admin/apigateway-active/cn-shanghai/abc123/api.example.com"
    resp = requests.post(url, json={"active": False}, timeout=5)
    assert resp.status_code == 200 and resp.json()["status"] == "BOUND"
    assert describe_domain(sb, sh)["DomainBindingStatus"] == "BOUND"
