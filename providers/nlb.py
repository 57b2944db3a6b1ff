"""Network Load Balancer (NLB) as a deploy target: a TCPSSL listener's server certificate by
CAS id (NLB supports one server certificate per listener: UpdateListenerAttributeRequest).

Config (one listener per block): ``listener_id``, ``domain`` (the name a TLS handshake checks),
``region`` (the listener's; default ``[aliyun].region``).

CAS: uploaded once (``cas_hub(ctx).ensure``), referenced as ``<CertId>-<CAS region>`` from any
NLB region, as for ALB.

Read: ``ListListeners`` filtered by up to 20 listener ids per call (``ListenerStatus``,
``CertificateIds`` of each); ``GetListenerAttribute`` of one listener while binding and verifying.

Bind: wait until the listener has settled (``Running`` or ``Stopped``; a Configuring listener
refuses changes: ``IncorrectStatus.listener``),
re-read, then ``UpdateListenerAttribute`` with ``CertificateIds.1``; the change is an
asynchronous job, followed with ``GetJobStatus`` until ``Succeeded`` (the model: Succeeded |
processing). A refused change is never repeated blindly: the listener is read again first.

Verify: until the listener is Running with our certificate, then a TLS handshake.

RAM actions: nlb:ListListeners, nlb:GetListenerAttribute, nlb:UpdateListenerAttribute, nlb:GetJobStatus
(and the CAS hub's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from providers.base import (
    Binding,
    CertificateBundle,
    ConfigDefaults,
    ConfigErrors,
    CredentialError,
    ProviderError,
    Target,
)
from providers.loadbalancers import (
    REGION,
    ListenerProvider,
    account_prefix,
    bundle_for,
    listener_cas_id,
    parse_account,
    rpc,
)
from providers.readback import Outcome, shake_hands, wait_for_readback
from providers.settings import Section
from providers.tls import wait_for

# NLB listener ids carry the port: "lsn-bp1bpn0kn908w4nbw****@80" (API reference examples).
_LISTENER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@-]{2,127}$")
#: ListListeners: "You can specify up to 20 listeners"; MaxResults 1-100 (ListListenersRequest).
LIST_IDS_MAX = 20
LIST_PAGE = 100
#: Refused because another change is running (UpdateListenerAttribute's API reference:
#: IncorrectStatus.listener, Conflict.Lock, SystemBusy): nothing changed, re-read and decide again.
BUSY = frozenset({"IncorrectStatus.listener", "IncorrectStatus.Listener", "Conflict.Lock", "SystemBusy"})

#: ListenerStatus values of a change in progress (GetListenerAttributeResponseBody ListenerStatus: Provisioning | Running | Configuring | Stopping | Stopped | Starting | Deleting | …): wait them out; a settled listener
#: (Running, or Stopped) takes the change.
TRANSITIONAL = frozenset({"Provisioning", "Configuring", "Stopping", "Starting", "Deleting"})

@dataclass(frozen=True)
class NlbSettings:
    region: str
    listener_id: str
    domain: str
    account: str = "default"


class NlbProvider(ListenerProvider):
    """Deploy to NLB TCPSSL listeners (``[[certificate.deploy]] provider = "nlb"``)."""

    name = "nlb"

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> NlbSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        listener_id = s.str("listener_id", required=True)
        domain = s.domain("domain", required=True)
        region = s.str("region", defaults.region)
        account = parse_account(s, defaults)
        s.finish()
        if listener_id is not None and not _LISTENER_ID.match(listener_id):
            s.error("listener_id", f"invalid NLB listener id {listener_id!r} (e.g. \"lsn-bp1bpn0kn908w4nbw@443\")")
        if region is not None and not REGION.match(region):
            s.error("region", f"invalid region {region!r} (e.g. \"cn-shanghai\")")
        if len(errors) > before or None in (listener_id, domain, region, account):
            return None
        return NlbSettings(region=region, listener_id=listener_id, domain=domain, account=account)

    @classmethod
    def expand(cls, settings: NlbSettings) -> list[Target]:
        name = f"{account_prefix(settings.account)}{settings.region}/{settings.listener_id}"
        return [Target(cls.name, name, settings, domain=settings.domain)]

    # ------------------------------------------------------------------ API

    def _call(self, action: str, s: NlbSettings, **params: Any) -> dict[str, Any]:
        return self.accounts.api(s.account).call("nlb", rpc("nlb", action, {"RegionId": s.region, **params}),
                                                 region=s.region)

    def _attribute(self, s: NlbSettings) -> dict[str, Any]:
        return self._call("GetListenerAttribute", s, ListenerId=s.listener_id)

    @staticmethod
    def _certificate(body: Mapping[str, Any]) -> str | None:
        ids = body.get("CertificateIds") or []
        return str(ids[0]) if isinstance(ids, list) and ids else None

    # ------------------------------------------------------------------ read

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        """``ListListeners`` per (account, region) and 20 listener ids (the API's limit), paged:
        50 listeners in one region cost 3 calls, not 50."""
        places: dict[tuple[str, str], list[Target]] = {}
        for t in targets:
            s: NlbSettings = t.settings
            places.setdefault((s.account, s.region), []).append(t)
        result: dict[Target, Binding] = {}
        for members in places.values():
            ids = sorted({t.settings.listener_id for t in members})
            found: dict[str, dict[str, Any] | ProviderError] = {}
            for i in range(0, len(ids), LIST_IDS_MAX):
                chunk = ids[i:i + LIST_IDS_MAX]
                try:
                    found.update(self._list(members[0].settings, chunk))
                except CredentialError:
                    raise
                except ProviderError as exc:
                    found.update((lid, exc) for lid in chunk)
            for t in members:
                body = found.get(t.settings.listener_id)
                if body is None:
                    result[t] = Binding("unknown", detail=f"nlb: listener {t.settings.listener_id} not found "
                                                          f"in {t.settings.region}")
                elif isinstance(body, ProviderError):
                    result[t] = Binding("unknown", detail=str(body))
                else:
                    result[t] = self._binding(t.settings, body)
        return result

    def _list(self, s: NlbSettings, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            body = self._call("ListListeners", s, MaxResults=LIST_PAGE, NextToken=token,
                              **{f"ListenerIds.{n}": lid for n, lid in enumerate(ids, 1)})
            for item in body.get("Listeners") or []:
                if isinstance(item, dict) and item.get("ListenerId"):
                    out[str(item["ListenerId"])] = item
            token = body.get("NextToken") or None
            if not token:
                return out

    def _binding(self, s: NlbSettings, body: Mapping[str, Any]) -> Binding:
        cid = self._certificate(body)
        if not cid:
            return Binding("none")
        state = "pending" if str(body.get("ListenerStatus") or "") in TRANSITIONAL else "ok"
        fp = self.accounts.own(s.account).fingerprint(cid)
        if fp is None:
            return Binding(state, cert_name=cid, detail="a certificate alicertd did not upload")
        bundle = bundle_for(self.ctx, fp)
        return Binding(state, fingerprint=fp, serial=bundle.serial if bundle else None,
                       not_after=bundle.not_after if bundle else None, cert_name=cid)

    # ------------------------------------------------------------------ bind

    def _cas_id(self, bundle: CertificateBundle, account: str) -> str:
        cas = self.hub().ensure(bundle, account)
        return listener_cas_id(cas.cert_id, cas.region)

    def _wait_running(self, target: Target, s: NlbSettings, deadline: float) -> dict[str, Any]:
        seen = ["unknown"]

        def running() -> dict[str, Any] | None:
            body = self._attribute(s)
            seen[0] = str(body.get("ListenerStatus") or "unknown")
            return body if seen[0] not in TRANSITIONAL else None

        body = wait_for(running, deadline=deadline, stop=self.ctx.stop, what=f"nlb: {target.name}",
                        clock=self.clock, intervals=self.poll_intervals)
        if body is None:
            raise ProviderError(f"nlb: {target.name}: the listener stayed {seen[0]} until the "
                                f"deadline", retryable=True)
        return body

    def _wait_job(self, target: Target, s: NlbSettings, job: str, deadline: float) -> None:
        status = ["unknown"]

        def done() -> bool | None:
            body = self._call("GetJobStatus", s, JobId=job)
            status[0] = str(body.get("Status") or "unknown")
            return True if status[0] == "Succeeded" else None

        if wait_for(done, deadline=deadline, stop=self.ctx.stop, what=f"nlb: {target.name}",
                    clock=self.clock, intervals=self.poll_intervals) is None:
            raise ProviderError(f"nlb: {target.name}: job {job} still {status[0]} at the deadline",
                                retryable=True)

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        s: NlbSettings = target.settings
        cid = self._cas_id(bundle, s.account)
        deadline = self.clock() + self.ctx.config.verify.timeout
        while True:
            body = self._wait_running(target, s, deadline)
            if self._certificate(body) == cid:
                return
            try:
                answer = self._call("UpdateListenerAttribute", s, ListenerId=s.listener_id,
                                    **{"CertificateIds.1": cid})
            except ProviderError as exc:
                if exc.code not in BUSY:
                    raise
                continue  # refused, nothing changed: wait for Running and decide again
            job = str(answer.get("JobId") or "")
            if job:
                self._wait_job(target, s, job, deadline)
            self.ctx.log.info("nlb: %s: bound %s (serial %s)", target.name, cid, bundle.serial)
            return

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        s: NlbSettings = target.settings
        cid = self._cas_id(bundle, s.account)
        started = self.clock()

        def probe() -> Outcome:
            body = self._attribute(s)
            current, status = self._certificate(body), str(body.get("ListenerStatus") or "unknown")
            if current != cid:
                return f"has certificate {current or 'none'}, not {cid}"
            if status in TRANSITIONAL:
                return f"is still {status}"
            return Binding("ok", serial=bundle.serial, fingerprint=bundle.fingerprint,
                           not_after=bundle.not_after, cert_name=cid)

        binding = wait_for_readback(f"nlb: {target.name}", probe, deadline=deadline, ctx=self.ctx,
                                    clock=self.clock, intervals=self.poll_intervals, started=started)
        shake_hands("nlb", (s.domain,), bundle, deadline=deadline, ctx=self.ctx, clock=self.clock,
                    intervals=self.poll_intervals, started=started)
        return binding
