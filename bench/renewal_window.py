"""How often a renewal lands inside the CA's ARI window, across lifetimes (90 d, 45 d, 6 d),
with the default schedule (``interval = "12h"``, ``jitter = "10m"``): before (renewals only
when a regular cycle happens to run) and after (the daemon also wakes at each certificate's
own renewal time). A simulation on alicertd's own planner: no sleeping, no network.

    .venv/bin/python bench/renewal_window.py [--certs N] [--seed S]

The CA's window is Let's Encrypt's (Boulder ``core.RenewalInfoSimple``: an ideal point at two
thirds of the lifetime, half under 10 days, and a window of +/- 1 % of the lifetime around it).
Each certificate gets a random phase against the 12-hour cycle, its own ARI pick (the planner's
seeded uniform draw) and an issuance time of 20-120 s (DNS propagation and the order).
"Inside" means the new certificate was issued before the window closed.
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon import planner  # noqa: E402

INTERVAL = timedelta(hours=12)
JITTER = 600.0
LIFETIMES = {"90 d": timedelta(days=90), "45 d": timedelta(days=45), "6 d": timedelta(days=6)}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def le_window(not_before: datetime, not_after: datetime) -> tuple[datetime, datetime]:
    validity = not_after - not_before
    offset = validity / 2 if validity < timedelta(days=10) else validity / 3
    ideal, margin = not_after - offset, validity / 100
    return ideal - margin, ideal + margin


def simulate(lifetime: timedelta, n: int, rng: random.Random, *, wakes: bool) -> tuple[float, float]:
    inside = 0
    late_hours = []
    for i in range(n):
        nb = T0 + timedelta(seconds=rng.uniform(0, 86400))
        issued = planner.IssuedState(serial=f"{i:x}", not_before=nb, not_after=nb + lifetime,
                                     domains=("example.com",), key_type="ec256", ari_window=le_window(nb, nb + lifetime))
        phase = timedelta(seconds=rng.uniform(0, INTERVAL.total_seconds()))
        sched = planner.renewal_schedule(f"c{i}", issued, None, now=nb)
        # The regular cycles: every 12 h from the daemon's start, each up to 10 min late.
        k = 0
        while True:
            cycle = nb + phase + k * INTERVAL + timedelta(seconds=rng.uniform(0, JITTER))
            if cycle >= sched.at:
                break
            k += 1
        start = cycle
        if wakes:
            start = min(start, planner.wake_time(sched, JITTER, rng))
        done = start + timedelta(seconds=rng.uniform(20, 120))
        end = issued.ari_window[1]
        if done <= end:
            inside += 1
        else:
            late_hours.append((done - end).total_seconds() / 3600)
    late = sorted(late_hours)[len(late_hours) // 2] if late_hours else 0.0
    return 100.0 * inside / n, late


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--certs", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"renewed inside the ARI window, {args.certs} simulated certificates per lifetime, "
          f"interval 12h, jitter 10m")
    print(f"{'lifetime':<10}{'window':>10}{'before':>10}{'after':>10}{'median lateness before':>26}")
    for name, lifetime in LIFETIMES.items():
        width = 2 * lifetime / 100
        before, late = simulate(lifetime, args.certs, rng, wakes=False)
        after, _ = simulate(lifetime, args.certs, rng, wakes=True)
        print(f"{name:<10}{width.total_seconds() / 3600:>9.1f}h{before:>9.1f}%{after:>9.1f}%{late:>24.1f} h")


if __name__ == "__main__":
    main()
