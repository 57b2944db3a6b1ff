"""CDN 2018-05-10: HTTPS certificates of accelerated domains.

Why the details matter: the daemon decides "already deployed?" from these read APIs, retries
SetCdnDomainSSLCertificate after crashes, and verifies by TLS handshake. So the sandbox binds
certificates of its CAS (``CertType=cas`` + ``CertId`` + ``CertRegion``, the certificate must
live in that region) and, in upload mode, stores the upload in CAS cn-hangzhou as a new
certificate every time (Alibaba's 2026-02-25 notice: a same-name upload adds another
certificate); it rejects what the real service rejects (unparseable PEM, mismatched key, a
certificate not covering the domain), and makes every change roll out asynchronously:
``configuring``/``checking``/``applying`` for ``cdn_rollout_seconds`` while the edge still
serves the old certificate, then ``online``/``success``. A second change while configuring is
refused with 403 ``ServiceBusy`` (setting ``cdn_busy_while_configuring``).

A wildcard accelerated domain is named with a leading period, as the API does
(``.example.com``: "The domain name must start with a period"); fixtures may write
``*.example.com``.
"""

from __future__ import annotations

import datetime as dt
import re

from ..certs import CertError, validate_pair
from ..errors import ApiError, invalid_param
from ..state import CdnDomain, CdnHttps, StoredCert
from .base import Call, Product, enum_param, int_param, iso, optional, page_of, paging, required, spaced

# Alibaba documents no maximum for DescribeCdnHttpsDomainList PageSize (only "default 20"); the
# sandbox uses the bound its DCDN twin and DescribeUserDomains document, 500 (see README).
HTTPS_LIST_MAX_PAGE_SIZE = 500
EXPIRE_SOON_DAYS = 30
_CERT_NAME_RE = re.compile(r"^[A-Za-z0-9._*\-]{1,64}$")
CERT_REGIONS = ("cn-hangzhou", "ap-southeast-1")


def cas_users(world, cert_id: int) -> list[tuple[str, str]]:
    """The CDN domains whose configuration (or edge, mid-rollout) uses CAS certificate ``cert_id``."""
    return [("CDN", d.name) for d in sorted(world.cdn.values(), key=lambda x: x.name)
            if any(c is not None and c.cert_id == cert_id for c in (d.config.cert, d.served.cert))]


def _domain(call: Call) -> CdnDomain:
    name = required(call, "DomainName").lower().rstrip(".")
    d = call.world.cdn.get(name)
    if d is None:
        raise ApiError(404, "InvalidDomain.NotFound",
                       "The domain does not exist or does not belong to you.")
    return d


def _cert_status(cert: StoredCert, domain: str, now: float) -> str:
    """DescribeCdnHttpsDomainList ``CertStatus``."""
    not_after = cert.info.not_after.replace(tzinfo=dt.UTC).timestamp()
    if not cert.info.covers(domain):
        return "mismatch"
    if not_after <= now:
        return "expired"
    if not_after - now < EXPIRE_SOON_DAYS * 86400:
        return "expire_soon"
    return "ok"


def _store_upload(call: Call, name: str | None, chain_pem: str, key_pem: str, domain: str) -> StoredCert:
    try:
        info = validate_pair(chain_pem, key_pem)
    except CertError as exc:
        if exc.kind == "cert":
            raise ApiError(400, "InvalidSSLPub", f"The SSLPub is invalid: {exc}.") from None
        if exc.kind == "key":
            raise ApiError(400, "InvalidSSLPri", f"The SSLPri is invalid: {exc}.") from None
        # No code of its own is documented for a key that does not belong to the certificate.
        raise ApiError(400, "InvalidSSLPri",
                       "The SSLPri does not match the certificate (SSLPub).") from None
    _check_usable(info, domain, call.now, "SSLPub")
    if name is None:
        name = f"cert-{info.serial[:40]}"
    if not _CERT_NAME_RE.match(name):
        raise invalid_param("CertName", "1 to 64 characters: letters, digits, '.', '_', '-', '*'.")
    world = call.world
    # Since ForceSet went offline (notice of 2026-02-25), an upload under a name that exists
    # adds another CAS certificate instead of updating or refusing.
    cert = StoredCert(cert_id=world.new_cert_id(), name=name, chain_pem=chain_pem, key_pem=key_pem,
                      info=info, created=call.now, region="cn-hangzhou", source="cdn")
    world.certs_by_name[name] = cert
    world.certs_by_id[cert.cert_id] = cert
    return cert


