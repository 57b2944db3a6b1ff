"""The checker itself: it accepts what the official models define and rejects a wrong
parameter name, a missing required parameter, a wrongly flattened list, an unknown response
field, a wrong JSON type and an undocumented enum value."""

from __future__ import annotations

import copy

from sandbox.products import PRODUCTS as SANDBOX_PRODUCTS

from .checker import check_exchange, check_request, check_response, request_model
from .models import documented_values, fields, model_class
from .registry import PRODUCTS, api_for

COMMON = {"Format": "JSON", "Version": "2015-01-09", "AccessKeyId": "LTAIx", "SignatureMethod": "HMAC-SHA1",
          "SignatureVersion": "1.0", "SignatureNonce": "n", "Timestamp": "2026-01-01T00:00:00Z",
          "Signature": "***", "RegionId": "cn-hangzhou"}


def alidns(action: str, params: dict, body: dict | None = None) -> dict:
    return {"product": "Alidns", "version": "2015-01-09", "action": action, "method": "POST",
            "status": 200, "fault": None, "params": {"Action": action, **COMMON, **params},
            "body": {"RequestId": "r"} if body is None else body}


def cloudapi_domain(**fields) -> dict:
    body = {"RequestId": "r", "GroupId": "g", "DomainName": "api.example.com",
            "DomainBindingStatus": "BINDING", "CertificateValidEnd": 1767225600000, **fields}
    return {"product": "CloudAPI", "version": "2016-07-14", "action": "DescribeDomain", "method": "POST",
            "status": 200, "fault": None, "params": {"Action": "DescribeDomain", **COMMON,
                                                     "Version": "2016-07-14", "GroupId": "g",
                                                     "DomainName": "api.example.com"},
            "body": body}


ADD = {"DomainName": "example.com", "RR": "_acme-challenge", "Type": "TXT", "Value": "v", "TTL": "600"}


def test_a_conforming_request_and_response_pass():
    assert check_exchange(alidns("AddDomainRecord", ADD, {"RequestId": "r", "RecordId": "1"})) == []
    assert check_exchange(cloudapi_domain()) == []


def test_a_renamed_parameter_is_rejected_and_the_required_one_missed():
    params = dict(ADD)
    params["Rr"] = params.pop("RR")
    problems = check_request(alidns("AddDomainRecord", params))
    assert problems == ["Alidns.AddDomainRecord request: Rr: not a parameter of AddDomainRecordRequest",
                        "Alidns.AddDomainRecord request: RR: required by AddDomainRecordRequest but not sent"]


def test_parameter_values_of_integer_fields_and_documented_enums():
    assert check_request(alidns("AddDomainRecord", dict(ADD, TTL="ten"))) == [
        "Alidns.AddDomainRecord request: TTL: 'ten' is not an integer"]
    assert check_request(alidns("AddDomainRecord", dict(ADD, Lang="fr"))) == [
        "Alidns.AddDomainRecord request: Lang: 'fr' is not a documented value (zh, en)"]


def test_an_unknown_action_and_an_unregistered_product_are_rejected():
    assert check_request(alidns("AddDomainRecords", ADD)) == [
        "AddDomainRecords: alibabacloud_alidns20150109 has no AddDomainRecordsRequest model "
        "(not an official action)"]
    ex = alidns("AddDomainRecord", ADD)
    ex["product"] = "Nope"
    assert "no official model package registered" in check_request(ex)[0]


def test_lists_are_flattened_from_one_and_nested_fields_are_checked():
    good = {"ResourceType": "DOMAIN", "ResourceId.1": "example.com", "ResourceId.2": "example.net",
            "Tag.1.Key": "env", "Tag.1.Value": "prod", "Tag.2.Key": "team"}
    assert check_request(alidns("ListTagResources", good)) == []
    for bad, says in [({"Tag.0.Key": "env"}, "Tag.0: list items are numbered from 1"),
                      ({"Tag.1.Colour": "red"}, "Tag.1.Colour: not a parameter of ListTagResourcesRequestTag"),
                      ({"Tag": "env"}, "Tag: the model has a list here"),
                      ({"ResourceType": "ZONE"}, "ResourceType: 'ZONE' is not a documented value (DOMAIN)")]:
        problems = check_request(alidns("ListTagResources", dict(good, **bad)))
        assert any(says in p for p in problems), (bad, problems)


def test_an_unknown_response_field_is_rejected():
    problems = check_response(cloudapi_domain(WssEnable="OFF"))
    assert problems == ["CloudAPI.DescribeDomain response: WssEnable: not a field of DescribeDomainResponseBody"]


def test_nested_response_fields_are_checked():
    body = {"RequestId": "r", "TotalCount": 1, "PageNumber": 1, "PageSize": 20,
            "DomainRecords": {"Record": [{"RecordId": "1", "RR": "www", "Type": "A", "Value": "192.0.2.1",
                                          "TTL": 600, "Line": "default", "Status": "ENABLE",
                                          "Locked": False, "DomainName": "example.com", "Weight": 1}]}}
    ok = alidns("DescribeSubDomainRecords", {"SubDomain": "www.example.com"}, body)
    assert check_response(ok) == []
    bad = copy.deepcopy(ok)
    bad["body"]["DomainRecords"]["Record"][0]["CreateTimestamp"] = 1
    assert check_response(bad) == ["Alidns.DescribeSubDomainRecords response: DomainRecords.Record[0]."
                                   "CreateTimestamp: not a field of "
                                   "DescribeSubDomainRecordsResponseBodyDomainRecordsRecord"]
    flat = copy.deepcopy(ok)
    flat["body"]["DomainRecords"] = flat["body"]["DomainRecords"]["Record"]
    assert "DomainRecords: the model has an object" in check_response(flat)[0]


