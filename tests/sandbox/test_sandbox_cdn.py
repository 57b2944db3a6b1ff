"""CDN 2018-05-10 and the TLS edge: validation, asynchronous rollout, wildcard domains."""

from __future__ import annotations

import re

import pytest
from aliyunsdkcdn.request.v20180510.DescribeCdnDomainDetailRequest import DescribeCdnDomainDetailRequest
from aliyunsdkcdn.request.v20180510.DescribeCdnHttpsDomainListRequest import DescribeCdnHttpsDomainListRequest
from aliyunsdkcdn.request.v20180510.DescribeDomainCertificateInfoRequest import (
    DescribeDomainCertificateInfoRequest,
)
from aliyunsdkcdn.request.v20180510.DescribeUserDomainsRequest import DescribeUserDomainsRequest
from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import SetCdnDomainSSLCertificateRequest
from conftest import call, call_error, handshake, serial_of, wait_until


def set_cert(domain, chain=None, key=None, name=None, protocol="on"):
    req = SetCdnDomainSSLCertificateRequest()
    req.set_DomainName(domain)
    req.set_SSLProtocol(protocol)
    if chain is not None:
        req.set_SSLPub(chain)
    if key is not None:
        req.set_SSLPri(key)
    if name is not None:
        req.set_CertName(name)
    return req


def cert_info(sb, client, domain):
    req = DescribeDomainCertificateInfoRequest()
    req.set_DomainName(domain)
    return call(sb, client, req)["CertInfos"]["CertInfo"][0]


def test_bind_rolls_out_then_edge_serves_it(sb, client, ca):
    chain, key, leaf = ca.issue(["cdn.example.com"])
    before = handshake(sb, "cdn.example.com")  # the sandbox default certificate
    assert before != serial_of(leaf)
    sb.set_cdn_rollout_seconds(0.6)
    assert call(sb, client, set_cert("cdn.example.com", chain, key, "alicertd-1"))["RequestId"]

    info = cert_info(sb, client, "cdn.example.com")
    assert info["Status"] in ("checking", "applying")
    assert info["ServerCertificate"] == chain and info["ServerCertificateStatus"] == "on"
    assert handshake(sb, "cdn.example.com") == before  # old certificate until the rollout ends
    req = DescribeCdnDomainDetailRequest()
    req.set_DomainName("cdn.example.com")
    assert call(sb, client, req)["GetDomainDetailModel"]["DomainStatus"] == "configuring"

    wait_until(lambda: cert_info(sb, client, "cdn.example.com")["Status"] == "success")
    detail = call(sb, client, req)["GetDomainDetailModel"]
    assert detail["DomainStatus"] == "online" and detail["ServerCertificateStatus"] == "on"
    assert handshake(sb, "cdn.example.com", ca.pem) == serial_of(leaf)
    binding = sb.cdn_binding("cdn.example.com")
    assert binding["serial"] == serial_of(leaf) and binding["cert_name"] == "alicertd-1"
    assert re.fullmatch(r"[0-9a-f]+", binding["serial"])


def test_second_change_while_configuring_is_busy(sb, client, ca):
    chain, key, _ = ca.issue(["img.example.com"])
    sb.set_cdn_rollout_seconds(30)
    call(sb, client, set_cert("img.example.com", chain, key, "img-1"))
    err = call_error(sb, client, set_cert("img.example.com", chain, key, "img-1"))
    assert (err.get_http_status(), err.get_error_code()) == (403, "ServiceBusy")


def test_same_name_uploads_add_certificates(sb, client, ca):
    """Since ForceSet went offline (notice of 2026-02-25) an upload under an existing name adds
    another CAS certificate; names repeat, ids do not."""
    sb.set_cdn_rollout_seconds(0)
    chain, key, _ = ca.issue(["cdn.example.com", "img.example.com"])
    call(sb, client, set_cert("cdn.example.com", chain, key, "shared-name"))
    other_chain, other_key, _ = ca.issue(["img.example.com"])
    call(sb, client, set_cert("img.example.com", other_chain, other_key, "shared-name"))
    shared = [c for c in sb.cas_certificates() if c["cert_name"] == "shared-name"]
    assert len(shared) == 2 and len({c["cert_id"] for c in shared}) == 2
    assert all(c["region"] == "cn-hangzhou" for c in shared)
    err = call_error(sb, client, set_cert("img.example.com", other_chain, other_key, "bad name!"))
    assert err.get_error_code() == "InvalidParameter"


