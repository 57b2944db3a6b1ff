"""Network Load Balancer (nlb 2022-04-30): the server certificate of TCPSSL listeners.

Held to ``alibabacloud-nlb20220430`` (4.1.3 models) and the API reference of
UpdateListenerAttribute (error codes):

- ``UpdateListenerAttribute`` with ``CertificateIds.1`` (``Only one server certificate is
  supported``; more is ``IllegalParamSize.certificateIds``) answers a ``JobId``: the change is an
  asynchronous job, ``GetJobStatus`` reports ``processing`` until it is ``Succeeded`` (the
  model's exact spellings). Meanwhile ``GetListenerAttribute`` reports ``ListenerStatus``
  ``Configuring`` and the edge still serves the old certificate; another change is refused with
  ``IncorrectStatus.listener``.
- Certificates are CAS ids ``<CertId>-<CAS region>``; an unknown one is ``ResourceNotFound.Certificate``.
- Listeners are regional (``RegionId``); an unknown listener is ``ResourceNotFound.listener`` (404).
- ``ListListeners`` filters by ``ListenerIds`` (up to 20) and pages with MaxResults (1-100) /
  NextToken; each entry carries ``ListenerStatus`` and ``CertificateIds``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from ..errors import ApiError
from .base import Call, Product, int_param, optional, required
from .lbcerts import best_for_sni, cas_certificate, fixture_number, listener_id_of

_IDS_KEY = re.compile(r"^CertificateIds\.(\d+)$")


@dataclass
class NlbListener:
    listener_id: str
    load_balancer_id: str
    region: str
    port: int
    protocol: str  # TCP | UDP | TCPSSL
    certificate: str | None = None
    served: str | None = None
    busy_until: float = 0.0
    configuring_seconds: float = 1.0

    def status(self, now: float) -> str:
        return "Configuring" if now < self.busy_until else "Running"

    def settle(self, now: float) -> None:
        if now >= self.busy_until:
            self.served = self.certificate


@dataclass
class NlbState:
    listeners: dict[str, NlbListener] = field(default_factory=dict)
    jobs: dict[str, tuple[str, float]] = field(default_factory=dict)  # job -> (listener, done at)


def state(world) -> NlbState:
    """This product's state, kept on the world it belongs to (a reset world starts empty)."""
    return world.__dict__.setdefault("nlb_state", NlbState())


def _listener(call: Call) -> NlbListener:
    lid = required(call, "ListenerId")
    lst = state(call.world).listeners.get(lid)
    if lst is None or lst.region != call.region:
        raise ApiError(404, "ResourceNotFound.listener", f"The specified resource {lid} is not found.")
    lst.settle(call.now)
    return lst


def _attrs(lst: NlbListener, now: float) -> dict:
    return {
        "ListenerId": lst.listener_id,
        "LoadBalancerId": lst.load_balancer_id,
        "RegionId": lst.region,
        "ListenerPort": lst.port,
        "ListenerProtocol": lst.protocol,
        "ListenerStatus": lst.status(now),
        "ListenerDescription": "",
        "CertificateIds": [lst.certificate] if lst.certificate else [],
        "CaCertificateIds": [],
        "CaEnabled": False,
        "SecurityPolicyId": "tls_cipher_policy_1_0",
        "IdleTimeout": 900,
        "ProxyProtocolEnabled": False,
        "Cps": 0,
        "Mss": 0,
    }


def get_listener_attribute(call: Call) -> dict:
    return _attrs(_listener(call), call.now)


def _numbered(call: Call, prefix: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)$")
    found = []
    for key, value in call.params.items():
        m = pattern.match(key)
        if m:
            found.append((int(m.group(1)), value))
    return [v for _, v in sorted(found)]


def list_listeners(call: Call) -> dict:
    """ListListeners: ListenerIds (up to 20), LoadBalancerIds (up to 20), ListenerProtocol,
    MaxResults 1-100 (default 20), NextToken."""
    ids = _numbered(call, "ListenerIds")
    lbs = _numbered(call, "LoadBalancerIds")
    if len(ids) > 20 or len(lbs) > 20:
        raise ApiError(400, "IllegalParamSize.ListenerIds", "You can specify up to 20 listeners or instances.")
    protocol = optional(call, "ListenerProtocol")
    size = int_param(call, "MaxResults", 20, 1, 100) or 20
    token = optional(call, "NextToken")
    rows = [lst for lst in sorted(state(call.world).listeners.values(), key=lambda x: x.listener_id)
            if lst.region == call.region and (not ids or lst.listener_id in ids)
            and (not lbs or lst.load_balancer_id in lbs) and (protocol is None or lst.protocol == protocol)]
    try:
        start = int(token) if token else 0
    except ValueError:
        raise ApiError(400, "IllegalParam.NextToken", "The param of NextToken is illegal.") from None
    for lst in rows:
        lst.settle(call.now)
    page = rows[start:start + size]
    more = start + size < len(rows)
    return {"Listeners": [_attrs(lst, call.now) for lst in page], "MaxResults": size,
            "TotalCount": len(rows), "NextToken": str(start + size) if more else ""}


