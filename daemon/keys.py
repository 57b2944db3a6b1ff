"""Keys, CSRs and certificates, on ``cryptography``.

Every function that reads PEM raises :class:`KeyFormatError` (one line, no traceback from
cryptography) for input it cannot use. Key types are named as in the config: ``ec256``,
``ec384``, ``rsa2048``, ``rsa3072``, ``rsa4096``.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
_CURVES = {"ec256": ec.SECP256R1, "ec384": ec.SECP384R1}
_CURVE_NAMES = {"secp256r1": "ec256", "secp384r1": "ec384"}
_RSA_BITS = {"rsa2048": 2048, "rsa3072": 3072, "rsa4096": 4096}

CN_MAX_BYTES = 64  # RFC 5280 ub-common-name
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


class KeyFormatError(ValueError):
    """A key, CSR or certificate could not be read or is of an unsupported kind. The message is
    one line and says what was expected."""


# --------------------------------------------------------------------------- keys


def generate_private_key(key_type: str) -> PrivateKey:
    """A new private key of ``key_type`` (one of KEY_TYPES)."""
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    raise KeyFormatError(f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")


def key_type_of(key: PrivateKey | PublicKey) -> str:
    """The config name of a key's type (``ec256``...). Raises KeyFormatError for other keys."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        name = _CURVE_NAMES.get(key.curve.name)
        if name:
            return name
        raise KeyFormatError(f"unsupported EC curve {key.curve.name}; expected P-256 or P-384")
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        name = f"rsa{key.key_size}"
        if name in _RSA_BITS:
            return name
        raise KeyFormatError(f"unsupported RSA key size {key.key_size}; expected 2048, 3072 or 4096")
    raise KeyFormatError(f"unsupported key kind {type(key).__name__}; expected EC or RSA")


def private_key_to_pem(key: PrivateKey) -> str:
    """PKCS#8, unencrypted (the state store protects it with file mode 0600)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def load_private_key(pem: str | bytes) -> PrivateKey:
    """Read a PEM private key (PKCS#8, or traditional EC/RSA), unencrypted, of a supported type."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFormatError("the private key is encrypted; alicertd needs an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not a readable PEM private key ({_first_line(exc)})") from None
    key_type_of(key)  # refuses unsupported types with a clear message
    return key  # type: ignore[return-value]


def public_key_pem(key: PrivateKey | PublicKey) -> str:
    pub = key.public_key() if hasattr(key, "private_bytes") else key
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


# --------------------------------------------------------------------------- CSR


def build_csr(key: PrivateKey, domains: list[str] | tuple[str, ...]) -> bytes:
    """A DER CSR for ``domains`` signed by ``key``.

    SANs are the domains in order. The subject CN is the first domain when it fits in 64 bytes
    (RFC 5280's upper bound); otherwise the subject is empty, which CAs accept since the names
    are in the SAN extension (RFC 8555 §7.4 only requires the identifiers there).
    """
    if not domains:
        raise ValueError("a CSR needs at least one domain")
    names = [] if len(domains[0].encode()) > CN_MAX_BYTES else [
        x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(names))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class CertInfo:
    """What alicertd needs to know about a certificate. ``serial`` and ``fingerprint`` (SHA-256
    of the DER) are lowercase hex without separators; times are aware UTC."""

    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sans: tuple[str, ...]
    issuer_cn: str | None
    subject_cn: str | None
    fingerprint: str
    key_type: str | None

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before

    @property
    def issuer(self) -> str | None:
        """The issuer's CN (what CertificateBundle.issuer and ``status`` show)."""
        return self.issuer_cn


def split_pem_chain(text: str | bytes) -> list[str]:
    """Every ``CERTIFICATE`` PEM block of ``text``, in order, each ending with a newline."""
    data = text.encode("ascii", "replace") if isinstance(text, str) else text
    blocks = [m.group(0).decode("ascii") + "\n" for m in _PEM_BLOCK.finditer(data)
              if m.group(1) == b"CERTIFICATE"]
    if not blocks:
        raise KeyFormatError("no PEM certificate found")
    return blocks


def load_certificate(data: str | bytes | x509.Certificate) -> x509.Certificate:
    """The first certificate of a PEM text, or a DER certificate."""
    if isinstance(data, x509.Certificate):
        return data
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_certificate(split_pem_chain(raw)[0].encode("ascii"))
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise KeyFormatError(f"not a readable certificate ({_first_line(exc)})") from None


def load_chain(text: str | bytes) -> list[x509.Certificate]:
    return [load_certificate(block) for block in split_pem_chain(text)]


def certificate_info(data: str | bytes | x509.Certificate) -> CertInfo:
    """Parse the (first) certificate of ``data`` into a CertInfo."""
    cert = load_certificate(data)
    try:
        san_ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        sans = tuple(san_ext.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        sans = ()
    try:
        key_type: str | None = key_type_of(cert.public_key())
    except KeyFormatError:
        key_type = None
    return CertInfo(
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=sans,
        issuer_cn=_common_name(cert.issuer),
        subject_cn=_common_name(cert.subject),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        key_type=key_type,
    )


def certificate_der(data: str | bytes | x509.Certificate) -> bytes:
    return load_certificate(data).public_bytes(serialization.Encoding.DER)


def key_matches_certificate(key: PrivateKey, cert: str | bytes | x509.Certificate) -> bool:
    """True when ``cert`` certifies the public half of ``key``."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return load_certificate(cert).public_key().public_bytes(der, spki) == \
        key.public_key().public_bytes(der, spki)


def ari_cert_id(cert: str | bytes | x509.Certificate) -> str:
    """The ARI certificate identifier (RFC 9773 §4.1): base64url of the Authority Key
    Identifier's keyIdentifier, ".", base64url of the serial number's DER integer bytes
    (without tag and length, so with a leading zero byte when the high bit is set)."""
    certificate = load_certificate(cert)
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise KeyFormatError("the certificate has no Authority Key Identifier; ARI needs one") from None
    if aki.key_identifier is None:
        raise KeyFormatError("the certificate's Authority Key Identifier has no keyIdentifier")
    return f"{_b64url(aki.key_identifier)}.{_b64url(serial_der_bytes(certificate.serial_number))}"


def serial_der_bytes(serial: int) -> bytes:
    """The content octets of a DER INTEGER holding a non-negative ``serial``."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _common_name(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
