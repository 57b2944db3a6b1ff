"""Shared by the reliability tests: running alicertd while keeping every word it says (for the
secret scan in test_secrets.py), and looking at the state dir and the sandbox from outside.
Nothing here imports alicertd's own code."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.world import DEMO_FIXTURE, World

#: The healthy shapes used across the suite: a wildcard + apex certificate on two CDN domains
#: and an API Gateway domain, a wildcard CDN domain, a name in a nested zone.
WWW = World.cert("www", ["example.com", "*.example.com"], cdn=["cdn.example.com", "img.example.com"],
                 apigateway=["cn-shanghai/abc123/api.example.com"])
STATIC = World.cert("static", ["*.static.example.com"], cdn=["*.static.example.com"])
APP = World.cert("app", ["app.dev.example.com"])
GW_ONLY = World.cert("gw", ["api.example.com"], apigateway=["cn-shanghai/abc123/api.example.com"])

#: CDN domain -> an SNI the edge answers for it.
SNI = {"*.static.example.com": "a.static.example.com"}


def fixture_with_cdn(domains: list[str]) -> dict[str, Any]:
    """The demo fixture plus CDN domains ``domains``."""
    data = copy.deepcopy(tomllib.loads(DEMO_FIXTURE.read_text()))
    data["cdn_domain"] = list(data.get("cdn_domain", [])) + [{"name": d} for d in domains]
    return data


# --------------------------------------------------------------------------- transcripts


@dataclass
class Transcript:
    what: str
    stdout: str = ""
    stderr: str = ""
    log_path: Path | None = None

    def text(self) -> str:
        log = self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""
        return "\n".join((self.stdout, self.stderr, log))


@dataclass
class Transcripts:
    """Every alicertd process this session ran, what it printed, and the secrets it could have
    leaked: the AccessKey secrets and EAB keys in use, and every line of every private key
    that was in a state dir right after a run (later runs may prune a key)."""

    runs: list[Transcript] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    key_lines: set[str] = field(default_factory=set)
    state_dirs: set[Path] = field(default_factory=set)

    def harvest(self, state_dir: Path) -> None:
        self.state_dirs.add(state_dir)
        self.key_lines |= private_key_lines(state_dir)

    def cli(self, world: World, config: Path, *args: str, timeout: float = 180,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        self.secrets.add(world.access_key_secret)
        proc = world.cli(config, *args, timeout=timeout, env=env)
        self.runs.append(Transcript(f"{config} {' '.join(args)}", proc.stdout, proc.stderr))
        self.harvest(state_dir_of(config))
        return proc

    def spawn(self, world: World, config: Path, *args: str, log_path: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        self.secrets.add(world.access_key_secret)
        proc = world.spawn(config, *args, log_path=log_path, env=env)
        self.runs.append(Transcript(f"{config} {' '.join(args)} (spawned)", log_path=log_path))
        self.state_dirs.add(state_dir_of(config))  # harvested by the caller once it has run
        return proc

    def leaks(self) -> list[str]:
        """Every (run, secret) pair where the run's output holds the secret, in any of the
        forms it could be printed in (raw, URL-encoded, base64 vs base64url)."""
        for state_dir in self.state_dirs:
            self.harvest(state_dir)
        needles: dict[str, str] = {}
        for secret in self.secrets:
            for form in _forms(secret):
                needles[form] = f"secret {secret[:4]}…"
        for line in self.key_lines:
            for form in _forms(line):
                needles[form] = f"private key line {line[:8]}…"
        hits = []
        for run in self.runs:
            text = run.text()
            hits += [f"{run.what}: {what}" for needle, what in needles.items() if needle in text]
        return hits


def _forms(value: str) -> set[str]:
    from urllib.parse import quote

    alt = value.translate(str.maketrans("-_+/", "+/-_"))  # base64url <-> base64
    return {f for v in (value, alt) for f in (v, quote(v, safe=""), quote(v, safe="~"))}


def state_dir_of(config: Path) -> Path:
    return Path(tomllib.loads(config.read_text())["state_dir"])


def private_key_lines(state_dir: Path) -> set[str]:
    """The base64 body lines of every private key PEM below ``state_dir``. Lines shorter than
    16 characters (the tail of a PEM) are left out: they could match ordinary text."""
    lines: set[str] = set()
    if not state_dir.exists():
        return lines
    for path in state_dir.rglob("*.pem"):
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if "PRIVATE KEY-----" not in text:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("-----") and len(line) >= 16:
                lines.add(line)
    return lines


# --------------------------------------------------------------------------- assertions


def assert_no_traceback(proc: subprocess.CompletedProcess | str) -> None:
    text = proc if isinstance(proc, str) else f"{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in text, f"a traceback reached the user:\n{text[-3000:]}"


def error_lines(text: str) -> list[str]:
    """The log lines at ERROR (text format) plus ``alicertd:`` lines and ``error:`` lines."""
    return [line for line in text.splitlines()
            if " ERROR " in line or line.startswith(("alicertd:", "error:"))]


def summary_row(stdout: str, name: str) -> str:
    """The row of certificate NAME in the ``--run-now`` summary table."""
    for line in stdout.splitlines():
        if line.split(" ", 1)[0] == name:
            return line
    raise AssertionError(f"no row for {name} in:\n{stdout}")


def assert_state_parses(state_dir: Path) -> int:
    """Every file below ``state_dir`` is whole: JSON loads, keys load, chains load (and match
    their key), every ``certificates/NAME`` link resolves, no temp file is left. Returns the
    number of files checked."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    assert state_dir.is_dir(), f"no state dir at {state_dir}"
    checked = 0
    for path in sorted(state_dir.rglob("*")):
        rel = path.relative_to(state_dir)
        assert not path.name.startswith(".tmp-"), f"temp file left behind: {rel}"
        if path.is_symlink():
            assert path.resolve().is_dir(), f"{rel} -> {path.readlink()} does not resolve"
            continue
        if not path.is_file():
            continue
        checked += 1
        data = path.read_bytes()
        if path.name == ".lock":
            continue
        if path.suffix == ".json":
            json.loads(data)
        elif path.suffix == ".pem" and b"PRIVATE KEY-----" in data:
            load_pem_private_key(data, password=None)
        elif path.suffix == ".pem":
            assert x509.load_pem_x509_certificates(data), f"{rel} holds no certificate"
        else:
            raise AssertionError(f"unexpected file in the state dir: {rel}")
    for link in (state_dir / "certificates").iterdir() if (state_dir / "certificates").is_dir() else ():
        chain = x509.load_pem_x509_certificates((link / "fullchain.pem").read_bytes())
        key = load_pem_private_key((link / "privkey.pem").read_bytes(), password=None)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        assert chain[0].public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki), \
            f"certificates/{link.name}: the chain does not certify the key next to it"
        json.loads((link / "meta.json").read_bytes())
    return checked


def assert_serves(world: World, state_dir: Path, name: str, targets: list[str]) -> str:
    serial = World.chain_serial(state_dir, name)
    assert serial, f"no chain for {name}"
    served = {t: world.served_serial(SNI.get(t, t)) for t in targets}
    assert served == {t: serial for t in targets}, f"{name} is {serial}, the edge serves {served}"
    return serial


def assert_apigateway_serves(world: World, state_dir: Path, name: str) -> None:
    serial = World.chain_serial(state_dir, name)
    view = world.sandbox.apigateway_domain("cn-shanghai", "abc123", "api.example.com")
    assert view["serial"] == serial, f"API Gateway has {view['serial']}, {name} is {serial}"
    assert world.served_serial("api.example.com") == serial


def sandbox_codes(world: World) -> list[str]:
    return [c["code"] for c in world.sandbox.calls() if c.get("code")]


def pebble_orders(world: World) -> int:
    assert world.pebble is not None and world.pebble.log_path is not None
    return len(re.findall(r"Added order \"[^\"]+\" to the db", world.pebble.log_path.read_text(errors="replace")))
