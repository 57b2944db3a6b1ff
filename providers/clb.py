"""Classic Load Balancer (CLB, API product slb 2014-05-15) as a deploy target: an HTTPS
listener's server certificate, or the certificate of one of its domain extensions (SNI).

Config (one listener per block): ``load_balancer_id``, ``listener_port``, ``domain`` (the name a
TLS handshake checks; with ``slot = "sni"`` also the domain extension to change), ``region``
(the load balancer's; default ``[aliyun].region``), ``slot = "default" | "sni"``.

CLB keeps its own certificate store per region. alicertd uploads the certificate to CAS once
(``cas_hub(ctx).ensure``) and adds it to the CLB store of each region by reference:
``UploadServerCertificate`` with ``AliCloudCertificateId``/``AliCloudCertificateName``/
``AliCloudCertificateRegionId`` (slb 2014-05-15 models), so the private key is not sent again.
The store is searched first (one ``DescribeServerCertificates`` per region per run) for an
entry already referencing our CAS id, so a retry or a crash never adds a second one.

Read: ``DescribeLoadBalancerListeners`` for up to 10 instances per call where only listener
certificates are managed, ``DescribeLoadBalancerHTTPSListenerAttribute`` per listener with a
domain extension to read (the listing has none), plus the region's store listing to map server
certificate ids to CAS ids; ours or foreign is decided only by ``cas_hub(ctx).identify`` of that CAS id.

Bind: ``SetLoadBalancerHTTPSListenerAttribute`` (``ServerCertificateId``) or
``SetDomainExtensionAttribute`` (the extension whose ``Domain`` is the block's domain; alicertd
does not create extensions). Verify: read back, then a TLS handshake. Afterwards OUR superseded
entries of that region's store (referencing a CAS certificate of ours that no certificate's
current bundle is) are deleted when none of the listeners read this run uses them; CLB refuses
to delete one still in use elsewhere (``CertificateAndPrivateKeyIsRefered``), which is kept.

RAM actions: slb:DescribeLoadBalancerListeners, slb:DescribeServerCertificates, slb:UploadServerCertificate,
slb:DeleteServerCertificate, slb:DescribeLoadBalancerHTTPSListenerAttribute,
slb:SetLoadBalancerHTTPSListenerAttribute, slb:SetDomainExtensionAttribute.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from providers.aliyun.rpc import items as _items
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
from providers.loadbalancers import (
    REGION,
    ListenerProvider,
    account_prefix,
    bundle_for,
    current_fingerprints,
    parse_account,
    rpc,
)
from providers.readback import Outcome, shake_hands, wait_for_readback
from providers.settings import Section

_LB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")
_NAME_OK = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,79}$")
SLOTS = ("default", "sni")
#: DeleteServerCertificate of a certificate still in use (observed in terraform-provider-apsarastack's
#: retry list); already gone (same source).
IN_USE = "CertificateAndPrivateKeyIsRefered"
GONE = "ServerCertificateId.NotFound"
#: DescribeLoadBalancerListeners: "You can specify up to 10 instance IDs"; MaxResults 1-100.
LIST_LB_MAX = 10
LIST_PAGE = 100


@dataclass(frozen=True)
class ClbSettings:
    region: str
    load_balancer_id: str
    listener_port: int
    domain: str
    slot: str
    account: str = "default"


@dataclass(frozen=True)
class _Stored:
    server_certificate_id: str
    ali_id: str | None  # the CAS CertId it references (None: uploaded as PEM)


class ClbProvider(ListenerProvider):
    """Deploy to CLB HTTPS listeners (``[[certificate.deploy]] provider = "clb"``)."""

    name = "clb"

    def __init__(self, ctx: ProviderContext, api: Any = None, hub: Any = None):
        super().__init__(ctx, api, hub)
        self._stores: dict[tuple[str, str], dict[str, _Stored]] = {}  # (account, region) -> store
        self._lock = threading.Lock()
        # (account, region, lb, port) -> server certificate ids the listener used when last read
        self._in_use: dict[tuple[str, str, str, int], set[str]] = {}

    # ------------------------------------------------------------------ config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> ClbSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        lb = s.str("load_balancer_id", required=True)
        port = s.int("listener_port", required=True, minimum=1, maximum=65535)
        domain = s.domain("domain", required=True)
        region = s.str("region", defaults.region)
        slot = s.str("slot", "default", choices=SLOTS)
        account = parse_account(s, defaults)
        s.finish()
        if lb is not None and not _LB_ID.match(lb):
            s.error("load_balancer_id", f"invalid CLB instance id {lb!r} (e.g. \"lb-bp1o94dp5i6earr9g6d1l\")")
        if region is not None and not REGION.match(region):
            s.error("region", f"invalid region {region!r} (e.g. \"cn-shanghai\")")
        if len(errors) > before or None in (lb, port, domain, region, slot, account):
            return None
        return ClbSettings(region=region, load_balancer_id=lb, listener_port=port, domain=domain, slot=slot,
                           account=account)

    @classmethod
    def expand(cls, settings: ClbSettings) -> list[Target]:
        name = (f"{account_prefix(settings.account)}{settings.region}/{settings.load_balancer_id}:"
                f"{settings.listener_port}/{settings.slot}")
        if settings.slot == "sni":
            name += f"/{settings.domain}"
        return [Target(cls.name, name, settings, domain=settings.domain)]

    # ------------------------------------------------------------------ API

    def _call(self, action: str, where: tuple[str, str], **params: Any) -> dict[str, Any]:
        """``where`` = (account, region)."""
        account, region = where
        return self.accounts.api(account).call("slb", rpc("slb", action, {"RegionId": region, **params}),
                                               region=region)

    def _listener(self, s: ClbSettings) -> dict[str, Any]:
        body = self._call("DescribeLoadBalancerHTTPSListenerAttribute", (s.account, s.region),
                          LoadBalancerId=s.load_balancer_id, ListenerPort=s.listener_port)
        used = {str(body.get("ServerCertificateId") or "")}
        used |= {str(e.get("ServerCertificateId") or "") for e in _items(body, "DomainExtensions", "DomainExtension")}
        with self._lock:
            self._in_use[(s.account, s.region, s.load_balancer_id, s.listener_port)] = {u for u in used if u}
        return body

    def _store(self, where: tuple[str, str], *, refresh: bool = False) -> dict[str, _Stored]:
        with self._lock:
            if where in self._stores and not refresh:
                return self._stores[where]
        body = self._call("DescribeServerCertificates", where)
        store = {}
        for item in _items(body, "ServerCertificates", "ServerCertificate"):
            sid = str(item.get("ServerCertificateId") or "")
            if not sid:
                continue
            ali = str(item.get("AliCloudCertificateId") or "") or None
            if str(item.get("IsAliCloudCertificate") or "0") not in ("1", "True", "true"):
                ali = None
            store[sid] = _Stored(sid, ali)
        with self._lock:
            self._stores[where] = store
        return store

    def _fingerprint(self, where: tuple[str, str], sid: str | None) -> str | None:
        if not sid:
            return None
        stored = self._store(where).get(sid)
        if stored is None or stored.ali_id is None:
            return None  # a PEM upload or unknown: not ours
        return self.accounts.own(where[0]).fingerprint(stored.ali_id)

    @staticmethod
    def _extension(body: Mapping[str, Any], domain: str) -> dict[str, Any] | None:
        for e in _items(body, "DomainExtensions", "DomainExtension"):
            if str(e.get("Domain") or "").lower().rstrip(".") == domain:
                return e
        return None

    def _served_id(self, s: ClbSettings, body: Mapping[str, Any]) -> str | None:
        if s.slot == "default":
            return str(body.get("ServerCertificateId") or "") or None
        ext = self._extension(body, s.domain)
        return (str(ext.get("ServerCertificateId") or "") or None) if ext else None

    # ------------------------------------------------------------------ read

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        """Listeners with only a default target: ``DescribeLoadBalancerListeners`` for up to 10
        instances per call (HTTPS listeners, paged); listeners with an SNI target: their own
        ``DescribeLoadBalancerHTTPSListenerAttribute`` (the listing carries no domain extensions)."""
        groups: dict[tuple[str, str, str, int], list[Target]] = {}
        for t in targets:
            s: ClbSettings = t.settings
            groups.setdefault((s.account, s.region, s.load_balancer_id, s.listener_port), []).append(t)
        batched = {k for k, v in groups.items() if all(t.settings.slot == "default" for t in v)}
        listed = self._listed(batched)
        result: dict[Target, Binding] = {}
        for key, members in groups.items():
            try:
                if key in batched:
                    body = listed.get(key)
                    if isinstance(body, ProviderError):
                        raise body
                    if body is None:
                        result.update((t, Binding("unknown", detail=f"clb: no HTTPS listener on port {key[3]} "
                                                                     f"of {key[2]} in {key[1]}")) for t in members)
                        continue
                else:
                    body = self._listener(members[0].settings)
                for t in members:
                    result[t] = self._binding(t.settings, body)
            except CredentialError:
                raise
            except ProviderError as exc:
                result.update((t, Binding("unknown", detail=str(exc))) for t in members)
        return result

    def _listed(self, keys: set[tuple[str, str, str, int]]) -> dict[tuple, Any]:
        """(account, region, lb, port) -> {"ServerCertificateId", "Status"} for the HTTPS
        listeners of those instances, or the ProviderError that hid them."""
        places: dict[tuple[str, str], set[str]] = {}
        for account, region, lb, _port in keys:
            places.setdefault((account, region), set()).add(lb)
        out: dict[tuple, Any] = {}
        for where, lbs in places.items():
            ordered = sorted(lbs)
            for i in range(0, len(ordered), LIST_LB_MAX):
                chunk = ordered[i:i + LIST_LB_MAX]
                try:
                    token: str | None = None
                    while True:
                        body = self._call("DescribeLoadBalancerListeners", where, ListenerProtocol="https",
                                          MaxResults=LIST_PAGE, NextToken=token,
                                          **{f"LoadBalancerId.{n}": lb for n, lb in enumerate(chunk, 1)})
                        for item in body.get("Listeners") or []:
                            if not isinstance(item, dict):
                                continue
                            config = item.get("HTTPSListenerConfig") or {}
                            key = (where[0], where[1], str(item.get("LoadBalancerId") or ""),
                                   int(item.get("ListenerPort") or 0))
                            sid = str(config.get("ServerCertificateId") or "") if isinstance(config, dict) else ""
                            out[key] = {"ServerCertificateId": sid, "Status": item.get("Status")}
                            if key in keys:
                                with self._lock:
                                    self._in_use[key] = {sid} if sid else set()
                        token = body.get("NextToken") or None
                        if not token:
                            break
                except CredentialError:
                    raise
                except ProviderError as exc:
                    out.update((k, exc) for k in keys if k[:2] == where and k[2] in chunk)
        return out

    def _binding(self, s: ClbSettings, body: Mapping[str, Any]) -> Binding:
        if s.slot == "sni" and self._extension(body, s.domain) is None:
            return Binding("error", detail=f"no domain extension for {s.domain} on the listener")
        sid = self._served_id(s, body)
        if not sid:
            return Binding("none")
        state = "ok" if str(body.get("Status") or "running") == "running" else "error"
        fp = self._fingerprint((s.account, s.region), sid)
        if fp is None:
            return Binding(state, cert_name=sid, detail="a certificate alicertd did not upload")
        bundle = bundle_for(self.ctx, fp)
        return Binding(state, fingerprint=fp, serial=bundle.serial if bundle else None,
                       not_after=bundle.not_after if bundle else None, cert_name=sid)

    # ------------------------------------------------------------------ bind

    def _server_certificate(self, where: tuple[str, str], bundle: CertificateBundle) -> str:
        """Our CLB store entry in ``where`` (account, region) for ``bundle``: found by its CAS
        id, else added once."""
        region = where[1]
        cas = self.hub().ensure(bundle, where[0])
        wanted = str(cas.cert_id)
        for refresh in (False, True):
            for stored in self._store(where, refresh=refresh).values():
                if stored.ali_id == wanted:
                    return stored.server_certificate_id
        name = cas.name if _NAME_OK.match(cas.name or "") else f"alicertd-{bundle.fingerprint[:16]}"
        body = self._call("UploadServerCertificate", where, ServerCertificateName=name[:80],
                          AliCloudCertificateId=wanted, AliCloudCertificateName=cas.name,
                          AliCloudCertificateRegionId=cas.region)
        sid = str(body.get("ServerCertificateId") or "")
        if not sid:
            raise ProviderError(f"clb: UploadServerCertificate in {region} returned no ServerCertificateId")
        with self._lock:
            self._stores.setdefault(where, {})[sid] = _Stored(sid, wanted)
        self.ctx.log.info("clb: %s: added CAS certificate %s to the CLB store as %s", region, wanted, sid)
        return sid

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        s: ClbSettings = target.settings
        sid = self._server_certificate((s.account, s.region), bundle)
        body = self._listener(s)
        if self._served_id(s, body) == sid:
            return
        if s.slot == "default":
            self._call("SetLoadBalancerHTTPSListenerAttribute", (s.account, s.region), LoadBalancerId=s.load_balancer_id,
                       ListenerPort=s.listener_port, ServerCertificateId=sid)
        else:
            ext = self._extension(body, s.domain)
            if ext is None:
                raise ProviderError(f"clb: {target.name}: the listener has no domain extension for "
                                    f"{s.domain} (create it once; alicertd only changes its certificate)")
            self._call("SetDomainExtensionAttribute", (s.account, s.region),
                       DomainExtensionId=str(ext.get("DomainExtensionId")), ServerCertificateId=sid)
        self.ctx.log.info("clb: %s: bound %s (serial %s)", target.name, sid, bundle.serial)

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        s: ClbSettings = target.settings
        sid = self._server_certificate((s.account, s.region), bundle)
        started = self.clock()

        def probe() -> Outcome:
            served = self._served_id(s, self._listener(s))
            if served != sid:
                return f"uses server certificate {served or 'none'}, not {sid}"
            return Binding("ok", serial=bundle.serial, fingerprint=bundle.fingerprint,
                           not_after=bundle.not_after, cert_name=sid)

        binding = wait_for_readback(f"clb: {target.name}", probe, deadline=deadline, ctx=self.ctx,
                                    clock=self.clock, intervals=self.poll_intervals, started=started)
        shake_hands("clb", (s.domain,), bundle, deadline=deadline, ctx=self.ctx, clock=self.clock,
                    intervals=self.poll_intervals, started=started)
        self._delete_superseded((s.account, s.region), keep=sid)
        return binding

    def _delete_superseded(self, where: tuple[str, str], keep: str) -> None:
        """Delete OUR store entries of ``where`` (account, region) that no current bundle is and
        no listener read this run uses. Failures are logged: the new certificate is served."""
        region = where[1]
        current = current_fingerprints(self.ctx)
        with self._lock:
            in_use = set().union(*(v for k, v in self._in_use.items() if k[:2] == where))
        for stored in list(self._store(where).values()):
            sid = stored.server_certificate_id
            if sid == keep or sid in in_use or stored.ali_id is None:
                continue
            fp = self.accounts.own(where[0]).fingerprint(stored.ali_id)
            if fp is None or fp in current:
                continue  # not ours, or current for some certificate
            try:
                self._call("DeleteServerCertificate", where, ServerCertificateId=sid)
            except CredentialError:
                raise
            except ProviderError as exc:
                if exc.code == IN_USE:
                    self.ctx.log.info("clb: %s: our superseded %s is still used elsewhere; kept", region, sid)
                elif exc.code != GONE:
                    self.ctx.log.warning("clb: %s: could not delete our superseded %s: %s", region, sid, exc)
                if exc.code != GONE:
                    continue
            with self._lock:
                self._stores.get(where, {}).pop(sid, None)
            self.ctx.log.info("clb: %s: deleted our superseded server certificate %s", region, sid)
