"""Alibaba Cloud API Gateway (CloudAPI) as a deploy target: one custom domain of one API group.

Groups are regional: every call goes to the group's region (``region`` in the deploy block,
default ``[aliyun].region``); another region does not find the group (``NotFoundApiGroup``).

Bind: ``SetDomainCertificate`` replaces the domain's certificate in place (the domain must
already be bound to the group); it takes the PEM body and key, there is no parameter to bind a
CAS certificate by id. The CertificateName is derived from the certificate (see ``certnames``;
Alibaba documents no limit for it, so the names are kept short and plain), so a page of
``DescribeApiGroup`` tells which certificate each custom domain holds.

Read: one ``DescribeApiGroup`` per (region, group) covers all of its custom domains;
``DescribeDomain`` (exact, it returns the PEM; and the private key, which we never keep or log)
only where the group's list cannot tell.

``DomainBindingStatus``: ``BINDING`` means bound (normal), ``BOUND`` means the binding is not
in effect (inactive) -- the names read backwards (alibabacloud-cloudapi20160714
DescribeDomainResponseBody; the CustomDomain reference says "BINDING: Normal, BOUND: Inactive").
An inactive domain is not in effect, whatever certificate it holds, so it is an ``error`` binding;
a value neither name (undocumented) is ``unknown``, and an absent one leaves the certificate
fields to decide.

Verify: API Gateway documents no asynchronous state; read back with DescribeDomain until it
returns our certificate on an active domain, then (``[verify] tls``) a handshake must present
our leaf.

RAM actions: apigateway:DescribeApiGroup, apigateway:DescribeDomain,
apigateway:SetDomainCertificate.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aliyunsdkcloudapi.request.v20160714.DescribeApiGroupRequest import DescribeApiGroupRequest
from aliyunsdkcloudapi.request.v20160714.DescribeDomainRequest import DescribeDomainRequest
from aliyunsdkcloudapi.request.v20160714.SetDomainCertificateRequest import SetDomainCertificateRequest

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
from providers.certnames import (
    APIGATEWAY_NAME_MAX,
    KnownCertificates,
    cert_name,
    fingerprint_prefix,
    leaf_of_bundle,
    leaf_of_pem,
)
from providers.readback import Outcome, shake_hands, wait_for_readback
from providers.settings import Section
from providers.tls import POLL_INTERVALS

_REGION = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")
_GROUP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ApiGatewaySettings:
    region: str
    group_id: str
    domain: str
    account: str = "default"  # the account entry owning the API group


BOUND_DETAIL = "the custom domain is inactive (DomainBindingStatus BOUND)"


def _state(domain: Mapping[str, Any]) -> tuple[str, str | None]:
    """(Binding state, detail) for DomainBindingStatus: BINDING (bound, normal) or absent ->
    ``ok``; BOUND (inactive) -> ``error``; anything else -> ``unknown``."""
    status = str(domain.get("DomainBindingStatus") or "").strip().upper()
    if status in ("", "BINDING"):
        return "ok", None
    if status == "BOUND":
        return "error", BOUND_DETAIL
    return "unknown", f"undocumented DomainBindingStatus {status!r}"


class ApiGatewayProvider:
    """Deploy to an API Gateway custom domain (``[[certificate.deploy]] provider = "apigateway"``)."""

    kind = "deploy"
    name = "apigateway"

    poll_intervals = POLL_INTERVALS

    def __init__(self, ctx: ProviderContext, api: Any = None):
        self.ctx = ctx
        self.api = api if api is not None else shared_api(ctx)
        self.known = KnownCertificates(ctx.bundles)
        self.clock = time.monotonic

    # ------------------------------------------------------------------ config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> ApiGatewaySettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        group_id = s.str("group_id", required=True)
        domain = s.domain("domain", required=True)
        region = s.str("region", defaults.region)
        account = s.account(defaults.accounts)
        s.finish()
        if group_id is not None and not _GROUP_ID.match(group_id):
            s.error("group_id", f"invalid API group id {group_id!r}")
        if region is not None and not _REGION.match(region):
            s.error("region", f"invalid region {region!r} (e.g. \"cn-shanghai\")")
        if len(errors) > before or group_id is None or domain is None or region is None:
            return None
        return ApiGatewaySettings(region=region, group_id=group_id, domain=domain, account=account)

    @classmethod
    def expand(cls, settings: ApiGatewaySettings) -> list[Target]:
        name = f"{settings.region}/{settings.group_id}/{settings.domain}"
        if settings.account != "default":
            name = f"{settings.account}:{name}"
        return [Target(cls.name, name, settings, domain=settings.domain)]

    def _api(self, s: ApiGatewaySettings) -> Any:
        """The API of the block's account (the one given to the constructor is default's)."""
        return self.api if s.account == "default" else shared_api(self.ctx, s.account)

    # ------------------------------------------------------------------ read

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        groups: dict[tuple[str, str, str], list[Target]] = {}
        for target in targets:
            s: ApiGatewaySettings = target.settings
            groups.setdefault((s.account, s.region, s.group_id), []).append(target)
        result: dict[Target, Binding] = {}
        for (_account, region, group_id), members in sorted(groups.items()):
            try:
                body = self._api(members[0].settings).call(
                    "apigateway", _request(DescribeApiGroupRequest, GroupId=group_id), region=region)
            except CredentialError:
                raise
            except ProviderError as exc:
                result.update((t, Binding("unknown", detail=str(exc))) for t in members)
                continue
            domains = body.get("CustomDomains") or {}
            items = domains.get("DomainItem") if isinstance(domains, dict) else None
            by_name = {str(i.get("DomainName") or "").lower(): i
                       for i in (items or []) if isinstance(i, dict)}
            for target in members:
                result[target] = self._binding(target.settings, by_name.get(target.settings.domain))
        return result

    def _binding(self, s: ApiGatewaySettings, item: Mapping[str, Any] | None) -> Binding:
        if item is None:
            return Binding("error", detail=f"{s.domain} is not a custom domain of API group "
                                           f"{s.group_id} in {s.region}")
        name = item.get("CertificateName") or None
        if not name and not item.get("CertificateId"):
            return Binding("none")
        prefix = fingerprint_prefix(name)
        leaf = self.known.lookup(prefix) if prefix else None
        if leaf is not None:
            state, detail = _state(item)
            return Binding(state, serial=leaf.serial, fingerprint=leaf.fingerprint,
                           not_after=leaf.not_after, cert_name=name, detail=detail)
        try:
            return self._domain_info(s)
        except CredentialError:
            raise
        except ProviderError as exc:
            return Binding("unknown", cert_name=name, detail=str(exc))

    def _domain_info(self, s: ApiGatewaySettings) -> Binding:
        """What DescribeDomain says the domain serves (exact: the certificate body)."""
        body = self._api(s).call("apigateway", _request(DescribeDomainRequest, GroupId=s.group_id,
                                                        DomainName=s.domain), region=s.region)
        name = body.get("CertificateName") or None
        pem = body.get("CertificateBody")
        if not pem:
            return Binding("none", cert_name=name)
        try:
            leaf = leaf_of_pem(pem)
        except ValueError as exc:
            return Binding("unknown", cert_name=name, detail=f"unreadable certificate body: {exc}")
        state, detail = _state(body)
        return Binding(state, serial=leaf.serial, fingerprint=leaf.fingerprint,
                       not_after=leaf.not_after, cert_name=name, detail=detail)

    # ------------------------------------------------------------------ bind

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        """Replace the domain's certificate. Naturally idempotent: setting the same name and
        certificate again changes nothing."""
        s: ApiGatewaySettings = target.settings
        name = cert_name(bundle.name, bundle.fingerprint, APIGATEWAY_NAME_MAX)
        self._api(s).call("apigateway", _request(SetDomainCertificateRequest, GroupId=s.group_id,
                                                 DomainName=s.domain, CertificateName=name,
                                                 CertificateBody=bundle.fullchain_pem,
                                                 CertificatePrivateKey=bundle.key_pem),
                          region=s.region)
        self.known.add(leaf_of_bundle(bundle))
        self.ctx.log.info("apigateway: %s: bound %s (serial %s)", target.name, name, bundle.serial)

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        s: ApiGatewaySettings = target.settings
        self.known.add(leaf_of_bundle(bundle))
        started = self.clock()

        def probe() -> Outcome:
            binding = self._domain_info(s)
            if binding.fingerprint == bundle.fingerprint and binding.state == "ok":
                return binding
            if binding.fingerprint == bundle.fingerprint:
                # Not a rollout (none is documented): an inactive domain or an undocumented
                # status. Keep reading until the deadline in case it is transient.
                return f"holds the certificate, but {binding.detail}"
            return (f"still serves serial {binding.serial}" if binding.serial
                    else f"serves no certificate ({binding.detail or binding.state})")

        binding = wait_for_readback(f"apigateway: {s.domain} (group {s.group_id}, {s.region})", probe,
                                    deadline=deadline, ctx=self.ctx, clock=self.clock,
                                    intervals=self.poll_intervals, started=started,
                                    what=f"apigateway: {target.name}")
        shake_hands("apigateway", (s.domain,), bundle, deadline=deadline, ctx=self.ctx,
                    clock=self.clock, intervals=self.poll_intervals, started=started)
        return binding
