"""The admin API over HTTP (same operations as the Python methods), fixtures, the call log."""

from __future__ import annotations

import time

import pytest
import requests
from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import SetCdnDomainSSLCertificateRequest
from conftest import SECRET, call, handshake, serial_of

from sandbox import FixtureError, Sandbox


def admin(sb, method, path, **kw):
    r = requests.request(method, f"{sb.api_url}/_admin/{path}", timeout=5, **kw)
    return r.status_code, r.json()


def test_info_zones_records(sb):
    status, info = admin(sb, "GET", "info")
    assert status == 200 and info["api_port"] == sb.api_port and info["dns2_port"] == sb.dns2_port
    assert info["nameservers"]["ns1.sandbox.alicertd.test"] == f"127.0.0.1:{sb.dns_port}"
    _, zones = admin(sb, "GET", "zones")
    assert [z["name"] for z in zones] == ["acme-validation.example.org", "dev.example.com",
                                          "example.com", "example.net"]
    _, recs = admin(sb, "GET", "records", params={"zone": "dev.example.com"})
    assert [(r["FQDN"], r["Type"]) for r in recs] == [("app.dev.example.com", "A")]
    status, added = admin(sb, "POST", "records", json={"zone": "example.net", "rr": "x", "type": "TXT",
                                                        "value": "console"})
    assert status == 200 and any(r["RecordId"] == added["record_id"] for r in sb.records("example.net"))
    assert admin(sb, "DELETE", f"records/{added['record_id']}")[1] == {"deleted": True}
    assert admin(sb, "GET", "records", params={"zone": "nope"})[0] == 400
    assert admin(sb, "GET", "nonsense")[0] == 404


def test_call_log_since_counts_and_redaction(sb, client, ca):
    call(sb, client, DescribeDomainsRequest())
    mark = time.time()
    chain, key, _ = ca.issue(["cdn.example.com"])
    req = SetCdnDomainSSLCertificateRequest()
    req.set_DomainName("cdn.example.com")
    req.set_SSLProtocol("on")
    req.set_SSLPub(chain)
    req.set_SSLPri(key)
    req.set_CertName("logged")
    call(sb, client, req)
    _, calls = admin(sb, "GET", "calls", params={"since": mark})
    assert [c["action"] for c in calls] == ["SetCdnDomainSSLCertificate"]
    entry = calls[0]
    assert entry["params"]["SSLPri"] == "***" and entry["params"]["CertName"] == "logged"
    assert entry["params"]["SSLPub"].startswith("<") and "BEGIN" not in entry["params"]["SSLPub"]
    assert entry["params"]["Signature"] == "***" and entry["product"] == "Cdn"
    assert isinstance(entry["time"], float) and entry["version"] == "2018-05-10"
    log_text = repr(sb.calls())
    assert "PRIVATE KEY" not in log_text and SECRET not in log_text
    _, counts = admin(sb, "GET", "calls/counts")
    assert counts == {"DescribeDomains": 1, "SetCdnDomainSSLCertificate": 1}
    assert admin(sb, "GET", "calls/counts", params={"since": mark})[1] == {"SetCdnDomainSSLCertificate": 1}


def test_faults_delay_rollout_and_sts_over_http(sb, client):
    status, rule = admin(sb, "POST", "faults", json={"action": "DescribeDomains", "script": ["throttle"]})
    assert status == 200 and rule["DescribeDomains"]["script"] == ["throttle"]
    assert admin(sb, "POST", "faults", json={"throttle": 2})[0] == 400
    from conftest import call_error
    assert call_error(sb, client, DescribeDomainsRequest()).get_error_code() == "Throttling.User"
    assert admin(sb, "DELETE", "faults")[1] == {"ok": True}
    assert admin(sb, "GET", "faults")[1] == {}
    settings = admin(sb, "POST", "dns-delay", json={"delay": 2.5, "ns2_extra": 1})[1]
    assert (settings["dns_delay"], settings["dns2_extra_delay"]) == (2.5, 1.0)
    assert admin(sb, "POST", "cdn-rollout", json={"seconds": 0})[1]["cdn_rollout_seconds"] == 0
    sb.role_credentials("alicertd-role")
    assert admin(sb, "POST", "sts/expire")[1] == {"expired": 1}


def test_replace_bindings_over_http(sb, ca):
    chain, key, leaf = ca.issue(["img.example.com"])
    status, view = admin(sb, "POST", "cdn/img.example.com", json={"cert_pem": chain, "key_pem": key,
                                                                    "cert_name": "console"})
    assert status == 200 and view["serial"] == serial_of(leaf) and view["status"] == "online"
    assert handshake(sb, "img.example.com", ca.pem) == serial_of(leaf)
    wild = admin(sb, "GET", "cdn/*.static.example.com")[1]
    assert wild["domain"] == ".static.example.com" and wild["ssl"] == "off"  # the API's name

    chain, key, leaf = ca.issue(["api.example.com"])
    status, view = admin(sb, "POST", "apigateway/cn-shanghai/abc123/api.example.com",
                         json={"cert_pem": chain, "key_pem": key})
    assert status == 200 and view["serial"] == serial_of(leaf) and view["cert_pem"] == chain
    listed = admin(sb, "GET", "apigateway")[1]
    assert listed[0]["name"] == "cn-shanghai/abc123/api.example.com"
    assert admin(sb, "POST", "cdn/img.example.com", json={"cert_pem": "junk", "key_pem": key})[0] == 400


def test_load_fixture_and_reset(sb, client):
    toml = '[[access_key]]\nid = "LTAIother"\nsecret = "x"\n[[zone]]\nname = "only.test"\n'
    status, body = admin(sb, "POST", "fixture", json={"toml": toml})
    assert status == 200 and body["zones"] == ["only.test"]
    assert admin(sb, "POST", "fixture", json={"zone": [{"name": 3}]})[0] == 400
    sb.add_record("only.test", "a", "A", "192.0.2.1")
    sb.set_faults("*", throttle=1.0)
    assert admin(sb, "POST", "reset")[1] == {"ok": True}
    assert sb.records() == [] and sb.fault_rules() == {} and sb.calls() == []


def test_fixture_errors_are_all_reported():
    with pytest.raises(FixtureError) as info:
        Sandbox({"zone": [{"name": "a.test", "record": [{"rr": "x", "type": "BOGUS", "value": "v"}]},
                          {"name": "a.test"}],
                 "access_key": [{"id": "STS.x"}], "surprise": []})
    text = "\n".join(info.value.problems)
    for needle in ("zone[0].record[0].type", "zone[1].name: duplicate", "access_key[0].secret",
                   "access_key[0].id: must not start with STS.", "surprise: unknown section"):
        assert needle in text


def test_json_fixture_file_and_no_second_nameserver(tmp_path):
    path = tmp_path / "f.json"
    path.write_text('{"zone": [{"name": "j.test"}], "settings": {"dns_delay": 1.5}}')
    with Sandbox(path, dns2_port=None) as sb:
        assert sb.dns2_port is None and sb.settings()["dns_delay"] == 1.5
        assert [z["name"] for z in sb.zones()] == ["j.test"]


def test_start_fails_cleanly_when_a_port_is_taken():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        sb = Sandbox(edge_port=s.getsockname()[1])
        with pytest.raises(OSError):
            sb.start()
        assert not sb.running
