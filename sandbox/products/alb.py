"""Application Load Balancer (alb 2020-06-16): the certificates of HTTPS and QUIC listeners.

Held to ``alibabacloud-alb20200616`` (1.3.3 models) and the API reference:

- A listener has one default certificate (UpdateListenerAttribute ``Certificates.1.CertificateId``)
  and additional (SNI) certificates (Associate/DissociateAdditionalCertificatesWithListener),
  all CAS certificates named ``<CertId>-<CAS region>``.
- Every change is asynchronous: the listener is ``Configuring`` for ``alb_configuring_seconds``
  (GetListenerAttribute ``ListenerStatus``: Provisioning | Running | Configuring | Stopped) and
  the edge keeps serving the old set until it is ``Running`` again; additional certificates
  read ``Associating`` / ``Diassociating`` (sic, the model's spelling) until then.
- A change sent while the listener is Configuring is refused with ``IncorrectStatus.Listener``.
- Listeners are regional: the request's RegionId must be the listener's region.

Codes the models do not list are marked in sandbox/README.md and docs/aliyun-api-notes.md.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from ..errors import ApiError
from .base import Call, Product, int_param, optional, required
from .lbcerts import LbCert, best_for_sni, cas_certificate, fixture_number, listener_id_of

#: AssociateAdditionalCertificatesWithListener / Dissociate…: at most 20 per request
#: (DissociateAdditionalCertificatesFromListenerRequest: "Specify a maximum of 20 certificates").
PER_REQUEST_MAX = 20
_CERTS_KEY = re.compile(r"^Certificates\.(\d+)\.CertificateId$")


@dataclass
class AlbListener:
    listener_id: str
    load_balancer_id: str
    region: str
    port: int
    protocol: str  # HTTP | HTTPS | QUIC
    default_cert: str | None = None
    # cert id -> Associating | Associated | Diassociating
    additional: dict[str, str] = field(default_factory=dict)
    busy_until: float = 0.0
    configuring_seconds: float = 1.0  # how long each change keeps the listener Configuring
    max_additional: int = 25  # additional certificates per listener (a quota; see the notes)
    served_default: str | None = None
    served_additional: tuple[str, ...] = ()

    def status(self, now: float) -> str:
        return "Configuring" if now < self.busy_until else "Running"

    def settle(self, now: float) -> None:
        if now < self.busy_until:
            return
        for cid, st in list(self.additional.items()):
            if st == "Diassociating":
                del self.additional[cid]
            elif st == "Associating":
                self.additional[cid] = "Associated"
        self.served_default = self.default_cert
        self.served_additional = tuple(self.additional)

    def start_change(self, now: float, seconds: float) -> None:
        self.busy_until = now + max(0.0, seconds)
        self.settle(now)


def listeners(world) -> dict[str, AlbListener]:
    """This product's state, kept on the world it belongs to (a reset world starts empty)."""
    return world.__dict__.setdefault("alb_listeners", {})


def _listener(call: Call) -> AlbListener:
    lid = required(call, "ListenerId")
    lst = listeners(call.world).get(lid)
    if lst is None or lst.region != call.region:
        raise ApiError(404, "ResourceNotFound.Listener", f"The specified resource {lid} is not found.")
    lst.settle(call.now)
    return lst


def _https(lst: AlbListener) -> None:
    if lst.protocol not in ("HTTPS", "QUIC"):
        raise ApiError(400, "OperationDenied.HttpListenerNotSupport",
                       f"The operation is not allowed because listener {lst.listener_id} is not an "
                       f"HTTPS or QUIC listener.")


def _running(lst: AlbListener, now: float) -> None:
    if lst.status(now) != "Running":
        raise ApiError(400, "IncorrectStatus.Listener",
                       f"The status of listener [{lst.listener_id}] is incorrect.")


def _cert_ids(call: Call) -> list[str]:
    ids = [(int(m.group(1)), v) for k, v in call.params.items() if (m := _CERTS_KEY.match(k))]
    return [v for _, v in sorted(ids)]


def _existing(call: Call, cert_id: str) -> LbCert:
    cert = cas_certificate(call.world, cert_id)
    if cert is None:
        raise ApiError(400, "ResourceNotFound.Certificate", f"The specified resource {cert_id} is not found.")
    return cert


