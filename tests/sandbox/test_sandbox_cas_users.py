"""The sandbox's CAS knows every product's use of a certificate: ListCloudResources lists the
ALB listener, ESA site, NLB listener and CLB listener that use it (each product's ``cas_users``
hook), and DeleteUserCertificate refuses it until the last of them lets it go. All through the
unchanged SDK (``CommonRequest``) over HTTP."""

from __future__ import annotations

import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from conftest import AK, SECRET, call, call_error, wait_until

from sandbox import Sandbox
from sandbox import products as sandbox_products
from sandbox.products import alb, cdn, dcdn, esa, nlb, oss, slb

REGION = "cn-hangzhou"
LISTENER, LB = "lsn-casusers01", "alb-casusers"
NLB_LISTENER, NLB = "lsn-casusers02@443", "nlb-casusers"
CLB = "lb-casusers"
SITE_ID, SITE = 7000000101, "example.net"


def fixture() -> dict:
    return {
        "access_key": [{"id": AK, "secret": SECRET, "permissions": ["*"]}],
        "alb_listener": [{"id": LISTENER, "region": REGION, "load_balancer_id": LB,
                          "configuring_seconds": 0.1}],
        "nlb_listener": [{"id": NLB_LISTENER, "region": REGION, "load_balancer_id": NLB,
                          "configuring_seconds": 0.1}],
        "clb_listener": [{"load_balancer_id": CLB, "region": REGION, "domains": ["legacy.example.net"]}],
        "esa_site": [{"id": SITE_ID, "name": SITE}],
    }


@pytest.fixture
def sb():
    with Sandbox(fixture()) as sandbox:
        yield sandbox


@pytest.fixture
def client():
    return AcsClient(AK, SECRET, REGION)


def rpc(product_host: str, version: str, action: str, **params) -> CommonRequest:
    req = CommonRequest(domain=product_host, version=version, action_name=action)
    for k, v in params.items():
        req.add_query_param(k, str(v))
    req.set_method("POST")
    return req


def cas(action: str, **params) -> CommonRequest:
    return rpc("cas.aliyuncs.com", "2020-04-07", action, **params)


def upload(sb, client, ca, name: str) -> int:
    chain, key, _ = ca.issue(["www.example.net", "*.example.net"])
    return int(call(sb, client, cas("UploadUserCertificate", Name=name, Cert=chain, Key=key))["CertId"])


def resources(sb, client, cert_id: int) -> list[dict]:
    return call(sb, client, cas("ListCloudResources", CertIds=f"[{cert_id}]"))["Data"]


def alb_running(sb, client) -> bool:
    body = call(sb, client, rpc(f"alb.{REGION}.aliyuncs.com", "2020-06-16", "GetListenerAttribute",
                                ListenerId=LISTENER))
    return body["ListenerStatus"] == "Running"


def set_alb_default(sb, client, cas_id: str) -> None:
    wait_until(lambda: alb_running(sb, client))
    call(sb, client, rpc(f"alb.{REGION}.aliyuncs.com", "2020-06-16", "UpdateListenerAttribute",
                         ListenerId=LISTENER, **{"Certificates.1.CertificateId": cas_id}))


def test_every_product_that_binds_cas_certificates_reports_its_users():
    hooks = {getattr(h, "__module__", "") for h in sandbox_products.CAS_USERS}
    for module in (cdn, dcdn, esa, oss, alb, nlb, slb):
        assert module.__name__ in hooks, f"{module.__name__} has no registered cas_users hook"


