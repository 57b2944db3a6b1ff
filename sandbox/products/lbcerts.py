"""What the three load balancers (ALB, NLB, CLB) share in the sandbox: CAS certificate ids as the
listeners name them, their lookup in the account's CAS store, and the SNI choice of the edge.

ALB and NLB name a CAS certificate ``<CertId>-<CAS region>`` (the ALB model's
AssociateAdditionalCertificatesWithListenerRequestCertificates: "The globally unique certificate
ID, which ends with a region ID, for example, 1011****-cn-hangzhou"). The CAS store itself is
the CAS product's (``World.certs_by_id``, every region; sandbox/products/cas.py); it is reached
only through :func:`cas_certificate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..certs import CertInfo

_CAS_ID = re.compile(r"^(\d+)-([a-z]{2,}(?:-[a-z0-9]+)+)$")


@dataclass(frozen=True)
class LbCert:
    """A CAS certificate as a listener serves it."""

    cert_id: str  # "<CertId>-<region>"
    chain_pem: str
    key_pem: str
    info: CertInfo


def split_cas_id(cert_id: str) -> tuple[int, str] | None:
    m = _CAS_ID.match(cert_id or "")
    return (int(m.group(1)), m.group(2)) if m else None


def cas_certificate(world, cert_id: str) -> LbCert | None:
    """The CAS certificate ``<CertId>-<region>`` of this account, or None."""
    parts = split_cas_id(cert_id)
    if parts is None:
        return None
    number, region = parts
    cert = world.certs_by_id.get(number)
    if cert is None or getattr(cert, "region", "cn-hangzhou") != region:
        return None  # another region's CAS does not hold it: the id names the region
    return LbCert(cert_id=cert_id, chain_pem=cert.chain_pem, key_pem=cert.key_pem, info=cert.info)

def listener_id_of(world, cert_id: int) -> str | None:
    """CAS certificate ``cert_id`` of this account as listeners name it (``<CertId>-<region>``),
    or None when CAS holds no such certificate (for the CAS product's ``cas_users`` hooks)."""
    cert = world.certs_by_id.get(cert_id)
    return None if cert is None else f"{cert_id}-{getattr(cert, 'region', 'cn-hangzhou')}"


def best_for_sni(server_name: str, certs: list[LbCert]) -> LbCert | None:
    """The certificate a listener picks for ``server_name``: an exact SAN first, then a
    wildcard SAN one label up (how TLS servers with several certificates choose)."""
    name = server_name.lower().rstrip(".")
    for c in certs:
        if name in (n.lower() for n in c.info.dns_names):
            return c
    for c in certs:
        if c.info.covers(name):
            return c
    return None


def fixture_number(item, key: str, default, path: str, problems: list[str], *, integer: bool = False):
    """A non-negative number from a fixture table (problems reported by path, never raised)."""
    value = item.get(key, default)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < 0:
        problems.append(f"{path}.{key}: must be a non-negative {'integer' if integer else 'number'}")
        return default
    return value