def test_response_types_enums_and_nulls():
    assert check_response(cloudapi_domain(DomainBindingStatus="ACTIVE")) == [
        "CloudAPI.DescribeDomain response: DomainBindingStatus: 'ACTIVE' is not a documented value "
        "(BINDING, BOUND)"]
    assert check_response(cloudapi_domain(CertificateValidEnd="1767225600000")) == [
        "CloudAPI.DescribeDomain response: CertificateValidEnd: the model types it int, the body has "
        "str '1767225600000'"]
    assert check_response(cloudapi_domain(CertificateValidEnd=True))  # a bool is not an int
    assert check_response(cloudapi_domain(CertificateId=None)) == [
        "CloudAPI.DescribeDomain response: CertificateId: null (the models drop it: the field would be lost)"]


def test_error_answers_are_checked_for_their_request_only():
    ex = alidns("AddDomainRecord", ADD, {"RequestId": "r", "Code": "DomainRecordDuplicate", "Message": "m"})
    ex["status"] = 400
    assert check_exchange(ex) == []
    ex["params"]["Bogus"] = "1"
    assert check_exchange(ex) == ["Alidns.AddDomainRecord request: Bogus: not a parameter of AddDomainRecordRequest"]


def test_documented_values_are_read_from_the_field_docs():
    assert documented_values("Valid values:\n\n- **zh**: Chinese\n\n- **en**: English\n  more") == ("zh", "en")
    assert documented_values("Valid values:\n\n*   BINDING: bound.\n*   BOUND: not bound.") == ("BINDING", "BOUND")
    assert documented_values("Valid values: **cn-hangzhou** and **ap-southeast-1**.") == (
        "cn-hangzhou", "ap-southeast-1")
    assert documented_values("The page. Valid values: **1** to **100000**.") == ()  # a range
    assert documented_values("The name of the certificate.") == ()


def test_every_sandbox_product_and_action_has_an_official_model():
    """A product the sandbox serves needs its registry line, and each of its actions a request
    and a response body model in that package (so no invented action can be served)."""
    problems = []
    for version, product in SANDBOX_PRODUCTS.items():
        api = api_for(product.name, version)
        if api is None:
            problems.append(f"{product.name} {version}: add it to tests/conformance/registry.py")
            continue
        for action in product.actions:
            if request_model(api.module, action) is None or \
                    model_class(api.module, f"{action}ResponseBody") is None:
                problems.append(f"{product.name}.{action}: not in {api.module}")
    assert not problems, "\n".join(problems)
    assert set(PRODUCTS) >= {"Alidns", "Cdn", "CloudAPI", "cas", "Sts"}


def _field(module: str, cls: str, path: str):
    c = model_class(module, cls)
    *outer, name = path.split(".")
    for part in outer:
        kind = fields(c)[part].kind
        while kind.tag == "list":
            kind = kind.item
        c = kind.model
    return fields(c)[name]


def test_the_status_fields_the_providers_read_have_their_documented_values():
    """The enum check only bites where the docs parse: pin it for the status/type fields the
    providers decide on (the CDN package documents none of its CertStatus, Status or
    ServerCertificateStatus fields, so those are not enum-checked)."""
    expect = {
        ("alibabacloud_cloudapi20160714", "DescribeDomainResponseBody", "DomainBindingStatus"):
            ("BINDING", "BOUND"),
        ("alibabacloud_cdn20180510", "SetCdnDomainSSLCertificateRequest", "SSLProtocol"): ("on", "off"),
        ("alibabacloud_cdn20180510", "SetCdnDomainSSLCertificateRequest", "CertType"): ("upload", "cas"),
        ("alibabacloud_dcdn20180115", "DescribeDcdnHttpsDomainListResponseBody", "CertInfos.CertInfo.CertStatus"):
            ("ok", "mismatch", "expired", "expire_soon"),
        ("alibabacloud_alb20200616", "GetListenerAttributeResponseBody", "ListenerStatus"):
            ("Provisioning", "Running", "Configuring", "Stopped"),
        ("alibabacloud_alb20200616", "ListListenerCertificatesResponseBody", "Certificates.Status"):
            ("Associating", "Associated", "Diassociating"),
        ("alibabacloud_esa20240910", "ListCertificatesResponseBody", "Result.Status"):
            ("OK", "Expired", "Expiring", "Issued", "Applying", "ApplyFailed", "Canceled"),
    }
    got = {key: _field(*key).enum for key in expect}
    assert got == expect
    assert "success" in _field("alibabacloud_dcdn20180115", "DescribeDcdnDomainCertificateInfoResponseBody",
                               "CertInfos.CertInfo.Status").enum
