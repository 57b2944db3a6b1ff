"""Fault injection, per action (or ``*`` for every action without its own rule).

Why it exists: the SDK retries nothing for Alidns/CDN/CloudAPI, so the daemon's own backoff,
its handling of dropped connections and of 200-with-Code bodies can only be tested against a
server that misbehaves on purpose, reproducibly. Each rule owns a ``random.Random(seed)`` and
draws exactly one number per call, so a seeded sequence of calls meets the same faults every
run. ``script`` lists outcomes consumed one per call before any probability is looked at, for
tests that need "fail twice, then succeed".

Outcomes: ``throttle`` (400 Throttling.User), ``unavailable`` (503 ServiceUnavailable),
``internal`` (500 InternalError), ``drop`` (close the socket before doing anything),
``drop_after`` (perform the action, then close the socket without answering),
``malformed`` (200 with a non-JSON body), ``error_200`` (200 whose JSON carries ``Code``),
``ok`` (script only: no fault). ``latency`` seconds are added to every call the rule covers.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

OUTCOMES = ("drop", "throttle", "unavailable", "internal", "malformed", "error_200", "drop_after")
SCRIPT_OUTCOMES = OUTCOMES + ("ok",)


class FaultConfigError(ValueError):
    pass


@dataclass
class FaultRule:
    probabilities: dict[str, float] = field(default_factory=dict)
    latency: float = 0.0
    seed: int | None = None
    script: list[str] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def draw(self) -> str | None:
        if self.script:
            outcome = self.script.pop(0)
            return None if outcome == "ok" else outcome
        if not any(self.probabilities.values()):
            return None
        u = self.rng.random()
        acc = 0.0
        for name in OUTCOMES:
            acc += self.probabilities.get(name, 0.0)
            if u < acc:
                return name
        return None

    def describe(self) -> dict:
        d = {k: v for k, v in self.probabilities.items() if v}
        d.update({"latency": self.latency, "seed": self.seed, "script": list(self.script)})
        return d


def make_rule(*, latency: float = 0.0, seed: int | None = None, script=None, **probs) -> FaultRule:
    unknown = set(probs) - set(OUTCOMES)
    if unknown:
        raise FaultConfigError(f"unknown fault kind(s): {', '.join(sorted(unknown))}; "
                               f"known: {', '.join(OUTCOMES)}, latency, seed, script")
    clean: dict[str, float] = {}
    for name, p in probs.items():
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise FaultConfigError(f"{name}: probability must be a number") from None
        if not 0.0 <= p <= 1.0:
            raise FaultConfigError(f"{name}: probability must be between 0 and 1")
        clean[name] = p
    if sum(clean.values()) > 1.0 + 1e-9:
        raise FaultConfigError("fault probabilities add up to more than 1")
    try:
        latency = float(latency or 0.0)
    except (TypeError, ValueError):
        raise FaultConfigError("latency must be a number of seconds") from None
    if latency < 0:
        raise FaultConfigError("latency must not be negative")
    script = list(script or [])
    for s in script:
        if s not in SCRIPT_OUTCOMES:
            raise FaultConfigError(f"script: unknown outcome {s!r}")
    return FaultRule(probabilities=clean, latency=latency, seed=seed, script=script,
                     rng=random.Random(seed))


class FaultTable:
    """Rules by action name; ``*`` applies to actions with no rule of their own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, FaultRule] = {}

    def set(self, action: str = "*", **kwargs) -> dict:
        rule = make_rule(**kwargs)
        with self._lock:
            self._rules[action or "*"] = rule
        return rule.describe()

    def clear(self, action: str | None = None) -> None:
        with self._lock:
            if action is None:
                self._rules.clear()
            else:
                self._rules.pop(action, None)

    def pick(self, action: str) -> tuple[str | None, float]:
        """(outcome or None, latency seconds) for one call of ``action``."""
        with self._lock:
            rule = self._rules.get(action) or self._rules.get("*")
            if rule is None:
                return None, 0.0
            return rule.draw(), rule.latency

    def describe(self) -> dict:
        with self._lock:
            return {a: r.describe() for a, r in self._rules.items()}
