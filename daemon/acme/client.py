"""An ACME v2 client whose methods are the verbs of RFC 8555 (and RFC 9773 for ARI).

Each method is one request (or one poll loop) and returns a typed, frozen resource
(``resources.py``). The verbs live in one module per concern — ``account_management`` (§7.3),
``orders`` (§7.4–§7.5, polling in ``polling``), ``revocation`` (§7.6), ``ari`` (RFC 9773) — on a
shared ``session`` base; this module only assembles them, so callers keep one object and one
import. Signing, nonces, retries and problem documents live in ``transport.py``; the one flow
that strings the verbs together into an issuance is ``issue.py``.

Not thread-safe: use one AcmeClient per thread (they may share an account key and URL; the CA
serialises nothing per account that would make that unsafe).
"""

from __future__ import annotations

from daemon.acme.account_management import AccountManagement
from daemon.acme.ari import RenewalInfoQuery
from daemon.acme.orders import Orders
from daemon.acme.polling import MIN_POLL_WAIT, POLL_INTERVALS
from daemon.acme.resources import (
    Account,
    Authorization,
    CertificateChain,
    Challenge,
    ExternalAccountBinding,
    Identifier,
    Order,
    RenewalInfo,
)
from daemon.acme.revocation import REVOCATION_REASONS, Revocation

# Re-exported: callers and tests import these from here.
__all__ = [
    "MIN_POLL_WAIT", "POLL_INTERVALS", "REVOCATION_REASONS", "Account", "AcmeClient", "Authorization",
    "CertificateChain", "Challenge", "ExternalAccountBinding", "Identifier", "Order", "RenewalInfo",
]


class AcmeClient(AccountManagement, Orders, Revocation, RenewalInfoQuery):
    """One account at one CA.

    ``account_key`` signs every request; ``account_url`` (the ``kid``) is set by
    ``new_account``/``find_account`` or given when known. ``clock`` (monotonic seconds) and
    ``sleep`` are injectable; every deadline argument is a ``clock()`` value.
    """
