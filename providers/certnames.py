"""The names alicertd gives certificates in Alibaba Cloud, and how a name is read back.

Certificates are uploaded once to the Certificate Management Service (CAS) under a ``Name``,
which CDN's listing reports as ``CertName`` for the domains bound to it; API Gateway keeps a
``CertificateName`` per custom domain. Both names are derived from the certificate itself,
``alicertd-<certificate name>-<first 12 hex of the SHA-256 fingerprint>``:

- a retry after a crash computes the same name, so the earlier upload is recognised (by name
  *and* serial and fingerprint: since 2026 CAS names may repeat);
- the name alone identifies our certificate. DescribeCdnHttpsDomainList and DescribeApiGroup
  report names but no PEM, so reading 1,000 bindings costs pages, not 1,000 detail calls.

Twelve hex digits are 48 bits: no two certificates of one account will share them. Mapping a
name back to the full fingerprint needs the certificate: :class:`KnownCertificates` holds the
ones this state directory manages (the current chains, by the contract path
``state_dir/certificates/NAME/fullchain.pem``, plus every bundle a provider bound this run).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from providers.base import CertificateBundle

PREFIX = "alicertd-"
FP_LEN = 12

#: CAS certificate names: "Maximum length: 63 characters" (alibabacloud-cas20200407
#: UploadUserCertificateRequest ``Name``); CDN lists a CAS binding under that name.
CAS_NAME_MAX = 63
CDN_NAME_MAX = CAS_NAME_MAX
#: API Gateway CertificateName: Alibaba documents no limit (alibabacloud-cloudapi20160714
#: SetDomainCertificateRequest says only "the name of the SSL certificate"). Our guess, kept
#: conservative: at most 50 characters of ``a-z0-9-``, starting with a letter.
APIGATEWAY_NAME_MAX = 50

_OURS = re.compile(r"^alicertd-(?:[a-z0-9-]*-)?([0-9a-f]{12})$")


def cert_name(name: str, fingerprint: str, max_len: int) -> str:
    """``alicertd-<name>-<fp12>``, the certificate name shortened to fit ``max_len``.

    The fingerprint part is never cut: it is what makes the name unique and recognisable.
    """
    room = max_len - len(PREFIX) - 1 - FP_LEN
    if room < 1:
        raise ValueError(f"a certificate name limit of {max_len} characters is too short")
    short = re.sub(r"[^a-z0-9-]+", "-", name.lower())[:room].strip("-") or "cert"
    return f"{PREFIX}{short}-{fingerprint[:FP_LEN].lower()}"


def fingerprint_prefix(name: str | None) -> str | None:
    """The 12-hex fingerprint prefix when ``name`` is one alicertd made, else None."""
    if not name:
        return None
    match = _OURS.match(name.strip().lower())
    return match.group(1) if match else None


# --------------------------------------------------------------------------- leaf identity


@dataclass(frozen=True)
class Leaf:
    """Who a served certificate is: serial (lowercase hex), SHA-256 fingerprint, expiry."""

    serial: str
    fingerprint: str
    not_after: datetime


def leaf_of_der(der: bytes) -> Leaf:
    cert = x509.load_der_x509_certificate(der)
    return Leaf(serial=format(cert.serial_number, "x"),
                fingerprint=hashlib.sha256(der).hexdigest(),
                not_after=cert.not_valid_after_utc)


def leaf_of_pem(pem: str | bytes) -> Leaf:
    """The first certificate of a PEM chain (the leaf). ValueError when there is none."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate chain ({exc})") from None
    return leaf_of_der(certs[0].public_bytes(Encoding.DER))


def leaf_of_bundle(bundle: CertificateBundle) -> Leaf:
    return Leaf(bundle.serial, bundle.fingerprint, bundle.not_after)


# --------------------------------------------------------------------------- known certificates


class KnownCertificates:
    """Fingerprint prefix -> :class:`Leaf` for the certificates alicertd manages here.

    Loaded lazily, once, from the current bundles the daemon hands over (``ctx.bundles``);
    every bundle a provider binds or verifies is added. A prefix found in an API's list but not here (an older
    certificate of ours, another installation's) is resolved by a detail call instead.
    """

    def __init__(self, bundles: Mapping[str, CertificateBundle] | None):
        self._bundles = bundles
        self._loaded = bundles is None
        self._by_prefix: dict[str, Leaf] = {}
        self._lock = threading.Lock()  # the daemon deploys from several threads

    def add(self, leaf: Leaf) -> None:
        with self._lock:
            self._by_prefix[leaf.fingerprint[:FP_LEN].lower()] = leaf

    def lookup(self, prefix: str) -> Leaf | None:
        with self._lock:
            if not self._loaded:
                self._loaded = True
                self._load()
            return self._by_prefix.get(prefix.lower())

    def _load(self) -> None:
        for bundle in list((self._bundles or {}).values()):
            leaf = leaf_of_bundle(bundle)
            self._by_prefix[leaf.fingerprint[:FP_LEN].lower()] = leaf
