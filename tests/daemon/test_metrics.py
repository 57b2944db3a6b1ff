"""Exposition format, exactly, and a scrape over HTTP."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from daemon.metrics import DaemonMetrics, MetricsServer, Registry, parse_listen


def test_render_exact():
    m = DaemonMetrics()
    m.certificate_not_after.set(datetime(2026, 2, 24, 10, 0, tzinfo=UTC), certificate="www")
    m.certificate_not_after.set(1767225600, certificate="api")
    m.target_not_after.set(1767225600, certificate="www", provider="cdn", target='img."x"\\y\nz')
    m.last_cycle.set(1764151200.25)
    m.issuances.inc(certificate="www")
    m.issuances.inc(certificate="www")
    m.deployments.inc(0, provider="cdn")
    m.failures.inc(provider="acme")
    m.reload_successful.set(0)
    m.reload_success_time.set(1764151100)
    m.reloads_refused.inc()
    assert m.render() == """\
# HELP alicertd_certificate_not_after_seconds Expiry (notAfter) of the current certificate, in Unix seconds.
# TYPE alicertd_certificate_not_after_seconds gauge
alicertd_certificate_not_after_seconds{certificate="api"} 1767225600
alicertd_certificate_not_after_seconds{certificate="www"} 1771927200
# HELP alicertd_target_not_after_seconds Expiry of the certificate a deploy target served when last checked, in Unix seconds.
# TYPE alicertd_target_not_after_seconds gauge
alicertd_target_not_after_seconds{certificate="www",provider="cdn",target="img.\\"x\\"\\\\y\\nz"} 1767225600
# HELP alicertd_last_success_timestamp_seconds When the certificate was last fully valid and deployed everywhere, in Unix seconds.
# TYPE alicertd_last_success_timestamp_seconds gauge
# HELP alicertd_last_cycle_timestamp_seconds When the last cycle finished, in Unix seconds.
# TYPE alicertd_last_cycle_timestamp_seconds gauge
alicertd_last_cycle_timestamp_seconds 1764151200.25
# HELP alicertd_issuances_total Certificates issued by the ACME server.
# TYPE alicertd_issuances_total counter
alicertd_issuances_total{certificate="www"} 2
# HELP alicertd_deployments_total Certificates bound to a deploy target.
# TYPE alicertd_deployments_total counter
alicertd_deployments_total{provider="cdn"} 0
# HELP alicertd_failures_total Failed operations, by provider ("acme" for issuance).
# TYPE alicertd_failures_total counter
alicertd_failures_total{provider="acme"} 1
# HELP alicertd_config_last_reload_successful 1 when the last configuration reload (SIGHUP) was applied, 0 when it was refused.
# TYPE alicertd_config_last_reload_successful gauge
alicertd_config_last_reload_successful 0
# HELP alicertd_config_last_reload_success_timestamp_seconds When the configuration was last loaded (the daemon's start or a reload), in Unix seconds.
# TYPE alicertd_config_last_reload_success_timestamp_seconds gauge
alicertd_config_last_reload_success_timestamp_seconds 1764151100
# HELP alicertd_config_reloads_refused_total Configuration reloads refused; the daemon kept running on its previous configuration.
# TYPE alicertd_config_reloads_refused_total counter
alicertd_config_reloads_refused_total 1
"""


def test_help_escaping_and_special_values():
    r = Registry()
    g = r.gauge("x_seconds", "a \\ b\nc", ("l",))
    g.set(float("nan"), l="a")
    g.set(float("inf"), l="b")
    g.set(-1e20, l="c")
    assert r.render().splitlines() == [
        "# HELP x_seconds a \\\\ b\\nc",
        "# TYPE x_seconds gauge",
        'x_seconds{l="a"} NaN',
        'x_seconds{l="b"} +Inf',
        'x_seconds{l="c"} -1e+20',
    ]


def test_misuse_is_refused():
    m = DaemonMetrics()
    with pytest.raises(ValueError):
        m.issuances.inc(provider="cdn")
    with pytest.raises(ValueError):
        m.issuances.inc(-1, certificate="www")
    with pytest.raises(TypeError):
        m.failures.set(1, provider="acme")
    with pytest.raises(ValueError):
        m.registry.counter("alicertd_things", "no _total")
    with pytest.raises(ValueError):
        m.registry.gauge("alicertd_last_cycle_timestamp_seconds", "dup")


def test_remove_and_concurrent_increments():
    m = DaemonMetrics()
    threads = [threading.Thread(target=lambda: [m.deployments.inc(provider="cdn") for _ in range(500)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.deployments.get(provider="cdn") == 4000
    m.deployments.remove(provider="cdn")
    assert "provider=" not in m.render()


@pytest.mark.parametrize("listen, expected", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)), (":9464", ("", 9464))])
def test_parse_listen(listen, expected):
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["localhost", "1.2.3.4:x", "h:70000"])
def test_parse_listen_rejects(listen):
    with pytest.raises(ValueError):
        parse_listen(listen)


def test_scrape_over_http():
    m = DaemonMetrics()
    m.issuances.inc(certificate="www")
    srv = MetricsServer(m, "127.0.0.1:0")
    srv.start()
    try:
        assert srv.port > 0
        base = f"http://127.0.0.1:{srv.port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            assert 'alicertd_issuances_total{certificate="www"} 1' in resp.read().decode()
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok", "last_cycle": None}
        m.last_cycle.set(datetime(2026, 11, 26, 10, 0, tzinfo=UTC))
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
            assert json.loads(resp.read())["last_cycle"] == "2026-11-26T10:00:00Z"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/nope", timeout=5)
        assert err.value.code == 404
    finally:
        srv.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=2)


def test_port_in_use_raises():
    a = MetricsServer(Registry(), "127.0.0.1:0")
    a.start()
    try:
        b = MetricsServer(Registry(), f"127.0.0.1:{a.port}")
        with pytest.raises(OSError):
            b.start()
    finally:
        a.stop()