def get_listener_attribute(call: Call) -> dict:
    lst = _listener(call)
    out = {
        "ListenerId": lst.listener_id,
        "LoadBalancerId": lst.load_balancer_id,
        "ListenerPort": lst.port,
        "ListenerProtocol": lst.protocol,
        "ListenerStatus": lst.status(call.now),
        "ListenerDescription": "",
        "CaEnabled": False,
        "Http2Enabled": lst.protocol == "HTTPS",
        "GzipEnabled": True,
        "IdleTimeout": 15,
        "RequestTimeout": 60,
        "SecurityPolicyId": "tls_cipher_policy_1_0",
        "Certificates": [{"CertificateId": lst.default_cert}] if lst.default_cert else [],
        "CaCertificates": [],
        "DefaultActions": [],
        "Tags": [],
    }
    return out


def list_listener_certificates(call: Call) -> dict:
    lst = _listener(call)
    size = int_param(call, "MaxResults", 20, 1, 100) or 20
    token = optional(call, "NextToken")
    ctype = optional(call, "CertificateType")
    rows = []
    if ctype in (None, "Server"):
        if lst.default_cert:
            rows.append({"CertificateId": lst.default_cert, "CertificateType": "Server",
                         "IsDefault": True, "Status": "Associated"})
        rows += [{"CertificateId": cid, "CertificateType": "Server", "IsDefault": False, "Status": st}
                 for cid, st in sorted(lst.additional.items())]
    start = 0
    if token is not None:
        try:
            start = int(token)
        except ValueError:
            raise ApiError(400, "IllegalParam.NextToken", "The param of NextToken is illegal.") from None
    page = rows[start:start + size]
    more = start + size < len(rows)
    return {"Certificates": page, "MaxResults": size, "TotalCount": len(rows),
            "NextToken": str(start + size) if more else ""}


def update_listener_attribute(call: Call) -> dict:
    lst = _listener(call)
    ids = _cert_ids(call)
    if ids:
        _https(lst)
        if len(ids) > 1:
            raise ApiError(400, "IllegalParamSize.Certificates",
                           "Only one default server certificate is supported.")
        _running(lst, call.now)
        _existing(call, ids[0])
        lst.default_cert = ids[0]
        lst.start_change(call.now, lst.configuring_seconds)
    return {"JobId": str(uuid.uuid4())}


def _additional_change(call: Call) -> tuple:
    """The listener and certificate ids of an Associate/Dissociate call, refused as both
    actions refuse it: not HTTPS/QUIC, no or too many certificates, listener not Running."""
    lst = _listener(call)
    _https(lst)
    ids = _cert_ids(call)
    if not ids:
        raise ApiError(400, "MissingParam.Certificates", "The param of Certificates is missing.")
    if len(ids) > PER_REQUEST_MAX:
        raise ApiError(400, "IllegalParamSize.Certificates",
                       f"Specify a maximum of {PER_REQUEST_MAX} certificates.")
    _running(lst, call.now)
    return lst, ids


def associate_additional(call: Call) -> dict:
    lst, ids = _additional_change(call)
    for cid in ids:
        _existing(call, cid)
        if cid in lst.additional:
            raise ApiError(400, "ResourceAlreadyAssociated.Certificate",
                           f"The specified resource {cid} is already associated.")
    quota = lst.max_additional
    if len(lst.additional) + len(ids) > quota:
        raise ApiError(400, "QuotaExceeded.ListenerAdditionalCertificatesNum",
                       f"The quota of ListenerAdditionalCertificatesNum is exceeded, usage "
                       f"{len(lst.additional)}/{quota}.")
    for cid in ids:
        lst.additional[cid] = "Associating"
    lst.start_change(call.now, lst.configuring_seconds)
    return {"JobId": str(uuid.uuid4())}


def dissociate_additional(call: Call) -> dict:
    lst, ids = _additional_change(call)
    for cid in ids:
        if lst.additional.get(cid) != "Associated":
            raise ApiError(400, "ResourceNotAssociated.Certificate",
                           f"The specified resource {cid} is not associated.")
    for cid in ids:
        lst.additional[cid] = "Diassociating"
    lst.start_change(call.now, lst.configuring_seconds)
    return {"JobId": str(uuid.uuid4())}


# --------------------------------------------------------------------------- the edge


def served_for(world, server_name: str, port: int, now: float) -> tuple[str, str, str] | None:
    """What some ALB listener serves for ``server_name``: an SNI certificate matching the name,
    else a listener's default certificate matching it (a listener answers every name with its
    default when no additional certificate matches)."""
    sni: list[LbCert] = []
    defaults: list[LbCert] = []
    for lst in listeners(world).values():
        lst.settle(now)
        for cid in lst.served_additional:
            c = cas_certificate(world, cid)
            if c is not None:
                sni.append(c)
        if lst.served_default:
            c = cas_certificate(world, lst.served_default)
            if c is not None:
                defaults.append(c)
    best = best_for_sni(server_name, sni) or best_for_sni(server_name, defaults)
    return (best.chain_pem, best.key_pem, best.info.fingerprint) if best else None


