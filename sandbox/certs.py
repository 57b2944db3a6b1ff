"""Certificate handling shared by CDN, API Gateway and the TLS edge.

The sandbox validates uploads the way the real services do (PEM parses, key matches, name
coverage), so a daemon bug that would be rejected in production is rejected here too. Coverage
follows RFC 6125: SANs when present (CN only as a fallback when there are none), a wildcard is
the whole left-most label and covers exactly one label (``*.example.com`` covers
``a.example.com``, not ``example.com`` nor ``a.b.example.com``). A wildcard *target* (a CDN
domain ``*.static.example.com``) needs that very wildcard in the certificate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_PEM_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"


class CertError(ValueError):
    """The PEM text is not what it should be; ``kind`` is ``cert`` or ``key``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class CertInfo:
    """What the APIs and the admin view report about one certificate chain."""

    chain_pem: str
    serial: str  # lowercase hex, no separators, no leading zeros
    fingerprint: str  # lowercase hex SHA-256 of the leaf DER
    common_name: str
    dns_names: tuple[str, ...]
    issuer: str
    organization: str
    not_before: dt.datetime
    not_after: dt.datetime

    def covers(self, hostname: str) -> bool:
        return covers(self.dns_names, hostname)

    def summary(self) -> dict:
        return {
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "common_name": self.common_name,
            "dns_names": list(self.dns_names),
            "issuer": self.issuer,
            "not_before": self.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def parse_chain(pem: str) -> list[x509.Certificate]:
    """Every certificate in ``pem`` (leaf first). Raises CertError('cert') on anything odd."""
    if not isinstance(pem, str) or _PEM_CERT_BEGIN not in pem:
        raise CertError("cert", "no PEM certificate found")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except ValueError as exc:
        raise CertError("cert", f"certificate does not parse: {exc}") from exc
    if not certs:
        raise CertError("cert", "no PEM certificate found")
    return certs


def parse_key(pem: str):
    """The private key in ``pem`` (unencrypted). Raises CertError('key')."""
    if not isinstance(pem, str) or "PRIVATE KEY-----" not in pem:
        raise CertError("key", "no PEM private key found")
    try:
        return serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        raise CertError("key", f"private key does not parse: {exc}") from exc


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert: x509.Certificate, key) -> bool:
    return _spki(cert.public_key()) == _spki(key.public_key())


def _name_attr(name: x509.Name, oid) -> str:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else ""


def describe(chain_pem: str) -> CertInfo:
    certs = parse_chain(chain_pem)
    leaf = certs[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns_names = ()
    cn = _name_attr(leaf.subject, NameOID.COMMON_NAME)
    if not dns_names and cn:
        dns_names = (cn.lower(),)
    issuer_cn = _name_attr(leaf.issuer, NameOID.COMMON_NAME)
    issuer_org = _name_attr(leaf.issuer, NameOID.ORGANIZATION_NAME)
    return CertInfo(
        chain_pem=chain_pem,
        serial=serial_hex(leaf),
        fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        common_name=cn,
        dns_names=dns_names,
        issuer=issuer_cn or issuer_org,
        organization=issuer_org or issuer_cn,
        not_before=leaf.not_valid_before_utc.replace(tzinfo=None),
        not_after=leaf.not_valid_after_utc.replace(tzinfo=None),
    )


def validate_pair(chain_pem: str, key_pem: str) -> CertInfo:
    """Parse both and check they belong together; CertError('cert'|'key'|'mismatch')."""
    certs = parse_chain(chain_pem)
    key = parse_key(key_pem)
    if not key_matches(certs[0], key):
        raise CertError("mismatch", "the private key does not match the certificate")
    return describe(chain_pem)


def _match_one(pattern: str, host: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern == host:
        return True
    if not pattern.startswith("*.") or host.startswith("*."):
        return False
    suffix = pattern[1:]  # ".example.com"
    if not host.endswith(suffix):
        return False
    label = host[: -len(suffix)]
    return bool(label) and "." not in label


def covers(names, hostname: str) -> bool:
    """RFC 6125 matching of ``hostname`` (which may itself be a wildcard CDN domain, in the
    CDN API's spelling ``.example.com`` or as ``*.example.com``)."""
    if hostname.startswith("."):
        hostname = "*" + hostname
    return any(_match_one(n, hostname) for n in names)


def make_default_certificate(common_name: str = "sandbox default") -> tuple[str, str]:
    """A self-signed (cert PEM, key PEM), generated at start so no key is ever committed."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "alicertd sandbox")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("sandbox.alicertd.test")]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
    return cert_pem, key_pem
