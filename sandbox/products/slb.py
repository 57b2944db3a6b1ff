"""Classic Load Balancer (slb 2014-05-15): HTTPS listeners, their domain extensions (SNI), and
CLB's own regional server certificate store.

Held to ``alibabacloud-slb20140515`` (3.3.31 models):

- UploadServerCertificate takes either the PEM pair (``ServerCertificate``/``PrivateKey``) or a
  CAS reference (``AliCloudCertificateId``, ``AliCloudCertificateName``,
  ``AliCloudCertificateRegionId``); it answers ``ServerCertificateId`` and, for a reference,
  ``IsAliCloudCertificate`` 1. The store is per CLB region (``RegionId`` is required).
- SetLoadBalancerHTTPSListenerAttribute (``ServerCertificateId``) and SetDomainExtensionAttribute
  (``DomainExtensionId``, ``ServerCertificateId``) switch certificates; the models document no
  asynchronous state for either, so the change is effective at once (listener ``Status`` running).
- DeleteServerCertificate refuses a certificate a listener or domain extension still uses.

Codes the models do not list are marked in docs/aliyun-api-notes.md (CLB section).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.serialization import Encoding

from ..certs import CertError, CertInfo, parse_chain, validate_pair
from ..errors import ApiError
from .base import Call, Product, int_param, optional, required
from .lbcerts import best_for_sni, cas_certificate, listener_id_of

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,79}$")
_LB_KEY = re.compile(r"^LoadBalancerId\.(\d+)$")
_IDS = itertools.count(1)


@dataclass
class ServerCert:
    server_certificate_id: str
    name: str
    region: str
    chain_pem: str
    key_pem: str
    info: CertInfo
    created: float
    ali_id: str | None = None  # the CAS CertId this entry references
    ali_name: str | None = None
    ali_region: str | None = None


@dataclass
class DomainExtension:
    domain_extension_id: str
    domain: str
    server_certificate_id: str


@dataclass
class ClbListener:
    load_balancer_id: str
    region: str
    port: int
    server_certificate_id: str | None = None
    extensions: dict[str, DomainExtension] = field(default_factory=dict)


@dataclass
class SlbState:
    certs: dict[str, ServerCert] = field(default_factory=dict)
    listeners: dict[tuple[str, int], ClbListener] = field(default_factory=dict)


def state(world) -> SlbState:
    """This product's state, kept on the world it belongs to (a reset world starts empty)."""
    return world.__dict__.setdefault("slb_state", SlbState())


def _region(call: Call) -> str:
    region = call.params.get("RegionId")
    if not region:
        raise ApiError(400, "MissingRegionId", "RegionId is mandatory for this action.")
    return region


def _listener(call: Call) -> ClbListener:
    lb = required(call, "LoadBalancerId")
    port = int_param(call, "ListenerPort", None, 1, 65535)
    if port is None:
        raise ApiError(400, "MissingListenerPort", "ListenerPort is mandatory for this action.")
    st = state(call.world)
    if not any(k[0] == lb and v.region == call.region for k, v in st.listeners.items()):
        raise ApiError(400, "InvalidLoadBalancerId.NotFound",
                       f"The specified LoadBalancerId does not exist: {lb}.")
    lst = st.listeners.get((lb, port))
    if lst is None or lst.region != call.region:
        raise ApiError(400, "ListenerNotFound", f"The specified listener {lb}:{port} does not exist.")
    return lst


def _cert(call: Call, sid: str) -> ServerCert:
    cert = state(call.world).certs.get(sid)
    if cert is None or cert.region != call.region:
        raise ApiError(400, "ServerCertificateId.NotFound",
                       f"The specified ServerCertificateId {sid} does not exist.")
    return cert