# --------------------------------------------------------------------------- fixture + admin


def load_fixture(world, items: list, problems: list[str], now: float) -> None:
    """``[[alb_listener]]`` id, region, load_balancer_id, port (443), protocol (HTTPS),
    configuring_seconds (1.0), max_additional (25)."""
    table = listeners(world)
    for i, item in enumerate(items):
        path = f"alb_listener[{i}]"
        lid, region = item.get("id"), item.get("region")
        if not isinstance(lid, str) or not lid:
            problems.append(f"{path}.id: required string")
            continue
        if not isinstance(region, str) or not region:
            problems.append(f"{path}.region: required string")
            continue
        protocol = item.get("protocol", "HTTPS")
        if protocol not in ("HTTP", "HTTPS", "QUIC"):
            problems.append(f"{path}.protocol: HTTP, HTTPS or QUIC")
            continue
        if lid in table:
            problems.append(f"{path}.id: duplicate listener {lid}")
            continue
        table[lid] = AlbListener(
            listener_id=lid, region=region, load_balancer_id=str(item.get("load_balancer_id", "alb-sandbox")),
            port=fixture_number(item, "port", 443, path, problems, integer=True), protocol=protocol,
            configuring_seconds=float(fixture_number(item, "configuring_seconds", 1.0, path, problems)),
            max_additional=fixture_number(item, "max_additional", 25, path, problems, integer=True))


def hold_configuring(world, listener_id: str, seconds: float, now: float) -> None:
    """Admin: keep a listener Configuring for ``seconds`` (another change of its own)."""
    with world.lock:
        lst = listeners(world)[listener_id]
        lst.busy_until = max(lst.busy_until, now + seconds)


def force_certificates(world, listener_id: str, default: str | None = None,
                       additional: tuple[str, ...] | None = None) -> None:
    """Admin: change a listener behind alicertd's back (drift, or a foreign certificate),
    effective at once."""
    with world.lock:
        lst = listeners(world)[listener_id]
        if default is not None:
            lst.default_cert = default
        if additional is not None:
            lst.additional = {cid: "Associated" for cid in additional}
        lst.busy_until = 0.0
        lst.settle(0.0)
        lst.served_default = lst.default_cert
        lst.served_additional = tuple(lst.additional)


def view(world, listener_id: str, now: float) -> dict:
    """Admin: the listener as the API and the edge see it."""
    with world.lock:
        lst = listeners(world)[listener_id]
        lst.settle(now)
        return {"status": lst.status(now), "default": lst.default_cert,
                "additional": dict(lst.additional), "served_default": lst.served_default,
                "served_additional": list(lst.served_additional)}


def cas_users(world, cert_id: int) -> list[tuple[str, str, dict]]:
    """CAS hook: the listeners whose certificates (configured or still served; default or
    additional) include CAS certificate ``cert_id``, as CAS ListCloudResources reports them:
    CloudProduct ``ALB``, with InstanceId, ListenerId, ListenerPort and DefaultResource."""
    cid = listener_id_of(world, cert_id)
    if cid is None:
        return []
    out = []
    for lst in sorted(listeners(world).values(), key=lambda x: x.listener_id):
        default = cid in (lst.default_cert, lst.served_default)
        if default or cid in lst.additional or cid in lst.served_additional:
            out.append(("ALB", lst.listener_id, {
                "InstanceId": lst.load_balancer_id, "ListenerId": lst.listener_id,
                "ListenerPort": str(lst.port), "DefaultResource": 1 if default else 0,
                "RegionId": lst.region}))
    return out


FIXTURE = {"alb_listener": load_fixture}

PRODUCT = Product(
    name="Alb",
    version="2020-06-16",
    ram_prefix="alb",
    host_pattern="alb.{region}.aliyuncs.com",
    actions={
        "GetListenerAttribute": get_listener_attribute,
        "ListListenerCertificates": list_listener_certificates,
        "UpdateListenerAttribute": update_listener_attribute,
        "AssociateAdditionalCertificatesWithListener": associate_additional,
        "DissociateAdditionalCertificatesFromListener": dissociate_additional,
    },
)
