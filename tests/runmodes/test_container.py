"""The container image, built from the Dockerfile as it is and run for real (podman), against
the sandbox and Pebble on the host's loopback.

The commands are README's Docker section with ``podman`` for ``docker`` and the names made
unique to this run; the only build argument is ``PYTHON_IMAGE``, pointed at the local Debian
bookworm base (the registry base cannot be pulled here). The build reaches the package index
with this machine's pip configuration, bind-mounted for the build only (never a layer).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import tarfile
import time
import tomllib
from pathlib import Path

import pytest

from tests.runmodes.conftest import (
    BASE_IMAGE,
    MODULE_TIMEOUT,
    LocalPipServer,
    config_text,
    files_under,
    readme_commands,
    run,
    wait_until,
)
from tests.support.pebble import ensure_pebble
from tests.support.world import DEMO_FIXTURE, REPO_ROOT, SECRET_ENV, World

pytestmark = [pytest.mark.runmodes, pytest.mark.pebble, pytest.mark.timeout(MODULE_TIMEOUT)]

TAG = "localhost/alicertd-runmodes:test"  # one tag: each build replaces (and removes) the last
NAME = f"alicertd-runmodes-{os.getpid()}"
VOLUME = f"alicertd-state-{os.getpid()}"
STATE = "/var/lib/alicertd"
STOP_GRACE = 10  # docker's and podman's default for `stop`


class Podman:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, check: bool = True, timeout: float = 120):
        return run(["podman", *args], check=check, timeout=timeout, env=self.env)


@pytest.fixture(scope="module")
def podman(podman_env) -> Podman:
    return Podman(podman_env)


def readme_docker() -> dict[str, list[str]]:
    """README's Docker commands by what they do: build, daemon, oneshot, status, stop."""
    commands = [shlex.split(c) for c in readme_commands("Docker").splitlines()]
    kinds = {}
    for c in commands:
        assert c[0] == "docker", c
        kind = {"build": "build", "exec": "status", "stop": "stop"}.get(c[1]) or (
            "daemon" if "-d" in c else "oneshot")
        assert kind not in kinds, f"two {kind} commands in README's Docker section"
        kinds[kind] = c
    assert set(kinds) == {"build", "daemon", "oneshot", "status", "stop"}, kinds
    return kinds


def adapt(command: list[str], *, config: Path | None = None, files=None, machine: list[str] = ()) -> list[str]:
    """A README ``docker`` command as this machine runs it: ``podman``, this run's names and
    files for README's, and ``machine`` options (network, base image) after the subcommand."""
    mapped = {"/etc/alicertd/env": str(files["env"]) if files else None,
              "alicertd-state:/var/lib/alicertd": f"{VOLUME}:{STATE}", ".": str(REPO_ROOT)}
    if config is not None:
        mapped["/etc/alicertd/config.toml:/etc/alicertd/config.toml:ro"] = f"{config}:/etc/alicertd/config.toml:ro"
    sub, rest = command[1], command[2:]
    out: list[str] = ["podman", sub, *machine]
    positional_seen = False
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok in ("--name", "-t") and sub in ("run", "build"):
            out += [tok, NAME if tok == "--name" else TAG]
            i += 2
            continue
        if tok.startswith("-"):
            out.append(tok)
        elif tok in mapped:
            assert mapped[tok] is not None, tok
            out.append(mapped[tok])
        elif not positional_seen and tok == "alicertd":
            # the image (run) or the container (exec, stop): the first positional argument
            out.append(TAG if sub == "run" else NAME)
            positional_seen = True
        else:
            out.append(tok)
            positional_seen = positional_seen or out[-2] not in ("--env-file", "-v", "--restart")
        i += 1
    return out


@pytest.fixture(scope="module")
def image(podman, tmp_path_factory):
    pip = LocalPipServer()
    pip_args, pip_volumes = pip.build_args()
    old = podman("image", "inspect", "--format", "{{.Id}}", TAG, check=False).stdout.strip()
    started = time.monotonic()
    # --format docker keeps HEALTHCHECK (the OCI format has no such field); --layers=false: the
    # pip build arguments name this run's loopback ports, so cached layers would never be reused
    # and would only pile up
    build = adapt(readme_docker()["build"], machine=[
        "--format", "docker", "--layers=false", "--network", "host", "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}",
        *pip_args, *pip_volumes])
    podman(*build[1:], timeout=MODULE_TIMEOUT)
    pip.close()
    print(f"image build: {time.monotonic() - started:.1f}s")
    if old and old != podman("image", "inspect", "--format", "{{.Id}}", TAG).stdout.strip():
        podman("rmi", old, check=False)  # the previous build, now untagged
    yield TAG
    podman("rm", "-f", NAME, check=False)
    podman("volume", "rm", "-f", VOLUME, check=False)


