"""Fault injection as the SDK experiences it (the SDK retries nothing for these products)."""

from __future__ import annotations

import time

import pytest
import requests
from aliyunsdkalidns.request.v20150109.AddDomainRecordRequest import AddDomainRecordRequest
from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from conftest import call, call_error, client_error, signed_params, signed_url


def outcomes(sb, client, n):
    seen = []
    for _ in range(n):
        try:
            call(sb, client, DescribeDomainsRequest())
            seen.append("ok")
        except ServerException as exc:
            seen.append(f"{exc.get_http_status()} {exc.get_error_code()}")
    return seen


def test_throttling_and_503_frequencies_are_seeded(sb, client):
    sb.set_faults("DescribeDomains", throttle=0.3, unavailable=0.2, seed=42)
    first = outcomes(sb, client, 200)
    counts = {k: first.count(k) for k in set(first)}
    assert set(counts) == {"ok", "400 Throttling.User", "503 ServiceUnavailable"}
    assert 40 <= counts["400 Throttling.User"] <= 80
    assert 20 <= counts["503 ServiceUnavailable"] <= 60
    sb.set_faults("DescribeDomains", throttle=0.3, unavailable=0.2, seed=42)
    assert outcomes(sb, client, 200) == first  # same seed, same sequence
    assert sb.call_counts()["DescribeDomains"] == 400
    faults = [e["fault"] for e in sb.calls(action="DescribeDomains")]
    assert faults.count("throttle") == 2 * counts["400 Throttling.User"]


def test_rule_for_one_action_leaves_others_alone(sb, client):
    sb.set_faults("AddDomainRecord", unavailable=1.0)
    assert call(sb, client, DescribeDomainsRequest())["TotalCount"] == 4
    sb.set_faults("*", throttle=1.0)
    assert call_error(sb, client, DescribeDomainsRequest()).get_error_code() == "Throttling.User"
    sb.clear_faults()
    assert call(sb, client, DescribeDomainsRequest())["TotalCount"] == 4


def test_dropped_connection_is_an_sdk_http_error(sb, client):
    sb.set_faults("DescribeDomains", drop=1.0)
    err = client_error(sb, client, DescribeDomainsRequest())
    assert err.get_error_code() == "SDK.HttpError"
    assert sb.calls(action="DescribeDomains")[-1]["dropped"] is True


def test_drop_after_applies_the_change(sb, client):
    sb.set_faults("AddDomainRecord", script=["drop_after"])
    req = AddDomainRecordRequest()
    req.set_DomainName("example.com")
    req.set_RR("_acme-challenge")
    req.set_Type("TXT")
    req.set_Value("applied-but-unanswered")
    assert client_error(sb, client, req).get_error_code() == "SDK.HttpError"
    assert any(r["Value"] == "applied-but-unanswered" for r in sb.records("example.com"))
    # The retry then meets the duplicate, as it would in production.
    req2 = AddDomainRecordRequest()
    req2.set_DomainName("example.com")
    req2.set_RR("_acme-challenge")
    req2.set_Type("TXT")
    req2.set_Value("applied-but-unanswered")
    assert call_error(sb, client, req2).get_error_code() == "DomainRecordDuplicate"


def test_malformed_and_200_with_code(sb, client):
    sb.set_faults("DescribeDomains", script=["malformed", "error_200", "ok"])
    req = DescribeDomainsRequest()
    req.set_endpoint(sb.api_host)
    raw = client.do_action_with_exception(req)  # the SDK does not look at 200 bodies
    assert raw.startswith(b"<html>")
    body = call(sb, client, DescribeDomainsRequest())
    assert body["Code"] == "InternalError" and "Domains" not in body and body["RequestId"]
    assert call(sb, client, DescribeDomainsRequest())["TotalCount"] == 4


def test_internal_error_and_latency(sb, client):
    sb.set_faults("DescribeDomains", script=["internal"], latency=0.3)
    start = time.monotonic()
    err = call_error(sb, client, DescribeDomainsRequest())
    assert (err.get_http_status(), err.get_error_code()) == (500, "InternalError")
    assert time.monotonic() - start >= 0.3


def test_faults_do_not_hide_auth_errors(sb):
    sb.set_faults("*", throttle=1.0)
    r = requests.get(signed_url(sb, signed_params("DescribeDomains", "2015-01-09", secret="bad")), timeout=5)
    assert r.json()["Code"] == "SignatureDoesNotMatch"


def test_bad_fault_rules_are_refused(sb):
    from sandbox import SandboxError

    with pytest.raises(SandboxError):
        sb.set_faults("*", throttle=0.7, unavailable=0.7)
    with pytest.raises(SandboxError):
        sb.set_faults("*", explode=0.1)