def test_deletion_refused_while_an_alb_listener_and_an_esa_site_use_it(sb, client, ca):
    cert_id = upload(sb, client, ca, "in-use")
    spare = upload(sb, client, ca, "spare")
    set_alb_default(sb, client, f"{cert_id}-{REGION}")
    esa_id = call(sb, client, rpc(f"esa.{REGION}.aliyuncs.com", "2024-09-10", "SetCertificate",
                                  SiteId=SITE_ID, Type="cas", CasId=cert_id, Region=REGION))["Id"]

    rows = resources(sb, client, cert_id)
    by_product = {r["CloudProduct"]: r for r in rows}
    assert sorted(by_product) == ["ALB", "ESA"] and len(rows) == 2
    listener = by_product["ALB"]
    assert (listener["InstanceId"], listener["ListenerId"], listener["ListenerPort"],
            listener["DefaultResource"]) == (LB, LISTENER, "443", 1)
    assert by_product["ESA"]["Domain"] == SITE
    assert all(r["CertId"] == cert_id and r["CloudName"] == "aliyun" for r in rows)
    assert resources(sb, client, spare) == []

    err = call_error(sb, client, cas("DeleteUserCertificate", CertId=cert_id))
    assert err.get_error_code() == "InvalidParameter"
    assert cert_id in sb.world.certs_by_id
    listed = next(c for c in sb.cas_certificates() if c["cert_id"] == str(cert_id))
    assert sorted(listed["users"]) == [f"ALB {LISTENER}", f"ESA {SITE}"]

    # the site lets it go: the listener alone still holds it
    call(sb, client, rpc(f"esa.{REGION}.aliyuncs.com", "2024-09-10", "DeleteCertificate",
                         SiteId=SITE_ID, Id=esa_id))
    assert [r["CloudProduct"] for r in resources(sb, client, cert_id)] == ["ALB"]
    assert call_error(sb, client, cas("DeleteUserCertificate", CertId=cert_id)).get_error_code() \
        == "InvalidParameter"

    # the listener switches to another certificate; once that is in effect, nothing uses it
    set_alb_default(sb, client, f"{spare}-{REGION}")
    wait_until(lambda: alb_running(sb, client))
    assert resources(sb, client, cert_id) == []
    call(sb, client, cas("DeleteUserCertificate", CertId=cert_id))
    assert cert_id not in sb.world.certs_by_id
    assert [r["CloudProduct"] for r in resources(sb, client, spare)] == ["ALB"]


def test_nlb_listener_is_a_user(sb, client, ca):
    cert_id = upload(sb, client, ca, "nlb")
    call(sb, client, rpc(f"nlb.{REGION}.aliyuncs.com", "2022-04-30", "UpdateListenerAttribute",
                         ListenerId=NLB_LISTENER, RegionId=REGION,
                         **{"CertificateIds.1": f"{cert_id}-{REGION}"}))
    [row] = resources(sb, client, cert_id)
    assert (row["CloudProduct"], row["InstanceId"], row["ListenerId"], row["DefaultResource"]) == \
        ("NLB", NLB, NLB_LISTENER, 1)
    assert call_error(sb, client, cas("DeleteUserCertificate", CertId=cert_id)).get_error_code() \
        == "InvalidParameter"


def test_clb_listener_and_its_store_entry_are_users(sb, client, ca):
    cert_id = upload(sb, client, ca, "clb")
    slb_api = "slb.aliyuncs.com"
    entry = call(sb, client, rpc(slb_api, "2014-05-15", "UploadServerCertificate", RegionId=REGION,
                                 AliCloudCertificateId=cert_id, AliCloudCertificateName="clb",
                                 AliCloudCertificateRegionId=REGION))["ServerCertificateId"]
    call(sb, client, rpc(slb_api, "2014-05-15", "SetLoadBalancerHTTPSListenerAttribute", RegionId=REGION,
                         LoadBalancerId=CLB, ListenerPort=443, ServerCertificateId=entry))
    [row] = resources(sb, client, cert_id)
    assert (row["CloudProduct"], row["InstanceId"], row["ListenerPort"], row["DefaultResource"]) == \
        ("SLB", CLB, "443", 1)

    # the listener moves to a PEM entry; CLB's entry still references the CAS certificate
    chain, key, _ = ca.issue(["legacy.example.net"])
    other = call(sb, client, rpc(slb_api, "2014-05-15", "UploadServerCertificate", RegionId=REGION,
                                 ServerCertificate=chain, PrivateKey=key))["ServerCertificateId"]
    call(sb, client, rpc(slb_api, "2014-05-15", "SetLoadBalancerHTTPSListenerAttribute", RegionId=REGION,
                         LoadBalancerId=CLB, ListenerPort=443, ServerCertificateId=other))
    assert [(r["CloudProduct"], r["InstanceId"]) for r in resources(sb, client, cert_id)] == [("SLB", entry)]
    assert call_error(sb, client, cas("DeleteUserCertificate", CertId=cert_id)).get_error_code() \
        == "InvalidParameter"
    call(sb, client, rpc(slb_api, "2014-05-15", "DeleteServerCertificate", RegionId=REGION,
                         ServerCertificateId=entry))
    call(sb, client, cas("DeleteUserCertificate", CertId=cert_id))
    assert cert_id not in sb.world.certs_by_id