def _fingerprint(info: CertInfo) -> str:
    """CLB's Fingerprint: colon-separated SHA-1 of the leaf (format undocumented: our guess)."""
    der = parse_chain(info.chain_pem)[0].public_bytes(Encoding.DER)
    digest = hashlib.sha1(der).hexdigest()  # noqa: S324 - a fingerprint, not a security check
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _row(c: ServerCert) -> dict:
    row = {
        "ServerCertificateId": c.server_certificate_id,
        "ServerCertificateName": c.name,
        "RegionId": c.region,
        "Fingerprint": _fingerprint(c.info),
        "CommonName": c.info.common_name,
        "SubjectAlternativeNames": {"SubjectAlternativeName": list(c.info.dns_names)},
        "ExpireTime": c.info.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ExpireTimeStamp": int(c.info.not_after.timestamp() * 1000),
        "CreateTime": "",
        "CreateTimeStamp": int(c.created * 1000),
        "IsAliCloudCertificate": 1 if c.ali_id else 0,
        "AliCloudCertificateId": c.ali_id or "",
        "AliCloudCertificateName": c.ali_name or "",
        "ResourceGroupId": "rg-sandbox",
    }
    return row


def upload_server_certificate(call: Call) -> dict:
    region = _region(call)
    name = optional(call, "ServerCertificateName")
    if name is not None and not _NAME.match(name):
        raise ApiError(400, "InvalidParameter",
                       "The ServerCertificateName must be 1 to 80 characters, start with a letter, and "
                       "contain only letters, digits, '.', '_' and '-'.")
    ali_id = optional(call, "AliCloudCertificateId")
    if ali_id is not None:
        ali_region = optional(call, "AliCloudCertificateRegionId", "cn-hangzhou")
        cas = cas_certificate(call.world, f"{ali_id}-{ali_region}")
        if cas is None:
            raise ApiError(400, "AliCloudCertificateId.NotFound",
                           f"The specified AliCloudCertificateId {ali_id} does not exist.")
        chain, key, info = cas.chain_pem, cas.key_pem, cas.info
        ali_name = optional(call, "AliCloudCertificateName")
    else:
        chain = optional(call, "ServerCertificate")
        key = optional(call, "PrivateKey")
        if chain is None or key is None:
            raise ApiError(400, "MissingServerCertificate", "ServerCertificate and PrivateKey are mandatory.")
        try:
            info = validate_pair(chain, key)
        except CertError:
            raise ApiError(400, "InvalidParameter", "The certificate or private key is invalid.") from None
        ali_region = ali_name = None
    sid = f"{call.world.settings.account_id}_{next(_IDS):08x}_{region}"
    cert = ServerCert(server_certificate_id=sid, name=name or sid, region=region, chain_pem=chain,
                      key_pem=key, info=info, created=call.now, ali_id=ali_id, ali_name=ali_name,
                      ali_region=ali_region)
    state(call.world).certs[sid] = cert
    return _row(cert)


def describe_server_certificates(call: Call) -> dict:
    region = _region(call)
    sid = optional(call, "ServerCertificateId")
    rows = [_row(c) for c in sorted(state(call.world).certs.values(), key=lambda c: c.server_certificate_id)
            if c.region == region and (sid is None or c.server_certificate_id == sid)]
    return {"ServerCertificates": {"ServerCertificate": rows}}


def _in_use(world, sid: str) -> bool:
    for lst in state(world).listeners.values():
        if lst.server_certificate_id == sid or any(e.server_certificate_id == sid
                                                   for e in lst.extensions.values()):
            return True
    return False


def delete_server_certificate(call: Call) -> dict:
    _region(call)
    sid = required(call, "ServerCertificateId")
    _cert(call, sid)
    if _in_use(call.world, sid):
        raise ApiError(400, "CertificateAndPrivateKeyIsRefered",
                       "The specified certificate and private key are in use.")
    del state(call.world).certs[sid]
    return {}


def _extensions(lst: ClbListener) -> list[dict]:
    return [{"DomainExtensionId": e.domain_extension_id, "Domain": e.domain,
             "ServerCertificateId": e.server_certificate_id}
            for e in sorted(lst.extensions.values(), key=lambda e: e.domain_extension_id)]


def describe_https_listener(call: Call) -> dict:
    lst = _listener(call)
    return {
        "LoadBalancerId": lst.load_balancer_id,
        "ListenerPort": lst.port,
        "BackendServerPort": 80,
        "Status": "running",
        "ServerCertificateId": lst.server_certificate_id or "",
        "Bandwidth": -1,
        "SecurityStatus": "on",
        "TLSCipherPolicy": "tls_cipher_policy_1_0",
        "DomainExtensions": {"DomainExtension": _extensions(lst)},
    }


