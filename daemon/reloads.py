"""A configuration reload's outcome, in the shape every surface shows it.

A refused reload leaves the daemon running on its previous configuration while the file on
disk says something else: the operator believes a change is live that is not. A journal line
alone is silent to everything that watches the daemon, so the service keeps the outcome and
shows it wherever a failed cycle shows: /healthz (503 until a later reload succeeds), the
``alicertd_config_*`` metrics, one ``failure`` notification, sd_notify's STATUS, and
``alicertd status`` through ``state_dir/reload.json`` (removed by a successful reload or a start).

The reasons are the loader's one-line errors, but they leave the host (a chat robot, a scraper),
so a URL in them is cut to scheme and host: a robot's webhook URL carries its token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon.outcomes import rfc3339

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


@dataclass(frozen=True)
class ReloadOutcome:
    """The last load of the configuration: the daemon's start (ok) or a SIGHUP."""

    ok: bool
    at: datetime
    reasons: tuple[str, ...] = ()

    def refused(self) -> dict[str, Any] | None:
        """``reload_refused`` of /healthz and ``status --json``: None unless refused."""
        return None if self.ok else {"at": rfc3339(self.at), "reasons": list(self.reasons)}


def public_reason(line: str) -> str:
    """``line`` without what must not leave the host: URLs cut to scheme and host, and every
    registered secret redacted."""
    from daemon.logs import redact
    from daemon.notify import redact_url
    return redact(_URL.sub(lambda m: redact_url(m.group(0)), " ".join(line.split())))


def load_error_line(path: Path | str, exc: BaseException) -> str:
    """The one line for a loader failure that is not a ConfigError (an OSError, a bug)."""
    from daemon.errors import describe_error
    known, text = describe_error(exc)
    return f"{path}: cannot load the configuration: {text}" + ("" if known else " (unexpected)")


def refused_event(outcome: ReloadOutcome):
    from daemon.notify import Event
    return Event("failure", None, "alicertd: configuration reload refused",
                 "The daemon keeps running on its previous configuration:\n" + "\n".join(outcome.reasons),
                 {"reasons": list(outcome.reasons), "at": rfc3339(outcome.at)})
