"""OSS bucket custom domains (CNAME) and their certificates, over OSS's REST API.

OSS is not RPC: requests are ``POST /?cname&comp=add`` (PutCname) and ``GET /?cname``
(ListCname) on the bucket, addressed by virtual host (``<bucket>.oss-<region>.aliyuncs.com``)
or by path (``/<bucket>/``), signed with OSS Signature V4 (sandbox/oss_signature.py, checked
here independently of any SDK), with XML bodies as the OSS API reference and the
``alibabacloud-oss-v2`` models (BucketCnameConfiguration, ListCnameResult) define them.

What is emulated: a bucket's custom domains are mapped in the fixture (mapping a new domain
needs the ownership check OSS does with a CNAME token: PutCname for an unmapped domain fails
with ``NeedVerifyDomainOwnership``); PutCname with a ``CertificateConfiguration`` attaches a CAS
certificate by ``CertId`` (``<cas id>-<region>``, the reference's example ``493****-cn-hangzhou``),
checked against ``PreviousCertId`` unless ``Force`` is true (without PreviousCertId, Force must
be true when a certificate is attached already); ``DeleteCertificate`` removes it; ListCname
reports each domain with its certificate (Type CAS, CertId, Status Enabled, Fingerprint as the
reference's example shows it: colon-separated SHA-1 hex, ValidStartDate/ValidEndDate). No
asynchronous state is documented: the edge serves a change at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509

from .. import oss_signature as v4
from ..auth import allowed
from ..errors import ApiError
from ..state import TIMESTAMP_WINDOW, StoredCert, World
from .dcdn import cas_certificate

XML_TYPE = "application/xml"


@dataclass
class OssCname:
    domain: str
    modified: float
    cert: StoredCert | None = None
    cert_id: str = ""
    cert_bound: float = 0.0


@dataclass
class Bucket:
    name: str
    region: str
    owner: str
    cnames: dict[str, OssCname] = field(default_factory=dict)


def _error_xml(err: ApiError, request_id: str, host: str) -> bytes:
    root = ET.Element("Error")
    for tag, text in (("Code", err.code), ("Message", err.message), ("RequestId", request_id),
                      ("HostId", host)):
        ET.SubElement(root, tag).text = text
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


def _bucket_and_key(host: str, path: str) -> tuple[str | None, str]:
    """Virtual-host style (``bucket.oss-<region>.aliyuncs.com``) or path style (``/bucket/key``)."""
    hostname = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
    if ".oss-" in hostname:
        return hostname.split(".oss-", 1)[0], path.lstrip("/")
    parts = path.lstrip("/").split("/", 1)
    return (parts[0] or None), (parts[1] if len(parts) > 1 else "")


def _authenticate(world: World, method: str, bucket: str | None, key: str, query: list,
                  headers: dict[str, str], now: float) -> tuple[str, tuple[str, ...]]:
    """(access key id, permissions) of a correctly V4-signed request, else the OSS error."""
    value = headers.get("authorization", "")
    if not value:
        raise ApiError(403, "AccessDenied", "AccessDenied: no Authorization header (anonymous access).")
    auth = v4.parse_authorization(value)
    if auth is None:
        raise ApiError(400, "InvalidArgument", "Authorization header is invalid.")
    stamp = headers.get("x-oss-date", "")
    try:
        ts = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise ApiError(403, "AccessDenied", "x-oss-date is missing or malformed.") from None
    if abs(now - ts) > TIMESTAMP_WINDOW:
        raise ApiError(403, "RequestTimeTooSkewed",
                       "The difference between the request time and the current time is too large.")
    if auth.date != stamp[:8] or auth.product != "oss":
        raise ApiError(403, "SignatureDoesNotMatch", "The credential scope does not match the request.")
    with world.lock:
        if auth.access_key_id.startswith("STS."):
            cred = world.sts_by_ak.get(auth.access_key_id)
            token = headers.get("x-oss-security-token")
            if cred is None:
                raise ApiError(403, "InvalidAccessKeyId",
                               "The OSS Access Key Id you provided does not exist in our records.")
            if cred.token != token:
                raise ApiError(403, "AccessKeyIdAndSecurityTokenNotMatch",
                               "The OSS access key id and security token you provided does not match.")
            if cred.expires_at <= now:
                raise ApiError(403, "InvalidSecurityToken", "The security token you provided is invalid.")
            role = world.roles.get(cred.role)
            secret, perms = cred.secret, role.permissions if role else ()
        else:
            ak = world.access_keys.get(auth.access_key_id)
            if ak is None:
                raise ApiError(403, "InvalidAccessKeyId",
                               "The OSS Access Key Id you provided does not exist in our records.")
            secret, perms = ak.secret, ak.permissions
    canonical = v4.canonical_request(method, v4.canonical_uri(bucket, key), query, headers,
                                     auth.additional)
    text = v4.string_to_sign(stamp, auth.date, auth.region, auth.product, canonical)
    if not v4.signatures_equal(v4.signature(secret, auth, text), auth.signature):
        raise ApiError(403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature you provided.")
    return auth.access_key_id, perms


def _cert_id(c: StoredCert) -> str:
    return f"{c.cert_id}-{getattr(c, 'region', 'cn-hangzhou')}"


def _fingerprint_sha1(c: StoredCert) -> str:
    leaf = x509.load_pem_x509_certificates(c.chain_pem.encode())[0]
    from cryptography.hazmat.primitives.serialization import Encoding
    digest = hashlib.sha1(leaf.public_bytes(Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _text(el: ET.Element | None, tag: str) -> str | None:
    found = el.find(tag) if el is not None else None
    return found.text.strip() if found is not None and found.text else None


def put_cname(world: World, bucket: Bucket, body: bytes, now: float) -> bytes:
    try:
        root = ET.fromstring(body or b"<x/>")
    except ET.ParseError:
        raise ApiError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    cname = root.find("Cname") if root.tag == "BucketCnameConfiguration" else None
    domain = (_text(cname, "Domain") or "").lower().rstrip(".")
    if not domain:
        raise ApiError(400, "MalformedXML", "The XML you provided was not well-formed.")
    entry = bucket.cnames.get(domain)
    if entry is None:
        raise ApiError(400, "NeedVerifyDomainOwnership",
                       "You have to verify the ownership of the domain with a CNAME token first.")
    conf = cname.find("CertificateConfiguration")
    if conf is None:
        return b""
    if (_text(conf, "DeleteCertificate") or "").lower() == "true":
        entry.cert, entry.cert_id, entry.modified = None, "", now
        return b""
    force = (_text(conf, "Force") or "").lower() == "true"
    previous = _text(conf, "PreviousCertId")
    if not force:
        if previous is None and entry.cert is not None:
            raise ApiError(400, "InvalidArgument", "PreviousCertId is required unless Force is true.")
        if previous is not None and previous != entry.cert_id:
            raise ApiError(400, "InvalidArgument",
                           "The PreviousCertId does not match the certificate of the domain.")
    cert_id = _text(conf, "CertId")
    if not cert_id:
        raise ApiError(400, "InvalidArgument", "CertId or Certificate is required.")
    number, _, region = cert_id.partition("-")
    cas = cas_certificate(world, int(number)) if number.isdigit() else None
    if cas is None or getattr(cas, "region", region) != region:
        raise ApiError(400, "InvalidArgument", f"The certificate {cert_id} does not exist.")
    if not cas.info.covers(domain):
        raise ApiError(400, "InvalidArgument", "The certificate does not match the domain.")
    entry.cert, entry.cert_id, entry.cert_bound, entry.modified = cas, cert_id, now, now
    return b""


def list_cname(bucket: Bucket) -> bytes:
    root = ET.Element("ListCnameResult")
    ET.SubElement(root, "Bucket").text = bucket.name
    ET.SubElement(root, "Owner").text = bucket.owner
    for c in sorted(bucket.cnames.values(), key=lambda c: c.domain):
        el = ET.SubElement(root, "Cname")
        ET.SubElement(el, "Domain").text = c.domain
        ET.SubElement(el, "LastModified").text = dt.datetime.fromtimestamp(c.modified, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.000Z")
        ET.SubElement(el, "Status").text = "Enabled"
        if c.cert is not None:
            cert = ET.SubElement(el, "Certificate")
            info = c.cert.info
            for tag, text in (("Type", "CAS"), ("CertId", c.cert_id), ("Status", "Enabled"),
                              ("CreationDate", formatdate(c.cert_bound, usegmt=True)),
                              ("Fingerprint", _fingerprint_sha1(c.cert)),
                              ("ValidStartDate", info.not_before.strftime("%b %d %H:%M:%S %Y GMT")),
                              ("ValidEndDate", info.not_after.strftime("%b %d %H:%M:%S %Y GMT"))):
                ET.SubElement(cert, tag).text = text
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


def handle_rest(sb, method: str, raw_path: str, headers, body: bytes) -> tuple[int, str, bytes, dict]:
    """One OSS REST request: (status, content type, body, extra headers). Logged like RPC calls."""
    arrived = time.time()
    request_id = uuid.uuid4().hex[:24].upper()
    hdrs = {k.lower(): v for k, v in headers.items()}
    url = urlsplit(raw_path)
    query = parse_qsl(url.query, keep_blank_values=True)
    names = {k for k, _ in query}
    bucket_name, key = _bucket_and_key(hdrs.get("host", ""), url.path or "/")
    action = ("PutCname" if method == "POST" and ("comp", "add") in query else
              "ListCname" if method == "GET" else "Unknown") if "cname" in names else "Unknown"
    world = sb.world
    parsed = v4.parse_authorization(hdrs.get("authorization", ""))
    if parsed is not None and hasattr(world, "account_for_key"):
        world = world.account_for_key(parsed.access_key_id)  # the caller's account
    entry = {"time": arrived, "action": action, "version": "", "product": "OSS", "access_key_id": "",
             "method": method, "region": "", "status": None, "code": None, "request_id": request_id,
             "params": {"bucket": bucket_name or "", "query": "&".join(sorted(names))}, "fault": None}
    try:
        ak, perms = _authenticate(world, method, bucket_name, key, query, hdrs, arrived)
        entry["access_key_id"] = ak
        if action == "Unknown":
            raise ApiError(501, "NotImplemented", "The sandbox emulates PutCname and ListCname only.")
        if not allowed(perms, f"oss:{action}"):
            raise ApiError(403, "AccessDenied", f"You have no right to access this object because of "
                                                f"bucket acl. (oss:{action})")
        fault, latency = sb.faults.pick(action)
        entry["fault"] = fault
        if latency:
            time.sleep(latency)
        if fault in ("throttle", "unavailable", "internal"):
            raise ApiError(503, "ServiceUnavailable", "Please reduce your request rate.")
        with world.lock:
            bucket = world.oss_buckets.get(bucket_name or "")
            if bucket is None:
                raise ApiError(404, "NoSuchBucket", "The specified bucket does not exist.")
            out = put_cname(world, bucket, body, arrived) if action == "PutCname" else list_cname(bucket)
        entry["status"] = 200
        return 200, XML_TYPE, out, {"x-oss-request-id": request_id}
    except ApiError as err:
        entry["status"], entry["code"] = err.status, err.code
        return err.status, XML_TYPE, _error_xml(err, request_id, hdrs.get("host", "")), {
            "x-oss-request-id": request_id}
    finally:
        entry["duration_ms"] = round((time.time() - arrived) * 1000, 2)
        sb.record_call(entry)


def is_oss_request(path: str, headers) -> bool:
    """OSS REST, not RPC: an OSS-style Authorization header, or a bucket virtual host."""
    auth = headers.get("Authorization") or ""
    host = (headers.get("Host") or "").lower()
    return auth.startswith("OSS") or ".oss-" in host


def served_for(world: World, server_name: str, port: int, now: float):
    for b in world.oss_buckets.values():
        c = b.cnames.get(server_name)
        if c is not None and c.cert is not None:
            return c.cert.chain_pem, c.cert.key_pem, c.cert.info.fingerprint
    return None


def load_fixture(world: World, items: list, problems: list[str], now: float | None = None) -> None:
    """``[[oss_bucket]] name = "static-assets", region = "cn-hangzhou", cnames = ["static.example.com"]``."""
    now = time.time() if now is None else now
    for i, item in enumerate(items):
        path = f"oss_bucket[{i}]"
        name, region, cnames = item.get("name"), item.get("region", "cn-hangzhou"), item.get("cnames", [])
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{path}.name: must be a non-empty string")
            continue
        if not isinstance(region, str) or not region:
            problems.append(f"{path}.region: must be a region id")
            continue
        if not isinstance(cnames, list) or not all(isinstance(c, str) and c for c in cnames):
            problems.append(f"{path}.cnames: must be a list of domain names")
            continue
        if name in world.oss_buckets:
            problems.append(f"{path}.name: duplicate bucket {name}")
            continue
        world.oss_buckets[name] = Bucket(name=name, region=region, owner=world.settings.account_id,
                                         cnames={c.lower(): OssCname(c.lower(), now) for c in cnames})


FIXTURE = {"oss_bucket": load_fixture}


def cas_users(world: World, cert_id: int) -> list[tuple[str, str]]:
    """CAS hook: OSS custom domains with ``cert_id`` attached (CloudProduct ``OSS``, as CAS
    ListCloudResources names it)."""
    return sorted(("OSS", c.domain) for b in world.oss_buckets.values() for c in b.cnames.values()
                  if c.cert is not None and c.cert.cert_id == cert_id)