@pytest.fixture(scope="module")
def world():
    """The demo world with an AccessKey secret made for this run, so that finding it anywhere
    (an image layer) means it leaked from the run, not that the demo fixture ships."""
    ensure_pebble()
    data = tomllib.loads(DEMO_FIXTURE.read_text())
    data["access_key"][0]["secret"] = "runmodes-" + secrets.token_urlsafe(24)
    with World(data) as w:
        yield w


@pytest.fixture(scope="module")
def files(world, tmp_path_factory) -> dict[str, Path]:
    """Host files mounted into the container: config (0644), env file (0600), Pebble's CA."""
    d = tmp_path_factory.mktemp("container")
    env_file = d / "env"
    env_file.write_text(f"{SECRET_ENV}={world.access_key_secret}\n")
    env_file.chmod(0o600)
    return {"dir": d, "env": env_file, "ca": Path(world.pebble.ca_bundle)}


def write_config(world: World, files, name: str, certificates, *, broken: bool = False) -> Path:
    path = files["dir"] / f"{name}.toml"
    path.write_text(config_text(world, certificates, broken=broken))
    path.chmod(0o644)
    return path


WWW = World.cert("www", ["example.com", "cdn.example.com"], cdn=["cdn.example.com"])
IMG = World.cert("img", ["img.example.com"], cdn=["img.example.com"])
APP = World.cert("app", ["app.dev.example.com"])


def readme_run(podman, kind: str, files, config: Path, *, check: bool = False, timeout: float = 300):
    """README's ``docker run`` (``daemon`` or ``oneshot``), on the host network (the sandbox
    and Pebble listen on its loopback), with Pebble's CA where the config expects it."""
    cmd = adapt(readme_docker()[kind], config=config, files=files, machine=[
        "--network", "host", "-v", f"{files['ca']}:/etc/alicertd/pebble-ca.pem:ro"])
    return podman(*cmd[1:], check=check, timeout=timeout)


def volume_dir(podman) -> Path:
    return Path(podman("volume", "inspect", VOLUME, "--format", "{{.Mountpoint}}").stdout.strip())


# --------------------------------------------------------------------------- the image


def test_image_metadata(podman, image):
    (info,) = json.loads(podman("image", "inspect", image).stdout)
    cfg = info["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["alicertd"] and not cfg.get("Cmd")
    assert STATE in cfg["Volumes"]
    health = info.get("Healthcheck") or cfg.get("Healthcheck")  # podman: top level; docker: Config
    assert health["Test"] == ["CMD", "alicertd", "status"]
    assert cfg.get("StopSignal") == "SIGTERM"
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert not any(re.search(r"SECRET|TOKEN|PASSWORD|ACCESS_KEY", k) for k in env), env


def test_layers_hold_no_build_tools_sources_or_secrets(podman, image, tmp_path, world):
    """Every layer of the saved image (not just the merged view: a file deleted in a later
    layer still ships in an earlier one)."""
    archive = tmp_path / "image.tar"
    podman("image", "save", "--format", "docker-archive", "-o", str(archive), image, timeout=300)
    names: list[str] = []
    secret = world.access_key_secret.encode()
    with tarfile.open(archive) as outer:
        layers = [m for m in outer.getmembers() if m.name.endswith(".tar")]
        assert layers, "no layers in the saved image"
        for member in layers:
            with tarfile.open(fileobj=outer.extractfile(member)) as layer:
                for entry in layer:
                    names.append("/" + entry.name.lstrip("./"))
                    if entry.isfile() and entry.size < 5_000_000:
                        data = layer.extractfile(entry).read()
                        assert secret not in data, f"the AccessKey secret of this run is in {entry.name}"
    assert any(n.startswith("/opt/alicertd/bin/alicertd") for n in names), "the venv is not in the image"
    bad = [n for n in names if re.search(
        r"^/src(/|$)|^/tmp/.|/\.cache/pip|^/etc/pip\.conf$|^/etc/xdg/pip|^/opt/(pypi|wheels)"
        r"|/s?bin/(\S+-)?(gcc|cc|c\+\+|g\+\+|make|ld|as)(-[\d.]+)?$|/pyproject\.toml$|/\.git(/|$)"
        r"|/tests/runmodes|^(?!/usr/share/python-wheels/).*\.whl$|^/opt/alicertd/(bin/pip|lib/.*/(pip|setuptools|sandbox)/)", n)]  # Debian's ensurepip wheels: base
    assert not bad, f"build tools, sources, the sandbox or build-time files in the image layers: {bad[:20]}"


# --------------------------------------------------------------------------- --run-now


def test_run_now_exit_codes(podman, image, world, files):
    good = write_config(world, files, "good", [WWW])
    proc = readme_run(podman, "oneshot", files, good)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = volume_dir(podman)
    assert world.served_serial("cdn.example.com") == world.chain_serial(state, "www") is not None

    proc = readme_run(podman, "oneshot", files, write_config(world, files, "broken", [WWW], broken=True))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if "healthcheck" not in ln]  # podman's, without systemd
    assert len(err) == 1 and "acme.profile" in err[0] and "Traceback" not in proc.stderr, proc.stderr

    # a certificate the account has no zone for fails; the one that works stays valid
    failing = write_config(world, files, "failing", [WWW, World.cert("nozone", ["www.example.invalid"])])
    proc = readme_run(podman, "oneshot", files, failing)
    assert proc.returncode == 1, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- the daemon