def cas_bind(domain, cert_id, region=None):
    req = set_cert(domain)
    req.add_query_param("CertType", "cas")
    if cert_id is not None:
        req.add_query_param("CertId", cert_id)
    if region is not None:
        req.add_query_param("CertRegion", region)
    return req


def test_bind_by_cas_id_in_its_region(sb, client, ca):
    from aliyunsdkcore.request import CommonRequest
    sb.set_cdn_rollout_seconds(0)
    chain, key, leaf = ca.issue(["cdn.example.com"])
    up = CommonRequest(domain="cas.aliyuncs.com", version="2020-04-07", action_name="UploadUserCertificate")
    for k, v in {"Name": "by-id", "Cert": chain, "Key": key}.items():
        up.add_query_param(k, v)
    intl = AcsClient_for_region("ap-southeast-1")
    cert_id = call(sb, intl, up)["CertId"]
    assert call_error(sb, client, cas_bind("cdn.example.com", cert_id)).get_error_code() == "InvalidParameter"
    assert call_error(sb, client, cas_bind("cdn.example.com", None)).get_error_code() == "MissingCertId"
    assert call_error(sb, client, cas_bind("cdn.example.com", cert_id, "eu-central-1")).get_error_code() \
        == "Abs.CertRegion.ValueNotSupported"
    call(sb, client, cas_bind("cdn.example.com", cert_id, "ap-southeast-1"))
    info = cert_info(sb, client, "cdn.example.com")
    assert (info["CertType"], info["CertId"], info["CertRegion"]) == ("cas", str(cert_id), "ap-southeast-1")
    assert handshake(sb, "cdn.example.com", ca.pem) == serial_of(leaf)


def AcsClient_for_region(region):  # noqa: N802 - reads like the SDK class it builds
    from aliyunsdkcore.client import AcsClient
    from conftest import AK, SECRET
    return AcsClient(AK, SECRET, region)


@pytest.mark.parametrize("case,code", [
    ("garbage_pub", "InvalidSSLPub"),
    ("garbage_pri", "InvalidSSLPri"),
    ("key_mismatch", "InvalidSSLPri"),
    ("not_covered", "InvalidParameter"),
    ("expired", "InvalidParameter"),
    ("missing_pub", "SSLPub.MissingParameter"),
    ("missing_pri", "SSLPri.MissingParameter"),
])
def test_certificate_validation(sb, client, ca, case, code):
    chain, key, _ = ca.issue(["cdn.example.com"])
    _, other_key, _ = ca.issue(["cdn.example.com"])
    args = {
        "garbage_pub": ("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", key),
        "garbage_pri": (chain, "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"),
        "key_mismatch": (chain, other_key),
        "not_covered": ca.issue(["other.example.com"])[:2],
        "expired": ca.issue(["cdn.example.com"], days=-1, not_before_days=-30)[:2],
        "missing_pub": (None, key),
        "missing_pri": (chain, None),
    }[case]
    err = call_error(sb, client, set_cert("cdn.example.com", *args, name="n1"))
    assert (err.get_http_status(), err.get_error_code()) == (400, code)
    assert sb.cdn_binding("cdn.example.com")["ssl"] == "off"


