"""SIGHUP reloads (Service.reload): a refused one is a failure on every surface (/healthz,
metrics, notification, sd_notify, ``status``) until a reload succeeds, whatever the loader
raised; a valid file that cannot be applied leaves the running configuration whole."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from daemon.config_load import load_config
from daemon.metrics import MetricsServer
from daemon.service import Service
from daemon.state import StateStore
from daemon.status import collect_status, run_status
from sandbox.pebble import free_port
from tests.e2e.helpers import WebhookReceiver
from tests.support.world import dump_toml

TOKEN = "robotT0ken5ecretvalue0123456789"


def raw_config(tmp_path: Path, **extra) -> dict:
    raw = {
        "state_dir": str(tmp_path / "state"),
        "acme": {"directory": "https://127.0.0.1:1/dir"},
        "aliyun": {"access_key_id": "id", "access_key_secret": "secret", "region": "cn-hangzhou"},
        "schedule": {"interval": "12h", "jitter": "0s"},
        "certificate": [{"name": "www", "domains": ["www.example.com"],
                         "deploy": [{"provider": "local", "directory": str(tmp_path / "out")}]}],
    }
    raw.update(extra)
    return raw


class Daemon:
    """A Service as ``run()`` sets it up (state dir, metrics endpoint), without its loop."""

    def __init__(self, tmp_path: Path, hook: WebhookReceiver | None = None, *, listen: bool = True):
        self.path = tmp_path / "alicertd.toml"
        self.tmp_path = tmp_path
        self.extra = {"notify": [{"kind": "webhook", "url": hook.url}]} if hook else {}
        if listen:
            self.extra["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
        self.write()
        config = load_config(self.path, env={})
        self.service = Service(config, lambda: load_config(self.path, env={}))
        self.store = StateStore(config.state_dir)
        self.store.ensure()
        if listen:
            self.service.metrics_server = MetricsServer(self.service.metrics, config.metrics.listen,
                                                        health=self.service.health)
            self.service.metrics_server.start()

    def write(self, **extra) -> None:
        self.path.write_text(dump_toml(raw_config(self.tmp_path, **{**self.extra, **extra})))

    def healthz(self) -> tuple[int, dict]:
        url = f"http://{self.service.config.metrics.listen}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def sample(self, name: str) -> float | None:
        metric = self.service.metrics.registry.get(name)
        return metric.get()

    def close(self) -> None:
        if self.service.metrics_server is not None:
            self.service.metrics_server.stop()


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def daemon(tmp_path, hook):
    d = Daemon(tmp_path, hook)
    yield d
    d.close()


def test_a_refused_reload_fails_everywhere_until_a_reload_succeeds(daemon, hook, capsys):
    started = daemon.sample("alicertd_config_last_reload_success_timestamp_seconds")
    assert daemon.healthz() == (200, {"status": "ok", "last_cycle": None, "reload_refused": None})
    assert daemon.sample("alicertd_config_last_reload_successful") == 1
    assert daemon.sample("alicertd_config_reloads_refused_total") == 0
    running = daemon.service.config

    daemon.path.write_text(daemon.path.read_text() + '\n[[certificate]]\nname = "BAD NAME"\n')
    daemon.service.reload()

    assert daemon.service.config is running
    status, doc = daemon.healthz()
    assert status == 503 and doc["status"] == "failing"
    reasons = doc["reload_refused"]["reasons"]
    assert any("certificate[1].name" in r and "BAD NAME" in r for r in reasons), reasons
    assert doc["reload_refused"]["at"].endswith("Z")
    assert daemon.sample("alicertd_config_last_reload_successful") == 0
    assert daemon.sample("alicertd_config_reloads_refused_total") == 1
    assert daemon.sample("alicertd_config_last_reload_success_timestamp_seconds") == started
    failures = hook.bodies("failure")
    assert len(failures) == 1 and failures[0]["title"] == "alicertd: configuration reload refused"
    assert failures[0]["details"]["reasons"] == reasons
    # `status` is another process: it reads what the daemon recorded in the state dir.
    assert collect_status(running)["reload_refused"] == doc["reload_refused"]
    run_status(running, as_json=False)
    text = capsys.readouterr().out
    assert "configuration reload refused at" in text and "certificate[1].name" in text

    daemon.write()
    daemon.service.reload()

    assert daemon.service.config is not running
    assert daemon.healthz() == (200, {"status": "ok", "last_cycle": None, "reload_refused": None})
    assert daemon.sample("alicertd_config_last_reload_successful") == 1
    assert daemon.sample("alicertd_config_reloads_refused_total") == 1
    assert daemon.sample("alicertd_config_last_reload_success_timestamp_seconds") > started
    assert collect_status(daemon.service.config)["reload_refused"] is None
    assert not (daemon.store.root / "reload.json").exists()
    run_status(daemon.service.config, as_json=False)
    assert "reload refused" not in capsys.readouterr().out
    assert len(hook.bodies("failure")) == 1, "a successful reload sends nothing"


@pytest.mark.parametrize("error, expected", [
    (PermissionError(13, "Permission denied", "/etc/alicertd/config.toml"),
     "cannot load the configuration: /etc/alicertd/config.toml: Permission denied"),
    (RuntimeError("a bug"), "cannot load the configuration: RuntimeError: a bug (unexpected)"),
])
def test_a_loader_that_raises_anything_is_a_refused_reload(daemon, hook, error, expected):
    def loader():
        raise error
    daemon.service.config_loader = loader
    running = daemon.service.config

    daemon.service.reload()  # must not raise: it runs in the reload thread

    assert daemon.service.config is running
    status, doc = daemon.healthz()
    assert status == 503
    assert doc["reload_refused"]["reasons"] == [f"{daemon.path}: {expected}"]
    assert daemon.sample("alicertd_config_reloads_refused_total") == 1
    assert len(hook.bodies("failure")) == 1
    assert collect_status(running)["reload_refused"]["reasons"] == doc["reload_refused"]["reasons"]


def test_a_metrics_address_that_cannot_be_bound_keeps_the_old_config_and_endpoint(daemon):
    running = daemon.service.config
    server = daemon.service.metrics_server
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        daemon.write(metrics={"listen": taken}, schedule={"interval": "1h", "jitter": "0s"})
        daemon.service.reload()

    assert daemon.service.config is running and daemon.service.metrics_server is server
    status, doc = daemon.healthz()  # still served on the old address
    assert status == 503
    assert doc["reload_refused"]["reasons"] == [
        f"{daemon.path}: metrics.listen: cannot listen on {taken}: Address already in use"]


def test_a_new_metrics_address_is_served_and_the_old_one_closed(daemon):
    old = daemon.service.config.metrics.listen
    new = f"127.0.0.1:{free_port()}"
    daemon.write(metrics={"listen": new})
    daemon.service.reload()

    assert daemon.service.config.metrics.listen == new
    assert daemon.healthz()[0] == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{old}/healthz", timeout=2)


class BrokenScheduler:
    def __init__(self):
        self.calls = []

    def reschedule(self, schedule, *, run_now=True):
        self.calls.append((schedule.interval, run_now))
        if len(self.calls) == 1:
            raise RuntimeError("scheduler shut down")


def test_a_schedule_that_cannot_be_applied_undoes_the_other_steps(daemon):
    running = daemon.service.config
    server = daemon.service.metrics_server
    scheduler = daemon.service.scheduler = BrokenScheduler()
    new = f"127.0.0.1:{free_port()}"
    daemon.write(metrics={"listen": new}, schedule={"interval": "1h", "jitter": "0s"})

    daemon.service.reload()

    assert daemon.service.config is running and daemon.service.metrics_server is server
    assert scheduler.calls == [(3600.0, True), (running.schedule.interval, False)], "old schedule restored"
    with pytest.raises(OSError):  # the new endpoint it had bound is closed again
        urllib.request.urlopen(f"http://{new}/healthz", timeout=2)
    status, doc = daemon.healthz()
    assert status == 503
    assert doc["reload_refused"]["reasons"] == [
        f"{daemon.path}: schedule: cannot apply it: RuntimeError: scheduler shut down"]


def test_reasons_leave_the_host_without_a_robot_token(daemon, hook, capsys):
    secret_url = f"http://hooks.example.com/robot/send?access_token={TOKEN}"
    daemon.write(notify=[{"kind": "dingtalk", "url": secret_url}])
    daemon.service.reload()

    _, doc = daemon.healthz()
    assert any("notify[0].url" in r and "http://hooks.example.com/…" in r
               for r in doc["reload_refused"]["reasons"]), doc
    run_status(daemon.service.config, as_json=True)
    surfaces = json.dumps(doc) + json.dumps(hook.bodies()) + capsys.readouterr().out
    surfaces += (daemon.store.root / "reload.json").read_text()
    assert TOKEN not in surfaces


def test_sd_notify_reloading_then_ready_with_the_outcome(daemon, tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    try:
        daemon.path.write_text("not toml [")
        daemon.service.reload()
        assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
        ready = sock.recv(4096).decode()
        assert ready.startswith("READY=1\nSTATUS=running the previous configuration; reload refused: ")
        assert "invalid TOML" in ready

        daemon.write()
        daemon.service.reload()
        assert sock.recv(4096).startswith(b"RELOADING=1\n")
        assert sock.recv(4096) == b"READY=1\nSTATUS=running"
    finally:
        sock.close()


def test_without_a_metrics_endpoint_a_reload_can_open_one(tmp_path):
    d = Daemon(tmp_path, listen=False)
    try:
        d.path.write_text("not toml [")
        d.service.reload()
        listen = f"127.0.0.1:{free_port()}"
        d.write(metrics={"listen": listen})
        d.service.reload()
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        # the refusal before the endpoint existed is counted
        assert "alicertd_config_reloads_refused_total 1" in text
        assert "alicertd_config_last_reload_successful 1" in text
    finally:
        d.close()


def test_a_reload_while_stopping_is_ignored(daemon):
    daemon.service.stop_event.set()
    daemon.path.write_text("not toml [")
    daemon.service.reload()
    assert daemon.service.last_reload.ok and daemon.sample("alicertd_config_reloads_refused_total") == 0
