"""Alibaba Cloud CDN as a deploy target: one target per accelerated domain.

Bind: ``SetCdnDomainSSLCertificate`` in upload mode (``SSLProtocol=on``, ``CertType=upload``,
full chain and key), under a CertName derived from the certificate (see ``certnames``), so a
retry after a crash reuses the upload instead of colliding with it.

Read: the paged ``DescribeCdnHttpsDomainList`` reports every HTTPS domain of the account with
its CertName; our names embed the fingerprint prefix, so a page identifies our certificate on
hundreds of domains at once. ``DescribeDomainCertificateInfo`` (one domain per call, returns
the served PEM) is used only where a page cannot tell: a name we did not make (drift, or a
domain never deployed by us), or a prefix we do not know. 1,000 domains cost two pages.

Verify: the configuration push to the edge is asynchronous. Poll DescribeDomainCertificateInfo
until ``ServerCertificateStatus=on``, ``Status=success`` and the served PEM is ours, then (when
``[verify] tls``) shake hands with the edge until it presents our leaf.

RAM actions: cdn:DescribeCdnHttpsDomainList, cdn:DescribeDomainCertificateInfo,
cdn:SetCdnDomainSSLCertificate, cdn:BatchSetCdnDomainServerCertificate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aliyunsdkcdn.request.v20180510.BatchSetCdnDomainServerCertificateRequest import (
    BatchSetCdnDomainServerCertificateRequest,
)
from aliyunsdkcdn.request.v20180510.DescribeCdnHttpsDomainListRequest import (
    DescribeCdnHttpsDomainListRequest,
)
from aliyunsdkcdn.request.v20180510.DescribeDomainCertificateInfoRequest import (
    DescribeDomainCertificateInfoRequest,
)
from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import (
    SetCdnDomainSSLCertificateRequest,
)

from daemon.durations import format_duration
from providers.aliyun.client import shared_api
from providers.base import (
    Binding,
    CertificateBundle,
    ConfigDefaults,
    ConfigErrors,
    CredentialError,
    ProviderContext,
    ProviderError,
    Target,
    VerificationError,
)
from providers.certnames import (
    CDN_NAME_MAX,
    KnownCertificates,
    Leaf,
    cert_name,
    fingerprint_prefix,
    leaf_of_bundle,
    leaf_of_pem,
)
from providers.settings import Section
from providers.tls import POLL_INTERVALS, wait_for, wait_for_edge

#: Entries per DescribeCdnHttpsDomainList page, largest first. The API documents no maximum
#: for CDN (only "default 20"); its DCDN twin and DescribeUserDomains allow 500. Should the
#: service refuse a size, the next smaller one is tried; a server that returns fewer entries
#: than asked for is paged correctly anyway.
PAGE_SIZES = (500, 100, 20)

#: DescribeDomainCertificateInfo ``Status`` values of a rollout still under way; ``success``
#: is settled, anything else (cname_error, failed, *_timeout, ...) is a failure.
_PENDING = frozenset({"checking", "applying", "configuring", "pending", "deploying"})


@dataclass(frozen=True)
class CdnSettings:
    domains: tuple[str, ...]


def _request(cls: type, **params: Any) -> Any:
    request = cls()
    for key, value in params.items():
        request.add_query_param(key, value)
    return request


def _items(body: Mapping[str, Any], outer: str, inner: str) -> list[dict[str, Any]]:
    container = body.get(outer)
    value = container.get(inner) if isinstance(container, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _name_taken(exc: ProviderError) -> bool:
    """The upload name exists already. The code is undocumented; users report the message
    "The certificate name already exists" (and 名称重复 from the console's back end)."""
    text = f"{exc.code or ''} {exc}".lower()
    return "already exist" in text or "duplicat" in text or "名称重复" in text \
        or ("certname" in text and "exist" in text)


class CdnProvider:
    """Deploy to CDN accelerated domains (``[[certificate.deploy]] provider = "cdn"``)."""

    kind = "deploy"
    name = "cdn"

    page_sizes = PAGE_SIZES
    poll_intervals = POLL_INTERVALS

    def __init__(self, ctx: ProviderContext, api: Any = None):
        self.ctx = ctx
        self.api = api if api is not None else shared_api(ctx)
        self.known = KnownCertificates(ctx.bundles)
        self.clock = time.monotonic

    # ------------------------------------------------------------------ config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> CdnSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        domains = s.domains("domains", required=True, nonempty=True)
        s.finish()
        if len(errors) > before:
            return None
        return CdnSettings(domains=tuple(domains))

    @classmethod
    def expand(cls, settings: CdnSettings) -> list[Target]:
        return [Target(cls.name, domain, settings, domain=domain) for domain in settings.domains]

    # ------------------------------------------------------------------ read

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        """Page through the HTTPS domain list until every target is found (or the list ends:
        absent means no certificate). When fewer targets remain unfound than pages remain
        unread, asking for those domains one by one is cheaper, so that is done instead."""
        wanted = {self._domain(t) for t in targets}
        found: dict[str, Binding | None] = {}  # None: the page could not tell, look closer
        unread = set(wanted)
        page, seen = 1, 0
        try:
            while unread:
                body = self._list_page(page)
                items = _items(body, "CertInfos", "CertInfo")
                for item in items:
                    domain = str(item.get("DomainName") or "").lower()
                    if domain in unread:
                        found[domain] = self._from_page(item)
                        unread.discard(domain)
                seen += len(items)
                total = int(body.get("TotalCount") or 0)
                if not items or seen >= total:
                    found.update((domain, Binding("none")) for domain in unread)
                    unread.clear()
                elif len(unread) < math.ceil((total - seen) / len(items)):
                    break  # fewer domains left to find than pages left to read
                page += 1
        except CredentialError:
            raise
        except ProviderError as exc:
            found.update((domain, Binding("unknown", detail=str(exc))) for domain in unread)
            unread.clear()
        for domain in sorted(wanted):
            if found.get(domain) is None:
                found[domain] = self._look_closer(domain)
        return {t: found[self._domain(t)] for t in targets}

    def _list_page(self, page: int) -> dict[str, Any]:
        sizes = list(self.page_sizes)
        while True:
            try:
                return self.api.call("cdn", _request(DescribeCdnHttpsDomainListRequest,
                                                     PageNumber=page, PageSize=sizes[0]))
            except CredentialError:
                raise
            except ProviderError as exc:
                if len(sizes) == 1 or "pagesize" not in f"{exc.code} {exc}".lower():
                    raise
                self.ctx.log.warning("cdn: DescribeCdnHttpsDomainList refused PageSize=%d, using %d",
                                     sizes[0], sizes[1])
                self.page_sizes = tuple(sizes[1:])
                sizes.pop(0)

    def _from_page(self, item: Mapping[str, Any]) -> Binding | None:
        """A binding from a list entry, or None when the entry does not say which certificate
        is served (a CertName we did not make, or one whose certificate we do not know).

        The list shows the configured certificate, not the rollout: a domain bound moments
        ago reads as ``ok`` here while its edge still serves the old one. ``verify`` (which
        the daemon runs after every bind) is what waits for the rollout."""
        name = item.get("CertName") or None
        prefix = fingerprint_prefix(name)
        leaf = self.known.lookup(prefix) if prefix else None
        if leaf is None or item.get("CertStatus") not in ("ok", "expire_soon", None):
            return None  # unknown, or our certificate "mismatch"/"expired": ask the domain itself
        return Binding("ok", serial=leaf.serial, fingerprint=leaf.fingerprint, not_after=leaf.not_after,
                       cert_name=name)

    def _look_closer(self, domain: str) -> Binding:
        try:
            return self._domain_info(domain)
        except CredentialError:
            raise
        except ProviderError as exc:
            return Binding("unknown", detail=str(exc))

    def _domain_info(self, domain: str) -> Binding:
        """What ``domain`` serves according to DescribeDomainCertificateInfo (exact: the PEM)."""
        body = self.api.call("cdn", _request(DescribeDomainCertificateInfoRequest, DomainName=domain))
        infos = _items(body, "CertInfos", "CertInfo")
        info = next((i for i in infos if str(i.get("DomainName") or "").lower() == domain),
                    infos[0] if infos else None)
        if info is None:
            return Binding("none")
        name = info.get("CertName") or None
        if str(info.get("ServerCertificateStatus") or "").lower() != "on":
            return Binding("none", cert_name=name, detail="HTTPS is off")
        leaf: Leaf | None = None
        if info.get("ServerCertificate"):
            try:
                leaf = leaf_of_pem(info["ServerCertificate"])
            except ValueError:
                leaf = None
        status = str(info.get("Status") or "success").lower()
        state = "ok" if status == "success" else "pending" if status in _PENDING else "error"
        return Binding(state, serial=leaf.serial if leaf else None,
                       fingerprint=leaf.fingerprint if leaf else None,
                       not_after=leaf.not_after if leaf else None, cert_name=name,
                       detail=None if state == "ok" else f"Status {status}")

    # ------------------------------------------------------------------ bind

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        """Upload ``bundle`` to ``target``'s domain. Idempotent, for the two ways a retry
        meets its earlier attempt:

        - ``ServiceBusy``: the domain is still rolling out a change (the access layer has
          backed off already). If that change is ours, the bind is done; ``verify`` waits.
        - the derived name exists already: the stored certificate is this very one (the name
          embeds its fingerprint), uploaded by an earlier attempt or for another domain. Done
          if the domain has it; otherwise bind the stored upload with ``ForceSet=1`` (which
          skips the name check and rewrites the name with identical content)."""
        domain = self._domain(target)
        name = cert_name(bundle.name, bundle.fingerprint, CDN_NAME_MAX)
        try:
            self.api.call("cdn", _request(SetCdnDomainSSLCertificateRequest, DomainName=domain,
                                          SSLProtocol="on", CertType="upload", CertName=name,
                                          SSLPub=bundle.fullchain_pem, SSLPri=bundle.key_pem))
        except CredentialError:
            raise
        except ProviderError as exc:
            if exc.code == "ServiceBusy" and self._domain_info(domain).fingerprint == bundle.fingerprint:
                pass  # an earlier attempt set it and its rollout is still running: done
            elif not _name_taken(exc):
                raise
            elif self._domain_info(domain).fingerprint != bundle.fingerprint:
                self.api.call("cdn", _request(BatchSetCdnDomainServerCertificateRequest,
                                              DomainName=domain, SSLProtocol="on", CertType="upload",
                                              CertName=name, SSLPub=bundle.fullchain_pem,
                                              SSLPri=bundle.key_pem, ForceSet="1"))
        self.known.add(leaf_of_bundle(bundle))
        self.ctx.log.info("cdn: %s: bound %s (serial %s)", domain, name, bundle.serial)

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        domain = self._domain(target)
        self.known.add(leaf_of_bundle(bundle))
        started = self.clock()
        last: list[str] = ["has not answered"]

        def settled() -> Binding | None:
            try:
                binding = self._domain_info(domain)
            except CredentialError:
                raise
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                last[0] = f"could not be read ({exc})"
                return None
            if binding.state == "ok" and binding.fingerprint == bundle.fingerprint:
                return binding
            if binding.state == "error" and binding.fingerprint == bundle.fingerprint:
                raise VerificationError(f"cdn: {domain}: the rollout failed ({binding.detail})")
            if binding.fingerprint != bundle.fingerprint:
                last[0] = (f"still serves serial {binding.serial}" if binding.serial
                           else f"serves no certificate ({binding.detail or binding.state})")
            else:
                last[0] = f"is still rolling out ({binding.detail or binding.state})"
            return None

        binding = wait_for(settled, deadline=deadline, stop=self.ctx.stop, what=f"cdn: {domain}",
                           clock=self.clock, intervals=self.poll_intervals)
        if binding is None:
            raise VerificationError(f"cdn: {domain} {last[0]} after "
                                    f"{format_duration(self.clock() - started)}")
        verify = self.ctx.config.verify
        if verify.tls:
            wait_for_edge("cdn", domain, bundle, connect_to=verify.connect_to, deadline=deadline,
                          stop=self.ctx.stop, started=started, clock=self.clock,
                          intervals=self.poll_intervals)
        return binding

    @staticmethod
    def _domain(target: Target) -> str:
        return (target.domain or target.name).lower()
