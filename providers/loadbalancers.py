"""What the load balancer providers (alb, nlb, clb) share: config pieces, RPC requests built
with the SDK's CommonRequest, CAS certificate ids as listeners name them, and "ours or not".

Why CommonRequest: the legacy request packages exist (aliyun-python-sdk-alb 1.0.22 of 2024-12,
-nlb 1.0.12 of 2023-10, -slb 3.3.22 of 2024-05, per the PyPI index; nlb's has had no release
since), but three more dependencies would only wrap the same RPC call and add start-up imports. The access layer (providers/aliyun/client.py)
speaks the legacy core, whose CommonRequest sends any action; the action names, parameters and
flattening (``Certificates.1.CertificateId``) are those of the official v2 models.

Ours or foreign is decided only by the CAS hub (``cas_hub(ctx).identify``): a certificate on a
listener that alicertd did not upload is never detached, replaced away from an SNI slot, or
deleted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aliyunsdkcore.request import CommonRequest

from providers.aliyun.client import shared_api
from providers.base import CertificateBundle, ProviderContext
from providers.tls import POLL_INTERVALS

REGION = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")
_CAS_ID = re.compile(r"^(\d+)-([a-z]{2,}(?:-[a-z0-9]+)+)$")

#: Product code and API version per ``[aliyun.endpoints]`` key.
VERSIONS = {"alb": ("Alb", "2020-06-16"), "nlb": ("Nlb", "2022-04-30"), "slb": ("Slb", "2014-05-15")}


def rpc(product: str, action: str, params: Mapping[str, Any] | None = None) -> CommonRequest:
    """A fresh RPC request (the SDK mutates requests: one per call)."""
    code, version = VERSIONS[product]
    request = CommonRequest(version=version, action_name=action, product=code)
    for key, value in (params or {}).items():
        if value is not None:
            request.add_query_param(key, value)
    return request


def flat(prefix: str, field: str, values: Iterable[str]) -> dict[str, str]:
    """The RPC flattening of a list of objects: ``Certificates.1.CertificateId`` …"""
    return {f"{prefix}.{i}.{field}": v for i, v in enumerate(values, 1)}


def listener_cas_id(cert_id: int | str, region: str) -> str:
    """ALB/NLB name a CAS certificate ``<CertId>-<CAS region>`` (the ALB and NLB models:
    "The globally unique certificate ID, which ends with a region ID")."""
    return f"{cert_id}-{region}"


def split_cas_id(text: str) -> tuple[str, str] | None:
    m = _CAS_ID.match(str(text or ""))
    return (m.group(1), m.group(2)) if m else None


def hub_of(ctx: ProviderContext) -> Any:
    """The run's CAS hub (imported late: providers/cas.py is only needed when binding)."""
    from providers.cas import cas_hub

    return cas_hub(ctx)


class Ownership:
    """Ours vs foreign for listener certificate ids, asked of the hub once per id per run.

    ``fingerprint(cid)`` is the SHA-256 of one of OUR certificates, or None for a certificate
    alicertd did not upload (or an id it cannot parse)."""

    def __init__(self, hub_getter, account: str = "default"):
        self._hub_getter = hub_getter
        self.account = account
        self._cache: dict[str, Any] = {}

    def identify(self, cid: str) -> Any:
        if cid not in self._cache:
            parts = split_cas_id(cid)
            number = parts[0] if parts else cid
            self._cache[cid] = self._hub_getter().identify(number, self.account)
        return self._cache[cid]

    def fingerprint(self, cid: str | None) -> str | None:
        if not cid:
            return None
        found = self.identify(cid)
        return found.fingerprint if found is not None else None

    def forget(self, cid: str) -> None:
        self._cache.pop(cid, None)


def current_fingerprints(ctx: ProviderContext, extra: CertificateBundle | None = None) -> set[str]:
    """Fingerprints of every certificate's current bundle this run (never detached)."""
    found = {b.fingerprint for b in ctx.bundles.values()}
    if extra is not None:
        found.add(extra.fingerprint)
    return found


def bundle_for(ctx: ProviderContext, fingerprint: str | None) -> CertificateBundle | None:
    for bundle in ctx.bundles.values():
        if bundle.fingerprint == fingerprint:
            return bundle
    return None


def parse_account(s: Any, defaults: Any) -> str | None:
    """The ``account`` key every deploy block takes, read the one way every provider reads it
    (``Section.account``); None when the block names an unknown account, so parsing fails."""
    known = tuple(getattr(defaults, "accounts", ("default",)) or ("default",))
    before = len(s.errors)
    account = s.account(known)
    return None if len(s.errors) > before else account


def account_prefix(account: str) -> str:
    """Target names of another account start with ``<account>:`` (unique across accounts)."""
    return "" if account == "default" else f"{account}:"


class Accounts:
    """Per-account API clients and ownership caches of one provider instance. ``api`` given
    (tests, bench) serves every account."""

    def __init__(self, ctx: ProviderContext, api: Any, hub_getter):
        self.ctx = ctx
        self._api = api
        self._hub_getter = hub_getter
        self._apis: dict[str, Any] = {}
        self._own: dict[str, Ownership] = {}

    def api(self, account: str) -> Any:
        if self._api is not None:
            return self._api
        if account not in self._apis:
            self._apis[account] = shared_api(self.ctx, account)
        return self._apis[account]

    def own(self, account: str) -> Ownership:
        if account not in self._own:
            self._own[account] = Ownership(self._hub_getter, account)
        return self._own[account]


class ListenerProvider:
    """What the three load balancer providers share besides their API: the run's default API
    (``api`` given by tests and bench serves every account), per-account clients and ownership
    caches, and the CAS hub, looked up only when first needed."""

    kind = "deploy"
    poll_intervals = POLL_INTERVALS

    def __init__(self, ctx: ProviderContext, api: Any = None, hub: Any = None):
        self.ctx = ctx
        self.api = api if api is not None else shared_api(ctx)
        self._hub = hub
        self.accounts = Accounts(ctx, api, self.hub)
        self.clock = time.monotonic

    def hub(self) -> Any:
        if self._hub is None:
            self._hub = hub_of(self.ctx)
        return self._hub