def update_listener_attribute(call: Call) -> dict:
    lst = _listener(call)
    numbered = []
    for key, value in call.params.items():
        m = _IDS_KEY.match(key)
        if m:
            numbered.append((int(m.group(1)), value))
    ids = [v for _, v in sorted(numbered)]
    job = str(uuid.uuid4())
    if ids:
        if len(ids) > 1 or len(set(ids)) != len(ids):
            raise ApiError(400, "IllegalParamSize.certificateIds",
                           "The param size of certificateIds or caCertificateIds is illegal.")
        if lst.protocol != "TCPSSL":
            raise ApiError(400, "IllegalParam", "The param of CertificateIds is illegal.")
        if lst.status(call.now) != "Running":
            raise ApiError(400, "IncorrectStatus.listener",
                           f"The status of listener [{lst.listener_id}] is incorrect.")
        if cas_certificate(call.world, ids[0]) is None:
            raise ApiError(400, "ResourceNotFound.Certificate", f"The specified resource {ids[0]} is not found.")
        lst.certificate = ids[0]
        lst.busy_until = call.now + lst.configuring_seconds
        lst.settle(call.now)
    state(call.world).jobs[job] = (lst.listener_id, lst.busy_until)
    return {"JobId": job}


def get_job_status(call: Call) -> dict:
    job = required(call, "JobId")
    found = state(call.world).jobs.get(job)
    if found is None:
        raise ApiError(404, "ResourceNotFound.job", f"The specified resource {job} is not found.")
    return {"Status": "Succeeded" if call.now >= found[1] else "processing"}


def served_for(world, server_name: str, port: int, now: float) -> tuple[str, str, str] | None:
    certs = []
    for lst in state(world).listeners.values():
        lst.settle(now)
        c = cas_certificate(world, lst.served) if lst.served else None
        if c is not None:
            certs.append(c)
    best = best_for_sni(server_name, certs)
    return (best.chain_pem, best.key_pem, best.info.fingerprint) if best else None


def load_fixture(world, items: list, problems: list[str], now: float) -> None:
    """``[[nlb_listener]]`` id, region, load_balancer_id, port (443), protocol (TCPSSL),
    configuring_seconds (1.0)."""
    st = state(world)
    for i, item in enumerate(items):
        path = f"nlb_listener[{i}]"
        lid, region = item.get("id"), item.get("region")
        if not isinstance(lid, str) or not lid or not isinstance(region, str) or not region:
            problems.append(f"{path}: id and region are required strings")
            continue
        protocol = item.get("protocol", "TCPSSL")
        if protocol not in ("TCP", "UDP", "TCPSSL"):
            problems.append(f"{path}.protocol: TCP, UDP or TCPSSL")
            continue
        if lid in st.listeners:
            problems.append(f"{path}.id: duplicate listener {lid}")
            continue
        st.listeners[lid] = NlbListener(
            lid, str(item.get("load_balancer_id", "nlb-sandbox")), region,
            fixture_number(item, "port", 443, path, problems, integer=True), protocol,
            configuring_seconds=float(fixture_number(item, "configuring_seconds", 1.0, path, problems)))


def hold_configuring(world, listener_id: str, seconds: float, now: float) -> None:
    with world.lock:
        lst = state(world).listeners[listener_id]
        lst.busy_until = max(lst.busy_until, now + seconds)


def force_certificate(world, listener_id: str, cert_id: str) -> None:
    with world.lock:
        lst = state(world).listeners[listener_id]
        lst.certificate = lst.served = cert_id
        lst.busy_until = 0.0


def view(world, listener_id: str, now: float) -> dict:
    with world.lock:
        lst = state(world).listeners[listener_id]
        lst.settle(now)
        return {"status": lst.status(now), "certificate": lst.certificate, "served": lst.served}


def cas_users(world, cert_id: int) -> list[tuple[str, str, dict]]:
    """CAS hook: the listeners whose server certificate (configured or still served) is CAS
    certificate ``cert_id``, as CAS ListCloudResources reports them: CloudProduct ``NLB``, with
    InstanceId, ListenerId, ListenerPort and DefaultResource (NLB has only the one)."""
    cid = listener_id_of(world, cert_id)
    if cid is None:
        return []
    return [("NLB", lst.listener_id, {
                "InstanceId": lst.load_balancer_id, "ListenerId": lst.listener_id,
                "ListenerPort": str(lst.port), "DefaultResource": 1, "RegionId": lst.region})
            for lst in sorted(state(world).listeners.values(), key=lambda x: x.listener_id)
            if cid in (lst.certificate, lst.served)]


FIXTURE = {"nlb_listener": load_fixture}

PRODUCT = Product(
    name="Nlb",
    version="2022-04-30",
    ram_prefix="nlb",
    host_pattern="nlb.{region}.aliyuncs.com",
    actions={
        "GetListenerAttribute": get_listener_attribute,
        "ListListeners": list_listeners,
        "UpdateListenerAttribute": update_listener_attribute,
        "GetJobStatus": get_job_status,
    },
)
