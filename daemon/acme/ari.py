"""ACME Renewal Information (RFC 9773): the certificate id, the renewalInfo request, and the
choice of a renewal time.

``choose_renewal_time`` is a pure function; ``RenewalInfoQuery.renewal_info`` is the one GET
(unsigned, §4.1), mixed into ``AcmeClient``. Both here so that everything ARI is in one place.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping

from cryptography import x509

from daemon.acme.problems import AcmeProtocolError
from daemon.acme.resources import RenewalInfo, parse_time
from daemon.acme.session import AcmeSession
from daemon.keys import ari_cert_id

__all__ = ["RenewalInfoQuery", "ari_cert_id", "choose_renewal_time"]


def choose_renewal_time(window_start: dt.datetime, window_end: dt.datetime,
                        rng: random.Random | None = None) -> dt.datetime:
    """A time drawn uniformly from [window_start, window_end] (RFC 9773 §4.2: "select a
    uniform random time within the suggested window"), so that many clients renewing the same
    batch of certificates spread their load over the window."""
    if window_end < window_start:
        raise ValueError(f"renewal window ends ({window_end.isoformat()}) before it starts "
                         f"({window_start.isoformat()})")
    rng = rng or random.Random()
    span = (window_end - window_start).total_seconds()
    return window_start + dt.timedelta(seconds=rng.uniform(0.0, span))


class RenewalInfoQuery(AcmeSession):
    """The renewalInfo request; mixed into ``AcmeClient``."""

    def renewal_info(self, cert: str | bytes | x509.Certificate) -> RenewalInfo | None:
        """The CA's suggested renewal window for ``cert``; None when the CA has no ARI."""
        base = self.directory.renewal_info
        if not base:
            return None
        url = f"{base.rstrip('/')}/{ari_cert_id(cert)}"
        response = self.transport.get(url)
        data = response.json()
        window = data.get("suggestedWindow")
        if not isinstance(window, Mapping):
            raise AcmeProtocolError("renewalInfo has no suggestedWindow", url=url, status=response.status)
        start, end = parse_time(window.get("start")), parse_time(window.get("end"))
        if start is None or end is None or end < start:
            raise AcmeProtocolError(f"renewalInfo has an unusable window {dict(window)!r}", url=url,
                                    status=response.status)
        explanation = data.get("explanationURL")
        return RenewalInfo(start=start, end=end, retry_after=response.retry_after,
                           explanation_url=explanation if isinstance(explanation, str) else None)
