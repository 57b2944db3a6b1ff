"""sd_notify(3) without libsystemd: tell systemd we are ready, alive, reloading or stopping.

The protocol is one datagram of ``KEY=VALUE`` lines to the unix socket in ``$NOTIFY_SOCKET``
(a leading ``@`` means the Linux abstract namespace). Outside systemd (a terminal, Docker) the
variable is unset and every call is a cheap no-op returning False, so callers never branch on
"are we under systemd". A failed send is never an error: the daemon must run the same with or
without a supervisor listening.
"""

from __future__ import annotations

import os
import socket
import time

_TIMEOUT = 2.0


def _address(raw: str) -> str | bytes | None:
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None  # vsock and other forms are not used by service managers we run under


def notify(state: str, *, socket_path: str | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=idle"``) to ``$NOTIFY_SOCKET``; True if sent."""
    address = _address(socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(_TIMEOUT)
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False


def ready(status: str | None = None) -> bool:
    """Startup (or a reload) is complete: with ``Type=notify`` systemd waits for this."""
    return notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def reloading() -> bool:
    """A reload started (``Type=notify-reload`` wants the monotonic time with it); send
    :func:`ready` when done."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog() -> bool:
    """Keep-alive for ``WatchdogSec=``; call at least every :func:`watchdog_interval` seconds."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """A one-line status shown by ``systemctl status``."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog_interval() -> float | None:
    """How often to ping the watchdog: half of ``$WATCHDOG_USEC`` (as sd_watchdog_enabled(3)
    recommends), or None when the watchdog is off or meant for another process
    (``$WATCHDOG_PID`` set to a different pid)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


def _one_line(text: str) -> str:
    return " ".join(text.split())