def _check_usable(info, domain: str, now: float, param: str) -> None:
    """A certificate that does not cover the domain, or has expired, is refused. Which code the
    service uses for either is not documented: the gateway's generic InvalidParameter, naming
    the parameter that carried the certificate."""
    if not info.covers(domain):
        raise invalid_param(param, f"The certificate does not match the domain name {domain}.")
    if info.not_after.replace(tzinfo=dt.UTC).timestamp() <= now:
        raise invalid_param(param, "The certificate has expired.")


def set_cdn_domain_ssl_certificate(call: Call) -> dict:
    d = _domain(call)
    protocol = required(call, "SSLProtocol")
    if protocol not in ("on", "off"):
        raise ApiError(400, "InvalidSSLProtocol.ValueNotSupported",
                       f"The specified SSLProtocol {protocol!r} is not supported.")
    world = call.world
    if d.configuring() and world.settings.cdn_busy_while_configuring:
        raise ApiError(403, "ServiceBusy",
                       "The domain is being configured. Please try again later.")
    if protocol == "off":
        d.start_rollout(CdnHttps(None, "upload", call.now), call.now, world.settings.cdn_rollout_seconds)
        return {}
    cert_type = enum_param(call, "CertType", ("upload", "cas"), "upload")
    if cert_type == "upload":
        pub = optional(call, "SSLPub")
        pri = optional(call, "SSLPri")
        if pub is None:
            raise ApiError(400, "SSLPub.MissingParameter", "The SSLPub parameter is required.")
        if pri is None:
            raise ApiError(400, "SSLPri.MissingParameter", "The SSLPri parameter is required.")
        cert = _store_upload(call, optional(call, "CertName"), pub, pri, d.name)
    else:
        region = enum_param(call, "CertRegion", CERT_REGIONS, "cn-hangzhou",
                            code="Abs.CertRegion.ValueNotSupported")
        cert_id = int_param(call, "CertId", None)
        if cert_id is None:
            required(call, "CertId")  # "required if you set CertType to cas"
        cert = world.certs_by_id.get(cert_id)
        if cert is None or cert.region != region:
            raise invalid_param("CertId", f"The certificate {cert_id} does not exist in {region}.")
        _check_usable(cert.info, d.name, call.now, "CertId")
    d.start_rollout(CdnHttps(cert, cert_type, call.now), call.now, world.settings.cdn_rollout_seconds)
    return {}


def _cert_info(d: CdnDomain, now: float) -> dict:
    c = d.config.cert
    base = {
        "DomainName": d.name,
        "Status": d.cert_status(now),
        "DomainCnameStatus": "online",
        "ServerCertificateStatus": "on" if c else "off",
    }
    if c is None:
        base.update({"CertName": "", "CertId": "", "CertType": "", "CertDomainName": "",
                     "ServerCertificate": "", "CertLife": "", "CertOrg": "", "CertRegion": "",
                     "CertStartTime": "", "CertExpireTime": "", "CertUpdateTime": ""})
        return base
    months = max(1, round((c.info.not_after - c.info.not_before).days / 30))
    base.update({
        "CertName": c.name,
        "CertId": str(c.cert_id),
        "CertType": d.config.cert_type,
        "CertRegion": c.region,
        "CertDomainName": c.info.common_name or (c.info.dns_names[0] if c.info.dns_names else ""),
        "CertOrg": c.info.organization,
        "CertLife": f"{months} months",
        "CertStartTime": iso(c.info.not_before),
        "CertExpireTime": iso(c.info.not_after),
        "CertUpdateTime": iso(d.config.updated),
        "ServerCertificate": c.chain_pem,
    })
    return base


