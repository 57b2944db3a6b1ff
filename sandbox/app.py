"""``Sandbox``: the whole emulator as one object, in-process for tests or behind the CLI.

It owns the world (rebuilt on reset/load), the fault table, the call log and four listeners
(API+metadata+admin HTTP, DNS ns1, DNS ns2, TLS edge). Listeners always read ``sandbox.world``
afresh, so reset and fixture loads take effect without restarting anything. Every admin
operation is a method here; sandbox/admin.py only maps HTTP routes onto these methods.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .calllog import CallLog
from .certs import CertError, validate_pair
from .dns_server import DnsListener
from .edge import TlsEdge
from .faults import FaultTable
from .fixture import build_world, read_fixture
from .products import cas
from .products.base import wildcard_api_name
from .rpc import ApiServer
from .state import CdnDomain, CdnHttps, GwCert, GwDomain, RecordData, StoredCert, World

FixtureSource = str | Path | Mapping[str, Any] | None


class SandboxError(ValueError):
    """An admin operation was asked for something that does not exist or is not valid."""


def _utc(ts: float | None) -> str | None:
    if not ts:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert_view(chain_pem: str, info, name: str, cert_id) -> dict:
    return {"cert_name": name, "cert_id": str(cert_id), "serial": info.serial,
            "fingerprint": info.fingerprint, "common_name": info.common_name,
            "dns_names": list(info.dns_names), "not_before": _utc(info.not_before.replace(
                tzinfo=dt.UTC).timestamp()),
            "not_after": _utc(info.not_after.replace(tzinfo=dt.UTC).timestamp()),
            "cert_pem": chain_pem}


class Sandbox:
    """The local Alibaba Cloud. ``with Sandbox(fixture) as sb: ...`` or ``start()``/``stop()``.

    Ports given as 0 are picked free; ``dns2_port=None`` runs no second nameserver.
    ``dns_delay``, ``dns2_extra_delay``, ``cdn_rollout_seconds`` override the fixture's
    ``[settings]`` (and survive ``reset()``).
    """

    def __init__(self, fixture: FixtureSource = None, *, host: str = "127.0.0.1", api_port: int = 0,
                 dns_port: int = 0, dns2_port: int | None = 0, edge_port: int = 0,
                 dns_delay: float | None = None, dns2_extra_delay: float | None = None,
                 cdn_rollout_seconds: float | None = None,
                 on_call: Callable[[dict], None] | None = None) -> None:
        self.host = host
        self._ports = {"api": api_port, "dns": dns_port, "dns2": dns2_port, "edge": edge_port}
        self._overrides = {"dns_delay": dns_delay, "dns2_extra_delay": dns2_extra_delay,
                           "cdn_rollout_seconds": cdn_rollout_seconds}
        self._fixture_raw = read_fixture(fixture)
        self.world: World = build_world(self._fixture_raw, self._overrides)
        self.faults = FaultTable()
        self.call_log = CallLog()
        self.on_call = on_call
        self._api: ApiServer | None = None
        self._api_thread: threading.Thread | None = None
        self._ns: list[DnsListener] = []
        self._edge: TlsEdge | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Sandbox:
        if self._started:
            return self
        try:
            self._api = ApiServer(self, self.host, self._ports["api"])
            self._ns.append(DnsListener(self, self.host, self._ports["dns"], "ns1",
                                        lambda: self.world.settings.dns_delay))
            if self._ports["dns2"] is not None:
                self._ns.append(DnsListener(
                    self, self.host, self._ports["dns2"], "ns2",
                    lambda: self.world.settings.dns_delay + self.world.settings.dns2_extra_delay))
            self._edge = TlsEdge(self, self.host, self._ports["edge"])
        except BaseException:
            self._close_listeners()
            raise
        self._api_thread = threading.Thread(target=self._api.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="sandbox-api", daemon=True)
        self._api_thread.start()
        for ns in self._ns:
            ns.start()
        self._edge.start()
        self._started = True
        return self

    def _close_listeners(self) -> None:
        if self._api is not None:
            self._api.server_close()
        for ns in self._ns:
            ns.stop()
        if self._edge is not None:
            self._edge.stop()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        # Listeners stop in parallel: each serve_forever needs up to one poll interval to notice.
        stoppers = [threading.Thread(target=f, daemon=True)
                    for f in [self._stop_api, self._edge.stop] + [ns.stop for ns in self._ns]]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout=5)

    def _stop_api(self) -> None:
        self._api.shutdown()
        self._api.server_close()
        self._api.close_all()
        self._api_thread.join(timeout=2)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._started

    # ------------------------------------------------------------------ addresses

    def _need_started(self) -> None:
        if not self._started:
            raise RuntimeError("the sandbox is not started")

    @property
    def api_port(self) -> int:
        self._need_started()
        return self._api.server_address[1]

    @property
    def api_host(self) -> str:
        return f"{self.host}:{self.api_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}"

    @property
    def metadata_url(self) -> str:
        """Base URL standing in for ``http://100.100.100.200``."""
        return self.api_url

    @property
    def dns_port(self) -> int:
        self._need_started()
        return self._ns[0].port

    @property
    def dns2_port(self) -> int | None:
        self._need_started()
        return self._ns[1].port if len(self._ns) > 1 else None

    @property
    def edge_port(self) -> int:
        self._need_started()
        return self._edge.port

    @property
    def nameservers(self) -> dict[str, tuple[str, int]]:
        """Nameserver host name (as in the zones' NS records) -> (address, port)."""
        names = self.world.settings.nameservers
        out = {}
        for i, ns in enumerate(self._ns):
            if i < len(names):
                out[names[i]] = (self.host, ns.port)
        return out

    def info(self) -> dict:
        """What the ready file says: every address a client needs."""
        return {
            "host": self.host, "api_url": self.api_url, "api_host": self.api_host,
            "api_port": self.api_port, "metadata_url": self.metadata_url,
            "dns_port": self.dns_port, "dns2_port": self.dns2_port, "edge_port": self.edge_port,
            "nameservers": {k: f"{h}:{p}" for k, (h, p) in self.nameservers.items()},
            "access_keys": sorted(self.world.access_keys), "roles": sorted(self.world.roles),
        }

    # ------------------------------------------------------------------ call log

    def record_call(self, entry: dict) -> None:
        self.call_log.append(entry)
        if self.on_call is not None:
            with contextlib.suppress(Exception):
                self.on_call(entry)

    def calls(self, since: float | None = None, action: str | None = None) -> list[dict]:
        return self.call_log.entries(since=since, action=action)

    def call_counts(self, since: float | None = None) -> dict[str, int]:
        return self.call_log.counts(since=since)

    def clear_calls(self) -> None:
        self.call_log.clear()

    def dns_queries(self, since: float | None = None, server: str | None = None) -> list[dict]:
        out = []
        for ns in self._ns:
            if server is None or ns.label == server:
                out.extend(e for e in list(ns.log) if since is None or e["time"] >= since)
        return sorted(out, key=lambda e: e["time"])

    def edge_log(self, since: float | None = None) -> list[dict]:
        if self._edge is None:
            return []
        return [e for e in list(self._edge.log) if since is None or e["time"] >= since]

    # ------------------------------------------------------------------ world lifecycle

    def load_fixture(self, fixture: FixtureSource) -> None:
        """Replace the world with ``fixture`` (constructor overrides still apply)."""
        raw = read_fixture(fixture)
        world = build_world(raw, self._overrides)
        self._fixture_raw = raw
        self.world = world

    def reset(self) -> None:
        """Back to the last loaded fixture: fresh world, no faults, empty logs."""
        self.world = build_world(self._fixture_raw, self._overrides)
        self.faults.clear()
        self.call_log.clear()
        for ns in self._ns:
            ns.log.clear()
        if self._edge is not None:
            self._edge.log.clear()

    def settings(self) -> dict:
        s = self.world.settings
        return {"account_id": s.account_id, "dns_delay": s.dns_delay,
                "dns2_extra_delay": s.dns2_extra_delay, "cdn_rollout_seconds": s.cdn_rollout_seconds,
                "apigateway_rollout_seconds": s.apigateway_rollout_seconds,
                "cdn_busy_while_configuring": s.cdn_busy_while_configuring, "sts_ttl": s.sts_ttl,
                "metadata_mode": s.metadata_mode,
                "nameservers": list(s.nameservers)}

    # ------------------------------------------------------------------ settings

    def set_dns_delay(self, delay: float | None = None, ns2_extra: float | None = None) -> dict:
        with self.world.lock:
            if delay is not None:
                if delay < 0:
                    raise SandboxError("delay must not be negative")
                self.world.settings.dns_delay = float(delay)
            if ns2_extra is not None:
                if ns2_extra < 0:
                    raise SandboxError("ns2_extra must not be negative")
                self.world.settings.dns2_extra_delay = float(ns2_extra)
        return self.settings()

    def set_cdn_rollout_seconds(self, seconds: float) -> dict:
        if seconds < 0:
            raise SandboxError("seconds must not be negative")
        self.world.settings.cdn_rollout_seconds = float(seconds)
        return self.settings()

    def set_apigateway_rollout_seconds(self, seconds: float) -> dict:
        if seconds < 0:
            raise SandboxError("seconds must not be negative")
        self.world.settings.apigateway_rollout_seconds = float(seconds)
        return self.settings()

    def set_metadata_mode(self, mode: str) -> dict:
        """Instance metadata access mode: normal, hardened (tokens required) or legacy (no
        token endpoint); see sandbox/metadata.py."""
        from .metadata import MODES
        if mode not in MODES:
            raise SandboxError(f"mode must be one of {', '.join(MODES)}")
        with self.world.lock:
            self.world.settings.metadata_mode = mode
        return self.settings()

    def set_sts_ttl(self, seconds: float, role: str | None = None) -> dict:
        """TTL of STS credentials issued from now on (all roles, or one role)."""
        if seconds <= 0:
            raise SandboxError("seconds must be positive")
        with self.world.lock:
            if role is None:
                self.world.settings.sts_ttl = float(seconds)
                for r in self.world.roles.values():
                    r.ttl = None
            elif role in self.world.roles:
                self.world.roles[role].ttl = float(seconds)
            else:
                raise SandboxError(f"unknown role {role}")
            self.world.sts_current.clear()  # next metadata fetch issues a set with the new TTL
        return self.settings()

    def expire_sts_credentials(self) -> int:
        """Expire every STS credential issued so far; returns how many were still valid."""
        now = time.time()
        n = self.world.expire_sts(now)
        with self.world.lock:
            self.world.sts_current.clear()
        return n

    def role_credentials(self, role: str) -> dict:
        """What the metadata endpoint would return for ``role`` (same rules, no HTTP)."""
        cred = self.world.credentials_for_role(role, time.time())
        if cred is None:
            raise SandboxError(f"unknown role {role}")
        return {"AccessKeyId": cred.access_key_id, "AccessKeySecret": cred.secret,
                "SecurityToken": cred.token, "Expiration": _utc(cred.expires_at),
                "LastUpdated": _utc(cred.issued_at), "Code": "Success"}

    # ------------------------------------------------------------------ faults

    def set_faults(self, action: str = "*", **rule) -> dict:
        """Fault rule for ``action`` (or ``*``): throttle, unavailable, internal, drop,
        drop_after, malformed, error_200 (probabilities), latency (s), seed, script."""
        try:
            return self.faults.set(action, **rule)
        except ValueError as exc:
            raise SandboxError(str(exc)) from None

    def clear_faults(self, action: str | None = None) -> None:
        self.faults.clear(action)

    def fault_rules(self) -> dict:
        return self.faults.describe()

    # ------------------------------------------------------------------ DNS

    def zones(self) -> list[dict]:
        with self.world.lock:
            return [{"name": z.name, "domain_id": z.domain_id, "min_ttl": z.min_ttl,
                     "record_count": len(z.current),
                     "nameservers": list(self.world.settings.nameservers)}
                    for z in sorted(self.world.zones.values(), key=lambda z: z.name)]

    def records(self, zone: str | None = None) -> list[dict]:
        """Current records (what the API sees), with their FQDN."""
        with self.world.lock:
            if zone is not None and zone.lower().rstrip(".") not in self.world.zones:
                raise SandboxError(f"unknown zone {zone}")
            zs = [self.world.zones[zone.lower().rstrip(".")]] if zone else list(self.world.zones.values())
            out = []
            for z in zs:
                for r in sorted(z.current.values(), key=lambda r: int(r.record_id)):
                    d = r.to_api()
                    d["FQDN"] = r.fqdn
                    out.append(d)
            return out

    def add_record(self, zone: str, rr: str, type: str, value: str, ttl: int = 600,
                   line: str = "default") -> str:
        """A console-side change: no API validation, just the record (propagation applies)."""
        now = time.time()
        with self.world.lock:
            z = self.world.zones.get(zone.lower().rstrip("."))
            if z is None:
                raise SandboxError(f"unknown zone {zone}")
            data = RecordData(record_id=self.world.new_record_id(), zone=z.name, rr=rr.lower(),
                              type=type.upper(), value=value, ttl=int(ttl), line=line,
                              priority=10 if type.upper() == "MX" else None,
                              created_ms=int(now * 1000), updated_ms=int(now * 1000))
            self.world.put_record(z, data, now)
            return data.record_id

    def delete_record(self, record_id: str) -> bool:
        with self.world.lock:
            found = self.world.find_record(str(record_id))
            if found is None:
                return False
            self.world.remove_record(found[0], str(record_id), time.time())
            return True

    # ------------------------------------------------------------------ CDN

    def _cdn_view(self, d: CdnDomain, now: float) -> dict:
        view = {"domain": d.name, "status": d.domain_status(), "cert_status": d.cert_status(now),
                "ssl": "on" if d.config.cert else "off", "cert_type": d.config.cert_type,
                "rollout_until": d.rollout_until or None, "cert": None, "served": None}
        if d.config.cert:
            c = d.config.cert
            view["cert"] = _cert_view(c.chain_pem, c.info, c.name, c.cert_id)
            view.update(cert_name=c.name, serial=c.info.serial, cert_pem=c.chain_pem)
        if d.served.cert:
            c = d.served.cert
            view["served"] = {"cert_name": c.name, "serial": c.info.serial,
                              "fingerprint": c.info.fingerprint}
        return view

    def cdn_bindings(self) -> list[dict]:
        now = time.time()
        with self.world.lock:
            self.world.settle(now)
            return [self._cdn_view(d, now) for d in sorted(self.world.cdn.values(), key=lambda d: d.name)]

    def cdn_binding(self, domain: str) -> dict:
        now = time.time()
        with self.world.lock:
            self.world.settle(now)
            d = self.world.cdn.get(wildcard_api_name(domain))
            if d is None:
                raise SandboxError(f"unknown CDN domain {domain}")
            return self._cdn_view(d, now)

    def cas_certificates(self, region: str | None = None) -> list[dict]:
        """Every certificate in the sandbox's CAS (all regions, or one), with the CDN domains
        that use it (``bound``) and every product's resources that use it (``users``:
        ``"<CloudProduct> <domain or instance>"``, as CAS ListCloudResources sees them)."""
        with self.world.lock:
            return [dict(_cert_view(c.chain_pem, c.info, c.name, c.cert_id), region=c.region,
                         source=c.source, bound=self.world.cas_bound(c),
                         users=[f"{product} {where}" for product, where in cas.users(self.world, c)])
                    for c in sorted(self.world.certs_by_id.values(), key=lambda c: c.cert_id)
                    if region is None or c.region == region]

    def replace_cdn_binding(self, domain: str, cert_pem: str | None = None, key_pem: str | None = None,
                            cert_name: str | None = None, rollout: bool = False) -> dict:
        """A console change: bind ``cert_pem`` (None turns HTTPS off). No coverage check, so a
        mismatching certificate can be planted; ``rollout`` applies the rollout delay."""
        now = time.time()
        with self.world.lock:
            self.world.settle(now)
            d = self.world.cdn.get(wildcard_api_name(domain))
            if d is None:
                raise SandboxError(f"unknown CDN domain {domain}")
            cert = None
            if cert_pem is not None:
                info = self._validate(cert_pem, key_pem)
                name = cert_name or f"console-{info.serial[:40]}"
                cert = self.world.certs_by_name.get(name)
                if cert is not None and cert.info.fingerprint != info.fingerprint:
                    raise SandboxError(f"certificate name {name} is taken by another certificate")
                if cert is None:
                    cert = StoredCert(self.world.new_cert_id(), name, cert_pem, key_pem, info, now)
                    self.world.certs_by_name[name] = cert
                    self.world.certs_by_id[cert.cert_id] = cert
            seconds = self.world.settings.cdn_rollout_seconds if rollout else 0.0
            d.start_rollout(CdnHttps(cert, "upload", now), now, seconds)
            return self._cdn_view(d, now)

    @staticmethod
    def _validate(cert_pem: str, key_pem: str | None):
        if key_pem is None:
            raise SandboxError("key_pem is required with cert_pem")
        try:
            return validate_pair(cert_pem, key_pem)
        except CertError as exc:
            raise SandboxError(str(exc)) from None

    # ------------------------------------------------------------------ API Gateway

    def _gw_view(self, region: str, group_id: str, d: GwDomain) -> dict:
        view = {"region": region, "group_id": group_id, "domain": d.name,
                "name": f"{region}/{group_id}/{d.name}", "status": d.binding_status(),
                "cert": None, "served": None}
        if d.cert:
            view["cert"] = _cert_view(d.cert.chain_pem, d.cert.info, d.cert.name, d.cert.cert_id)
            view.update(cert_name=d.cert.name, serial=d.cert.info.serial, cert_pem=d.cert.chain_pem,
                        certificate_id=d.cert.cert_id)
        if d.served:
            view["served"] = {"cert_name": d.served.name, "serial": d.served.info.serial,
                              "fingerprint": d.served.info.fingerprint}
        return view

    def apigateway_domains(self) -> list[dict]:
        now = time.time()
        with self.world.lock:
            self.world.settle(now)
            return [self._gw_view(g.region, g.group_id, d)
                    for g in sorted(self.world.groups.values(), key=lambda g: (g.region, g.group_id))
                    for d in sorted(g.domains.values(), key=lambda d: d.name)]

    def _gw_domain(self, region: str, group_id: str, domain: str) -> GwDomain:
        g = self.world.groups.get((region, group_id))
        if g is None:
            raise SandboxError(f"unknown API group {group_id} in {region}")
        d = g.domains.get(domain.lower().rstrip("."))
        if d is None:
            raise SandboxError(f"domain {domain} is not bound to {group_id}")
        return d

    def apigateway_domain(self, region: str, group_id: str, domain: str) -> dict:
        with self.world.lock:
            self.world.settle(time.time())
            return self._gw_view(region, group_id, self._gw_domain(region, group_id, domain))

    def replace_apigateway_binding(self, region: str, group_id: str, domain: str,
                                   cert_pem: str | None = None, key_pem: str | None = None,
                                   cert_name: str | None = None) -> dict:
        """A console change on an API Gateway custom domain (None removes the certificate)."""
        now = time.time()
        with self.world.lock:
            d = self._gw_domain(region, group_id, domain)
            cert = None
            if cert_pem is not None:
                info = self._validate(cert_pem, key_pem)
                cert = GwCert(uuid.uuid4().hex, cert_name or f"console_{info.serial[:40]}",
                              cert_pem, key_pem, info, now)
            d.set_cert(cert, now, 0.0)
            return self._gw_view(region, group_id, d)

    def set_apigateway_domain_active(self, region: str, group_id: str, domain: str,
                                     active: bool) -> dict:
        """Put a custom domain's binding out of effect (``DomainBindingStatus`` ``BOUND``: the
        edge stops serving it) or back in effect (``BINDING``), as the console or a failed
        ICP check would."""
        with self.world.lock:
            d = self._gw_domain(region, group_id, domain)
            d.active = bool(active)
            return self._gw_view(region, group_id, d)
