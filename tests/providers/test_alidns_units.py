"""Alidns provider decisions that the sandbox cannot provoke: Alibaba answers it does not
document. A fake API stands in for the access layer (the sandbox answers only documented codes)."""

from __future__ import annotations

import logging
import threading

import pytest

from daemon.state import DnsJournal
from providers.alidns import AlidnsProvider
from providers.base import DnsChallenge, ProviderContext, ProviderError

from .conftest import make_config


class LandedThenRefused:
    """AddDomainRecord creates the record, and then the caller sees an undocumented refusal: what
    a lost answer followed by the access layer's re-send can look like on the real service."""

    def __init__(self):
        self.records: dict[str, tuple[str, str]] = {}  # RecordId -> (fqdn, value)
        self.calls: list[str] = []

    def call(self, product, request, *, region=None):
        action = request.get_action_name()
        params = request.get_query_params()
        self.calls.append(action)
        if action == "DescribeDomains":
            return {"TotalCount": 1, "Domains": {"Domain": [
                {"DomainName": "example.com", "DnsServers": {"DnsServer": ["ns1.example.net"]}}]}}
        if action == "DescribeSubDomainRecords":
            rtype = params.get("Type")
            found = [{"RecordId": rid, "RR": "_acme-challenge", "Type": "TXT", "Value": value,
                      "Status": "ENABLE"}
                     for rid, (fqdn, value) in self.records.items()
                     if fqdn == params["SubDomain"] and rtype == "TXT"]
            return {"TotalCount": len(found), "DomainRecords": {"Record": found}}
        if action == "AddDomainRecord":
            rid = str(1000 + len(self.records))
            self.records[rid] = (f"{params['RR']}.{params['DomainName']}", params["Value"])
            raise ProviderError("alidns: AddDomainRecord failed: SomethingUndocumented (HTTP 400)",
                                code="SomethingUndocumented", retryable=False)
        if action == "DeleteDomainRecord":
            self.records.pop(params["RecordId"], None)
            return {"RecordId": params["RecordId"]}
        raise AssertionError(f"unexpected {action}")


@pytest.fixture
def provider_and_api(tmp_path):
    journal = DnsJournal(tmp_path / "state")
    ctx = ProviderContext(config=make_config(tmp_path), journal=journal,
                          log=logging.getLogger("alicertd.test"), stop=threading.Event())
    api = LandedThenRefused()
    return AlidnsProvider(ctx, None, api=api), api, journal


def test_a_refusal_after_a_landed_add_leaves_no_record_behind(provider_and_api):
    """Only DomainRecordDuplicate is documented for "it exists already"; any other refusal must
    not be taken as "nothing was created": the record is looked up by value and removed."""
    provider, api, journal = provider_and_api
    with pytest.raises(ProviderError, match="SomethingUndocumented"):
        provider.present([DnsChallenge(domain="example.com", record_name="_acme-challenge.example.com",
                                       value="token-value")])
    assert api.records == {}
    assert journal.entries("alidns") == {}
    assert api.calls[-2:] == ["DescribeSubDomainRecords", "DeleteDomainRecord"]
