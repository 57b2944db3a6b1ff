"""Application Load Balancer (ALB) as a deploy target: an HTTPS or QUIC listener's default
certificate, or one of its additional (SNI) certificates, by CAS id.

Config (one listener per block): ``listener_id``, ``domain`` (the name a TLS handshake checks),
``region`` (the listener's; default ``[aliyun].region``) and ``slot = "default" | "sni"``.

CAS: the certificate is uploaded once to the account's CAS (``cas_hub(ctx).ensure``) and the
listener references it as ``<CertId>-<CAS region>`` (the ALB model: "The globally unique
certificate ID, which ends with a region ID"); a listener in any region names the CAS region
explicitly, so nothing is uploaded per listener region.

Read: one ``GetListenerAttribute`` per listener (status and default certificate) when only the
default is managed, else ``ListListenerCertificates`` (default and additional certificates with
their Associating/Associated/Diassociating status, 100 per page).

Bind: every change is asynchronous and a listener that is ``Configuring`` refuses the next one
(``IncorrectStatus.Listener``), so bind waits until the listener has settled (``Running``, or
``Stopped``), re-reads, and only then changes what is still not ours: ``UpdateListenerAttribute`` (default) or
``AssociateAdditionalCertificatesWithListener`` (SNI).

Verify: until the listener reports our certificate settled, then a TLS handshake. For an SNI
replacement, once the API reports the new certificate Associated (and before the handshake: which
of two matching SNI certificates a listener presents is not documented), OUR superseded
additional certificates (identified only through ``cas_hub(ctx).identify``, never by name or
domain) are dissociated; a certificate alicertd did not upload is never dissociated.

RAM actions: alb:GetListenerAttribute, alb:ListListenerCertificates,
alb:UpdateListenerAttribute, alb:AssociateAdditionalCertificatesWithListener,
alb:DissociateAdditionalCertificatesFromListener (and the CAS hub's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.domains import covers
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
    current_fingerprints,
    flat,
    listener_cas_id,
    parse_account,
    rpc,
)
from providers.readback import Outcome, shake_hands, wait_for_readback
from providers.settings import Section
from providers.tls import wait_for

_LISTENER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")
SLOTS = ("default", "sni")
#: ListListenerCertificates MaxResults: 1 to 100 (ListListenerCertificatesRequest).
PAGE_SIZE = 100
#: Dissociate…: "Specify a maximum of 20 certificates" per request.
DISSOCIATE_MAX = 20
#: The listener is busy with another change: wait for Running, re-read, decide again.
#: IncorrectStatus.Listener per the API reference; ResourceInConfiguring.Listener observed in
#: terraform-provider-alicloud's retry list for the same calls.
BUSY = frozenset({"IncorrectStatus.Listener", "ResourceInConfiguring.Listener", "Conflict.Lock"})

#: ListenerStatus values of a change in progress (GetListenerAttributeResponseBody ListenerStatus: Provisioning | Running | Configuring | Stopped): wait them out; a settled listener
#: (Running, or Stopped) takes the change.
TRANSITIONAL = frozenset({"Provisioning", "Configuring"})

@dataclass(frozen=True)
class AlbSettings:
    region: str
    listener_id: str
    domain: str
    slot: str
    account: str = "default"


@dataclass(frozen=True)
class _Cert:
    cert_id: str
    is_default: bool
    status: str  # Associating | Associated | Diassociating (the model's spelling)


class AlbProvider(ListenerProvider):
    """Deploy to ALB HTTPS/QUIC listeners (``[[certificate.deploy]] provider = "alb"``)."""

    name = "alb"

    # ------------------------------------------------------------------ config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> AlbSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        listener_id = s.str("listener_id", required=True)
        domain = s.domain("domain", required=True)
        region = s.str("region", defaults.region)
        slot = s.str("slot", "default", choices=SLOTS)
        account = parse_account(s, defaults)
        s.finish()
        if listener_id is not None and not _LISTENER_ID.match(listener_id):
            s.error("listener_id", f"invalid ALB listener id {listener_id!r} (e.g. \"lsn-bp1bpn0kn908w4nbw\")")
        if region is not None and not REGION.match(region):
            s.error("region", f"invalid region {region!r} (e.g. \"cn-shanghai\")")
        if len(errors) > before or None in (listener_id, domain, region, slot, account):
            return None
        return AlbSettings(region=region, listener_id=listener_id, domain=domain, slot=slot, account=account)

    @classmethod
    def expand(cls, settings: AlbSettings) -> list[Target]:
        name = f"{account_prefix(settings.account)}{settings.region}/{settings.listener_id}/{settings.slot}"
        if settings.slot == "sni":
            name += f"/{settings.domain}"
        return [Target(cls.name, name, settings, domain=settings.domain)]

    # ------------------------------------------------------------------ API

    def _call(self, action: str, s: AlbSettings, **params: Any) -> dict[str, Any]:
        return self.accounts.api(s.account).call("alb", rpc("alb", action, params), region=s.region)

    def _attribute(self, s: AlbSettings) -> dict[str, Any]:
        return self._call("GetListenerAttribute", s, ListenerId=s.listener_id)

    def _certificates(self, s: AlbSettings) -> list[_Cert]:
        out: list[_Cert] = []
        token: str | None = None
        while True:
            body = self._call("ListListenerCertificates", s, ListenerId=s.listener_id,
                              MaxResults=PAGE_SIZE, NextToken=token, CertificateType="Server")
            for item in body.get("Certificates") or []:
                if isinstance(item, dict) and item.get("CertificateId"):
                    out.append(_Cert(str(item["CertificateId"]), bool(item.get("IsDefault")),
                                     str(item.get("Status") or "Associated")))
            token = body.get("NextToken") or None
            if not token:
                return out

    @staticmethod
    def _default_of(body: Mapping[str, Any]) -> str | None:
        certs = body.get("Certificates") or []
        for item in certs:
            if isinstance(item, dict) and item.get("CertificateId"):
                return str(item["CertificateId"])
        return None

    # ------------------------------------------------------------------ read

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        groups: dict[tuple[str, str], list[Target]] = {}
        for t in targets:
            s: AlbSettings = t.settings
            groups.setdefault((s.account, s, s.listener_id), []).append(t)
        result: dict[Target, Binding] = {}
        for members in groups.values():
            s0: AlbSettings = members[0].settings
            try:
                if any(t.settings.slot == "sni" for t in members):
                    certs = self._certificates(s0)
                    default = next((c for c in certs if c.is_default), None)
                    busy = default is not None and default.status != "Associated"
                    default_id = default.cert_id if default else None
                else:
                    body = self._attribute(s0)
                    certs = []
                    busy = str(body.get("ListenerStatus") or "") in TRANSITIONAL
                    default_id = self._default_of(body)
                for t in members:
                    result[t] = (self._sni_binding(t.settings, certs) if t.settings.slot == "sni"
                                 else self._default_binding(t.settings, default_id, busy))
            except CredentialError:
                raise
            except ProviderError as exc:
                result.update((t, Binding("unknown", detail=str(exc))) for t in members)
        return result

    def _binding(self, s: AlbSettings, cid: str, state: str) -> Binding:
        fp = self.accounts.own(s.account).fingerprint(cid)
        if fp is None:
            return Binding(state, cert_name=cid, detail="a certificate alicertd did not upload")
        bundle = bundle_for(self.ctx, fp)
        return Binding(state, fingerprint=fp, serial=bundle.serial if bundle else None,
                       not_after=bundle.not_after if bundle else None, cert_name=cid)

    def _default_binding(self, s: AlbSettings, default_id: str | None, busy: bool) -> Binding:
        if not default_id:
            return Binding("none")
        return self._binding(s, default_id, "pending" if busy else "ok")

    def _sni_binding(self, s: AlbSettings, certs: Sequence[_Cert]) -> Binding:
        """Ours among the additional certificates for ``s.domain``: a current bundle covering
        the domain first, else any of ours (superseded), else none."""
        best: tuple[int, _Cert] | None = None
        current = current_fingerprints(self.ctx)
        for c in certs:
            if c.is_default or c.status == "Diassociating":
                continue
            fp = self.accounts.own(s.account).fingerprint(c.cert_id)
            if fp is None:
                continue
            bundle = bundle_for(self.ctx, fp)
            rank = 2 if (fp in current and bundle and any(covers(d, s.domain) for d in bundle.domains)) else 1
            if best is None or rank > best[0]:
                best = (rank, c)
        if best is None:
            return Binding("none")
        c = best[1]
        return self._binding(s, c.cert_id, "ok" if c.status == "Associated" else "pending")

    # ------------------------------------------------------------------ bind

    def _cas_id(self, bundle: CertificateBundle, account: str) -> str:
        cas = self.hub().ensure(bundle, account)
        return listener_cas_id(cas.cert_id, cas.region)

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        s: AlbSettings = target.settings
        cid = self._cas_id(bundle, s.account)
        deadline = self.clock() + self.ctx.config.verify.timeout
        if s.slot == "default":
            self._set_default(target, s, cid, deadline)
        else:
            self._associate(target, s, cid, deadline)
        self.ctx.log.info("alb: %s: bound %s (serial %s)", target.name, cid, bundle.serial)

    def _wait_running(self, target: Target, s: AlbSettings, deadline: float) -> dict[str, Any]:
        """GetListenerAttribute once the listener is Running (another change has settled)."""
        seen: list[str] = ["unknown"]

        def running() -> dict[str, Any] | None:
            body = self._attribute(s)
            seen[0] = str(body.get("ListenerStatus") or "unknown")
            return body if seen[0] not in TRANSITIONAL else None

        body = wait_for(running, deadline=deadline, stop=self.ctx.stop, what=f"alb: {target.name}",
                        clock=self.clock, intervals=self.poll_intervals)
        if body is None:
            raise ProviderError(f"alb: {target.name}: the listener stayed {seen[0]} until the "
                                f"deadline", retryable=True)
        return body

    def _set_default(self, target: Target, s: AlbSettings, cid: str, deadline: float) -> None:
        while True:
            body = self._wait_running(target, s, deadline)
            if self._default_of(body) == cid:
                return
            try:
                self._call("UpdateListenerAttribute", s, ListenerId=s.listener_id,
                           **flat("Certificates", "CertificateId", [cid]))
                return
            except ProviderError as exc:
                if exc.code not in BUSY:
                    raise
                # refused, nothing changed: wait for Running and decide again

    def _associate(self, target: Target, s: AlbSettings, cid: str, deadline: float) -> None:
        freed = False
        while True:
            self._wait_running(target, s, deadline)
            certs = self._certificates(s)
            if any(c.cert_id == cid and not c.is_default and c.status != "Diassociating" for c in certs):
                return
            try:
                self._call("AssociateAdditionalCertificatesWithListener", s,
                           ListenerId=s.listener_id, **flat("Certificates", "CertificateId", [cid]))
                return
            except ProviderError as exc:
                if exc.code == "ResourceAlreadyAssociated.Certificate":
                    return
                if exc.code and exc.code.startswith("QuotaExceeded") and not freed:
                    # The listener is full: our superseded certificates make room, never others.
                    freed = True
                    if self._dissociate_superseded(target, s, keep=cid, deadline=deadline):
                        continue
                if exc.code not in BUSY:
                    raise

    def _dissociate_superseded(self, target: Target, s: AlbSettings, keep: str, deadline: float) -> int:
        """Dissociate OUR additional certificates that no certificate's current bundle is; return
        how many. A certificate the hub does not know as ours stays."""
        current = current_fingerprints(self.ctx)
        ours = []
        for c in self._certificates(s):
            if c.is_default or c.cert_id == keep or c.status != "Associated":
                continue
            fp = self.accounts.own(s.account).fingerprint(c.cert_id)
            if fp is not None and fp not in current:
                ours.append(c.cert_id)
        done = 0
        for i in range(0, len(ours), DISSOCIATE_MAX):
            chunk = ours[i:i + DISSOCIATE_MAX]
            while True:
                self._wait_running(target, s, deadline)
                try:
                    self._call("DissociateAdditionalCertificatesFromListener", s,
                               ListenerId=s.listener_id, **flat("Certificates", "CertificateId", chunk))
                    break
                except ProviderError as exc:
                    if exc.code not in BUSY:
                        raise
            done += len(chunk)
            self.ctx.log.info("alb: %s: dissociated our superseded %s", target.name, ", ".join(chunk))
        return done

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        s: AlbSettings = target.settings
        cid = self._cas_id(bundle, s.account)
        started = self.clock()

        def probe() -> Outcome:
            if s.slot == "default":
                body = self._attribute(s)
                status = str(body.get("ListenerStatus") or "unknown")
                default = self._default_of(body)
                if default != cid:
                    return f"has default certificate {default or 'none'}, not {cid}"
                if status in TRANSITIONAL:
                    return f"is still {status}"
            else:
                entry = next((c for c in self._certificates(s)
                              if c.cert_id == cid and not c.is_default), None)
                if entry is None:
                    return f"does not list {cid} as an additional certificate"
                if entry.status != "Associated":
                    return f"reports {cid} {entry.status}"
            return Binding("ok", serial=bundle.serial, fingerprint=bundle.fingerprint,
                           not_after=bundle.not_after, cert_name=cid)

        binding = wait_for_readback(f"alb: {target.name}", probe, deadline=deadline, ctx=self.ctx,
                                    clock=self.clock, intervals=self.poll_intervals, started=started)
        if s.slot == "sni":
            # Our superseded certificate for the same names would compete with the new one, and
            # which of two matching SNI certificates a listener presents is not documented:
            # remove ours (only ours) once the API reports the new one Associated, then shake hands.
            # A failure here is reported, not fatal: the handshake decides, and the next
            # replacement removes every superseded one of ours that is left.
            try:
                self._dissociate_superseded(target, s, keep=cid, deadline=deadline)
            except CredentialError:
                raise
            except ProviderError as exc:
                self.ctx.log.warning("alb: %s: could not dissociate our superseded certificates: %s",
                                     target.name, exc)
        shake_hands("alb", (s.domain,), bundle, deadline=deadline, ctx=self.ctx, clock=self.clock,
                    intervals=self.poll_intervals, started=started)
        return binding