def describe_listeners(call: Call) -> dict:
    """DescribeLoadBalancerListeners: LoadBalancerId.N (up to 10), ListenerProtocol, ListenerPort,
    MaxResults 1-100 (default 20), NextToken; HTTPS listeners carry HTTPSListenerConfig."""
    region = _region(call)
    numbered = []
    for key, value in call.params.items():
        m = _LB_KEY.match(key)
        if m:
            numbered.append((int(m.group(1)), value))
    lbs = [v for _, v in sorted(numbered)]
    if len(lbs) > 10:
        raise ApiError(400, "InvalidParameter", "You can specify up to 10 instance IDs.")
    protocol = optional(call, "ListenerProtocol")
    port = int_param(call, "ListenerPort", None, 1, 65535)
    size = int_param(call, "MaxResults", 20, 1, 100) or 20
    token = optional(call, "NextToken")
    rows = [lst for key, lst in sorted(state(call.world).listeners.items())
            if lst.region == region and (not lbs or lst.load_balancer_id in lbs)
            and protocol in (None, "https") and (port is None or lst.port == port)]
    try:
        start = int(token) if token else 0
    except ValueError:
        raise ApiError(400, "InvalidParameter", "The specified NextToken is invalid.") from None
    page = rows[start:start + size]
    more = start + size < len(rows)
    return {"Listeners": [{"LoadBalancerId": lst.load_balancer_id, "ListenerPort": lst.port,
                           "ListenerProtocol": "https", "Status": "running", "BackendServerPort": 80,
                           "HTTPSListenerConfig": {"ServerCertificateId": lst.server_certificate_id or ""}}
                          for lst in page],
            "MaxResults": size, "TotalCount": len(rows), "NextToken": str(start + size) if more else ""}


def set_https_listener(call: Call) -> dict:
    lst = _listener(call)
    sid = optional(call, "ServerCertificateId")
    if sid is not None:
        _cert(call, sid)
        lst.server_certificate_id = sid
    return {}


def describe_domain_extensions(call: Call) -> dict:
    lst = _listener(call)
    ext_id = optional(call, "DomainExtensionId")
    rows = [r for r in _extensions(lst) if ext_id is None or r["DomainExtensionId"] == ext_id]
    return {"DomainExtensions": {"DomainExtension": rows}}


def set_domain_extension(call: Call) -> dict:
    _region(call)
    ext_id = required(call, "DomainExtensionId")
    sid = required(call, "ServerCertificateId")
    for lst in state(call.world).listeners.values():
        ext = lst.extensions.get(ext_id)
        if ext is not None and lst.region == call.region:
            _cert(call, sid)
            ext.server_certificate_id = sid
            return {}
    raise ApiError(400, "InvalidParameter.DomainExtensionId",
                   f"The specified DomainExtensionId {ext_id} does not exist.")


# --------------------------------------------------------------------------- the edge


def served_for(world, server_name: str, port: int, now: float) -> tuple[str, str, str] | None:
    """A domain extension for the name first (SNI), else a listener default covering it."""
    st = state(world)
    sni, defaults = [], []
    for lst in st.listeners.values():
        for e in lst.extensions.values():
            c = st.certs.get(e.server_certificate_id)
            if c is not None and e.domain.lower() == server_name:
                sni.append(c)
        c = st.certs.get(lst.server_certificate_id or "")
        if c is not None:
            defaults.append(c)
    best = sni[0] if sni else best_for_sni(server_name, defaults)
    return (best.chain_pem, best.key_pem, best.info.fingerprint) if best else None


# --------------------------------------------------------------------------- fixture + admin


def load_fixture(world, items: list, problems: list[str], now: float) -> None:
    """``[[clb_listener]]`` load_balancer_id, region, port (443), domains (one domain extension
    each, sharing the listener's initial certificate once one is set)."""
    st = state(world)
    for i, item in enumerate(items):
        path = f"clb_listener[{i}]"
        lb, region = item.get("load_balancer_id"), item.get("region")
        if not isinstance(lb, str) or not lb or not isinstance(region, str) or not region:
            problems.append(f"{path}: load_balancer_id and region are required strings")
            continue
        port = item.get("port", 443)
        if not isinstance(port, int) or not 1 <= port <= 65535:
            problems.append(f"{path}.port: 1 to 65535")
            continue
        if (lb, port) in st.listeners:
            problems.append(f"{path}: duplicate listener {lb}:{port}")
            continue
        lst = ClbListener(load_balancer_id=lb, region=region, port=port)
        for j, domain in enumerate(item.get("domains", [])):
            ext_id = f"de-{lb}-{port}-{j}"
            lst.extensions[ext_id] = DomainExtension(ext_id, str(domain).lower(), "")
        st.listeners[(lb, port)] = lst


