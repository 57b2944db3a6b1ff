"""sd_notify datagrams to a socket the test binds."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from daemon import sdnotify


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_path_socket(listener, monkeypatch):
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert sdnotify.ready("idle")
    assert sock.recv(4096) == b"READY=1\nSTATUS=idle"
    assert sdnotify.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.status("renewing\nwww")
    assert sock.recv(4096) == b"STATUS=renewing www"
    assert sdnotify.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    assert sdnotify.reloading()
    msg = sock.recv(4096).decode().split("\n")
    assert msg[0] == "RELOADING=1" and msg[1].startswith("MONOTONIC_USEC=") and msg[1][15:].isdigit()


def test_abstract_socket(monkeypatch):
    name = f"alicertd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_no_socket_is_a_noop(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing.sock"))
    assert sdnotify.watchdog() is False  # nobody listening: False, no exception
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert sdnotify.ready() is False


@pytest.mark.parametrize("usec, pid, expected", [
    (None, None, None),
    ("0", None, None),
    ("30000000", None, 15.0),
    ("30000000", "self", 15.0),
    ("30000000", "1", None),
    ("junk", None, None),
])
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    for var, val in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if val is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, str(os.getpid()) if val == "self" else val)
    assert sdnotify.watchdog_interval() == expected
