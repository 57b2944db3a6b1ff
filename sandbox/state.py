"""The in-memory world the sandbox emulates: one Alibaba Cloud account.

Everything mutable lives here behind ONE re-entrant lock (``World.lock``): the RPC handlers, the
DNS listeners, the TLS edge and the admin API all take it, so each API call is atomic with
respect to every observer (no half-applied binding is ever visible to a handshake).

Time is what makes this emulator useful, so it is modelled explicitly:

* DNS records keep a version history (``valid_from``/``valid_to``). The API always sees the
  current versions; a nameserver with propagation delay ``d`` answers from the versions valid at
  ``now - d``. That single rule gives "added, changed or deleted records become visible only
  ``d`` seconds later" for free, and lets ns2 lag behind ns1 by its own extra delay.
* A CDN binding has an API-visible configuration and a *served* configuration. A change starts a
  rollout of ``cdn_rollout_seconds``; until it ends the domain is ``configuring`` and the edge
  still serves the old certificate. Rollouts settle lazily (``settle``) whenever anybody looks,
  so no timer threads exist.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .certs import CertInfo

# Record ids are never reused within a process (not even across reset()) and grow across
# restarts, like Alibaba's: a stale id in a client's journal must never hit a new record.
_RECORD_IDS = itertools.count(int(time.time() * 1000) * 100)
_CERT_IDS = itertools.count(int(time.time()) * 10)

NONCE_WINDOW = 15 * 60.0
TIMESTAMP_WINDOW = 15 * 60.0


@dataclass
class Settings:
    account_id: str = "1234567890123456"
    dns_delay: float = 0.0
    dns2_extra_delay: float = 0.0
    cdn_rollout_seconds: float = 1.0
    apigateway_rollout_seconds: float = 0.0
    cdn_busy_while_configuring: bool = True
    sts_ttl: float = 3600.0
    metadata_mode: str = "normal"  # normal | hardened | legacy (sandbox/metadata.py)
    nameservers: tuple[str, ...] = ("ns1.sandbox.alicertd.test", "ns2.sandbox.alicertd.test")


# --------------------------------------------------------------------------- identities


@dataclass
class AccessKey:
    id: str
    secret: str
    permissions: tuple[str, ...]
    name: str = ""


@dataclass
class RamRole:
    name: str
    permissions: tuple[str, ...]
    ttl: float | None = None
    # Trust policy principals (RAM format) allowed to AssumeRole into it, e.g.
    # "acs:ram::<uid>:root" (any RAM identity of that account) or "acs:ram::<uid>:role/<name>".
    trust: tuple[str, ...] = ()
    max_session_duration: int = 3600


@dataclass
class StsCredential:
    access_key_id: str
    secret: str
    token: str
    role: str
    issued_at: float
    expires_at: float


# --------------------------------------------------------------------------- DNS


@dataclass(frozen=True)
class RecordData:
    record_id: str
    zone: str
    rr: str
    type: str
    value: str
    ttl: int
    line: str = "default"
    priority: int | None = None
    status: str = "ENABLE"
    created_ms: int = 0
    updated_ms: int = 0
    remark: str = ""

    @property
    def fqdn(self) -> str:
        return self.zone if self.rr == "@" else f"{self.rr}.{self.zone}".lower()

    def to_api(self) -> dict:
        d = {
            "RecordId": self.record_id,
            "DomainName": self.zone,
            "RR": self.rr,
            "Type": self.type,
            "Value": self.value,
            "TTL": self.ttl,
            "Line": self.line,
            "Status": self.status,
            "Locked": False,
            "Weight": 1,
            "CreateTimestamp": self.created_ms,
            "UpdateTimestamp": self.updated_ms,
        }
        if self.priority is not None:
            d["Priority"] = self.priority
        if self.remark:
            d["Remark"] = self.remark
        return d


@dataclass
class RecordVersion:
    data: RecordData
    valid_from: float
    valid_to: float | None = None

    def valid_at(self, t: float) -> bool:
        return self.valid_from <= t and (self.valid_to is None or t < self.valid_to)


@dataclass
class Zone:
    name: str
    domain_id: str
    created_ms: int
    min_ttl: int = 600
    remark: str = ""
    current: dict[str, RecordData] = field(default_factory=dict)
    history: list[RecordVersion] = field(default_factory=list)

    def put(self, data: RecordData, now: float) -> None:
        """Add or replace (by record id) a record, closing the previous version at ``now``."""
        self._close(data.record_id, now)
        self.current[data.record_id] = data
        self.history.append(RecordVersion(data, now))

    def remove(self, record_id: str, now: float) -> RecordData | None:
        self._close(record_id, now)
        return self.current.pop(record_id, None)

    def _close(self, record_id: str, now: float) -> None:
        for v in self.history:
            if v.data.record_id == record_id and v.valid_to is None:
                v.valid_to = now

    def records_at(self, t: float) -> list[RecordData]:
        return [v.data for v in self.history if v.valid_at(t)]

    def serial_at(self, t: float) -> int:
        """SOA serial: grows with every change visible at ``t``."""
        changes = sum(1 for v in self.history if v.valid_from <= t and v.valid_from > 0)
        changes += sum(1 for v in self.history if v.valid_to is not None and v.valid_to <= t)
        return 2024010100 + changes

    def prune(self, horizon: float) -> None:
        self.history = [v for v in self.history if v.valid_to is None or v.valid_to >= horizon]


# --------------------------------------------------------------------------- CDN


@dataclass
class StoredCert:
    """A certificate in the account's Certificate Management Service (CAS) of ``region``:
    uploaded with UploadUserCertificate (``source`` "cas") or by a CDN upload-mode call
    (``source`` "cdn", which lands in cn-hangzhou). Names may repeat (Alibaba's 2026-02-25
    notice: a same-name upload adds another certificate); ids never do."""

    cert_id: int
    name: str
    chain_pem: str
    key_pem: str
    info: CertInfo
    created: float
    region: str = "cn-hangzhou"
    source: str = "cdn"


@dataclass
class CdnHttps:
    """One HTTPS configuration of a CDN domain; ``cert`` None means HTTPS off."""

    cert: StoredCert | None = None
    cert_type: str = "upload"
    updated: float = 0.0


@dataclass
class CdnDomain:
    name: str
    cname: str
    created: float
    modified: float
    cdn_type: str = "web"
    description: str = ""
    sources: list[dict] = field(default_factory=list)
    config: CdnHttps = field(default_factory=CdnHttps)
    served: CdnHttps = field(default_factory=CdnHttps)
    rollout_start: float = 0.0
    rollout_until: float = 0.0

    def settle(self, now: float) -> None:
        if self.rollout_until and now >= self.rollout_until:
            self.served = self.config
            self.rollout_start = self.rollout_until = 0.0

    def start_rollout(self, new: CdnHttps, now: float, seconds: float) -> None:
        self.config = new
        self.modified = now
        if seconds <= 0:
            self.served = new
            self.rollout_start = self.rollout_until = 0.0
        else:
            self.rollout_start, self.rollout_until = now, now + seconds

    def configuring(self) -> bool:
        return bool(self.rollout_until)

    def domain_status(self) -> str:
        return "configuring" if self.configuring() else "online"

    def cert_status(self, now: float) -> str:
        """DescribeDomainCertificateInfo ``Status``: checking, then applying, then success."""
        if not self.configuring():
            return "success"
        half = self.rollout_start + (self.rollout_until - self.rollout_start) / 2
        return "checking" if now < half else "applying"


# --------------------------------------------------------------------------- API Gateway


@dataclass
class GwCert:
    cert_id: str
    name: str
    chain_pem: str
    key_pem: str
    info: CertInfo
    updated: float


@dataclass
class GwDomain:
    name: str
    created: float
    cert: GwCert | None = None
    served: GwCert | None = None
    rollout_until: float = 0.0
    remark: str = ""
    active: bool = True  # False: the binding is not in effect (DomainBindingStatus BOUND)

    def settle(self, now: float) -> None:
        if self.rollout_until and now >= self.rollout_until:
            self.served = self.cert
            self.rollout_until = 0.0

    def set_cert(self, cert: GwCert | None, now: float, seconds: float) -> None:
        self.cert = cert
        if seconds <= 0:
            self.served = cert
            self.rollout_until = 0.0
        else:
            self.rollout_until = now + seconds

    def binding_status(self) -> str:
        """CloudAPI's names read backwards: ``BINDING`` = bound (normal), ``BOUND`` = inactive
        (alibabacloud-cloudapi20160714 DescribeDomainResponseBody; CustomDomain reference)."""
        return "BINDING" if self.active else "BOUND"


@dataclass
class ApiGroup:
    group_id: str
    region: str
    name: str
    created: float
    modified: float
    description: str = ""
    instance_id: str = "api-shared-vpc-001"
    domains: dict[str, GwDomain] = field(default_factory=dict)

    @property
    def subdomain(self) -> str:
        return f"{self.group_id}-{self.region}.alicloudapi.com"


# --------------------------------------------------------------------------- the world


class World:
    """One account's worth of state. Callers hold ``lock`` for anything non-trivial."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.lock = threading.RLock()
        self.settings = settings or Settings()
        self.access_keys: dict[str, AccessKey] = {}
        self.roles: dict[str, RamRole] = {}
        self.sts_by_ak: dict[str, StsCredential] = {}
        self.sts_current: dict[str, StsCredential] = {}
        self.metadata_tokens: dict[str, float] = {}  # hardened-mode token -> expiry (epoch s)
        # Several accounts: account id -> World, shared by all of them (sandbox/products/sts.py
        # builds it from the fixture's [[account]] tables); empty means just this one.
        self.accounts: dict[str, World] = {}
        self.zones: dict[str, Zone] = {}
        self.record_zone: dict[str, str] = {}
        self.certs_by_name: dict[str, StoredCert] = {}  # the latest certificate of each name
        self.certs_by_id: dict[int, StoredCert] = {}  # every CAS certificate, all regions
        self.cas_tokens: dict[tuple[str, str], int] = {}  # (region, ClientToken) -> CertId
        self.cdn: dict[str, CdnDomain] = {}
        self.groups: dict[tuple[str, str], ApiGroup] = {}
        # Products emulated in their own modules (sandbox/products/<name>.py) keep their
        # state here and settle it themselves when looked at.
        self.dcdn: dict[str, CdnDomain] = {}  # API names: ".example.com" for a wildcard
        self.esa_sites: dict[int, object] = {}  # site id -> sandbox.products.esa.Site
        self.oss_buckets: dict[str, object] = {}  # bucket name -> sandbox.products.oss.Bucket
        self._nonces: dict[str, float] = {}
        self._nonce_order: deque[tuple[float, str]] = deque()

    # ------------------------------------------------------------------ ids

    @staticmethod
    def new_record_id() -> str:
        return str(next(_RECORD_IDS))

    @staticmethod
    def new_cert_id() -> int:
        return next(_CERT_IDS)

    # ------------------------------------------------------------------ auth helpers

    def nonce_used(self, nonce: str, now: float) -> bool:
        """True if ``nonce`` was seen in the last 15 minutes; otherwise remember it."""
        with self.lock:
            while self._nonce_order and self._nonce_order[0][0] < now - NONCE_WINDOW:
                t, n = self._nonce_order.popleft()
                if self._nonces.get(n) == t:
                    del self._nonces[n]
            seen = self._nonces.get(nonce)
            if seen is not None and seen >= now - NONCE_WINDOW:
                return True
            self._nonces[nonce] = now
            self._nonce_order.append((now, nonce))
            return False

    def all_accounts(self) -> list[World]:
        """This world first, then the other accounts of the fixture."""
        return [self, *(w for w in self.accounts.values() if w is not self)]

    def account_for_key(self, access_key_id: str) -> World:
        """The account world that issued ``access_key_id`` (static or STS); this one if none."""
        for w in self.all_accounts():
            if access_key_id in w.access_keys or access_key_id in w.sts_by_ak:
                return w
        return self

    def account_for_name(self, fqdn: str) -> World:
        """The account whose zone is the longest suffix of ``fqdn`` (for the nameservers,
        which serve every account's zones); this one if none."""
        best, best_len = self, -1
        for w in self.all_accounts():
            z = w.zone_for(fqdn)
            if z is not None and len(z.name) > best_len:
                best, best_len = w, len(z.name)
        return best

    def role_ttl(self, role: RamRole) -> float:
        return float(role.ttl if role.ttl is not None else self.settings.sts_ttl)

    def credentials_for_role(self, role_name: str, now: float) -> StsCredential | None:
        """The role's current STS credentials, renewed once less than half their life is left
        (the instance metadata service hands out the same set for a while, like ECS does)."""
        with self.lock:
            role = self.roles.get(role_name)
            if role is None:
                return None
            ttl = self.role_ttl(role)
            cur = self.sts_current.get(role_name)
            if cur is not None and cur.expires_at - now > (cur.expires_at - cur.issued_at) / 2:
                return cur
            cred = StsCredential(
                access_key_id="STS." + secrets.token_hex(12),
                secret=secrets.token_urlsafe(30),
                token="CAIS" + secrets.token_urlsafe(96),
                role=role_name,
                issued_at=now,
                expires_at=now + ttl,
            )
            self.sts_by_ak[cred.access_key_id] = cred
            self.sts_current[role_name] = cred
            self._prune_sts(now)
            return cred

    def _prune_sts(self, now: float) -> None:
        # Expired credentials are kept a day so a late caller is told "Expired", not "NotFound".
        for ak in [ak for ak, c in self.sts_by_ak.items() if c.expires_at < now - 86400]:
            del self.sts_by_ak[ak]

    def expire_sts(self, now: float) -> int:
        with self.lock:
            n = 0
            for c in self.sts_by_ak.values():
                if c.expires_at > now:
                    c.expires_at = now
                    n += 1
            return n

    # ------------------------------------------------------------------ DNS helpers

    def zone_for(self, fqdn: str) -> Zone | None:
        """Longest-suffix zone holding ``fqdn`` (nested zones: the child wins)."""
        name = fqdn.lower().rstrip(".")
        best = None
        for z in self.zones.values():
            if (name == z.name or name.endswith("." + z.name)) and (
                    best is None or len(z.name) > len(best.name)):
                best = z
        return best

    def find_record(self, record_id: str) -> tuple[Zone, RecordData] | None:
        zname = self.record_zone.get(record_id)
        if zname is None or zname not in self.zones:
            return None
        zone = self.zones[zname]
        rec = zone.current.get(record_id)
        return (zone, rec) if rec else None

    def put_record(self, zone: Zone, data: RecordData, now: float) -> None:
        zone.put(data, now)
        self.record_zone[data.record_id] = zone.name
        zone.prune(now - max(3600.0, 2 * (self.settings.dns_delay + self.settings.dns2_extra_delay)))

    def remove_record(self, zone: Zone, record_id: str, now: float) -> RecordData | None:
        return zone.remove(record_id, now)

    # ------------------------------------------------------------------ rollouts

    def settle(self, now: float) -> None:
        with self.lock:
            for d in self.cdn.values():
                d.settle(now)
            for g in self.groups.values():
                for dom in g.domains.values():
                    dom.settle(now)

    def cdn_for_sni(self, server_name: str) -> CdnDomain | None:
        """The CDN domain serving ``server_name``: exact, else the wildcard domain one label
        up, which the CDN API names with a leading period (``.example.com``)."""
        name = server_name.lower().rstrip(".")
        if name in self.cdn:
            return self.cdn[name]
        if "." in name:
            return self.cdn.get("." + name.split(".", 1)[1])
        return None

    def cas_bound(self, cert: StoredCert) -> list[str]:
        """The CDN domains whose configuration uses ``cert`` (CAS refuses to delete it)."""
        return sorted(d.name for d in self.cdn.values()
                      if d.config.cert is cert or d.served.cert is cert)

    def gw_domain_for_sni(self, server_name: str) -> GwDomain | None:
        name = server_name.lower().rstrip(".")
        for g in self.groups.values():
            if name in g.domains:
                return g.domains[name]
        return None

    def served_pair(self, server_name: str, now: float) -> tuple[str, str, str] | None:
        """(chain PEM, key PEM, fingerprint) the edge serves for ``server_name``, or None."""
        with self.lock:
            self.settle(now)
            d = self.cdn_for_sni(server_name)
            if d is not None:
                c = d.served.cert
                return (c.chain_pem, c.key_pem, c.info.fingerprint) if c else None
            g = self.gw_domain_for_sni(server_name)
            if g is not None and g.active and g.served is not None:
                return g.served.chain_pem, g.served.key_pem, g.served.info.fingerprint
            return None
