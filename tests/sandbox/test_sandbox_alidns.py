"""Alidns 2015-01-09 through the unchanged SDK: shapes, paging and every validation error."""

from __future__ import annotations

import pytest
from aliyunsdkalidns.request.v20150109.AddDomainRecordRequest import AddDomainRecordRequest
from aliyunsdkalidns.request.v20150109.DeleteDomainRecordRequest import DeleteDomainRecordRequest
from aliyunsdkalidns.request.v20150109.DeleteSubDomainRecordsRequest import DeleteSubDomainRecordsRequest
from aliyunsdkalidns.request.v20150109.DescribeDomainNsRequest import DescribeDomainNsRequest
from aliyunsdkalidns.request.v20150109.DescribeDomainRecordsRequest import DescribeDomainRecordsRequest
from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkalidns.request.v20150109.DescribeSubDomainRecordsRequest import DescribeSubDomainRecordsRequest
from aliyunsdkalidns.request.v20150109.UpdateDomainRecordRequest import UpdateDomainRecordRequest
from conftest import call, call_error


def add(sb, client, domain="example.com", rr="_acme-challenge", rtype="TXT", value="v1", ttl=None):
    req = AddDomainRecordRequest()
    req.set_DomainName(domain)
    req.set_RR(rr)
    req.set_Type(rtype)
    req.set_Value(value)
    if ttl is not None:
        req.set_TTL(ttl)
    return call(sb, client, req)["RecordId"]


def add_error(sb, client, **kw):
    req = AddDomainRecordRequest()
    req.set_DomainName(kw.get("domain", "example.com"))
    req.set_RR(kw.get("rr", "_acme-challenge"))
    req.set_Type(kw.get("rtype", "TXT"))
    req.set_Value(kw.get("value", "v"))
    if "ttl" in kw:
        req.set_TTL(kw["ttl"])
    err = call_error(sb, client, req)
    return err.get_http_status(), err.get_error_code()


def test_describe_domains_shape_paging_and_keyword(sb, client):
    req = DescribeDomainsRequest()
    req.set_PageSize(2)
    req.set_PageNumber(2)
    body = call(sb, client, req)
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (4, 2, 2)
    names = [d["DomainName"] for d in body["Domains"]["Domain"]]
    assert names == ["example.com", "example.net"]  # sorted: acme-validation..., dev..., example.com, .net
    d = body["Domains"]["Domain"][0]
    assert d["DnsServers"]["DnsServer"] == ["ns1.sandbox.alicertd.test", "ns2.sandbox.alicertd.test"]
    assert d["RecordCount"] == 4 and isinstance(d["DomainId"], str)

    req = DescribeDomainsRequest()
    req.set_KeyWord("example.com")
    req.set_SearchMode("EXACT")
    assert [x["DomainName"] for x in call(sb, client, req)["Domains"]["Domain"]] == ["example.com"]
    req = DescribeDomainsRequest()
    req.set_KeyWord("example.com")  # LIKE: %example.com%
    assert call(sb, client, req)["TotalCount"] == 2

    req = DescribeDomainsRequest()
    req.set_PageSize(101)
    err = call_error(sb, client, req)
    assert (err.get_http_status(), err.get_error_code()) == (400, "InvalidParameter")


def test_add_record_then_describe(sb, client):
    rid = add(sb, client, value="token-abc")
    rid2 = add(sb, client, value="token-def")  # two TXT values may share one RR
    assert rid.isdigit() and rid2.isdigit() and rid != rid2
    req = DescribeDomainRecordsRequest()
    req.set_DomainName("example.com")
    req.set_RRKeyWord("_acme")
    req.set_TypeKeyWord("TXT")
    body = call(sb, client, req)
    assert body["TotalCount"] == 2
    rec = body["DomainRecords"]["Record"][0]
    assert rec["RecordId"] == rid and isinstance(rec["RecordId"], str)
    assert (rec["RR"], rec["Type"], rec["Value"], rec["TTL"], rec["Line"], rec["Status"]) == (
        "_acme-challenge", "TXT", "token-abc", 600, "default", "ENABLE")

    req = DescribeDomainRecordsRequest()
    req.set_DomainName("example.com")
    req.set_ValueKeyWord("def")
    assert [r["RecordId"] for r in call(sb, client, req)["DomainRecords"]["Record"]] == [rid2]

    req = DescribeDomainRecordsRequest()
    req.set_DomainName("example.com")
    req.set_RRKeyWord("_acme")
    req.set_SearchMode("EXACT")  # exact RR match: "_acme" is not "_acme-challenge"
    assert call(sb, client, req)["TotalCount"] == 0


def test_describe_domain_records_paging_limit(sb, client):
    for i in range(5):
        add(sb, client, rr=f"r{i}", value=f"v{i}")
    req = DescribeDomainRecordsRequest()
    req.set_DomainName("example.com")
    req.set_PageSize(3)
    req.set_PageNumber(3)
    body = call(sb, client, req)
    assert body["TotalCount"] == 9 and len(body["DomainRecords"]["Record"]) == 3
    req.set_PageSize(501)
    assert call_error(sb, client, req).get_error_code() == "InvalidParameter"
    req.set_PageSize(500)
    req.set_PageNumber(1)
    assert len(call(sb, client, req)["DomainRecords"]["Record"]) == 9


