"""ESA (Edge Security Acceleration, ``esa`` 2024-09-10) as a deploy target: one target per site.

A site serves, for each of its host names, a certificate from its certificate list that covers
the name; alicertd adds the bundle's CAS certificate to that list by id (``SetCertificate``
``Type=cas``, ``CasId``, ``Region`` = the CAS region of the account: cn-hangzhou on the China
site, ap-southeast-1 on the international site, as the model documents ``Region``). Users name
the site by its name (resolved once per run with ``ListSites``, exact match) or by its id.

Replacing ours without a free slot. ESA plans cap the number of custom certificates per site
(``CertQuotaCheckFailed``; the free plan allows two), so "add the new one, then delete the old
one" fails exactly when the site is full, and "delete the old one, then add the new one" would
leave the site's names without TLS in between (and with nothing if the add then fails). The
API offers a third way: ``SetCertificate`` with the ``Id`` of an existing certificate replaces
that certificate in place ("Certificate IDs of the cas and upload types are supported", model).
So bind does, in order:

1. the CAS certificate is on the site already (same ``CasId``): nothing to do (idempotent; a
   retry after a crash lands here);
2. one of OUR superseded certificates of the same ``[[certificate]]`` is on the site: replace
   it in place, by its ``Id``: no slot needed, and nothing is removed first (how ESA switches
   the names over is not documented; verify's readback and handshake confirm the result);
3. otherwise add it (needs a free slot). On ``CertQuotaCheckFailed`` the bind fails with a
   message saying so; alicertd never makes room by removing a certificate it did not add.

"Ours" is decided only by the CAS hub (``cas_hub(ctx).identify(CasId)``): a certificate
alicertd uploaded; "same [[certificate]]" by its CAS name (``alicertd-<certificate>-<fp>``).
After ``verify`` has seen the new certificate in the site's list (and, with ``[verify] tls``,
served), any further superseded certificate of ours for the same ``[[certificate]]`` left on
the site (case 3 after an earlier failure, say) is removed with ``DeleteCertificate``: it is
no longer needed, and it holds a slot.

Read: ``ListCertificates`` of the site (paged) lists ``CasId``, ``FingerprintSha256`` and
``SerialNumber`` for every certificate, so one call per site tells exactly what is there; site
names are resolved once per run, many at a time from unfiltered ListSites pages (500 a page).
Verify: readback until the list holds our fingerprint with ``Status`` OK (or Expiring), then a
TLS handshake for each of the bundle's names that belongs to the site.

RAM actions: esa:ListSites, esa:ListCertificates, esa:SetCertificate, esa:DeleteCertificate
(plus the CAS hub's).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aliyunsdkcore.request import RpcRequest

from providers.aliyun.client import shared_api
from providers.aliyun.rpc import request as _request
from providers.base import (
    Binding,
    CertificateBundle,
    ConfigDefaults,
    ConfigErrors,
    CredentialError,
    ProviderContext,
    ProviderError,
    Target,
)
from providers.certnames import KnownCertificates
from providers.readback import Outcome, shake_hands, wait_for_readback
from providers.settings import Section
from providers.tls import POLL_INTERVALS

VERSION = "2024-09-10"
#: ESA endpoints: esa.cn-hangzhou.aliyuncs.com (China site), esa.ap-southeast-1.aliyuncs.com
#: (international site): the v2 client's regional endpoint rule.
REGIONS = ("cn-hangzhou", "ap-southeast-1")
#: ListCertificates PageSize: the model documents no bound; 100 is our guess at a size the
#: service accepts (a short page is paged correctly anyway).
PAGE_SIZE = 100
#: ListSites PageSize: "1 to 500" (model).
SITES_PAGE = 500
#: ListCertificates ``Status`` values that mean "in effect" (model: OK, Expiring).
_IN_EFFECT = frozenset({"ok", "expiring"})


class ListSitesRequest(RpcRequest):
    def __init__(self) -> None:
        RpcRequest.__init__(self, "ESA", "2024-09-10", "ListSites")
        self.set_method("POST")


class SetCertificateRequest(RpcRequest):
    def __init__(self) -> None:
        RpcRequest.__init__(self, "ESA", "2024-09-10", "SetCertificate")
        self.set_method("POST")


class ListCertificatesRequest(RpcRequest):
    def __init__(self) -> None:
        RpcRequest.__init__(self, "ESA", "2024-09-10", "ListCertificates")
        self.set_method("POST")


class DeleteCertificateRequest(RpcRequest):
    def __init__(self) -> None:
        RpcRequest.__init__(self, "ESA", "2024-09-10", "DeleteCertificate")
        self.set_method("POST")


@dataclass(frozen=True)
class EsaSettings:
    site: str | None  # site name
    site_id: int | None
    region: str
    account: str = "default"

    @property
    def label(self) -> str:
        return self.site or str(self.site_id)


@dataclass(frozen=True)
class SiteCert:
    id: str
    cas_id: int | None
    name: str
    fingerprint: str
    serial: str
    status: str
    updated: str


def _fingerprint(value: Any) -> str:
    return str(value or "").replace(":", "").strip().lower()


def _stem(cas_name: str) -> str:
    """``alicertd-www-0123456789ab`` -> ``alicertd-www``: which [[certificate]] a CAS name is of."""
    return cas_name.rsplit("-", 1)[0] if cas_name.count("-") >= 2 else cas_name


class EsaProvider:
    """Deploy to ESA sites (``[[certificate.deploy]] provider = "esa"``)."""

    kind = "deploy"
    name = "esa"

    poll_intervals = POLL_INTERVALS

    def __init__(self, ctx: ProviderContext, api: Any = None):
        self.ctx = ctx
        self._api_override = api
        self.known = KnownCertificates(ctx.bundles)
        self.clock = time.monotonic
        self._site_ids: dict[tuple[str, str, str], int] = {}
        self._site_names: dict[int, str] = {}  # site id -> name, as ListCertificates reports it

    # ------------------------------------------------------------------ config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> EsaSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        site = s.domain("site", allow_wildcard=False)
        site_id = s.int("site_id", None, minimum=1)
        if site is None and site_id is None and not s.has("site") and not s.has("site_id"):
            s.error("site", "missing required key")
        elif s.has("site") and s.has("site_id"):
            s.error("site_id", "give site or site_id, not both")
        region = s.str("region", "cn-hangzhou", choices=REGIONS)
        account = s.account(defaults.accounts)
        s.finish()
        if len(errors) > before:
            return None
        return EsaSettings(site=site, site_id=site_id, region=region, account=account)

    @classmethod
    def expand(cls, settings: EsaSettings) -> list[Target]:
        return [Target(cls.name, settings.label, settings, domain=settings.site)]

    def api(self, account: str) -> Any:
        return self._api_override if self._api_override is not None else shared_api(self.ctx, account)

    def _call(self, s: EsaSettings, request: Any) -> dict[str, Any]:
        return self.api(s.account).call("esa", request, region=s.region)

    # ------------------------------------------------------------------ sites

    def site_id(self, s: EsaSettings) -> int:
        """The site's id: given, or looked up by name once per run (ListSites, exact match)."""
        if s.site_id is not None:
            return s.site_id
        key = (s.account, s.region, s.site or "")
        if key not in self._site_ids:
            body = self._call(s, _request(ListSitesRequest, SiteName=s.site, SiteSearchType="exact",
                                          PageNumber=1, PageSize=20))
            sites = [x for x in body.get("Sites") or [] if isinstance(x, dict)
                     and str(x.get("SiteName") or "").lower() == s.site]
            if not sites:
                raise ProviderError(f"esa: site {s.site!r} not found in account {s.account!r} "
                                    f"({s.region})")
            self._site_ids[key] = int(sites[0]["SiteId"])
        return self._site_ids[key]

    def resolve_sites(self, settings: Sequence[EsaSettings]) -> None:
        """Look up many site names at once: when more than one name of an account and region is
        still unknown, page through ListSites unfiltered (500 a page) instead of one call per
        name. Names not found stay unresolved (``site_id`` reports them)."""
        todo: dict[tuple[str, str], set[str]] = {}
        for s in settings:
            if s.site_id is None and (s.account, s.region, s.site or "") not in self._site_ids:
                todo.setdefault((s.account, s.region), set()).add(s.site or "")
        for (account, region), names in todo.items():
            if len(names) < 2:
                continue
            probe = EsaSettings(site=None, site_id=None, region=region, account=account)
            page, seen = 1, 0
            while True:
                body = self._call(probe, _request(ListSitesRequest, PageNumber=page, PageSize=SITES_PAGE))
                sites = [x for x in body.get("Sites") or [] if isinstance(x, dict)]
                for x in sites:
                    name = str(x.get("SiteName") or "").lower()
                    if name in names and str(x.get("SiteId") or "").isdigit():
                        self._site_ids[(account, region, name)] = int(x["SiteId"])
                seen += len(sites)
                if not sites or seen >= int(body.get("TotalCount") or 0):
                    break
                page += 1

    def site_certs(self, s: EsaSettings) -> list[SiteCert]:
        """Every certificate of the site (all pages of ListCertificates)."""
        site_id = self.site_id(s)
        out: list[SiteCert] = []
        page = 1
        while True:
            body = self._call(s, _request(ListCertificatesRequest, SiteId=site_id, PageNumber=page,
                                          PageSize=PAGE_SIZE))
            rows = [r for r in body.get("Result") or [] if isinstance(r, dict)]
            if body.get("SiteName"):
                self._site_names[site_id] = str(body["SiteName"]).lower()
            for r in rows:
                cas_id = r.get("CasId")
                out.append(SiteCert(
                    id=str(r.get("Id") or ""), cas_id=int(cas_id) if str(cas_id or "").isdigit() else None,
                    name=str(r.get("Name") or ""), fingerprint=_fingerprint(r.get("FingerprintSha256")),
                    serial=str(r.get("SerialNumber") or "").lower().lstrip("0") or "0",
                    status=str(r.get("Status") or "").lower(), updated=str(r.get("UpdateTime") or "")))
            total = int(body.get("TotalCount") or 0)
            if not rows or len(out) >= total:
                return out
            page += 1

    # ------------------------------------------------------------------ read

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        """One ListCertificates per site. The binding is the site's certificate of ours (a
        fingerprint of a current bundle), else the most recently updated one (foreign or
        unknown: the daemon then binds ours)."""
        result: dict[Target, Binding] = {}
        try:
            self.resolve_sites([t.settings for t in targets])
        except CredentialError:
            raise
        except ProviderError:
            pass  # each target then tries its own lookup and reports its own error
        for t in targets:
            try:
                certs = self.site_certs(t.settings)
            except CredentialError:
                raise
            except ProviderError as exc:
                result[t] = Binding("unknown", detail=str(exc))
                continue
            result[t] = self._binding(certs)
        return result

    def _binding(self, certs: Sequence[SiteCert]) -> Binding:
        if not certs:
            return Binding("none", detail="no certificate on the site")
        ours = [c for c in certs if self.known.lookup(c.fingerprint[:12]) is not None
                and self.known.lookup(c.fingerprint[:12]).fingerprint == c.fingerprint]
        pick = max(ours or certs, key=lambda c: c.updated)
        leaf = self.known.lookup(pick.fingerprint[:12]) if ours else None
        state = "ok" if pick.status in _IN_EFFECT else "error"
        return Binding(state, serial=pick.serial, fingerprint=pick.fingerprint or None,
                       not_after=leaf.not_after if leaf else None, cert_name=pick.name or None,
                       detail=None if state == "ok" else f"Status {pick.status}")

    # ------------------------------------------------------------------ bind

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        """See the module docstring: present already, else replace our superseded one in place,
        else add (needs a free slot)."""
        from providers.cas import cas_hub

        s: EsaSettings = target.settings
        hub = cas_hub(self.ctx)
        cas = hub.ensure(bundle, s.account)
        site_id = self.site_id(s)
        certs = self.site_certs(s)
        if any(c.cas_id == cas.cert_id or c.fingerprint == bundle.fingerprint for c in certs):
            self.ctx.log.info("esa: %s: CAS certificate %s is on the site already", s.label, cas.cert_id)
            return
        stale = self._superseded(certs, cas, s.account)
        params = {"SiteId": site_id, "Type": "cas", "CasId": cas.cert_id, "Region": cas.region}
        if stale:
            params["Id"] = stale[0].id  # replace in place: no free slot needed, no gap
        try:
            self._call(s, _request(SetCertificateRequest, **params))
        except CredentialError:
            raise
        except ProviderError as exc:
            if exc.code == "Certificate.Duplicated" and any(
                    c.cas_id == cas.cert_id for c in self.site_certs(s)):
                return  # an earlier attempt added it
            if exc.code == "CertQuotaCheckFailed":
                raise ProviderError(
                    f"esa: {s.label}: the site's plan allows no further certificate "
                    f"(CertQuotaCheckFailed) and none of its certificates is an earlier one of ours "
                    f"for {bundle.name!r} to replace; free a slot (alicertd never removes a "
                    f"certificate it did not add)", code=exc.code) from None
            raise
        self.ctx.log.info("esa: %s: %s CAS certificate %s (serial %s)", s.label,
                          f"replaced certificate {stale[0].id} with" if stale else "added",
                          cas.cert_id, bundle.serial)

    def _superseded(self, certs: Sequence[SiteCert], cas: Any, account: str) -> list[SiteCert]:
        """Our certificates of the same [[certificate]] on the site other than ``cas``, newest
        first. Ours only by the hub's word."""
        from providers.cas import cas_hub

        hub = cas_hub(self.ctx)
        found = []
        for c in certs:
            if c.cas_id is None or c.cas_id == cas.cert_id:
                continue
            mine = hub.identify(c.cas_id, account)
            if mine is not None and _stem(mine.name) == _stem(cas.name):
                found.append(c)
        return sorted(found, key=lambda c: c.updated, reverse=True)

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        s: EsaSettings = target.settings
        started = self.clock()

        def probe() -> Outcome:
            mine = [c for c in self.site_certs(s) if c.fingerprint == bundle.fingerprint]
            if mine and mine[0].status in _IN_EFFECT:
                return Binding("ok", serial=bundle.serial, fingerprint=bundle.fingerprint,
                               not_after=bundle.not_after, cert_name=mine[0].name or None)
            return (f"lists our certificate with Status {mine[0].status}" if mine
                    else "does not list our certificate")

        binding = wait_for_readback(f"esa: {s.label}", probe, deadline=deadline, ctx=self.ctx,
                                    clock=self.clock, intervals=self.poll_intervals, started=started)
        shake_hands("esa", self._hosts(s, bundle), bundle, deadline=deadline, ctx=self.ctx,
                    clock=self.clock, intervals=self.poll_intervals, started=started)
        self._remove_superseded(s, bundle)
        return binding

    def _hosts(self, s: EsaSettings, bundle: CertificateBundle) -> list[str]:
        """The bundle's names served by the site: those equal to or under the site's name (given,
        or as ListCertificates reported it for a site given by id; none when it is unknown)."""
        site = s.site or (self._site_names.get(s.site_id) if s.site_id is not None else None)
        if not site:
            return []
        return [d for d in bundle.domains
                if d.removeprefix("*.") == site or d.removeprefix("*.").endswith("." + site)]

    def _remove_superseded(self, s: EsaSettings, bundle: CertificateBundle) -> None:
        """Delete our superseded certificates of this [[certificate]] still on the site, now that
        the new one is verified. A failure here is logged, not raised: the new certificate is
        serving; the next run tries again."""
        from providers.cas import cas_hub

        try:
            cas = cas_hub(self.ctx).ensure(bundle, s.account)
            certs = self.site_certs(s)
            for stale in self._superseded(certs, cas, s.account):
                self._call(s, _request(DeleteCertificateRequest, SiteId=self.site_id(s), Id=stale.id))
                self.ctx.log.info("esa: %s: removed our superseded certificate %s (CAS %s)", s.label,
                                  stale.id, stale.cas_id)
        except CredentialError:
            raise
        except ProviderError as exc:
            self.ctx.log.warning("esa: %s: could not remove a superseded certificate: %s", s.label, exc)
