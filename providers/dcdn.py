"""DCDN (Dynamic Route for CDN, ``dcdn`` 2018-01-15) as a deploy target: one target per
accelerated domain.

Bind: ``SetDcdnDomainSSLCertificate`` with ``SSLProtocol=on``, ``CertType=cas``, ``CertId`` and
``CertRegion`` of the CAS certificate the hub holds for the bundle (``cas_hub(ctx).ensure``):
the certificate is uploaded to CAS once per account and every domain binds it by id, so the
private key is not sent per domain. Binding the same id again is harmless, so a retry after a
crash simply repeats the call.

Wildcards: users write ``*.example.com``; the API names a wildcard accelerated domain
``.example.com`` (ALIYUN::DCDN::Domain: "the domain name must start with a period"), so the
provider translates in both directions and shakes hands with ``alicertd-verify.example.com``.

Read: the paged ``DescribeDcdnHttpsDomainList`` (up to 500 entries a page) reports every HTTPS
domain of the account with its ``CertName``. CAS names of ours embed the fingerprint prefix
(``alicertd-<certificate>-<12 hex>``), so a page identifies our certificate on hundreds of
domains at once; ``DescribeDcdnDomainCertificateInfo`` (one domain per call, returns the served
chain as ``SSLPub``) is used only where a page cannot tell.

Verify: the configuration push is asynchronous. Poll DescribeDcdnDomainCertificateInfo until
``SSLProtocol=on``, ``Status=success`` and the chain is ours, then (``[verify] tls``) shake hands
with the edge until it presents our leaf.

RAM actions: dcdn:DescribeDcdnHttpsDomainList, dcdn:DescribeDcdnDomainCertificateInfo,
dcdn:SetDcdnDomainSSLCertificate (plus the CAS hub's).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aliyunsdkdcdn.request.v20180115.DescribeDcdnDomainCertificateInfoRequest import (
    DescribeDcdnDomainCertificateInfoRequest,
)
from aliyunsdkdcdn.request.v20180115.DescribeDcdnHttpsDomainListRequest import (
    DescribeDcdnHttpsDomainListRequest,
)
from aliyunsdkdcdn.request.v20180115.SetDcdnDomainSSLCertificateRequest import (
    SetDcdnDomainSSLCertificateRequest,
)

from daemon.domains import dot_wildcard
from providers.aliyun.client import shared_api
from providers.aliyun.rpc import items as _items
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
from providers.certnames import KnownCertificates, leaf_of_bundle
from providers.readback import cert_info_binding, listed_binding, wait_for_rollout
from providers.settings import Section
from providers.tls import POLL_INTERVALS

#: DescribeDcdnHttpsDomainList PageSize: "1 to 500, default 20" (alibabacloud-dcdn20180115 model).
PAGE_SIZE = 500

#: DescribeDcdnDomainCertificateInfo ``Status`` values of a rollout still under way (model:
#: checking, applying); ``success`` is settled, anything else (cname_error, failed, ...) failed.
_PENDING = frozenset({"checking", "applying"})


@dataclass(frozen=True)
class DcdnSettings:
    domains: tuple[str, ...]
    account: str = "default"


class DcdnProvider:
    """Deploy to DCDN accelerated domains (``[[certificate.deploy]] provider = "dcdn"``)."""

    kind = "deploy"
    name = "dcdn"

    page_size = PAGE_SIZE
    poll_intervals = POLL_INTERVALS

    def __init__(self, ctx: ProviderContext, api: Any = None):
        self.ctx = ctx
        self._api_override = api
        self.known = KnownCertificates(ctx.bundles)
        self.clock = time.monotonic

    # ------------------------------------------------------------------ config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> DcdnSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        domains = s.domains("domains", required=True, nonempty=True)
        account = s.account(defaults.accounts)
        s.finish()
        if len(errors) > before:
            return None
        return DcdnSettings(domains=tuple(domains), account=account)

    @classmethod
    def expand(cls, settings: DcdnSettings) -> list[Target]:
        return [Target(cls.name, domain, settings, domain=domain) for domain in settings.domains]

    def api(self, account: str) -> Any:
        return self._api_override if self._api_override is not None else shared_api(self.ctx, account)

    # ------------------------------------------------------------------ read

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        """Per account: page through the HTTPS domain list until every target is found (or
        the list ends: absent means HTTPS off). When fewer targets remain unfound than pages
        remain unread, asking for those domains one by one is cheaper, so that is done."""
        result: dict[Target, Binding] = {}
        by_account: dict[str, list[Target]] = {}
        for t in targets:
            by_account.setdefault(t.settings.account, []).append(t)
        for account, group in by_account.items():
            result.update(self._read_account(account, group))
        return result

    def _read_account(self, account: str, targets: Sequence[Target]) -> dict[Target, Binding]:
        wanted = {dot_wildcard(self._domain(t)) for t in targets}
        found: dict[str, Binding | None] = {}  # None: the page could not tell, look closer
        unread = set(wanted)
        page, seen = 1, 0
        try:
            api = self.api(account)
            while unread:
                body = api.call("dcdn", _request(DescribeDcdnHttpsDomainListRequest,
                                                 PageNumber=page, PageSize=self.page_size))
                items = _items(body, "CertInfos", "CertInfo")
                for item in items:
                    domain = str(item.get("DomainName") or "").lower()
                    if domain in unread:
                        found[domain] = self._from_page(item)
                        unread.discard(domain)
                seen += len(items)
                total = int(body.get("TotalCount") or 0)
                if not items or seen >= total:
                    found.update((d, Binding("none", detail="HTTPS is off")) for d in unread)
                    unread.clear()
                elif len(unread) < math.ceil((total - seen) / len(items)):
                    break  # fewer domains left to find than pages left to read
                page += 1
        except CredentialError:
            raise
        except ProviderError as exc:
            found.update((d, Binding("unknown", detail=str(exc))) for d in unread)
            unread.clear()
        out: dict[Target, Binding] = {}
        for t in targets:
            name = dot_wildcard(self._domain(t))
            if found.get(name) is None:
                found[name] = self._look_closer(account, name)
            out[t] = found[name]
        return out

    def _from_page(self, item: Mapping[str, Any]) -> Binding | None:
        """A binding from a list entry, or None when the entry does not say which certificate
        is served (a name we did not make, one we do not know, or a status other than ok).
        The list shows the configured certificate, not the rollout: ``verify`` waits for that."""
        return listed_binding(item, self.known)

    def _look_closer(self, account: str, domain: str) -> Binding:
        try:
            return self._domain_info(account, domain)
        except CredentialError:
            raise
        except ProviderError as exc:
            return Binding("unknown", detail=str(exc))

    def _domain_info(self, account: str, domain: str) -> Binding:
        """What ``domain`` (API form) serves according to DescribeDcdnDomainCertificateInfo."""
        body = self.api(account).call("dcdn", _request(DescribeDcdnDomainCertificateInfoRequest,
                                                       DomainName=domain))
        infos = _items(body, "CertInfos", "CertInfo")
        info = next((i for i in infos if str(i.get("DomainName") or "").lower() == domain),
                    infos[0] if infos else None)
        return cert_info_binding(info, https_field="SSLProtocol", pem_field="SSLPub", pending=_PENDING)

    # ------------------------------------------------------------------ bind

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        """Bind the bundle's CAS certificate to the domain, by id. Idempotent: the hub never
        uploads twice, and setting the same CertId again changes nothing. ``ServiceBusy``
        (the domain is still rolling out a change, and the access layer has backed off
        already) counts as done when the domain already has our certificate: ``verify`` waits."""
        from providers.cas import cas_hub

        account = target.settings.account
        domain = dot_wildcard(self._domain(target))
        cas = cas_hub(self.ctx).ensure(bundle, account)
        try:
            self.api(account).call("dcdn", _request(
                SetDcdnDomainSSLCertificateRequest, DomainName=domain, SSLProtocol="on",
                CertType="cas", CertId=cas.cert_id, CertRegion=cas.region))
        except CredentialError:
            raise
        except ProviderError as exc:
            if exc.code != "ServiceBusy" or \
                    self._domain_info(account, domain).fingerprint != bundle.fingerprint:
                raise
        self.known.add(leaf_of_bundle(bundle))
        self.ctx.log.info("dcdn: %s: bound CAS certificate %s (serial %s)", self._domain(target),
                          cas.cert_id, bundle.serial)

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        account, shown = target.settings.account, self._domain(target)
        domain = dot_wildcard(shown)
        self.known.add(leaf_of_bundle(bundle))
        return wait_for_rollout("dcdn", shown, lambda: self._domain_info(account, domain), bundle,
                                deadline=deadline, ctx=self.ctx, clock=self.clock,
                                intervals=self.poll_intervals)

    @staticmethod
    def _domain(target: Target) -> str:
        return (target.domain or target.name).lower()
