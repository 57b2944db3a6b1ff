"""The real providers against the sandbox, every exchange held to the official v2 models.

One scenario per product, through every action the provider calls; nothing of ours is mocked
(the providers go through the SDK and our access layer over HTTP, as in production).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from pathlib import Path

from daemon.config import AliyunConfig, DnsConfig
from daemon.state import CasRecords, DnsJournal
from providers import _alidns_api as wire
from providers.alidns import AlidnsProvider
from providers.apigateway import ApiGatewayProvider
from providers.base import ConfigDefaults, ConfigErrors, DnsChallenge, ProviderContext
from providers.cas import CasHub, _request, cas_hub
from providers.cdn import CdnProvider, CdnSettings
from providers.dcdn import DcdnProvider, DcdnSettings
from providers.esa import EsaProvider, EsaSettings, SetCertificateRequest
from providers.esa import _request as esa_request
from tests.providers import conftest as support
from tests.providers.certs import make_bundle

from .checker import check_exchange
from .conftest import assert_conform

LOG = logging.getLogger("test.conformance")


def test_alidns_zone_lookup_record_add_list_delete(sb, tmp_path: Path, exchanges):
    key = AliyunConfig(access_key_id=support.SANDBOX_AK, access_key_secret=support.SANDBOX_SECRET,
                       endpoints={"alidns": sb.api_url})
    cfg = support.make_config(tmp_path, aliyun=key)
    cfg = dataclasses.replace(cfg, dns=DnsConfig(nameservers=(f"127.0.0.1:{sb.dns_port}",), ttl=600,
                                                 propagation_timeout=20.0))
    ctx = ProviderContext(config=cfg, journal=DnsJournal(tmp_path / "state"), log=LOG,
                          stop=threading.Event())
    provider = AlidnsProvider(ctx, None)
    handle = provider.present([
        DnsChallenge(domain="example.com", record_name="_acme-challenge.example.com", value="v-apex"),
        DnsChallenge(domain="*.example.com", record_name="_acme-challenge.example.com", value="v-wild"),
    ])
    provider.wait(handle, time.monotonic() + 20)
    # the zone's own nameservers, asked when [dns] nameservers is unset and the zone lists none
    # (resolving those names would leave this machine: only the API call is made here)
    assert wire.describe_domain_ns(provider.api, "example.com")
    provider.cleanup(handle)
    provider.cleanup_leftovers()
    assert_conform(exchanges, "Alidns", {"DescribeDomains", "DescribeSubDomainRecords", "AddDomainRecord",
                                         "DeleteDomainRecord", "DescribeDomainNs"})

    # the same real exchanges, one name changed, are refused
    add = copy.deepcopy(next(e for e in exchanges if e["action"] == "AddDomainRecord"))
    add["params"]["Ttl"] = add["params"].pop("TTL")
    assert check_exchange(add) == ["Alidns.AddDomainRecord request: Ttl: not a parameter of AddDomainRecordRequest"]
    listing = copy.deepcopy(next(e for e in exchanges if e["action"] == "DescribeDomains"))
    listing["body"]["Domains"]["Domain"][0]["DomainStatus"] = "ENABLE"
    assert check_exchange(listing) == ["Alidns.DescribeDomains response: Domains.Domain[0].DomainStatus: "
                                       "not a field of DescribeDomainsResponseBodyDomainsDomain"]


def test_cdn_list_info_bind(sb, state_dir, exchanges):
    www = make_bundle("www", ["cdn.example.com", "img.example.com"])
    provider = support.provider_for(CdnProvider, support.sandbox_ctx(sb, state_dir, tls=False))
    targets = CdnProvider.expand(CdnSettings(("cdn.example.com", "img.example.com")))
    provider.read_bindings(targets)
    for t in targets:
        provider.bind(t, www)
    for t in targets:
        assert provider.verify(t, www, time.monotonic() + 20).serves(www)
    # a new run knows no bundle: the list names certificates it cannot place, so it asks each
    # domain (DescribeDomainCertificateInfo)
    support.provider_for(CdnProvider, support.sandbox_ctx(sb, state_dir, tls=False)).read_bindings(targets)
    assert_conform(exchanges, "Cdn", {"DescribeCdnHttpsDomainList", "DescribeDomainCertificateInfo",
                                      "SetCdnDomainSSLCertificate"})


def test_apigateway_describe_set(sb, state_dir, exchanges):
    errors = ConfigErrors()
    settings = ApiGatewayProvider.parse_config(
        {"group_id": "abc123", "domain": "api.example.com", "region": "cn-shanghai"},
        "certificate[0].deploy[0]", errors, ConfigDefaults("cn-hangzhou"))
    assert not errors.messages
    [target] = ApiGatewayProvider.expand(settings)
    bundle = make_bundle("api", ["api.example.com"])
    provider = support.provider_for(ApiGatewayProvider, support.sandbox_ctx(sb, state_dir, tls=False))
    provider.read_bindings([target])
    provider.bind(target, bundle)
    assert provider.verify(target, bundle, time.monotonic() + 20).serves(bundle)
    assert_conform(exchanges, "CloudAPI", {"DescribeApiGroup", "DescribeDomain", "SetDomainCertificate"})


def test_cas_upload_list_detail_delete(sb, state_dir, exchanges):
    def hub(records_dir):
        ctx = support.sandbox_ctx(sb, state_dir, tls=False)
        ctx.cas_records = CasRecords(records_dir)
        api = support.fast_api(ctx)
        return CasHub(ctx, api_for=lambda account: api), api

    bundle = make_bundle("www", ["cdn.example.com"])
    first, api = hub(state_dir)
    cert = first.ensure(bundle)  # listing (nothing of ours yet), then the upload
    (state_dir / "lost").mkdir()
    again, _ = hub(state_dir / "lost")  # a state dir without the record: found in the listing
    assert again.ensure(bundle) == cert
    assert api.call("cas", _request("GetUserCertificateDetail", CertId=cert.cert_id), region=cert.region)
    first.delete(cert.cert_id)
    assert_conform(exchanges, "cas", {"ListUserCertificateOrder", "UploadUserCertificate",
                                      "GetUserCertificateDetail", "DeleteUserCertificate"})


def test_dcdn_list_info_bind(sb, state_dir, exchanges):
    bundle = make_bundle("dyn", ["dcdn.example.com"])
    provider = support.provider_for(DcdnProvider, support.sandbox_ctx(sb, state_dir, tls=False))
    [target] = DcdnProvider.expand(DcdnSettings(("dcdn.example.com",)))
    provider.read_bindings([target])
    provider.bind(target, bundle)
    assert provider.verify(target, bundle, time.monotonic() + 20).serves(bundle)
    support.provider_for(DcdnProvider, support.sandbox_ctx(sb, state_dir, tls=False)).read_bindings([target])
    assert_conform(exchanges, "dcdn", {"DescribeDcdnHttpsDomainList", "DescribeDcdnDomainCertificateInfo",
                                       "SetDcdnDomainSSLCertificate"})


def test_esa_sites_set_list_delete(sb, state_dir, exchanges):
    ctx = support.sandbox_ctx(sb, state_dir, tls=False)
    provider = support.provider_for(EsaProvider, ctx)
    [target] = EsaProvider.expand(EsaSettings(site="example.net", site_id=None, region="cn-hangzhou"))
    old, new, newer = (make_bundle("www", ["www.example.net"]) for _ in range(3))
    provider.read_bindings([target])
    provider.bind(target, old)
    provider.bind(target, new)  # replaces ours in place (SetCertificate with Id)
    # a leftover of ours beside it (as an earlier failure could leave), removed after verify
    site = next(iter(sb.world.esa_sites.values()))
    with sb.world.lock:
        site.cert_quota = 3
    extra = cas_hub(ctx).ensure(old)
    api = support.fast_api(ctx)
    api.call("esa", esa_request(SetCertificateRequest, SiteId=site.site_id, Type="cas", CasId=extra.cert_id,
                                Region=extra.region), region="cn-hangzhou")
    provider.bind(target, newer)
    assert provider.verify(target, newer, time.monotonic() + 20).serves(newer)
    assert_conform(exchanges, "ESA", {"ListSites", "ListCertificates", "SetCertificate", "DeleteCertificate"})
