"""DCDN 2018-01-15: HTTPS certificates of DCDN (Dynamic Route for CDN) accelerated domains.

The certificate calls are CDN's twins (``SetDcdnDomainSSLCertificate``,
``DescribeDcdnDomainCertificateInfo``, ``DescribeDcdnHttpsDomainList``), with the differences
the model package ``alibabacloud-dcdn20180115`` documents: the single-domain readback reports
the served chain as ``SSLPub`` with ``SSLProtocol`` on|off (CDN: ``ServerCertificate`` and
``ServerCertificateStatus``), and the HTTPS list pages up to 500 entries. A wildcard domain is
named with a leading period (``.example.com``), as the API names it. Certificates are bound by
CAS id only (``CertType=cas``; alicertd never uploads per domain) and looked up in the account's
CAS store (:func:`cas_certificate`). Every change rolls out asynchronously like CDN's (same
``cdn_rollout_seconds``/``cdn_busy_while_configuring`` settings, the same ``ServiceBusy``): the
edge keeps serving the old certificate until the rollout ends.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping

from ..errors import ApiError
from ..state import CdnDomain, CdnHttps, StoredCert, World
from .base import (
    Call,
    Product,
    enum_param,
    int_param,
    iso,
    optional,
    page_of,
    paging,
    required,
    spaced,
    wildcard_api_name,
)

EXPIRE_SOON_DAYS = 30

HTTPS_LIST_MAX_PAGE_SIZE = 500  # DescribeDcdnHttpsDomainListRequest.page_size: 1 to 500
CAS_REGIONS = ("cn-hangzhou", "ap-southeast-1")


def cas_certificate(world: World, cert_id: int) -> StoredCert | None:
    """The CAS certificate ``cert_id`` of the account, or None. Shared by the products that
    bind CAS certificates by id (DCDN, ESA, OSS)."""
    cas = getattr(world, "cas_certs", None)  # the CAS product's store, when it has its own
    if isinstance(cas, Mapping) and cert_id in cas:
        return cas[cert_id]
    return world.certs_by_id.get(cert_id)


def _domain(call: Call) -> CdnDomain:
    name = required(call, "DomainName").lower().rstrip(".")
    d = call.world.dcdn.get(name)
    if d is None:
        raise ApiError(404, "InvalidDomain.NotFound",
                       "The domain does not exist or does not belong to you.")
    d.settle(call.now)
    return d


def _wildcard(name: str) -> str:
    return "*" + name if name.startswith(".") else name


def _check_usable(info, domain: str, now: float) -> None:
    """The certificate must cover the domain (``*.x`` for the wildcard domain ``.x``) and be
    unexpired. The codes are CDN's twins (undocumented for DCDN: our guess)."""
    if not info.covers(domain):
        raise ApiError(400, "CertificateDomainNotMatch",
                       f"The certificate does not match the domain name {domain}.")
    if info.not_after.replace(tzinfo=dt.UTC).timestamp() <= now:
        raise ApiError(400, "CertificateExpired", "The certificate has expired.")


def _cert_status(cert: StoredCert, domain: str, now: float) -> str:
    """DescribeDcdnHttpsDomainList ``CertStatus``: ok, mismatch, expired, expire_soon (model)."""
    not_after = cert.info.not_after.replace(tzinfo=dt.UTC).timestamp()
    if not cert.info.covers(domain):
        return "mismatch"
    if not_after <= now:
        return "expired"
    return "expire_soon" if not_after - now < EXPIRE_SOON_DAYS * 86400 else "ok"


def set_dcdn_domain_ssl_certificate(call: Call) -> dict:
    d = _domain(call)
    protocol = required(call, "SSLProtocol")
    if protocol not in ("on", "off"):
        raise ApiError(400, "InvalidSSLProtocol.ValueNotSupported", "The specified SSLProtocol is invalid.")
    world = call.world
    if d.configuring() and world.settings.cdn_busy_while_configuring:
        raise ApiError(403, "ServiceBusy", "The domain is being configured. Please try again later.")
    if protocol == "off":
        d.start_rollout(CdnHttps(None, "cas", call.now), call.now, world.settings.cdn_rollout_seconds)
        return {}
    cert_type = enum_param(call, "CertType", ("upload", "cas"), "upload",
                           code="InvalidCertType.ValueNotSupported")
    if cert_type != "cas":
        # Upload mode exists in the API; the sandbox emulates what alicertd uses (cas).
        raise ApiError(400, "InvalidCertType.ValueNotSupported",
                       "The sandbox emulates CertType=cas only for DCDN.")
    enum_param(call, "CertRegion", CAS_REGIONS, "cn-hangzhou", code="Abs.CertRegion.ValueNotSupported")
    cert_id = int_param(call, "CertId", None)
    if cert_id is None:
        raise ApiError(400, "MissingCertId", "CertId is mandatory for this action.")
    cert = cas_certificate(world, cert_id)
    if cert is None:
        raise ApiError(400, "InvalidCertId.NotFound", f"The certificate {cert_id} does not exist.")
    _check_usable(cert.info, _wildcard(d.name), call.now)
    d.start_rollout(CdnHttps(cert, "cas", call.now), call.now, world.settings.cdn_rollout_seconds)
    return {}


