"""The Alidns 2015-01-09 calls the alidns provider makes, one function each, typed results.

Kept apart from :mod:`providers.alidns` so that the provider reads as the DNS-01 story (zone,
journal, record, wait, cleanup) and this module as the wire: a fresh SDK request per call (the
SDK mutates requests), every page read, every answer checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from aliyunsdkalidns.request.v20150109.AddDomainRecordRequest import AddDomainRecordRequest
from aliyunsdkalidns.request.v20150109.DeleteDomainRecordRequest import DeleteDomainRecordRequest
from aliyunsdkalidns.request.v20150109.DescribeDomainNsRequest import DescribeDomainNsRequest
from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkalidns.request.v20150109.DescribeSubDomainRecordsRequest import (
    DescribeSubDomainRecordsRequest,
)

from providers.aliyun.client import AliyunApi
from providers.base import ProviderError
from providers.propagation import to_ascii

PRODUCT = "alidns"
DOMAINS_PAGE_SIZE = 100  # the API's maximum
RECORDS_PAGE_SIZE = 100  # DescribeSubDomainRecords' maximum per current metadata
MAX_PAGES = 1000  # a guard against a server that never stops paging


@dataclass(frozen=True)
class Zone:
    """A domain (zone) of the account: ``name`` in ASCII (punycode), lowercase, no dot."""

    name: str
    nameservers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Record:
    record_id: str
    rr: str
    type: str
    value: str
    status: str = "ENABLE"


def _items(body: dict, outer: str, inner: str) -> list[dict]:
    block = body.get(outer)
    if isinstance(block, dict):
        items = block.get(inner)
        if isinstance(items, list):
            return [i for i in items if isinstance(i, dict)]
    if block is None:
        return []
    raise ProviderError(f"alidns: unexpected response shape ({outer}.{inner})")


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def describe_domains(api: AliyunApi) -> list[Zone]:
    """Every zone of the account (all pages, PageSize 100)."""
    zones: list[Zone] = []
    page = 1
    while page <= MAX_PAGES:
        req = DescribeDomainsRequest()
        req.set_PageNumber(page)
        req.set_PageSize(DOMAINS_PAGE_SIZE)
        body = api.call(PRODUCT, req)
        items = _items(body, "Domains", "Domain")
        for d in items:
            name = str(d.get("PunyCode") or d.get("DomainName") or "")
            if not name:
                continue
            servers = d.get("DnsServers", {})
            ns = servers.get("DnsServer", []) if isinstance(servers, dict) else []
            zones.append(Zone(to_ascii(name), tuple(str(s).rstrip(".").lower() for s in ns if s)))
        total = _int(body.get("TotalCount"), -1)
        if not items or len(items) < DOMAINS_PAGE_SIZE or (0 <= total <= page * DOMAINS_PAGE_SIZE):
            break
        page += 1
    return zones


def describe_domain_ns(api: AliyunApi, zone: str) -> tuple[str, ...]:
    """The nameservers Alibaba assigned to ``zone`` (ExpectDnsServers)."""
    req = DescribeDomainNsRequest()
    req.set_DomainName(zone)
    body = api.call(PRODUCT, req)
    block = body.get("ExpectDnsServers") or {}
    names = block.get("ExpectDnsServer", []) if isinstance(block, dict) else []
    return tuple(str(n).rstrip(".").lower() for n in names if n)


def describe_sub_domain_records(api: AliyunApi, zone: str, fqdn: str, rtype: str) -> list[Record]:
    """Records of ``rtype`` at exactly ``fqdn`` in ``zone`` (all pages)."""
    records: list[Record] = []
    page = 1
    while page <= MAX_PAGES:
        req = DescribeSubDomainRecordsRequest()
        req.set_SubDomain(fqdn)
        req.set_DomainName(zone)
        req.set_Type(rtype)
        req.set_PageNumber(page)
        req.set_PageSize(RECORDS_PAGE_SIZE)
        body = api.call(PRODUCT, req)
        items = _items(body, "DomainRecords", "Record")
        for r in items:
            if str(r.get("Type", "")).upper() != rtype:
                continue
            records.append(Record(str(r.get("RecordId", "")), str(r.get("RR", "")), rtype,
                                  str(r.get("Value", "")), str(r.get("Status", "ENABLE")).upper()))
        total = _int(body.get("TotalCount"), -1)
        if not items or len(items) < RECORDS_PAGE_SIZE or (0 <= total <= page * RECORDS_PAGE_SIZE):
            break
        page += 1
    return records


def add_txt(api: AliyunApi, zone: str, rr: str, value: str, ttl: int) -> str:
    """Create a TXT record; returns its RecordId."""
    req = AddDomainRecordRequest()
    req.set_DomainName(zone)
    req.set_RR(rr)
    req.set_Type("TXT")
    req.set_Value(value)
    req.set_TTL(ttl)
    body = api.call(PRODUCT, req)
    record_id = body.get("RecordId")
    if not record_id:
        raise ProviderError(f"alidns: AddDomainRecord for {rr}.{zone} returned no RecordId",
                            retryable=True)
    return str(record_id)


def delete_record(api: AliyunApi, record_id: str) -> bool:
    """Delete one record by id; False when it was already gone (DomainRecordNotBelongToUser)."""
    req = DeleteDomainRecordRequest()
    req.set_RecordId(record_id)
    try:
        api.call(PRODUCT, req)
    except ProviderError as exc:
        if exc.code == "DomainRecordNotBelongToUser":
            return False
        raise
    return True
