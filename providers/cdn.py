"""Alibaba Cloud CDN as a deploy target: one target per accelerated domain.

Bind: by Certificate Management Service (CAS) id. The CAS hub (``providers.cas``) uploads the
certificate once per account; ``SetCdnDomainSSLCertificate`` then names it
(``SSLProtocol=on``, ``CertType=cas``, ``CertId``, ``CertRegion``): no private key in any CDN
call, and 1,000 domains cost one upload. (The upload-mode fallback through
``BatchSetCdnDomainServerCertificate`` + ``ForceSet`` is gone: Alibaba retired ``ForceSet`` on
2026-03-19.)

Wildcards: a deploy block writes ``*.example.com``; the CDN API names that domain
``.example.com`` ("The domain name must start with a period"). Calls use the API's form,
listings are matched in both forms, and the TLS check shakes hands with a host under the
wildcard (``alicertd-verify.example.com``).

Read: the paged ``DescribeCdnHttpsDomainList`` reports every HTTPS domain of the account with
its CertName; our CAS names embed the fingerprint prefix, so a page identifies our certificate
on hundreds of domains at once. ``DescribeDomainCertificateInfo`` (one domain per call, returns
the served PEM and the CAS CertId) is used only where a page cannot tell: a name we did not
make (drift, or a domain never deployed by us), or a prefix we do not know. A domain bound to a
CAS certificate alicertd did not upload counts as not ours (drift), even when it holds the same
PEM: it is rebound to our upload. 1,000 domains cost two pages.

Verify: the configuration push to the edge is asynchronous. Poll DescribeDomainCertificateInfo
until ``ServerCertificateStatus=on``, ``Status=success`` and the served PEM is ours, then (when
``[verify] tls``) shake hands with the edge until it presents our leaf.

RAM actions: cdn:DescribeCdnHttpsDomainList, cdn:DescribeDomainCertificateInfo,
cdn:SetCdnDomainSSLCertificate (and the CAS hub's yundun-cert actions).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aliyunsdkcdn.request.v20180510.DescribeCdnHttpsDomainListRequest import (
    DescribeCdnHttpsDomainListRequest,
)
from aliyunsdkcdn.request.v20180510.DescribeDomainCertificateInfoRequest import (
    DescribeDomainCertificateInfoRequest,
)
from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import (
    SetCdnDomainSSLCertificateRequest,
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
from providers.cas import CasHub, cas_hub
from providers.certnames import (
    KnownCertificates,
    leaf_of_bundle,
)
from providers.readback import cert_info_binding, listed_binding, wait_for_rollout
from providers.settings import Section
from providers.tls import POLL_INTERVALS

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
    domains: tuple[str, ...]  # as the user writes them: a wildcard is "*.example.com"
    account: str = "default"


def _listed_domain(name: object) -> str:
    """A listing's DomainName in the API's form, whichever form the listing used."""
    return dot_wildcard(str(name or "").strip().rstrip("."))


def _page_size_refused(exc: ProviderError) -> bool:
    """The service refused our PageSize. No code for it is documented: a message naming
    PageSize, or the generic InvalidParameter (the gateway's answer to an out-of-range value),
    lets the pager try a smaller size; anything else is a real failure."""
    return exc.code == "InvalidParameter" or "pagesize" in f"{exc.code} {exc}".lower()


class CdnProvider:
    """Deploy to CDN accelerated domains (``[[certificate.deploy]] provider = "cdn"``)."""

    kind = "deploy"
    name = "cdn"

    page_sizes = PAGE_SIZES
    poll_intervals = POLL_INTERVALS

    def __init__(self, ctx: ProviderContext, api: Any = None, hub: CasHub | None = None):
        self.ctx = ctx
        self.api = api if api is not None else shared_api(ctx)
        if hub is None:
            hub = cas_hub(ctx) if api is None else ctx.shared(
                "cas_hub", lambda: CasHub(ctx, api_for=self._api_for))
        self.hub = hub
        self.known = KnownCertificates(ctx.bundles)
        self.clock = time.monotonic

    def _api_for(self, account: str) -> Any:
        """The API of ``account`` (the given one for the default account)."""
        return self.api if account == "default" else shared_api(self.ctx, account)

    # ------------------------------------------------------------------ config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> CdnSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        domains = s.domains("domains", required=True, nonempty=True)
        account = s.account(defaults.accounts)
        s.finish()
        _explain_api_wildcards(raw, path, errors, before)
        if len(errors) > before:
            return None
        return CdnSettings(domains=tuple(domains), account=account or "default")

    @classmethod
    def expand(cls, settings: CdnSettings) -> list[Target]:
        return [Target(cls.name, domain, settings, domain=domain) for domain in settings.domains]

    # ------------------------------------------------------------------ read

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        """Per account, page through the HTTPS domain list until every target is found (or
        the list ends: absent means no certificate). When fewer targets remain unfound than
        pages remain unread, asking for those domains one by one is cheaper, so that is done
        instead."""
        by_account: dict[str, list[Target]] = {}
        for t in targets:
            by_account.setdefault(self._account(t), []).append(t)
        result: dict[Target, Binding] = {}
        for account, group in by_account.items():
            result.update(self._read_account(account, group))
        return result

    def _read_account(self, account: str, targets: Sequence[Target]) -> dict[Target, Binding]:
        api = self._api_for(account)
        wanted = {self._domain(t) for t in targets}
        found: dict[str, Binding | None] = {}  # None: the page could not tell, look closer
        unread = set(wanted)
        page, seen = 1, 0
        try:
            while unread:
                body = self._list_page(api, page)
                items = _items(body, "CertInfos", "CertInfo")
                for item in items:
                    domain = _listed_domain(item.get("DomainName"))
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
                found[domain] = self._look_closer(domain, account)
        return {t: found[self._domain(t)] for t in targets}

    def _list_page(self, api: Any, page: int) -> dict[str, Any]:
        sizes = list(self.page_sizes)
        while True:
            try:
                return api.call("cdn", _request(DescribeCdnHttpsDomainListRequest,
                                                PageNumber=page, PageSize=sizes[0]))
            except CredentialError:
                raise
            except ProviderError as exc:
                if len(sizes) == 1 or not _page_size_refused(exc):
                    raise
                self.ctx.log.warning("cdn: DescribeCdnHttpsDomainList refused PageSize=%d (%s), "
                                     "using %d", sizes[0], exc.code, sizes[1])
                self.page_sizes = tuple(sizes[1:])
                sizes.pop(0)

    def _from_page(self, item: Mapping[str, Any]) -> Binding | None:
        """A binding from a list entry, or None when the entry does not say which certificate
        is served (a CertName we did not make, or one whose certificate we do not know).

        The list shows the configured certificate, not the rollout: a domain bound moments
        ago reads as ``ok`` here while its edge still serves the old one. ``verify`` (which
        the daemon runs after every bind) is what waits for the rollout."""
        return listed_binding(item, self.known)

    def _look_closer(self, domain: str, account: str) -> Binding:
        try:
            return self._domain_info(domain, account)
        except CredentialError:
            raise
        except ProviderError as exc:
            return Binding("unknown", detail=str(exc))

    def _domain_info(self, domain: str, account: str) -> Binding:
        """What ``domain`` (API form) serves according to DescribeDomainCertificateInfo
        (exact: the PEM, and the CAS CertId)."""
        body = self._api_for(account).call("cdn", _request(DescribeDomainCertificateInfoRequest,
                                                           DomainName=domain))
        infos = _items(body, "CertInfos", "CertInfo")
        info = next((i for i in infos if _listed_domain(i.get("DomainName")) == domain),
                    infos[0] if infos else None)
        binding = cert_info_binding(info, https_field="ServerCertificateStatus",
                                    pem_field="ServerCertificate", pending=_PENDING)
        cert_id = info.get("CertId") if info else None
        known = self.known.lookup(binding.fingerprint[:12]) if binding.fingerprint else None
        if (known is not None and known.fingerprint == binding.fingerprint and cert_id not in (None, "")
                and self.hub.identify(cert_id, account) is None):
            # Our PEM, but in a CAS certificate alicertd did not upload (a copy by hand, a
            # same-name upload): not ours to keep, so nothing here says it serves our bundle.
            return Binding(binding.state, not_after=binding.not_after, cert_name=binding.cert_name,
                           detail=f"CAS certificate {cert_id} was not uploaded by alicertd")
        return binding

    # ------------------------------------------------------------------ bind

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        """Bind ``target``'s domain to ``bundle``'s CAS certificate (uploaded once per account
        by the hub). Idempotent: binding the same id again is harmless; ``ServiceBusy`` means
        the domain is still rolling out a change (the access layer has backed off already),
        and if that change is ours, the bind is done (``verify`` waits for it)."""
        domain = self._domain(target)
        account = self._account(target)
        cas = self.hub.ensure(bundle, account)
        try:
            self._set_cas(domain, account, cas)
        except CredentialError:
            raise
        except ProviderError as exc:
            if exc.code == "ServiceBusy" and self._domain_info(domain, account).fingerprint == bundle.fingerprint:
                pass  # an earlier attempt set it and its rollout is still running: done
            elif not exc.retryable and self.hub.forget_if_gone(cas, account):
                cas = self.hub.ensure(bundle, account)  # our upload was deleted by hand
                self._set_cas(domain, account, cas)
            else:
                raise
        self.known.add(leaf_of_bundle(bundle))
        self.ctx.log.info("cdn: %s: bound CAS certificate %d (%s, serial %s)", target.name, cas.cert_id,
                          cas.name, bundle.serial)

    def _set_cas(self, domain: str, account: str, cas) -> None:
        self._api_for(account).call("cdn", _request(
            SetCdnDomainSSLCertificateRequest, DomainName=domain, SSLProtocol="on", CertType="cas",
            CertId=cas.cert_id, CertRegion=cas.region))

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        domain, account = self._domain(target), self._account(target)
        self.known.add(leaf_of_bundle(bundle))
        return wait_for_rollout("cdn", (target.domain or target.name).lower(),
                                lambda: self._domain_info(domain, account), bundle,
                                deadline=deadline, ctx=self.ctx, clock=self.clock,
                                intervals=self.poll_intervals)

    @staticmethod
    def _domain(target: Target) -> str:
        """The target's domain as the CDN API names it (``.example.com`` for a wildcard)."""
        return dot_wildcard(target.domain or target.name)

    @staticmethod
    def _account(target: Target) -> str:
        return getattr(target.settings, "account", None) or "default"


def _explain_api_wildcards(raw: Mapping[str, Any], path: str, errors: ConfigErrors, since: int) -> None:
    """``.example.com`` is how the CDN API spells a wildcard domain; users write
    ``*.example.com`` (the contract). Replace the generic "empty label" message with that."""
    domains = raw.get("domains")
    if not isinstance(domains, list):
        return
    for i, item in enumerate(domains):
        if isinstance(item, str) and item.startswith(".") and not item.startswith(".."):
            where = f"{path}.domains[{i}]"
            hint = (f"{where}: {item!r} is the CDN API's spelling of a wildcard domain; "
                    f"write '*{item}'")
            errors.messages[since:] = [hint if m.startswith(where + ":") else m
                                       for m in errors.messages[since:]]
            if hint not in errors.messages:
                errors.add(where, hint.split(": ", 1)[1])
