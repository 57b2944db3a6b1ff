"""ACME Renewal Information (RFC 9773): the certificate id and the choice of a renewal time.

Pure functions; the request itself is ``AcmeClient.renewal_info``.
"""

from __future__ import annotations

import datetime as dt
import random

from daemon.keys import ari_cert_id

__all__ = ["ari_cert_id", "choose_renewal_time"]


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