def test_readme_daemon_commands(podman, image, world, files):
    """README's commands in README's order: the daemon, a one-shot beside it, status, stop."""
    readme = readme_docker()
    config = write_config(world, files, "daemon", [WWW, IMG])
    world.sandbox.set_dns_delay(0)
    podman("rm", "-f", NAME, check=False)
    readme_run(podman, "daemon", files, config, check=True)

    def logs() -> str:
        p = podman("logs", NAME, check=False)
        return p.stdout + p.stderr

    wait_until(lambda: "cycle done" in logs(), 240, "the daemon's first cycle")
    state = volume_dir(podman)
    assert world.served_serial("img.example.com") == world.chain_serial(state, "img") is not None
    assert podman("exec", NAME, "id", "-u").stdout.strip() == "10001"
    assert podman("exec", NAME, "stat", "-c", "%a %u", STATE).stdout.split() == ["700", "10001"]

    proc = readme_run(podman, "oneshot", files, config)  # beside the daemon: they share the lock
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = podman(*adapt(readme["status"])[1:], check=False)
    assert proc.returncode == 0 and "www" in proc.stdout and "img" in proc.stdout, proc.stdout + proc.stderr
    assert podman("healthcheck", "run", NAME, check=False).returncode == 0

    # SIGTERM in the middle of an issuance (the TXT record is published, the daemon waits for
    # it to propagate): exit 0 within the grace period, the challenge record removed, nothing
    # half-written in the state volume.
    world.sandbox.set_dns_delay(60)
    config.write_text(write_config(world, files, "daemon2", [WWW, IMG, APP]).read_text())  # same inode
    podman("kill", "--signal", "HUP", NAME)  # reload: a cycle starts at once for the new certificate
    wait_until(world.txt_records, 120, "the challenge TXT record of the new certificate")
    started = time.monotonic()
    podman(*adapt(readme["stop"])[1:], timeout=STOP_GRACE + 30)
    took = time.monotonic() - started
    (info,) = json.loads(podman("inspect", NAME).stdout)
    assert info["State"]["ExitCode"] == 0 and info["State"]["Status"] == "exited", logs()
    assert took < STOP_GRACE, f"stop took {took:.1f}s"
    assert "Traceback" not in logs()
    world.sandbox.set_dns_delay(0)
    assert world.txt_records() == [], "the challenge record was left behind"
    leftovers = [p for p in files_under(state) if p.name.startswith(".tmp-")]
    assert not leftovers, leftovers

    # the state is whole: the next one-shot issues the new certificate and exits 0
    proc = readme_run(podman, "oneshot", files, config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert world.chain_serial(state, "app") is not None
    podman("rm", "-f", NAME, check=False)
