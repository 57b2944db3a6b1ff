"""Authentication and authorization through the unchanged SDK (and hand-signed requests)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import requests
from aliyunsdkalidns.request.v20150109.AddDomainRecordRequest import AddDomainRecordRequest
from aliyunsdkalidns.request.v20150109.DeleteSubDomainRecordsRequest import DeleteSubDomainRecordsRequest
from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkcdn.request.v20180510.DescribeUserDomainsRequest import DescribeUserDomainsRequest
from aliyunsdkcloudapi.request.v20160714.DescribeApiGroupsRequest import DescribeApiGroupsRequest
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from conftest import AK, SECRET, call, call_error, signed_params, signed_url


def _txt_request(rr="_acme-challenge", value="token-1"):
    req = AddDomainRecordRequest()
    req.set_DomainName("example.com")
    req.set_RR(rr)
    req.set_Type("TXT")
    req.set_Value(value)
    return req


# --------------------------------------------------------------------------- accepted


def test_signed_post_with_query_params_is_accepted(sb, client):
    body = call(sb, client, _txt_request())
    assert body["RecordId"].isdigit() and body["RequestId"]
    entry = sb.calls(action="AddDomainRecord")[-1]
    assert (entry["method"], entry["status"], entry["access_key_id"]) == ("POST", 200, AK)


def test_signed_get_is_accepted(sb, client):
    body = call(sb, client, DescribeDomainsRequest(), method="GET")
    assert body["TotalCount"] == 4
    assert sb.calls(action="DescribeDomains")[-1]["method"] == "GET"


def test_form_body_params_are_signed_and_used(sb, client):
    req = AddDomainRecordRequest()
    req.set_DomainName("example.com")
    req.set_Type("TXT")
    req.add_body_params("RR", "_acme-challenge.body")
    req.add_body_params("Value", "value with spaces*~")
    body = call(sb, client, req)
    rec = [r for r in sb.records("example.com") if r["RecordId"] == body["RecordId"]][0]
    assert (rec["RR"], rec["Value"]) == ("_acme-challenge.body", "value with spaces*~")


def test_cloudapi_default_get_is_accepted(sb):
    client = AcsClient(AK, SECRET, "cn-shanghai")
    body = call(sb, client, DescribeApiGroupsRequest())  # CloudAPI classes default to GET
    assert [g["GroupId"] for g in body["ApiGroupAttributes"]["ApiGroupAttribute"]] == ["abc123"]


# --------------------------------------------------------------------------- signature errors


def test_wrong_secret_is_reported_as_invalid_secret(sb):
    bad = AcsClient(AK, "not-the-secret", "cn-hangzhou")
    err = call_error(sb, bad, DescribeDomainsRequest())
    # The server's SignatureDoesNotMatch message ends with its string to sign; the SDK compares
    # it with its own and renames the error when they agree (only the secret differed).
    assert err.get_http_status() == 400
    assert err.get_error_code() == "InvalidAccessKeySecret"


def test_signature_mismatch_message_carries_string_to_sign(sb):
    params = signed_params("DescribeDomains", "2015-01-09", secret="wrong")
    r = requests.get(signed_url(sb, params), timeout=5)
    body = r.json()
    assert r.status_code == 400 and body["Code"] == "SignatureDoesNotMatch"
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    server_sts = body["Message"].split(":", 1)[1]
    assert server_sts.startswith("GET&%2F&AccessKeyId%3D" + AK)
    assert body["HostId"] == "alidns.aliyuncs.com"


def test_method_is_part_of_the_signature(sb):
    params = signed_params("DescribeDomains", "2015-01-09", method="POST")
    r = requests.get(signed_url(sb, params), timeout=5)  # signed for POST, sent as GET
    assert r.json()["Code"] == "SignatureDoesNotMatch"


def test_unknown_access_key(sb):
    client = AcsClient("LTAIdoesnotexist00000", SECRET, "cn-hangzhou")
    err = call_error(sb, client, DescribeDomainsRequest())
    assert (err.get_http_status(), err.get_error_code()) == (404, "InvalidAccessKeyId.NotFound")


def test_stale_timestamp(sb):
    stale = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 16 * 60))
    r = requests.get(signed_url(sb, signed_params("DescribeDomains", "2015-01-09", timestamp=stale)), timeout=5)
    assert (r.status_code, r.json()["Code"]) == (400, "InvalidTimeStamp.Expired")
    fresh = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 14 * 60))
    r = requests.get(signed_url(sb, signed_params("DescribeDomains", "2015-01-09", timestamp=fresh)), timeout=5)
    assert r.status_code == 200


def test_malformed_timestamp(sb):
    r = requests.get(signed_url(sb, signed_params("DescribeDomains", "2015-01-09",
                                                  timestamp="2026-01-02 03:04:05")), timeout=5)
    assert (r.status_code, r.json()["Code"]) == (400, "InvalidTimeStamp.Format")


def test_replayed_nonce(sb):
    url = signed_url(sb, signed_params("DescribeDomains", "2015-01-09"))
    assert requests.get(url, timeout=5).status_code == 200
    r = requests.get(url, timeout=5)
    assert (r.status_code, r.json()["Code"]) == (400, "SignatureNonceUsed")


def test_forged_request_does_not_burn_the_nonce(sb):
    good = signed_params("DescribeDomains", "2015-01-09", nonce="n" * 32)
    forged = dict(good, Signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert requests.get(signed_url(sb, forged), timeout=5).json()["Code"] == "SignatureDoesNotMatch"
    assert requests.get(signed_url(sb, good), timeout=5).status_code == 200


@pytest.mark.parametrize("name", ["Timestamp", "SignatureNonce", "Signature", "AccessKeyId"])
def test_missing_common_parameter(sb, name):
    params = signed_params("DescribeDomains", "2015-01-09")
    del params[name]
    r = requests.get(signed_url(sb, params), timeout=5)
    body = r.json()
    assert (r.status_code, body["Code"]) == (400, "MissingParameter")
    assert f'"{name}"' in body["Message"]


def test_unknown_action(sb):
    r = requests.get(signed_url(sb, signed_params("DescribeNothing", "2015-01-09")), timeout=5)
    assert (r.status_code, r.json()["Code"]) == (404, "InvalidAction.NotFound")


# --------------------------------------------------------------------------- permissions


def test_permission_denied_names_the_ram_action(sb):
    creds = json.loads(urllib.request.urlopen(
        sb.metadata_url + "/latest/meta-data/ram/security-credentials/alicertd-role", timeout=5).read())
    client = AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(
        creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"]))
    req = DeleteSubDomainRecordsRequest()  # not in the demo role's policy
    req.set_DomainName("example.com")
    req.set_RR("www")
    err = call_error(sb, client, req)
    assert (err.get_http_status(), err.get_error_code()) == (403, "Forbidden.RAM")
    entry = sb.calls(action="DeleteSubDomainRecords")[-1]
    assert entry["code"] == "Forbidden.RAM"
    r = requests.get(signed_url(sb, signed_params(
        "DeleteSubDomainRecords", "2015-01-09", {"DomainName": "example.com", "RR": "www",
                                                 "SecurityToken": creds["SecurityToken"]},
        ak=creds["AccessKeyId"], secret=creds["AccessKeySecret"])), timeout=5)
    body = r.json()
    assert body["AccessDeniedDetail"]["AuthAction"] == "alidns:DeleteSubDomainRecords"
    assert body["Message"] == ("User not authorized to operate on the specified resource, or this "
                               "API doesn't support RAM.")
    assert len(sb.records("example.com")) == 4  # nothing was deleted


def test_permission_wildcards(sb, client):
    sb.load_fixture({"access_key": [{"id": "LTAIreadonly", "secret": "s", "permissions": ["cdn:Describe*"]}],
                     "cdn_domain": [{"name": "cdn.example.com"}]})
    ro = AcsClient("LTAIreadonly", "s", "cn-hangzhou")
    assert call(sb, ro, DescribeUserDomainsRequest())["TotalCount"] == 1
    err = call_error(sb, ro, DescribeDomainsRequest())
    assert err.get_error_code() == "Forbidden.RAM"


# --------------------------------------------------------------------------- STS / metadata


def _metadata(sb, role="alicertd-role"):
    return json.loads(urllib.request.urlopen(
        f"{sb.metadata_url}/latest/meta-data/ram/security-credentials/{role}", timeout=5).read())


def test_metadata_lists_roles_and_404s_unknown(sb):
    listing = urllib.request.urlopen(
        sb.metadata_url + "/latest/meta-data/ram/security-credentials/", timeout=5).read().decode()
    assert listing.split() == ["alicertd-role"]
    with pytest.raises(urllib.error.HTTPError) as info:
        _metadata(sb, "no-such-role")
    assert info.value.code == 404


def test_role_credentials_accepted_then_expired_refused(sb):
    creds = _metadata(sb)
    assert creds["Code"] == "Success" and creds["AccessKeyId"].startswith("STS.")
    assert creds["Expiration"].endswith("Z") and creds["Expiration"] > creds["LastUpdated"]
    assert _metadata(sb)["AccessKeyId"] == creds["AccessKeyId"]  # same set until half-life

    sts = AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(
        creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"]))
    assert call(sb, sts, DescribeDomainsRequest())["TotalCount"] == 4
    entry = sb.calls(action="DescribeDomains")[-1]
    assert entry["params"]["SecurityToken"] == "***"

    assert sb.expire_sts_credentials() == 1
    err = call_error(sb, sts, DescribeDomainsRequest())
    assert (err.get_http_status(), err.get_error_code()) == (400, "InvalidSecurityToken.Expired")

    fresh = _metadata(sb)
    assert fresh["AccessKeyId"] != creds["AccessKeyId"]
    sts2 = AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(
        fresh["AccessKeyId"], fresh["AccessKeySecret"], fresh["SecurityToken"]))
    assert call(sb, sts2, DescribeDomainsRequest())["TotalCount"] == 4


def test_short_sts_ttl_expires_by_itself(sb):
    sb.set_sts_ttl(0.3)
    creds = _metadata(sb)
    sts = AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(
        creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"]))
    assert call(sb, sts, DescribeDomainsRequest())["TotalCount"] == 4

    def expired():
        try:
            call(sb, sts, DescribeDomainsRequest())
        except Exception as exc:  # ServerException
            return getattr(exc, "get_error_code", lambda: None)() == "InvalidSecurityToken.Expired"
        return False

    from conftest import wait_until
    wait_until(expired, timeout=3)


@pytest.mark.parametrize("case,code", [
    ("missing", "MissingSecurityToken"),
    ("garbage", "InvalidSecurityToken.Malformed"),
    ("other", "InvalidSecurityToken.MismatchWithAccessKey"),
])
def test_sts_token_errors(sb, case, code):
    creds = _metadata(sb)
    sb.set_sts_ttl(3600, role="alicertd-role")  # forces a second, different credential set
    other = _metadata(sb)
    assert other["AccessKeyId"] != creds["AccessKeyId"]
    extra = {"missing": {}, "garbage": {"SecurityToken": "CAISnotatoken"},
             "other": {"SecurityToken": other["SecurityToken"]}}[case]
    params = signed_params("DescribeDomains", "2015-01-09", extra, ak=creds["AccessKeyId"],
                           secret=creds["AccessKeySecret"])
    r = requests.get(signed_url(sb, params), timeout=5)
    assert (r.status_code, r.json()["Code"]) == (400, code)


def test_awkward_characters_survive_signing_and_decoding(sb, client):
    value = "a b*c~d+e/f=ü&x=%41"
    body = call(sb, client, _txt_request(value=value))
    assert [r["Value"] for r in sb.records("example.com") if r["RecordId"] == body["RecordId"]] == [value]
