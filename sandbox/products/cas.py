"""CAS (SSL Certificates Service / Certificate Management Service) 2020-04-07: uploaded
certificates, in the two regions CDN can bind from (cn-hangzhou, ap-southeast-1).

What the daemon depends on, emulated from the official ``alibabacloud-cas20200407`` models:

- ``UploadUserCertificate`` (Name required, at most 63 characters; Cert + Key PEM) returns a
  new ``CertId``. A same-name upload adds another certificate (Alibaba's 2026-02-25 notice),
  so names repeat and ids do not. ``ClientToken`` makes a retried request return the first
  answer (the model documents it as the idempotence token).
- ``ListUserCertificateOrder`` with ``OrderType=UPLOAD`` (or ``CERT``) pages the uploaded
  certificates of the request's region (``CurrentPage``, ``ShowSize`` default 50); without
  ``Status`` only valid ones (issued, about to expire); ``CPACK`` (the default) and ``BUY`` list
  orders, of which the sandbox has none.
- ``GetUserCertificateDetail`` returns the PEM (and the key unless ``CertFilter=true``).
- ``ListCloudResources`` (``CertIds``) lists the resources using a certificate: each product
  module's ``cas_users`` hook reports its own (CDN, DCDN, ESA, OSS domains; ALB, NLB and CLB
  listeners with ``InstanceId``/``ListenerId``/``ListenerPort``/``DefaultResource``), under
  the ``CloudProduct`` names the model documents (ESA's is undocumented: our guess ``ESA``).
- ``DeleteUserCertificate`` refuses a certificate a resource still uses.

The region is the request's ``RegionId``: each region is its own store. Formats the models
leave open are our choice (sandbox/README.md): ``SerialNo`` lowercase hex, ``Fingerprint``
upper-case SHA-1 hex, ``Sha2`` upper-case SHA-256 hex, dates ``YYYY-MM-DD``, times epoch ms.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography.hazmat.primitives import serialization

from ..certs import CertError, parse_chain, validate_pair
from ..errors import ApiError, invalid_param
from ..state import StoredCert
from .base import Call, Product, enum_param, epoch_ms, int_param, optional, page_of, required

REGIONS = ("cn-hangzhou", "ap-southeast-1")
NAME_MAX = 63
WILL_EXPIRE_DAYS = 30
_STATUSES = ("PAYED", "CHECKING", "CHECKED_FAIL", "ISSUED", "WILLEXPIRED", "EXPIRED", "NOTACTIVATED",
             "REVOKED")


def _region(call: Call) -> str:
    if call.region not in REGIONS:
        raise ApiError(400, "InvalidRegionId", f"The specified region {call.region} is not supported.")
    return call.region


def _status(cert: StoredCert, now: float) -> str:
    not_after = cert.info.not_after.replace(tzinfo=dt.UTC).timestamp()
    if not_after <= now:
        return "EXPIRED"
    if not_after - now < WILL_EXPIRE_DAYS * 86400:
        return "WILLEXPIRED"
    return "ISSUED"


def _digests(cert: StoredCert) -> tuple[str, str]:
    der = parse_chain(cert.chain_pem)[0].public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper(), hashlib.sha256(der).hexdigest().upper()


def _certificate(call: Call) -> StoredCert:
    cert_id = int_param(call, "CertId", None)
    if cert_id is None:
        required(call, "CertId")
    cert = call.world.certs_by_id.get(cert_id)
    if cert is None or cert.region != _region(call):
        raise invalid_param("CertId", f"The certificate {cert_id} does not exist.")
    return cert


def upload_user_certificate(call: Call) -> dict:
    region = _region(call)
    name = required(call, "Name")
    if len(name) > NAME_MAX:
        raise invalid_param("Name", f"The name must be at most {NAME_MAX} characters.")
    chain_pem = required(call, "Cert")
    key_pem = required(call, "Key")
    world = call.world
    token = optional(call, "ClientToken")
    if token and (region, token) in world.cas_tokens:
        cert_id = world.cas_tokens[(region, token)]
        return {"CertId": cert_id, "ResourceId": f"cas-upload-{cert_id}"}
    try:
        info = validate_pair(chain_pem, key_pem)
    except CertError as exc:
        what = {"cert": "Cert", "key": "Key"}.get(exc.kind, "Key")
        raise invalid_param(what, str(exc)) from None
    cert = StoredCert(cert_id=world.new_cert_id(), name=name, chain_pem=chain_pem, key_pem=key_pem,
                      info=info, created=call.now, region=region, source="cas")
    world.certs_by_id[cert.cert_id] = cert
    world.certs_by_name[name] = cert
    if token:
        world.cas_tokens[(region, token)] = cert.cert_id
    return {"CertId": cert.cert_id, "ResourceId": f"cas-upload-{cert.cert_id}"}


def _order_row(cert: StoredCert, now: float) -> dict:
    sha1, sha256 = _digests(cert)
    info = cert.info
    return {
        "CertificateId": cert.cert_id,
        "InstanceId": f"cas-upload-{cert.cert_id}",
        "Name": cert.name,
        "CommonName": info.common_name or (info.dns_names[0] if info.dns_names else ""),
        "Sans": ",".join(info.dns_names),
        "Issuer": info.issuer,
        "OrgName": "",
        "Country": "",
        "Province": "",
        "City": "",
        "SerialNo": info.serial,
        "Fingerprint": sha1,
        "Sha2": sha256,
        "StartDate": info.not_before.strftime("%Y-%m-%d"),
        "EndDate": info.not_after.strftime("%Y-%m-%d"),
        "Expired": _status(cert, now) == "EXPIRED",
        "Upload": True,
        "ResourceGroupId": "rg-sandbox",
    }


def list_user_certificate_order(call: Call) -> dict:
    region = _region(call)
    order_type = enum_param(call, "OrderType", ("CPACK", "BUY", "UPLOAD", "CERT"), "CPACK")
    status = enum_param(call, "Status", _STATUSES, None)
    number = int_param(call, "CurrentPage", 1, 1)
    size = int_param(call, "ShowSize", 50, 1)
    keyword = (optional(call, "Keyword") or "").lower()
    rows: list[dict] = []
    if order_type in ("UPLOAD", "CERT"):
        for cert in sorted(call.world.certs_by_id.values(), key=lambda c: c.cert_id):
            if cert.region != region:
                continue
            state = _status(cert, call.now)
            if (status is None and state == "EXPIRED") or (status is not None and state != status):
                continue
            row = _order_row(cert, call.now)
            if keyword and keyword not in f"{row['CommonName']},{row['Sans']},{row['InstanceId']}".lower():
                continue
            rows.append(row)
    return {"TotalCount": len(rows), "CurrentPage": number, "ShowSize": size,
            "CertificateOrderList": page_of(rows, number, size)}


def get_user_certificate_detail(call: Call) -> dict:
    cert = _certificate(call)
    sha1, sha256 = _digests(cert)
    info = cert.info
    body = {
        "Id": cert.cert_id,
        "Name": cert.name,
        "Common": info.common_name or (info.dns_names[0] if info.dns_names else ""),
        "Sans": ",".join(info.dns_names),
        "Issuer": info.issuer,
        "OrgName": "",
        "Country": "",
        "Province": "",
        "City": "",
        "SerialNo": info.serial,
        "Fingerprint": sha1,
        "Sha2": sha256,
        "CertSha2": sha256,
        "StartDate": info.not_before.strftime("%Y-%m-%d"),
        "EndDate": info.not_after.strftime("%Y-%m-%d"),
        "NotBefore": epoch_ms(info.not_before),
        "NotAfter": epoch_ms(info.not_after),
        "Expired": _status(cert, call.now) == "EXPIRED",
        "BuyInAliyun": False,
        "CertIdentifier": f"{cert.cert_id}-{cert.region}",
        "InstanceId": f"cas-upload-{cert.cert_id}",
        "ResourceGroupId": "rg-sandbox",
    }
    if (optional(call, "CertFilter") or "false").lower() != "true":
        body.update(Cert=cert.chain_pem, Key=cert.key_pem)
    return body


def resources(world, cert: StoredCert) -> list[tuple[str, str, dict]]:
    """Every emulated resource using ``cert`` (each product's ``cas_users`` hook), as
    ``(CloudProduct, name, ListCloudResources fields)``: a hook's ``(product, domain)`` is a
    resource with that ``Domain``; a hook's ``(product, name, fields)`` one with those fields."""
    from . import CAS_USERS
    found: list[tuple[str, str, dict]] = []
    for hook in CAS_USERS:
        for use in hook(world, cert.cert_id):
            product, name, *rest = use
            found.append((product, name, dict(rest[0]) if rest else {"Domain": name}))
    return found


def users(world, cert: StoredCert) -> list[tuple[str, str]]:
    """``(CloudProduct, domain or instance)`` of every resource using ``cert``."""
    return [(product, name) for product, name, _ in resources(world, cert)]


def _cert_ids(call: Call) -> list[int]:
    """``CertIds``: the SDK sends a JSON array (``[1,2]``); the field doc says comma-separated."""
    raw = (optional(call, "CertIds") or "").strip().strip("[]")
    try:
        return [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise invalid_param("CertIds", "Certificate ids are integers.") from None


def list_cloud_resources(call: Call) -> dict:
    """The cloud resources (every product's ``cas_users``) using the given certificates of this
    region."""
    region = _region(call)
    wanted = set(_cert_ids(call))
    number = int_param(call, "CurrentPage", 1, 1)
    size = int_param(call, "ShowSize", 20, 1)
    rows: list[dict] = []
    world = call.world
    for cert in sorted(world.certs_by_id.values(), key=lambda c: c.cert_id):
        if cert.region != region or (wanted and cert.cert_id not in wanted):
            continue
        for product, _, fields in resources(world, cert):
            rows.append({"Id": len(rows) + 1, "CertId": cert.cert_id, "CertName": cert.name,
                         "CloudName": "aliyun", "CloudProduct": product,
                         "EnableHttps": 1, "RegionId": region, "Status": "online",
                         "CertStartTime": str(int(cert.info.not_before.replace(tzinfo=dt.UTC).timestamp())),
                         "CertEndTime": str(int(cert.info.not_after.replace(tzinfo=dt.UTC).timestamp())),
                         **fields})
    return {"Total": len(rows), "CurrentPage": number, "ShowSize": size,
            "Data": page_of(rows, number, size)}


def delete_user_certificate(call: Call) -> dict:
    cert = _certificate(call)
    world = call.world
    if users(world, cert):
        # The reference lists only common errors for this action; which code the service
        # uses for a certificate in use is not documented (sandbox/README.md).
        raise invalid_param("CertId", "The certificate is in use by a cloud product and cannot "
                                      "be deleted.")
    del world.certs_by_id[cert.cert_id]
    if world.certs_by_name.get(cert.name) is cert:
        del world.certs_by_name[cert.name]
    for key in [k for k, v in world.cas_tokens.items() if v == cert.cert_id]:
        del world.cas_tokens[key]
    return {}


PRODUCT = Product(
    name="cas",
    version="2020-04-07",
    ram_prefix="yundun-cert",
    host_pattern="cas.aliyuncs.com",
    actions={
        "UploadUserCertificate": upload_user_certificate,
        "ListUserCertificateOrder": list_user_certificate_order,
        "GetUserCertificateDetail": get_user_certificate_detail,
        "ListCloudResources": list_cloud_resources,
        "DeleteUserCertificate": delete_user_certificate,
    },
)
