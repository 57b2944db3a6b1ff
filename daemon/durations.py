"""Durations as the config writes them: ``30s``, ``5m``, ``12h``, ``7d`` (several parts may be
combined, largest first: ``1h30m``)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"^(?:\d+[smhd])+$")


def parse_duration(value: object) -> float:
    """Seconds in ``value``; ValueError with a reason for anything else."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration string such as \"30s\", \"5m\", \"12h\" or \"7d\", "
                         f"got {value!r}")
    text = value.strip()
    if not _WHOLE.match(text):
        raise ValueError(f"invalid duration {value!r} (use a number and a unit s, m, h or d, "
                         f"e.g. \"30s\", \"5m\", \"12h\", \"7d\")")
    units = [u for _, u in _PART.findall(text)]
    if len(set(units)) != len(units) or units != sorted(units, key=lambda u: -_UNITS[u]):
        raise ValueError(f"invalid duration {value!r} (each unit once, largest first)")
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