def describe_domain_certificate_info(call: Call) -> dict:
    d = _domain(call)
    return {"CertInfos": {"CertInfo": [_cert_info(d, call.now)]}}


def describe_cdn_https_domain_list(call: Call) -> dict:
    number, size = paging(call, 20, HTTPS_LIST_MAX_PAGE_SIZE)
    keyword = (optional(call, "Keyword") or "").lower()
    rows = []
    for d in sorted(call.world.cdn.values(), key=lambda x: x.name):
        c = d.config.cert
        if c is None:
            continue
        if keyword and keyword not in d.name and keyword not in c.name.lower():
            continue
        rows.append({
            "DomainName": d.name,
            "CertName": c.name,
            "CertType": d.config.cert_type,
            "CertStatus": _cert_status(c, d.name, call.now),
            "CertCommonName": c.info.common_name,
            "CertStartTime": spaced(c.info.not_before),
            "CertExpireTime": spaced(c.info.not_after),
            "CertUpdateTime": spaced(d.config.updated),
        })
    return {"TotalCount": len(rows), "CertInfos": {"CertInfo": page_of(rows, number, size)}}


def _domain_row(d: CdnDomain) -> dict:
    return {
        "DomainName": d.name,
        "Cname": d.cname,
        "DomainStatus": d.domain_status(),
        "SslProtocol": "on" if d.config.cert else "off",
        "CdnType": d.cdn_type,
        "Coverage": "domestic",
        "GmtCreated": iso(d.created),
        "GmtModified": iso(d.modified),
        "Description": d.description,
        "ResourceGroupId": "rg-sandbox",
        "Sandbox": "normal",
        "Sources": {"Source": [dict(s) for s in d.sources]},
    }


def describe_user_domains(call: Call) -> dict:
    number, size = paging(call, 20, 500)
    name = (optional(call, "DomainName") or "").lower()
    how = enum_param(call, "DomainSearchType",
                     ("fuzzy_match", "pre_match", "suf_match", "full_match"), "fuzzy_match")
    status = optional(call, "DomainStatus")
    cdn_type = optional(call, "CdnType")
    rows = []
    for d in sorted(call.world.cdn.values(), key=lambda x: x.name):
        if name and not {"fuzzy_match": name in d.name, "pre_match": d.name.startswith(name),
                         "suf_match": d.name.endswith(name), "full_match": d.name == name}[how]:
            continue
        if status and d.domain_status() != status:
            continue
        if cdn_type and d.cdn_type != cdn_type:
            continue
        rows.append(_domain_row(d))
    return {"PageNumber": number, "PageSize": size, "TotalCount": len(rows),
            "Domains": {"PageData": page_of(rows, number, size)}}


def describe_cdn_domain_detail(call: Call) -> dict:
    d = _domain(call)
    return {"GetDomainDetailModel": {
        "DomainName": d.name,
        "Cname": d.cname,
        "HttpsCname": "",
        "DomainStatus": d.domain_status(),
        "CdnType": d.cdn_type,
        "ServerCertificateStatus": "on" if d.config.cert else "off",
        "GmtCreated": iso(d.created),
        "GmtModified": iso(d.modified),
        "ResourceGroupId": "rg-sandbox",
        "Description": d.description,
        "Scope": "domestic",
        "SourceModels": {"SourceModel": [
            {"Content": s["Content"], "Type": s["Type"], "Port": s["Port"], "Enabled": "online",
             "Priority": s["Priority"], "Weight": s["Weight"]} for s in d.sources]},
    }}


PRODUCT = Product(
    name="Cdn",
    version="2018-05-10",
    ram_prefix="cdn",
    host_pattern="cdn.aliyuncs.com",
    actions={
        "SetCdnDomainSSLCertificate": set_cdn_domain_ssl_certificate,
        "DescribeDomainCertificateInfo": describe_domain_certificate_info,
        "DescribeCdnHttpsDomainList": describe_cdn_https_domain_list,
        "DescribeUserDomains": describe_user_domains,
        "DescribeCdnDomainDetail": describe_cdn_domain_detail,
    },
)
