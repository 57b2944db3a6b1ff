"""Small helpers shared by the end-to-end tests: they look at the world (the sandbox's call log,
Pebble's log, the state dir, a webhook receiver) and never at alicertd's internals."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.world import World, wait_for

#: Sandbox actions that change something (DNS records, bindings): none may appear in a dry run
#: or in a run that has nothing to do.
WRITE_ACTION = re.compile(r"^(Add|Delete|Update|Set|Modify|Create|Upload|Bind|Unbind)")


def write_calls(world: World, since: float | None = None) -> list[dict[str, Any]]:
    assert world.sandbox is not None
    return [c for c in world.sandbox.calls(since=since) if WRITE_ACTION.match(c["action"])]


def call_count(world: World, action: str, since: float | None = None) -> int:
    assert world.sandbox is not None
    return len(world.sandbox.calls(since=since, action=action))


# --------------------------------------------------------------------------- Pebble


def pebble_log(world: World) -> str:
    assert world.pebble is not None and world.pebble.log_path is not None
    return world.pebble.log_path.read_text(errors="replace")


def pebble_orders(world: World) -> int:
    """Orders Pebble created so far (its log says ``Added order … to the db`` once per order)."""
    return len(re.findall(r"Added order \"[^\"]+\" to the db", pebble_log(world)))


def pebble_issued(world: World) -> list[str]:
    """Serials Pebble issued so far, in order, written as alicertd writes serials (lowercase
    hex without leading zeros: Pebble pads its log's serials to whole bytes)."""
    return [format(int(s, 16), "x")
            for s in re.findall(r"Issued certificate serial ([0-9a-f]+) for order", pebble_log(world))]


def pebble_new_accounts(world: World) -> int:
    """newAccount requests (registrations and onlyReturnExisting look-ups alike)."""
    return pebble_log(world).count("POST /sign-me-up")


def pebble_accounts(world: World) -> int:
    """How many accounts Pebble holds (it logs ``There are now N accounts in memory``)."""
    counts = re.findall(r"There are now (\d+) accounts in memory", pebble_log(world))
    return int(counts[-1]) if counts else 0


# --------------------------------------------------------------------------- the CLI


def status_json(world: World, config: Path) -> dict[str, Any]:
    proc = world.cli(config, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def cert_status(world: World, config: Path, name: str) -> dict[str, Any]:
    doc = status_json(world, config)
    return next(c for c in doc["certificates"] if c["name"] == name)


def run_ok(world: World, config: Path, *args: str) -> subprocess.CompletedProcess:
    proc = world.cli(config, "--run-now", *args)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def assert_serves(world: World, state_dir: Path, name: str, targets: list[str]) -> str:
    """Every target domain serves NAME's current chain (a real TLS handshake with the edge)."""
    serial = World.chain_serial(state_dir, name)
    assert serial, f"no chain for {name}"
    served = {t: world.served_serial(t) for t in targets}
    assert served == {t: serial for t in targets}, f"{name} is {serial}, the edge serves {served}"
    return serial


# --------------------------------------------------------------------------- state dir


def tree_snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below ``root`` with what a write would change (lstat: symlinks as such)."""
    snap: dict[str, tuple] = {}
    if not root.exists():
        return snap
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            snap[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, link)
    return snap


def assert_state_parses(state_dir: Path) -> None:
    """Every regular file in the state dir is what its name says: JSON, a PEM, or the lock."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    seen = 0
    for path in state_dir.rglob("*"):
        if path.is_symlink():
            assert path.resolve().exists(), f"dangling symlink {path}"
            continue
        if not path.is_file():
            continue
        seen += 1
        data = path.read_bytes()
        if path.name == ".lock":
            continue
        if path.suffix == ".json":
            json.loads(data)
        elif path.name.endswith("key.pem") or path.name.endswith(".key.pem"):
            load_pem_private_key(data, password=None)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is not 0600"
        elif path.suffix == ".pem":
            assert x509.load_pem_x509_certificates(data), f"{path} holds no certificate"
        else:
            raise AssertionError(f"unexpected file in the state dir: {path}")
    assert seen, "the state dir is empty"


# --------------------------------------------------------------------------- the daemon


@contextlib.contextmanager
def running_daemon(world: World, config: Path, log_path: Path, *args: str,
                   env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """The daemon in a subprocess; always stopped afterwards (SIGKILL if SIGTERM does not do it).
    On a failure inside the block, the daemon's log is attached to the error."""
    proc = world.spawn(config, *args, env=env, log_path=log_path)
    try:
        yield proc
    except BaseException as exc:
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        raise AssertionError(f"{exc}\n--- daemon log (tail) ---\n{log[-6000:]}") from exc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def wait_log(path: Path, pattern: str, timeout: float, *, count: int = 1) -> None:
    rx = re.compile(pattern)
    wait_for(lambda: len(rx.findall(log_text(path))) >= count, timeout,
             f"{count}x /{pattern}/ in {path.name}")


# --------------------------------------------------------------------------- webhooks


class WebhookReceiver:
    """A loopback HTTP server that records every JSON body POSTed to it (answers 200)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.events.append({"path": self.path, "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def bodies(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e["body"] for e in self.events if kind is None or e["body"].get("kind") == kind]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- someone else's cert


def foreign_certificate(domains: list[str]) -> tuple[str, str, str]:
    """A self-signed certificate for ``domains`` (someone else's, e.g. uploaded in the console).
    Returns (cert_pem, key_pem, serial_hex)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            format(cert.serial_number, "x"))


# --------------------------------------------------------------------------- the usual certificates

WWW_CDN = ["cdn.example.com", "img.example.com"]
WWW_API = "api.example.com"
WWW_TARGETS = [*WWW_CDN, WWW_API]


def www_cert(**extra: Any) -> dict[str, Any]:
    """example.com + wildcard, on two CDN domains and one API Gateway custom domain."""
    return World.cert("www", ["example.com", "*.example.com"], cdn=WWW_CDN,
                      apigateway=[f"cn-shanghai/abc123/{WWW_API}"], **extra)


def net_cert(**extra: Any) -> dict[str, Any]:
    """example.net, no deploy target."""
    return World.cert("net", ["example.net"], **extra)
