"""The authoritative DNS listeners: answers, propagation delay, ns2 lag, UDP and TCP."""

from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from aliyunsdkalidns.request.v20150109.AddDomainRecordRequest import AddDomainRecordRequest
from aliyunsdkalidns.request.v20150109.DeleteDomainRecordRequest import DeleteDomainRecordRequest
from conftest import call, wait_until


def query(sb, name, rdtype="A", tcp=False, port=None):
    q = dns.message.make_query(name, rdtype)
    port = port or sb.dns_port
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=2)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=2)


def txt_values(resp) -> set[str]:
    return {b"".join(rd.strings).decode() for rrset in resp.answer
            if rrset.rdtype == dns.rdatatype.TXT for rd in rrset}


def add_txt(sb, client, rr, value, domain="example.com"):
    req = AddDomainRecordRequest()
    req.set_DomainName(domain)
    req.set_RR(rr)
    req.set_Type("TXT")
    req.set_Value(value)
    return call(sb, client, req)["RecordId"]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_txt_visible_only_after_delay(sb, client, tcp):
    sb.set_dns_delay(0.5)
    added = time.monotonic()
    rid = add_txt(sb, client, "_acme-challenge.www2", "challenge-value")
    name = "_acme-challenge.www2.example.com"
    first = query(sb, name, "TXT", tcp)
    assert first.rcode() == dns.rcode.NXDOMAIN and first.flags & dns.flags.AA
    wait_until(lambda: "challenge-value" in txt_values(query(sb, name, "TXT", tcp)), timeout=5)
    assert time.monotonic() - added >= 0.45

    req = DeleteDomainRecordRequest()
    req.set_RecordId(rid)
    call(sb, client, req)
    assert "challenge-value" in txt_values(query(sb, name, "TXT", tcp))  # deletion lags too
    wait_until(lambda: query(sb, name, "TXT", tcp).rcode() == dns.rcode.NXDOMAIN, timeout=5)


def test_second_nameserver_lags_behind(sb, client):
    sb.set_dns_delay(0.0, ns2_extra=0.6)
    add_txt(sb, client, "_acme-challenge", "lagging")
    name = "_acme-challenge.example.com"
    assert txt_values(query(sb, name, "TXT")) == {"lagging"}
    assert txt_values(query(sb, name, "TXT", port=sb.dns2_port)) == set()
    wait_until(lambda: txt_values(query(sb, name, "TXT", port=sb.dns2_port)) == {"lagging"}, timeout=5)
    servers = {e["server"] for e in sb.dns_queries()}
    assert servers == {"ns1", "ns2"}


def test_nxdomain_nodata_refused_and_apex(sb):
    nx = query(sb, "missing.example.com")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert nx.authority[0].rdtype == dns.rdatatype.SOA
    nodata = query(sb, "example.com", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    refused = query(sb, "example.org")
    assert refused.rcode() == dns.rcode.REFUSED and not refused.flags & dns.flags.AA
    ns = query(sb, "example.com", "NS")
    assert sorted(rd.target.to_text() for rd in ns.answer[0]) == [
        "ns1.sandbox.alicertd.test.", "ns2.sandbox.alicertd.test."]
    soa = query(sb, "acme-validation.example.org", "SOA", tcp=True)
    assert soa.answer[0].rdtype == dns.rdatatype.SOA and soa.flags & dns.flags.AA


def test_cname_chain_and_empty_non_terminal(sb, client):
    www = query(sb, "www.example.com", "A")
    assert [r.rdtype for r in www.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    add_txt(sb, client, "_acme-challenge.deep.name", "x")
    ent = query(sb, "deep.name.example.com", "TXT")
    assert ent.rcode() == dns.rcode.NOERROR and not ent.answer  # exists, no data


def test_nested_zone_answers_from_child_and_shadows_parent(sb, client):
    add_txt(sb, client, "_acme-challenge.app.dev", "in-parent")  # stored in example.com ...
    resp = query(sb, "_acme-challenge.app.dev.example.com", "TXT")
    assert resp.rcode() == dns.rcode.NXDOMAIN  # ... but dev.example.com is authoritative there
    add_txt(sb, client, "_acme-challenge.app", "in-child", domain="dev.example.com")
    assert txt_values(query(sb, "_acme-challenge.app.dev.example.com", "TXT")) == {"in-child"}
    assert query(sb, "app.dev.example.com").answer[0][0].address == "192.0.2.20"


def test_wildcard_record(sb):
    sb.add_record("example.net", "*", "A", "192.0.2.99")
    resp = query(sb, "anything.example.net")
    assert resp.answer[0][0].address == "192.0.2.99"
    assert resp.answer[0].name.to_text() == "anything.example.net."


def test_long_txt_over_udp_truncates_and_tcp_carries_it(sb):
    for i in range(12):
        sb.add_record("example.com", "_big", "TXT", f"{i:02d}" + "x" * 100)
    udp = query(sb, "_big.example.com", "TXT")
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = query(sb, "_big.example.com", "TXT", tcp=True)
    assert len(txt_values(tcp)) == 12