def add_server_certificate(world, region: str, chain_pem: str, key_pem: str, now: float,
                           name: str = "uploaded-by-hand") -> str:
    """Admin: a server certificate somebody else uploaded (PEM mode)."""
    with world.lock:
        sid = f"{world.settings.account_id}_{next(_IDS):08x}_{region}"
        state(world).certs[sid] = ServerCert(sid, name, region, chain_pem, key_pem,
                                             validate_pair(chain_pem, key_pem), now)
        return sid


def force(world, lb: str, port: int, *, default: str | None = None,
          extensions: dict[str, str] | None = None) -> None:
    """Admin: change a listener behind alicertd's back (``extensions``: domain -> cert id)."""
    with world.lock:
        lst = state(world).listeners[(lb, port)]
        if default is not None:
            lst.server_certificate_id = default
        for domain, sid in (extensions or {}).items():
            ext = next(e for e in lst.extensions.values() if e.domain == domain)
            ext.server_certificate_id = sid


def view(world, lb: str, port: int) -> dict:
    with world.lock:
        st = state(world)
        lst = st.listeners[(lb, port)]
        return {"default": lst.server_certificate_id,
                "extensions": {e.domain: e.server_certificate_id for e in lst.extensions.values()},
                "certificates": sorted(st.certs)}


def cas_users(world, cert_id: int) -> list[tuple[str, str, dict]]:
    """CAS hook: CLB's uses of CAS certificate ``cert_id`` through the store entries that
    reference it (``AliCloudCertificateId``), as CAS ListCloudResources reports them
    (CloudProduct ``SLB``): each HTTPS listener default (``<lb>:<port>``, DefaultResource 1) and
    each domain extension (its domain, DefaultResource 0) using such an entry, with InstanceId
    and ListenerPort. An entry no listener uses is reported too, its ServerCertificateId as
    InstanceId: whether CAS counts a bare store entry as a use is undocumented, so the sandbox
    takes the stricter answer (a deletion refused while the entry exists)."""
    cid = listener_id_of(world, cert_id)
    if cid is None:
        return []
    st = state(world)
    entries = {sid for sid, sc in st.certs.items() if f"{sc.ali_id}-{sc.ali_region}" == cid}
    out, used = [], set()
    for (lb, port), lst in sorted(st.listeners.items()):
        where = {"InstanceId": lb, "ListenerPort": str(port), "RegionId": lst.region}
        if lst.server_certificate_id in entries:
            used.add(lst.server_certificate_id)
            out.append(("SLB", f"{lb}:{port}", {**where, "DefaultResource": 1}))
        for e in sorted(lst.extensions.values(), key=lambda e: e.domain_extension_id):
            if e.server_certificate_id in entries:
                used.add(e.server_certificate_id)
                out.append(("SLB", e.domain, {**where, "Domain": e.domain, "DefaultResource": 0}))
    for sid in sorted(entries - used):
        out.append(("SLB", sid, {"InstanceId": sid, "RegionId": st.certs[sid].region}))
    return out


FIXTURE = {"clb_listener": load_fixture}

PRODUCT = Product(
    name="Slb",
    version="2014-05-15",
    ram_prefix="slb",
    host_pattern="slb.aliyuncs.com",
    actions={
        "UploadServerCertificate": upload_server_certificate,
        "DescribeServerCertificates": describe_server_certificates,
        "DeleteServerCertificate": delete_server_certificate,
        "DescribeLoadBalancerHTTPSListenerAttribute": describe_https_listener,
        "DescribeLoadBalancerListeners": describe_listeners,
        "SetLoadBalancerHTTPSListenerAttribute": set_https_listener,
        "DescribeDomainExtensions": describe_domain_extensions,
        "SetDomainExtensionAttribute": set_domain_extension,
    },
)