def _cert_info(d: CdnDomain, now: float) -> dict:
    c = d.config.cert
    base = {"DomainName": d.name, "Status": d.cert_status(now), "SSLProtocol": "on" if c else "off"}
    if c is None:
        base.update({"CertName": "", "CertId": "", "CertType": "", "CertDomainName": "", "SSLPub": "",
                     "CertLife": "", "CertOrg": "", "CertRegion": "", "CertExpireTime": ""})
        return base
    months = max(1, round((c.info.not_after - c.info.not_before).days / 30))
    base.update({
        "CertName": c.name, "CertId": str(c.cert_id), "CertType": d.config.cert_type,
        "CertRegion": "cn-hangzhou",
        "CertDomainName": c.info.common_name or (c.info.dns_names[0] if c.info.dns_names else ""),
        "CertOrg": c.info.organization, "CertLife": f"{months} months",
        "CertExpireTime": iso(c.info.not_after), "SSLPub": c.chain_pem,
    })
    return base


def describe_dcdn_domain_certificate_info(call: Call) -> dict:
    d = _domain(call)
    return {"CertInfos": {"CertInfo": [_cert_info(d, call.now)]}}


def describe_dcdn_https_domain_list(call: Call) -> dict:
    number, size = paging(call, 20, HTTPS_LIST_MAX_PAGE_SIZE)
    keyword = (optional(call, "Keyword") or "").lower()
    rows = []
    for d in sorted(call.world.dcdn.values(), key=lambda x: x.name):
        d.settle(call.now)
        c = d.config.cert
        if c is None:
            continue
        if keyword and keyword not in d.name and keyword not in c.name.lower():
            continue
        rows.append({
            "DomainName": d.name, "CertName": c.name, "CertType": d.config.cert_type,
            "CertStatus": _cert_status(c, _wildcard(d.name), call.now),
            "CertCommonName": c.info.common_name, "CertStartTime": spaced(c.info.not_before),
            "CertExpireTime": spaced(c.info.not_after), "CertUpdateTime": spaced(d.config.updated),
        })
    return {"TotalCount": len(rows), "CertInfos": {"CertInfo": page_of(rows, number, size)}}


def served_for(world: World, server_name: str, port: int, now: float):
    """Edge hook: the exact DCDN domain, else the wildcard (``.parent``) one label up."""
    d = world.dcdn.get(server_name)
    if d is None and "." in server_name:
        d = world.dcdn.get("." + server_name.split(".", 1)[1])
    if d is None:
        return None
    d.settle(now)
    c = d.served.cert
    return (c.chain_pem, c.key_pem, c.info.fingerprint) if c else None


def load_fixture(world: World, items: list, problems: list[str], now: float | None = None) -> None:
    """``[[dcdn_domain]] name = "dcdn.example.com"`` (``*.example.com`` for a wildcard)."""
    now = time.time() if now is None else now
    for i, item in enumerate(items):
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"dcdn_domain[{i}].name: must be a non-empty string")
            continue
        name = wildcard_api_name(name)
        if name in world.dcdn:
            problems.append(f"dcdn_domain[{i}].name: duplicate DCDN domain {name}")
            continue
        base = name.lstrip(".")
        world.dcdn[name] = CdnDomain(name=name, cname=f"{base}.w.kunlungr.com", created=now, modified=now,
                                     cdn_type="dynamic")


FIXTURE = {"dcdn_domain": load_fixture}

PRODUCT = Product(
    name="dcdn",
    version="2018-01-15",
    ram_prefix="dcdn",
    host_pattern="dcdn.aliyuncs.com",
    actions={
        "SetDcdnDomainSSLCertificate": set_dcdn_domain_ssl_certificate,
        "DescribeDcdnDomainCertificateInfo": describe_dcdn_domain_certificate_info,
        "DescribeDcdnHttpsDomainList": describe_dcdn_https_domain_list,
    },
)


def cas_users(world: World, cert_id: int) -> list[tuple[str, str]]:
    """CAS hook: the DCDN domains whose configuration (or served state) uses ``cert_id``
    (CloudProduct ``DCDN``, as CAS ListCloudResources names it)."""
    out = []
    for d in world.dcdn.values():
        if any(c is not None and c.cert_id == cert_id for c in (d.config.cert, d.served.cert)):
            out.append(("DCDN", d.name))
    return sorted(out)
