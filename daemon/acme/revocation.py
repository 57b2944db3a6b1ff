"""revokeCert (RFC 8555 §7.6): the one verb that may be signed by a key other than the account's.

Apart from the order verbs because it answers a different question (a certificate already
issued, possibly by another account or a lost one) and because "already revoked" is success
here, not an error: a retried revocation whose first answer was lost must not fail.
"""

from __future__ import annotations

import logging
from typing import Any

from daemon.acme import jws
from daemon.acme.problems import AlreadyRevoked
from daemon.acme.session import AcmeSession
from daemon.keys import PrivateKey

log = logging.getLogger("daemon.acme.client")  # the logger these messages always had

# RFC 5280 §5.3.1 revocation reasons ACME accepts (RFC 8555 §7.6).
REVOCATION_REASONS = {
    "unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
    "cessationOfOperation": 5,
}


class Revocation(AcmeSession):
    """§7.6; mixed into ``AcmeClient``."""

    def revoke_certificate(self, cert_der: bytes, reason: int | str | None = None,
                           key: PrivateKey | None = None) -> bool:
        """revokeCert. Signed by the account (``kid``) or, with ``key``, by the certificate's
        own key (``jwk``), which works even without the account that ordered it. Returns True
        when this request revoked it, False when it was already revoked (``alreadyRevoked``,
        e.g. the answer to an earlier attempt was lost): both mean "revoked"."""
        payload: dict[str, Any] = {"certificate": jws.b64url(cert_der)}
        if reason is not None:
            payload["reason"] = REVOCATION_REASONS[reason] if isinstance(reason, str) else int(reason)
        url = self.directory.revoke_cert
        try:
            if key is None:
                self._post(url, payload)
            else:
                self.transport.post(url, payload, key=key, kid=None)
        except AlreadyRevoked:
            # A retried revocation (the first answer was lost) or one done elsewhere: the
            # certificate is revoked, which is what was asked.
            log.info("certificate already revoked at %s", url)
            return False
        return True
