"""ESA (Edge Security Acceleration) 2024-09-10: sites and their certificates.

What the daemon relies on, emulated from the ``alibabacloud-esa20240910`` models and the API
reference: a site is found by name with ``ListSites`` (``SiteName`` + ``SiteSearchType``,
default exact); ``SetCertificate`` adds a certificate to a site (``Type=cas`` with ``CasId`` and
``Region``) and returns its ``Id``, or, given an existing ``Id``, replaces that certificate in
place; ``ListCertificates`` pages a site's certificates with ``CasId``, ``FingerprintSha256``
and ``SerialNumber``; ``DeleteCertificate`` removes one by ``Id``.

A site holds at most ``cert_quota`` custom certificates (fixture, default 2: the free plan's
cap as issue #14 reports it; undocumented): adding one more fails with ``CertQuotaCheckFailed``,
replacing one in place never needs a free slot. The same CAS certificate twice on one site is
``Certificate.Duplicated``. The edge serves, for a host name of the site (the site name or a
name under it), the most recently set certificate that covers it; ESA documents no
asynchronous deployment state for certificates, so a change is served at once.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

from ..errors import ApiError
from ..state import StoredCert, World
from .base import Call, Product, enum_param, int_param, iso, optional, page_of, required, spaced
from .dcdn import cas_certificate

LIST_MAX_PAGE_SIZE = 500  # ListSitesRequest.page_size: 1 to 500 (model)
CERT_LIST_MAX_PAGE_SIZE = 100  # undocumented for ListCertificates: our guess
CAS_REGIONS = ("cn-hangzhou", "ap-southeast-1")  # SetCertificateRequest.region (model)
PLANS = ("basicplan", "standardplan", "advancedplan", "enterpriseplan")
COVERAGES = ("domestic", "global", "overseas")


@dataclass
class EsaCert:
    id: str
    cas: StoredCert
    cas_id: int
    region: str
    created: float
    updated: float


@dataclass
class Site:
    site_id: int
    name: str
    plan: str = "basicplan"
    coverage: str = "domestic"
    status: str = "active"
    cert_quota: int = 2
    created: float = 0.0
    certs: dict[str, EsaCert] = field(default_factory=dict)

    def serves(self, host: str) -> EsaCert | None:
        if host != self.name and not host.endswith("." + self.name):
            return None
        best = None
        for c in self.certs.values():
            if c.cas.info.covers(host) and (best is None or c.updated > best.updated):
                best = c
        return best


def _site(call: Call) -> Site:
    raw = call.params.get("SiteId")
    if raw in (None, ""):
        raise ApiError(400, "MissingSiteId", "Required parameter SiteId missing. Specify SiteId and try again.")
    site = call.world.esa_sites.get(int(raw)) if str(raw).isdigit() else None
    if site is None:
        raise ApiError(400, "InvalidParameter.SiteId",
                       "Failed to query the website based on the SiteID you specified. Check parameter "
                       "SiteId and try again.")
    return site


def set_certificate(call: Call) -> dict:
    site = _site(call)
    kind = required(call, "Type")
    if kind not in ("cas", "upload", "keyless"):
        raise ApiError(400, "InvalidParameter", "The specified parameter Type is invalid.")
    if kind != "cas":
        raise ApiError(400, "InvalidParameter", "The sandbox emulates Type=cas only for ESA.")
    cas_id = int_param(call, "CasId", None)
    if cas_id is None:
        raise ApiError(400, "InvalidParameter", "CasId is required when Type is cas.")
    region = optional(call, "Region")
    if region not in CAS_REGIONS:
        raise ApiError(400, "InvalidParameter", "Region is required when Type is cas: cn-hangzhou or "
                                                "ap-southeast-1.")
    cas = cas_certificate(call.world, cas_id)
    if cas is None or getattr(cas, "region", region) != region:
        raise ApiError(400, "Certificate.StatusError", "The status of the certificate is invalid.")
    if cas.info.not_after.replace(tzinfo=dt.UTC).timestamp() <= call.now:
        raise ApiError(400, "Certificate.StatusError", "The status of the certificate is invalid.")
    cert_id = optional(call, "Id")
    others = [c for c in site.certs.values() if c.id != cert_id]
    if any(c.cas_id == cas_id for c in others):
        raise ApiError(400, "Certificate.Duplicated", "The certificate already exists.")
    if cert_id is not None:
        existing = site.certs.get(cert_id)
        if existing is None:
            raise ApiError(400, "InvalidParameter", "The specified certificate Id does not exist.")
        existing.cas, existing.cas_id, existing.region, existing.updated = cas, cas_id, region, call.now
        return {"Id": existing.id}
    if len(site.certs) >= site.cert_quota:
        raise ApiError(400, "CertQuotaCheckFailed",
                       "The number of certificates of the site has reached the quota of its plan.")
    new = EsaCert(id=uuid.uuid4().hex, cas=cas, cas_id=cas_id, region=region, created=call.now,
                  updated=call.now)
    site.certs[new.id] = new
    return {"Id": new.id}


def _cert_row(c: EsaCert, now: float) -> dict:
    info = c.cas.info
    not_after = info.not_after.replace(tzinfo=dt.UTC).timestamp()
    status = "Expired" if not_after <= now else "Expiring" if not_after - now < 30 * 86400 else "OK"
    return {
        "Id": c.id, "CasId": str(c.cas_id), "Name": c.cas.name, "Type": "cas", "Region": c.region,
        "CommonName": info.common_name, "SAN": ",".join(info.dns_names),
        "FingerprintSha256": info.fingerprint, "SerialNumber": info.serial, "Issuer": info.issuer,
        "NotBefore": spaced(info.not_before), "NotAfter": spaced(info.not_after), "Status": status,
        "CreateTime": spaced(c.created), "UpdateTime": spaced(c.updated),
    }


def list_certificates(call: Call) -> dict:
    site = _site(call)
    number = int_param(call, "PageNumber", 1, 1, None)
    size = int_param(call, "PageSize", 20, 1, CERT_LIST_MAX_PAGE_SIZE)
    keyword = (optional(call, "Keyword") or "").lower()
    kind = optional(call, "Type")
    rows = [_cert_row(c, call.now) for c in sorted(site.certs.values(), key=lambda c: c.created)
            if (not keyword or keyword in c.cas.name.lower()) and (kind in (None, "cas"))]
    return {"SiteId": site.site_id, "SiteName": site.name, "TotalCount": len(rows), "PageNumber": number,
            "PageSize": size, "Result": page_of(rows, number, size)}


def delete_certificate(call: Call) -> dict:
    site = _site(call)
    cert_id = required(call, "Id")
    if site.certs.pop(cert_id, None) is None:
        raise ApiError(400, "InvalidParameter", "The specified certificate Id does not exist.")
    return {}


def list_sites(call: Call) -> dict:
    number = int_param(call, "PageNumber", 1, 1, None)
    size = int_param(call, "PageSize", 20, 1, LIST_MAX_PAGE_SIZE)
    name = (optional(call, "SiteName") or "").lower()
    how = enum_param(call, "SiteSearchType", ("prefix", "suffix", "exact", "fuzzy"), "exact")
    rows = []
    for s in sorted(call.world.esa_sites.values(), key=lambda s: s.site_id):
        if name and not {"exact": s.name == name, "prefix": s.name.startswith(name),
                         "suffix": s.name.endswith(name), "fuzzy": name in s.name}[how]:
            continue
        rows.append({"SiteId": s.site_id, "SiteName": s.name, "Status": s.status, "Coverage": s.coverage,
                     "AccessType": "NS", "PlanSpecName": s.plan, "InstanceId": f"esa-site-{s.site_id}",
                     "CreateTime": iso(s.created), "UpdateTime": iso(s.created)})
    return {"TotalCount": len(rows), "PageNumber": number, "PageSize": size,
            "Sites": page_of(rows, number, size)}


def served_for(world: World, server_name: str, port: int, now: float):
    """Edge hook: the site whose name is the longest suffix of ``server_name`` decides."""
    best = None
    for s in world.esa_sites.values():
        if (server_name == s.name or server_name.endswith("." + s.name)) and (
                best is None or len(s.name) > len(best.name)):
            best = s
    c = best.serves(server_name) if best is not None else None
    return (c.cas.chain_pem, c.cas.key_pem, c.cas.info.fingerprint) if c else None


def load_fixture(world: World, items: list, problems: list[str], now: float | None = None) -> None:
    """``[[esa_site]] name = "example.com"``, optional ``id``, ``plan``, ``coverage``, ``cert_quota``."""
    now = time.time() if now is None else now
    for i, item in enumerate(items):
        path = f"esa_site[{i}]"
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{path}.name: must be a non-empty string")
            continue
        site_id = item.get("id", 7_000_000_000 + i)
        quota = item.get("cert_quota", 2)
        plan = item.get("plan", "basicplan")
        coverage = item.get("coverage", "domestic")
        if not isinstance(site_id, int) or isinstance(site_id, bool) or site_id < 1:
            problems.append(f"{path}.id: must be a positive integer")
            continue
        if not isinstance(quota, int) or isinstance(quota, bool) or quota < 1:
            problems.append(f"{path}.cert_quota: must be a positive integer")
            continue
        if plan not in PLANS:
            problems.append(f"{path}.plan: must be one of {', '.join(PLANS)}")
            continue
        if coverage not in COVERAGES:
            problems.append(f"{path}.coverage: must be one of {', '.join(COVERAGES)}")
            continue
        if site_id in world.esa_sites:
            problems.append(f"{path}.id: duplicate ESA site id {site_id}")
            continue
        world.esa_sites[site_id] = Site(site_id=site_id, name=name.strip().lower().rstrip("."), plan=plan,
                                        coverage=coverage, cert_quota=quota, created=now)


def cas_users(world: World, cert_id: int) -> list[tuple[str, str]]:
    """CAS hook: the sites holding CAS certificate ``cert_id`` (a ``Type=cas`` certificate), as
    CloudProduct ``ESA``: the model's CloudProduct list names no ESA value, so both the name and
    whether CAS reports ESA's use at all are undocumented (our guess; docs/aliyun-api-notes.md).
    Reporting it is the stricter answer: CAS refuses to delete a certificate a site holds."""
    return sorted(("ESA", s.name) for s in world.esa_sites.values()
                  if any(c.cas_id == cert_id for c in s.certs.values()))


FIXTURE = {"esa_site": load_fixture}

PRODUCT = Product(
    name="ESA",
    version="2024-09-10",
    ram_prefix="esa",
    host_pattern="esa.{region}.aliyuncs.com",
    actions={
        "ListSites": list_sites,
        "SetCertificate": set_certificate,
        "ListCertificates": list_certificates,
        "DeleteCertificate": delete_certificate,
    },
)
