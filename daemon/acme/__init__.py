"""ACME v2 (RFC 8555) on ``requests`` + ``cryptography``.

Modules, one concern each: ``problems`` (error types), ``jws`` (signatures, thumbprints, key
authorizations, EAB), ``transport`` (HTTP, nonces, retries), ``directory``, ``resources`` (the
typed RFC objects and their parsing), ``session`` (key, ``kid`` and signed POSTs the verbs share),
the verbs by concern — ``account_management`` (§7.3), ``orders`` (§7.4–§7.5) with ``polling``,
``revocation`` (§7.6), ``ari`` (RFC 9773 renewal windows) — assembled into one ``AcmeClient`` by
``client``; ``issue`` (one issuance, top to bottom) and ``account`` (ensure an account exists
for a configured key).
"""

from daemon.acme.client import (
    Account,
    AcmeClient,
    Authorization,
    CertificateChain,
    Challenge,
    ExternalAccountBinding,
    Identifier,
    Order,
    RenewalInfo,
)
from daemon.acme.issue import IssuedCertificate, issue_certificate
from daemon.acme.problems import AcmeConfigError, AcmeError, AcmeProtocolError

__all__ = [
    "Account", "AcmeClient", "AcmeConfigError", "AcmeError", "AcmeProtocolError", "Authorization",
    "CertificateChain", "Challenge", "ExternalAccountBinding", "Identifier", "IssuedCertificate", "Order",
    "RenewalInfo", "issue_certificate",
]
