"""Tables for the pure renewal / redeploy decisions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from daemon import planner as p
from daemon.config import CertificateConfig
from providers.base import Binding

UTC = UTC
T0 = datetime(2026, 1, 1, tzinfo=UTC)          # not_before
T_END = T0 + timedelta(days=90)                 # not_after
DAY = timedelta(days=1)
CERT = CertificateConfig(name="www", domains=("example.com", "*.example.com"), key_type="ec256")


def issued(**kw) -> p.IssuedState:
    base = dict(serial="0a1b", not_before=T0, not_after=T_END,
                domains=("*.example.com", "example.com"), key_type="ec256")
    base.update(kw)
    return p.IssuedState(**base)


class FixedRng(random.Random):
    def __init__(self, u: float):
        super().__init__(0)
        self.u = u

    def random(self) -> float:  # noqa: D401 - test stub
        return self.u


ARI = (T0 + 50 * DAY, T0 + 52 * DAY)
MARGIN = p.ISSUANCE_MARGIN
FAIL = p.FailureState(failures=2, last_failure=T0 + 70 * DAY, next_attempt=T0 + 70 * DAY + timedelta(minutes=20))

# (id, issued, renew_before_days, force, now, failure, rng, due, reason, not_before_attempt)
CASES = [
    ("no chain", None, None, False, T0, None, None, True, "no certificate", None),
    ("no chain, backing off", None, None, False, FAIL.last_failure, FAIL, None,
     False, p.backing_off_reason(FAIL.next_attempt), FAIL.next_attempt),
    ("no chain, backoff over", None, None, False, FAIL.next_attempt, FAIL, None, True, "no certificate", None),
    ("forced", issued(), None, True, T0 + DAY, None, None, True, "forced", None),
    ("forced ignores backoff", issued(), None, True, FAIL.last_failure, FAIL, None, True, "forced", None),
    ("expired exactly at not_after", issued(), None, False, T_END, None, None, True, "expired", None),
    ("expired ignores backoff", issued(not_after=FAIL.last_failure), None, False, FAIL.last_failure, FAIL,
     None, True, "expired", None),
    ("domains changed", issued(domains=("example.com",)), None, False, T0 + DAY, None, None,
     True, "domains changed", None),
    ("domain order/case is not a change", issued(domains=("EXAMPLE.com.", "*.example.com")), None, False,
     T0 + DAY, None, None, False, "not due", T0 + 60 * DAY),
    ("key type changed", issued(key_type="rsa2048"), None, False, T0 + DAY, None, None,
     True, "key type changed", None),
    ("key type changed, backing off", issued(key_type="rsa2048"), None, False, FAIL.last_failure, FAIL, None,
     False, p.backing_off_reason(FAIL.next_attempt), FAIL.next_attempt),
    # fixed window: 30 days before not_after = day 60
    ("fixed window, one second early", issued(), 30, False, T_END - 30 * DAY - timedelta(seconds=1), None, None,
     False, "not due", T_END - 30 * DAY),
    ("fixed window, at the boundary", issued(), 30, False, T_END - 30 * DAY, None, None,
     True, "inside renewal window (30 days left)", None),
    ("fixed window, days left floored", issued(), 30, False, T_END - 10 * DAY - timedelta(hours=5), None, None,
     True, "inside renewal window (10 days left)", None),
    ("fixed window wins over ARI", issued(ari_window=(T0 + 80 * DAY, T0 + 85 * DAY)), 30, False, T0 + 61 * DAY,
     None, None, True, "inside renewal window (29 days left)", None),
    ("ended ARI window wins over fixed", issued(ari_window=(T0 + 10 * DAY, T0 + 11 * DAY)), 30, False,
     T0 + 12 * DAY, None, None, True, "ARI window", None),
    ("fixed window, backing off", issued(), 30, False, FAIL.last_failure, FAIL, None,
     False, p.backing_off_reason(FAIL.next_attempt), FAIL.next_attempt),
    # ARI window with a pinned pick
    ("ARI pick at start, before", issued(ari_window=ARI), None, False, ARI[0] - timedelta(seconds=1), None,
     FixedRng(0.0), False, "not due", ARI[0]),
    ("ARI pick at start, at", issued(ari_window=ARI), None, False, ARI[0], None, FixedRng(0.0), True, "ARI window", None),
    # mid-window of the usable window: the CA's, less 10 minutes at its end for the order itself
    ("ARI pick mid-window, before", issued(ari_window=ARI), None, False, ARI[0] + DAY - MARGIN / 2
     - timedelta(seconds=1), None, FixedRng(0.5), False, "not due", ARI[0] + DAY - MARGIN / 2),
    ("ARI pick mid-window, at", issued(ari_window=ARI), None, False, ARI[0] + DAY - MARGIN / 2, None, FixedRng(0.5),
     True, "ARI window", None),
    ("ARI beats last third", issued(ari_window=(T0 + 70 * DAY, T0 + 71 * DAY)), None, False, T0 + 65 * DAY, None,
     FixedRng(0.0), False, "not due", T0 + 70 * DAY),
    ("ARI window in the past", issued(ari_window=(T0 + DAY, T0 + 2 * DAY)), None, False, T0 + 3 * DAY, None, None,
     True, "ARI window", None),
    # last third of a 90-day lifetime: day 60
    ("last third, before", issued(), None, False, T0 + 60 * DAY - timedelta(seconds=1), None, None,
     False, "not due", T0 + 60 * DAY),
    ("last third, at", issued(), None, False, T0 + 60 * DAY, None, None, True, "inside renewal window (30 days left)", None),
    ("last third, one day left", issued(), None, False, T_END - timedelta(hours=23), None, None,
     True, "inside renewal window (0 days left)", None),
    ("not due ignores failure", issued(), None, False, T0 + DAY, FAIL, None, False, "not due", T0 + 60 * DAY),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_plan_certificate(case):
    _, st, rbd, force, now, failure, rng, due, reason, nba = case
    d = p.plan_certificate(CERT, st, renew_before_days=rbd, force=force, now=now, failure=failure, rng=rng)
    assert d == p.CertDecision("www", due, reason, nba, backing_off=reason.startswith("backing off"))


def test_ari_pick_is_stable_and_inside_window():
    st = issued(ari_window=ARI)
    picks = {p.renewal_time("www", st, None)[0] for _ in range(5)}
    assert len(picks) == 1
    (pick,) = picks
    assert ARI[0] <= pick <= ARI[1]
    # another serial (a new certificate) or another window moves it
    assert p.renewal_time("www", issued(ari_window=ARI, serial="ff"), None)[0] != pick
    assert p.renewal_time("api", st, None)[0] != pick


def test_ari_picks_spread_over_window():
    window = (T0, T0 + 100 * DAY)
    picks = [p.ari_pick(window, p.ari_rng("c", f"{i:x}", window)) for i in range(400)]
    fractions = sorted((x - T0) / (100 * DAY) for x in picks)
    assert fractions[0] < 0.05 and fractions[-1] > 0.95
    assert 0.4 < fractions[200] < 0.6


def test_decision_is_deterministic_across_cycles():
    st = issued(ari_window=ARI)
    decisions = {p.plan_certificate(CERT, st, renew_before_days=None, force=False, now=ARI[0] + DAY)
                 for _ in range(3)}
    assert len(decisions) == 1


@pytest.mark.parametrize(
    "st, now, expected",
    [
        (None, T0, False),
        (issued(), T0, True),
        (issued(ari_window=ARI), T0, True),
        (issued(ari_window=ARI, ari_retry_after=T0 + DAY), T0, False),
        (issued(ari_window=ARI, ari_retry_after=T0 + DAY), T0 + DAY, True),
    ],
)
def test_ari_refresh_due(st, now, expected):
    assert p.ari_refresh_due(st, now) is expected


@pytest.mark.parametrize(
    "prev_failures, cap, expected_delay",
    [
        (None, 43200, timedelta(minutes=10)),
        (1, 43200, timedelta(minutes=20)),
        (2, 43200, timedelta(minutes=40)),
        (5, 43200, timedelta(minutes=320)),
        (6, 43200, timedelta(hours=10, minutes=40)),
        (7, 43200, timedelta(hours=12)),          # capped at the interval
        (1000, 43200, timedelta(hours=12)),       # no overflow
        (None, 300, timedelta(minutes=5)),        # a cap below the first step wins
    ],
)
def test_backoff_after_failure(prev_failures, cap, expected_delay):
    now = T0 + 70 * DAY
    prev = None if prev_failures is None else p.FailureState(prev_failures, now - DAY, now - DAY)
    st = p.backoff_after_failure(prev, now, cap)
    assert st.failures == (prev_failures or 0) + 1
    assert st.last_failure == now
    assert st.next_attempt - now == expected_delay


CUR_FP, CUR_SERIAL = "aa" * 32, "0c"
OLD_FP, OLD_SERIAL = "bb" * 32, "0b"
OTHER_FP = "cc" * 32

# (id, binding, last_fp, last_serial, due, reason)
TARGET_CASES = [
    ("empty, never deployed", Binding("none"), None, None, True, "never deployed"),
    ("foreign cert, never deployed", Binding("ok", fingerprint=OTHER_FP), None, None, True, "never deployed"),
    ("up to date by fingerprint", Binding("ok", fingerprint=CUR_FP.upper()), OLD_FP, None, False, "up to date"),
    ("up to date by serial", Binding("ok", serial=CUR_SERIAL), None, OLD_SERIAL, False, "up to date"),
    ("up to date, first deploy recorded", Binding("ok", fingerprint=CUR_FP), CUR_FP, None, False, "up to date"),
    ("rollout pending", Binding("pending", fingerprint=CUR_FP), CUR_FP, None, False, "rollout pending"),
    ("rollout failed", Binding("error", fingerprint=CUR_FP), CUR_FP, None, True, "rollout failed"),
    ("older cert", Binding("ok", fingerprint=OLD_FP), OLD_FP, None, True, "serves an older certificate"),
    ("older cert by serial", Binding("ok", serial=OLD_SERIAL), None, OLD_SERIAL, True,
     "serves an older certificate"),
    ("drift: replaced", Binding("ok", fingerprint=OTHER_FP), OLD_FP, None, True, "changed by someone else (drift)"),
    ("drift: removed", Binding("none"), CUR_FP, None, True, "changed by someone else (drift)"),
    ("drift: replaced, by serial", Binding("ok", serial="99"), None, OLD_SERIAL, True,
     "changed by someone else (drift)"),
    ("unreadable", Binding("unknown"), OLD_FP, None, True, "state unknown"),
    ("no identity exposed", Binding("ok", cert_name="x"), OLD_FP, None, True, "state unknown"),
]


@pytest.mark.parametrize("case", TARGET_CASES, ids=[c[0] for c in TARGET_CASES])
def test_plan_target(case):
    _, binding, last_fp, last_serial, due, reason = case
    d = p.plan_target(binding, serial=CUR_SERIAL, fingerprint=CUR_FP,
                      last_deployed_fingerprint=last_fp, last_deployed_serial=last_serial)
    assert d == p.TargetDecision(due, reason)


def test_format_time():
    assert p.format_time(datetime(2026, 11, 26, 10, 0, 0, 123, tzinfo=UTC)) == "2026-11-26T10:00:00Z"
    cst = timezone(timedelta(hours=8))
    assert p.format_time(datetime(2026, 11, 26, 18, 0, tzinfo=cst)) == "2026-11-26T10:00:00Z"
