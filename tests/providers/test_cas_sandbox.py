"""The CAS hub against the sandbox: upload once, find earlier uploads by fingerprint, ours vs
foreign, both regions, deletion; and the sandbox's CAS itself through the same access layer."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from daemon.state import CasRecords, StateStore
from providers.base import ProviderError
from providers.cas import NAME_MAX, CasHub, _request, client_token
from providers.certnames import cert_name

from .certs import make_bundle
from .conftest import fast_api, sandbox_ctx


def hub_for(sb, state_dir, *, records=None, cas_region="cn-hangzhou"):
    ctx = sandbox_ctx(sb, state_dir)
    ctx.config = dataclasses.replace(ctx.config, aliyun=dataclasses.replace(ctx.config.aliyun,
                                                                            cas_region=cas_region))
    ctx.cas_records = records if records is not None else StateStore(state_dir).cas
    api = fast_api(ctx)
    return CasHub(ctx, api_for=lambda account: api), api


def uploads(sb):
    return [c for c in sb.world.certs_by_id.values() if c.source == "cas"]


def test_ensure_uploads_once_and_remembers_the_id(sb, state_dir):
    hub, api = hub_for(sb, state_dir)
    bundle = make_bundle("www", ["cdn.example.com"])
    first = hub.ensure(bundle)
    assert first.name == cert_name("www", bundle.fingerprint, NAME_MAX) and len(first.name) <= 63
    assert (first.fingerprint, first.serial, first.region) == (bundle.fingerprint, bundle.serial,
                                                               "cn-hangzhou")
    assert hub.ensure(bundle) == first
    assert api.calls["cas:UploadUserCertificate"] == 1
    [stored] = uploads(sb)
    assert stored.cert_id == first.cert_id and stored.info.fingerprint == bundle.fingerprint

    # a new run (new hub) finds it in the state dir: no listing, no upload
    again, api2 = hub_for(sb, state_dir)
    assert again.ensure(bundle) == first
    assert dict(api2.calls) == {}
    path = state_dir / "cas" / "certificates.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_lost_record_is_found_by_fingerprint_in_the_listing(sb, state_dir):
    hub, _ = hub_for(sb, state_dir)
    bundle = make_bundle("www", ["cdn.example.com"])
    first = hub.ensure(bundle)
    (state_dir / "cas" / "certificates.json").unlink()  # a crash right after the upload

    again, api = hub_for(sb, state_dir)
    assert again.ensure(bundle) == first
    assert api.calls["cas:UploadUserCertificate"] == 0
    assert api.calls["cas:ListUserCertificateOrder"] == 1
    assert len(uploads(sb)) == 1
    assert again.identify(first.cert_id) == first  # recorded again: ours


def test_same_name_other_certificate_is_not_taken_for_ours(sb, state_dir):
    """A certificate under our name but with another serial (someone's same-name upload) is
    not ours: the hub uploads its own."""
    bundle = make_bundle("www", ["cdn.example.com"])
    other = make_bundle("www", ["cdn.example.com"])
    name = cert_name("www", bundle.fingerprint, NAME_MAX)
    hub, api = hub_for(sb, state_dir)
    api.call("cas", _request("UploadUserCertificate", Name=name, Cert=other.fullchain_pem,
                             Key=other.key_pem))
    mine = hub.ensure(bundle)
    assert len([c for c in uploads(sb) if c.name == name]) == 2  # names repeat, ids do not
    assert sb.world.certs_by_id[mine.cert_id].info.fingerprint == bundle.fingerprint


def test_concurrent_ensure_uploads_once(sb, state_dir):
    hub, api = hub_for(sb, state_dir)
    bundle = make_bundle("www", ["cdn.example.com"])
    with ThreadPoolExecutor(8) as pool:
        got = set(pool.map(lambda _: hub.ensure(bundle), range(16)))
    assert len(got) == 1 and api.calls["cas:UploadUserCertificate"] == 1


def test_client_token_makes_a_retried_upload_return_the_first_id(sb, state_dir):
    _, api = hub_for(sb, state_dir)
    bundle = make_bundle("www", ["cdn.example.com"])
    token = client_token("default", bundle.fingerprint)
    assert len(token) <= 64 and token.isascii()
    ids = {api.call("cas", _request("UploadUserCertificate", Name="x", Cert=bundle.fullchain_pem,
                                    Key=bundle.key_pem, ClientToken=token))["CertId"] for _ in range(2)}
    assert len(ids) == 1 and len(uploads(sb)) == 1


def test_regions_are_separate_stores(sb, state_dir):
    bundle = make_bundle("www", ["cdn.example.com"])
    china, _ = hub_for(sb, state_dir)
    intl, api = hub_for(sb, state_dir, cas_region="ap-southeast-1")
    a, b = china.ensure(bundle), intl.ensure(bundle)
    assert a.cert_id != b.cert_id and (a.region, b.region) == ("cn-hangzhou", "ap-southeast-1")
    assert sb.world.certs_by_id[b.cert_id].region == "ap-southeast-1"
    listed = api.call("cas", _request("ListUserCertificateOrder", OrderType="UPLOAD"),
                      region="ap-southeast-1")
    assert [i["CertificateId"] for i in listed["CertificateOrderList"]] == [b.cert_id]


def test_identify_and_current(sb, state_dir):
    hub, api = hub_for(sb, state_dir)
    bundle = make_bundle("www", ["cdn.example.com"])
    foreign = make_bundle("hand", ["cdn.example.com"])
    body = api.call("cas", _request("UploadUserCertificate", Name="by-hand", Cert=foreign.fullchain_pem,
                                    Key=foreign.key_pem))
    ours = hub.ensure(bundle)
    assert hub.identify(ours.cert_id) == ours and hub.identify(str(ours.cert_id)) == ours
    assert hub.identify(body["CertId"]) is None
    assert hub.identify(ours.cert_id, account="media") is None
    assert hub.current("www") is None  # ctx.bundles does not name it
    hub.ctx.bundles["www"] = bundle
    assert hub.current("www") == ours


def test_delete_only_ours_and_refused_while_bound(sb, state_dir):
    hub, api = hub_for(sb, state_dir)
    bundle = make_bundle("www", ["cdn.example.com"])
    ours = hub.ensure(bundle)
    api.call("cdn", _request_cdn(ours.cert_id))
    with pytest.raises(ProviderError, match="still used by CDN cdn.example.com"):
        hub.delete(ours.cert_id)  # CAS lists the CDN domain using it: not even asked to delete
    assert api.calls["cas:DeleteUserCertificate"] == 0
    with pytest.raises(ProviderError, match="InvalidParameter"):  # and CAS would refuse anyway
        api.call("cas", _request("DeleteUserCertificate", CertId=ours.cert_id))
    assert hub.identify(ours.cert_id) is not None and ours.cert_id in sb.world.certs_by_id

    sb.replace_cdn_binding("cdn.example.com", None)
    hub.delete(ours.cert_id)
    assert hub.identify(ours.cert_id) is None and ours.cert_id not in sb.world.certs_by_id
    with pytest.raises(ProviderError, match="not uploaded by alicertd"):
        hub.delete(12345)
    assert api.calls["cas:DeleteUserCertificate"] == 2  # the refused direct call, then ours
    assert api.calls["cas:ListCloudResources"] == 2


def _request_cdn(cert_id):
    from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import (
        SetCdnDomainSSLCertificateRequest,
    )
    req = SetCdnDomainSSLCertificateRequest()
    for k, v in dict(DomainName="cdn.example.com", SSLProtocol="on", CertType="cas", CertId=cert_id,
                     CertRegion="cn-hangzhou").items():
        req.add_query_param(k, v)
    return req


def test_dry_run_never_uploads(sb, state_dir):
    hub, api = hub_for(sb, state_dir)
    hub.ctx.dry_run = True
    bundle = make_bundle("www", ["cdn.example.com"])
    assert hub.lookup(bundle) is None
    with pytest.raises(ProviderError, match="dry run"):
        hub.ensure(bundle)
    assert api.calls["cas:UploadUserCertificate"] == 0 and not uploads(sb)


def test_records_store_is_atomic_and_thread_safe(state_dir):
    records = CasRecords(state_dir)
    threads = [threading.Thread(target=records.put, args=({"account": "default", "cert_id": i,
                                                           "fingerprint": f"{i:064x}"},))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e["cert_id"] for e in records.entries()) == list(range(20))
    records.remove("default", 3)
    assert 3 not in [e["cert_id"] for e in CasRecords(state_dir).entries()]
    assert not [p for p in (state_dir / "cas").iterdir() if p.name.startswith(".tmp-")]