@pytest.mark.parametrize("kw,expected", [
    ({"domain": "nope.example"}, (400, "InvalidDomainName.NoExist")),
    # the documented InvalidParameter (Alidns error codes), not codes of our own
    ({"rr": "bad..rr"}, (400, "InvalidParameter")),
    ({"rr": "a.*"}, (400, "InvalidParameter")),
    ({"rtype": "BOGUS"}, (400, "InvalidParameter")),
    ({"rtype": "A", "value": "999.1.1.1"}, (400, "InvalidParameter")),
    ({"ttl": 60}, (400, "QuotaExceeded.TTL")),
    ({"ttl": 86401}, (400, "QuotaExceeded.TTL")),
])
def test_add_record_validation(sb, client, kw, expected):
    assert add_error(sb, client, **kw) == expected


def test_missing_operation_parameter(sb, client):
    req = AddDomainRecordRequest()
    req.set_DomainName("example.com")
    req.set_Type("TXT")
    req.set_Value("x")
    err = call_error(sb, client, req)
    assert (err.get_http_status(), err.get_error_code()) == (400, "MissingRR")


def test_duplicate_and_conflict(sb, client):
    add(sb, client, value="same")
    assert add_error(sb, client, value="same") == (400, "DomainRecordDuplicate")
    # demo: www is a CNAME; any other type at www conflicts, and a CNAME next to an A conflicts
    assert add_error(sb, client, rr="www", rtype="TXT", value="x") == (400, "DomainRecordConflict")
    assert add_error(sb, client, rr="@", rtype="CNAME", value="elsewhere.example.net") == (
        400, "DomainRecordConflict")


def test_delete_and_update(sb, client):
    rid = add(sb, client, value="old")
    req = UpdateDomainRecordRequest()
    req.set_RecordId(rid)
    req.set_RR("_acme-challenge")
    req.set_Type("TXT")
    req.set_Value("new")
    assert call(sb, client, req)["RecordId"] == rid
    assert [r["Value"] for r in sb.records("example.com") if r["RecordId"] == rid] == ["new"]
    err = call_error(sb, client, req)  # the same update again changes nothing
    assert err.get_error_code() == "DomainRecordDuplicate"

    req = DeleteDomainRecordRequest()
    req.set_RecordId(rid)
    assert call(sb, client, req)["RecordId"] == rid
    err = call_error(sb, client, req)
    assert (err.get_http_status(), err.get_error_code()) == (400, "DomainRecordNotBelongToUser")


def test_delete_sub_domain_records(sb, client):
    add(sb, client, value="a")
    add(sb, client, value="b")
    req = DeleteSubDomainRecordsRequest()
    req.set_DomainName("example.com")
    req.set_RR("_acme-challenge")
    req.set_Type("TXT")
    body = call(sb, client, req)
    assert body["TotalCount"] == "2" and body["RR"] == "_acme-challenge"
    # matching nothing has no documented error: an empty deletion
    assert call(sb, client, req)["TotalCount"] == "0"


def test_sub_domain_records_and_nested_zones(sb, client):
    nested = add(sb, client, domain="dev.example.com", rr="_acme-challenge.app", value="in-child")
    # Without DomainName the registrable domain (example.com) is searched: nothing there.
    req = DescribeSubDomainRecordsRequest()
    req.set_SubDomain("_acme-challenge.app.dev.example.com")
    assert call(sb, client, req)["TotalCount"] == 0
    req.set_DomainName("dev.example.com")
    body = call(sb, client, req)
    assert [r["RecordId"] for r in body["DomainRecords"]["Record"]] == [nested]
    assert body["DomainRecords"]["Record"][0]["DomainName"] == "dev.example.com"

    req = DescribeSubDomainRecordsRequest()
    req.set_SubDomain("www.example.net")
    req.set_DomainName("example.com")
    assert call_error(sb, client, req).get_error_code() == "InvalidParameter"

    req = DescribeSubDomainRecordsRequest()
    req.set_SubDomain("example.com")
    req.set_Type("TXT")
    assert [r["Value"] for r in call(sb, client, req)["DomainRecords"]["Record"]] == ["v=spf1 -all"]

    req = DescribeSubDomainRecordsRequest()
    req.set_SubDomain("_acme-challenge.x.acme-validation.example.org")  # example.org not hosted
    assert call_error(sb, client, req).get_error_code() == "InvalidDomainName.NoExist"


def test_describe_domain_ns(sb, client):
    req = DescribeDomainNsRequest()
    req.set_DomainName("acme-validation.example.org")
    body = call(sb, client, req)
    assert body["ExpectDnsServers"]["ExpectDnsServer"] == ["ns1.sandbox.alicertd.test",
                                                           "ns2.sandbox.alicertd.test"]
    assert body["AllAliDns"] is True
    req.set_DomainName("example.invalid")
    assert call_error(sb, client, req).get_error_code() == "InvalidDomainName.NoExist"


def test_record_ids_are_unique_across_resets(sb, client):
    first = add(sb, client, value="one")
    sb.reset()
    second = add(sb, client, value="one")
    assert int(second) > int(first)