def test_wildcard_cdn_domain(sb, client, ca):
    """The API names a wildcard accelerated domain with a leading period."""
    sb.set_cdn_rollout_seconds(0)
    exact, exact_key, _ = ca.issue(["a.static.example.com"])
    err = call_error(sb, client, set_cert(".static.example.com", exact, exact_key, "w0"))
    assert err.get_error_code() == "InvalidParameter"  # a wildcard domain needs *.
    assert "does not match the domain name" in err.get_error_msg()
    assert call_error(sb, client, set_cert("*.static.example.com", exact, exact_key, "w0")).get_error_code() \
        == "InvalidDomain.NotFound"  # the user's spelling is not the API's
    chain, key, leaf = ca.issue(["*.static.example.com"])
    call(sb, client, set_cert(".static.example.com", chain, key, "w1"))
    assert handshake(sb, "a.static.example.com", ca.pem) == serial_of(leaf)
    assert handshake(sb, "a.b.static.example.com") != serial_of(leaf)  # one label only
    listed = call(sb, client, DescribeCdnHttpsDomainListRequest())["CertInfos"]["CertInfo"]
    assert ".static.example.com" in [r["DomainName"] for r in listed]


def test_wildcard_certificate_covers_one_label(sb, client, ca):
    chain, key, _ = ca.issue(["*.example.com"])
    sb.set_cdn_rollout_seconds(0)
    call(sb, client, set_cert("img.example.com", chain, key, "wild"))
    bad_chain, bad_key, _ = ca.issue(["*.com"])
    assert call_error(sb, client, set_cert("cdn.example.com", bad_chain, bad_key, "wild2")).get_error_code() \
        == "InvalidParameter"


def test_https_domain_list_and_ssl_off(sb, client, ca):
    sb.set_cdn_rollout_seconds(0)
    chain, key, _ = ca.issue(["cdn.example.com"], days=10)
    call(sb, client, set_cert("cdn.example.com", chain, key, "soon"))
    req = DescribeCdnHttpsDomainListRequest()
    req.set_PageSize(500)
    body = call(sb, client, req)
    assert body["TotalCount"] == 1
    row = body["CertInfos"]["CertInfo"][0]
    assert (row["DomainName"], row["CertName"], row["CertStatus"], row["CertCommonName"]) == (
        "cdn.example.com", "soon", "expire_soon", "cdn.example.com")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["CertExpireTime"])
    req.set_PageSize(501)
    assert call_error(sb, client, req).get_error_code() == "InvalidParameter"

    call(sb, client, set_cert("cdn.example.com", protocol="off"))
    assert call(sb, client, DescribeCdnHttpsDomainListRequest())["TotalCount"] == 0
    assert cert_info(sb, client, "cdn.example.com")["ServerCertificateStatus"] == "off"


def test_console_change_shows_mismatch(sb, client, ca):
    chain, key, _ = ca.issue(["unrelated.example.net"])
    sb.replace_cdn_binding("img.example.com", chain, key, "console-cert")
    row = call(sb, client, DescribeCdnHttpsDomainListRequest())["CertInfos"]["CertInfo"][0]
    assert (row["DomainName"], row["CertStatus"]) == ("img.example.com", "mismatch")


def test_unknown_domain_and_user_domains(sb, client):
    req = DescribeDomainCertificateInfoRequest()
    req.set_DomainName("nope.example.com")
    err = call_error(sb, client, req)
    assert (err.get_http_status(), err.get_error_code()) == (404, "InvalidDomain.NotFound")
    err = call_error(sb, client, set_cert("nope.example.com", "x", "y"))
    assert err.get_error_code() == "InvalidDomain.NotFound"

    req = DescribeUserDomainsRequest()
    req.set_DomainName("example.com")
    req.set_DomainSearchType("suf_match")
    body = call(sb, client, req)
    assert body["TotalCount"] == 3
    row = body["Domains"]["PageData"][0]
    assert {"DomainName", "Cname", "DomainStatus", "SslProtocol", "GmtCreated", "Sources"} <= set(row)
    assert row["DomainStatus"] == "online"


def test_invalid_ssl_protocol(sb, client):
    err = call_error(sb, client, set_cert("cdn.example.com", protocol="maybe"))
    assert err.get_error_code() == "InvalidSSLProtocol.ValueNotSupported"
