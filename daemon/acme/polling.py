"""Polling an ACME resource until it settles, against a deadline (RFC 8555 §7.5.1, §7.4).

One loop for orders and authorizations alike, so the schedule, the Retry-After rule and the
deadline are decided once: a front-loaded interval table (Pebble and Let's Encrypt usually
validate within a second), lengthened but never shortened by the server's Retry-After, and cut at
the deadline, where one last fetch happens before AcmeTimeout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from daemon.acme.problems import AcmeTimeout
from daemon.acme.transport import Response


class _Settling(Protocol):
    status: str


T = TypeVar("T", bound=_Settling)

# Seconds between polls when the server sends no Retry-After: front-loaded (Pebble and Let's
# Encrypt usually validate within a second), then settling at the last value.
POLL_INTERVALS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0)
MIN_POLL_WAIT = 0.05  # seconds: the floor under every poll wait, whatever Retry-After says


def poll(fetch: Callable[[], tuple[T, Response]], done: Callable[[T], bool], deadline: float, what: str, *,
         clock: Callable[[], float], sleep: Callable[[float], None], intervals: Sequence[float]) -> T:
    """Fetch until ``done``; between fetches wait the server's Retry-After, else the next
    ``intervals`` step, but never past ``deadline`` (a ``clock()`` value; one last fetch
    happens there). ``what`` names the resource in the timeout message."""
    for attempt in range(1_000_000):
        resource, response = fetch()
        if done(resource):
            return resource
        now = clock()
        if now >= deadline:
            raise AcmeTimeout(f"{what} is still {resource.status} at the deadline")
        step = intervals[min(attempt, len(intervals) - 1)]
        # Retry-After may lengthen our wait, never shorten it below the schedule: a
        # "Retry-After: 0" (or a date in the past) must not turn the poll into a busy loop.
        delay = max(step, MIN_POLL_WAIT, response.retry_after or 0.0)
        sleep(max(0.0, min(delay, deadline - now)))
    raise AssertionError("unreachable")  # pragma: no cover
