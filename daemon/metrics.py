"""Prometheus metrics in the text exposition format (0.0.4), without a client library.

Ten series are all alicertd exports, so a registry of a few dozen lines beats a dependency.
The series answer the questions an alert needs: when does each certificate (and each target's
served copy) expire, when did each last succeed, is the daemon still cycling, how often do
issuance, deployment and failures happen (``provider="acme"`` counts issuance failures), and is
the daemon running the configuration on disk (the reload series, named as Prometheus names its
own ``prometheus_config_last_reload_*``, so existing alert rules carry over).

:class:`MetricsServer` serves ``/metrics`` and ``/healthz`` from a daemon thread; it is off
unless ``[metrics] listen`` is set, and should listen on loopback unless something scrapes it.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and newline (exposition format)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text escapes backslash and newline only."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Metric:
    """One metric family: a name, a type, label names and a value per label set."""

    def __init__(self, name: str, kind: str, help_: str, labels: tuple[str, ...], lock: threading.Lock):
        self.name = name
        self.kind = kind  # "gauge" | "counter"
        self.help = help_
        self.labels = labels
        self._lock = lock
        self._values: dict[tuple[str, ...], float] = {}

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(labels)}")
        return tuple(str(labels[k]) for k in self.labels)

    def set(self, value: float | datetime, **labels: str) -> None:
        """Set a gauge; a datetime is stored as Unix seconds."""
        if self.kind != "gauge":
            raise TypeError(f"{self.name} is a {self.kind}; use inc()")
        if isinstance(value, datetime):
            value = value.timestamp()
        with self._lock:
            self._values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (>= 0 for counters; ``inc(0, ...)`` makes a series visible at 0)."""
        if self.kind == "counter" and amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def remove(self, **labels: str) -> None:
        """Forget one series (a certificate or target removed from the config)."""
        with self._lock:
            self._values.pop(self._key(labels), None)

    def get(self, **labels: str) -> float | None:
        with self._lock:
            return self._values.get(self._key(labels))

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            items = sorted(self._values.items())
        for key, value in items:
            if self.labels:
                labels = ",".join(f'{k}="{escape_label(v)}"' for k, v in zip(self.labels, key, strict=True))
                out.append(f"{self.name}{{{labels}}} {format_value(value)}")
            else:
                out.append(f"{self.name} {format_value(value)}")
        return out


class Registry:
    """Thread-safe set of metric families, rendered in registration order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, Metric] = {}

    def _add(self, name: str, kind: str, help_: str, labels: tuple[str, ...]) -> Metric:
        if name in self._metrics:
            raise ValueError(f"metric {name} registered twice")
        metric = Metric(name, kind, help_, tuple(labels), self._lock)
        self._metrics[name] = metric
        return metric

    def gauge(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> Metric:
        return self._add(name, "gauge", help_, labels)

    def counter(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> Metric:
        if not name.endswith("_total"):
            raise ValueError("counter names end in _total")
        return self._add(name, "counter", help_, labels)

    def get(self, name: str) -> Metric | None:
        return self._metrics.get(name)

    def render(self) -> str:
        lines: list[str] = []
        for metric in list(self._metrics.values()):
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class DaemonMetrics:
    """alicertd's own series, registered on one :class:`Registry` (``.registry``)."""

    def __init__(self, registry: Registry | None = None):
        r = self.registry = registry or Registry()
        self.certificate_not_after = r.gauge(
            "alicertd_certificate_not_after_seconds",
            "Expiry (notAfter) of the current certificate, in Unix seconds.", ("certificate",))
        self.target_not_after = r.gauge(
            "alicertd_target_not_after_seconds",
            "Expiry of the certificate a deploy target served when last checked, in Unix seconds.",
            ("certificate", "provider", "target"))
        self.last_success = r.gauge(
            "alicertd_last_success_timestamp_seconds",
            "When the certificate was last fully valid and deployed everywhere, in Unix seconds.",
            ("certificate",))
        self.last_cycle = r.gauge(
            "alicertd_last_cycle_timestamp_seconds", "When the last cycle finished, in Unix seconds.")
        self.issuances = r.counter(
            "alicertd_issuances_total", "Certificates issued by the ACME server.", ("certificate",))
        self.deployments = r.counter(
            "alicertd_deployments_total", "Certificates bound to a deploy target.", ("provider",))
        self.failures = r.counter(
            "alicertd_failures_total",
            'Failed operations, by provider ("acme" for issuance).', ("provider",))
        self.reload_successful = r.gauge(
            "alicertd_config_last_reload_successful",
            "1 when the last configuration reload (SIGHUP) was applied, 0 when it was refused.")
        self.reload_success_time = r.gauge(
            "alicertd_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded (the daemon's start or a reload), in Unix seconds.")
        self.reloads_refused = r.counter(
            "alicertd_config_reloads_refused_total",
            "Configuration reloads refused; the daemon kept running on its previous configuration.")

    def render(self) -> str:
        return self.registry.render()


def _health_from(registry: Registry) -> dict:
    metric = registry.get("alicertd_last_cycle_timestamp_seconds")
    ts = metric.get() if metric is not None else None
    last = None
    if ts is not None:
        last = datetime.fromtimestamp(ts, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"status": "ok", "last_cycle": last}


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"`` or ``":9464"`` (all interfaces) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {listen!r} is not host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


class MetricsServer:
    """``GET /metrics`` (the registry) and ``GET /healthz`` (200, ``{"status", "last_cycle"}``).

    ``listen`` is ``host:port``; port 0 picks a free port, readable as :attr:`port` after
    :meth:`start`. ``health`` overrides the /healthz body.
    """

    def __init__(self, registry: Registry | DaemonMetrics, listen: str = "127.0.0.1:9464", *,
                 health: Callable[[], dict] | None = None):
        self.registry = registry.registry if isinstance(registry, DaemonMetrics) else registry
        self.host, self._port = parse_listen(listen)
        self.health = health or (lambda: _health_from(self.registry))
        self._server: Any = None  # the ThreadingHTTPServer, once started
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises OSError when the address is taken."""
        # http.server (and what it pulls in) only for a daemon that serves: the registry itself
        # lives in every daemon, and idle RSS counts (bench/footprint.py).
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "alicertd"
            sys_version = ""

            def do_GET(self):  # noqa: N802 - http.server API
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, outer.registry.render().encode(), CONTENT_TYPE)
                elif path == "/healthz":
                    doc = outer.health()
                    # Unhealthy is an HTTP failure, so that `curl -f` (Docker HEALTHCHECK) sees it.
                    self._reply(200 if doc.get("status", "ok") == "ok" else 503, json.dumps(doc).encode(),
                                "application/json")
                else:
                    self._reply(404, b"not found\n", "text/plain; charset=utf-8")

            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # scrapes every 15 s would drown the journal
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in outer.host else socket.AF_INET

        self._server = Server((self.host, self._port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,),
                                        name="alicertd-metrics", daemon=True)
        self._thread.start()
        self._port = self._server.server_address[1]

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None
