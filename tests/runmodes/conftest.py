"""What the run-mode tests share: the machine prepared by scripts/runmodes-setup.sh (podman,
buildah, runc, systemd-nspawn, debootstrap'd Debian roots), the project wheel, the pip
configuration handed into builds, and a skip with the reason where this machine cannot do it.

These tests run the real tools as root: podman builds and runs the Dockerfile, systemd-nspawn
boots a Debian root with systemd as its PID 1. Everything talks to the sandbox and Pebble on
the host's loopback (the container and the booted root share the host's network).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.world import REPO_ROOT

SETUP = REPO_ROOT / "scripts" / "runmodes-setup.sh"
BASE_IMAGE = "localhost/alicertd-base:bookworm"
#: Each whole test module (image build, boot) may take minutes on a shared 2-core machine.
MODULE_TIMEOUT = 1200


def run(args: Sequence[str], *, check: bool = True, timeout: float = 120, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command, text in and out; with ``check`` a failure shows the command and its output."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=input,
                          env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(args)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def _cannot_run() -> str | None:
    """Why this machine cannot run the run-mode tests, or None."""
    if not sys.platform.startswith("linux"):
        return "run-mode tests need Linux (podman, systemd-nspawn)"
    if os.geteuid() != 0:
        return "run-mode tests need root (rootful podman, systemd-nspawn --boot)"
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return "user namespaces are disabled (user.max_user_namespaces = 0)"
    except (OSError, ValueError):
        return "no /proc/sys/user/max_user_namespaces: the kernel has no user namespaces"
    return None


@pytest.fixture(scope="session")
def runmodes_cache() -> Path:
    """The prepared machine: packages installed, base roots made, the base image imported."""
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    if shutil.which("apt-get") is None and not all(
            shutil.which(t) for t in ("podman", "buildah", "runc", "systemd-nspawn", "debootstrap")):
        pytest.skip("podman/buildah/runc/systemd-nspawn/debootstrap are missing and there is no apt-get")
    proc = run(["bash", str(SETUP)], check=False, timeout=MODULE_TIMEOUT)
    if proc.returncode == 3:  # the script's "this machine cannot" (no root, no mirror)
        pytest.skip("scripts/runmodes-setup.sh: " + proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, f"scripts/runmodes-setup.sh failed:\n{proc.stderr[-4000:]}"
    missing = [t for t in ("podman", "buildah", "runc", "systemd-nspawn", "debootstrap") if not shutil.which(t)]
    if missing:
        pytest.skip(f"still missing after scripts/runmodes-setup.sh: {', '.join(missing)}")
    return Path(proc.stdout.strip())


@pytest.fixture(scope="session")
def podman_env(runmodes_cache: Path) -> dict[str, str]:
    """The environment podman runs with: the containers.conf the setup script wrote (runc,
    cgroupfs, no default ulimits) instead of flags on every command."""
    return {**os.environ, "CONTAINERS_CONF": str(runmodes_cache / "containers.conf")}


# --------------------------------------------------------------------------- pip configuration


def pip_settings() -> dict[str, str]:
    """This machine's effective pip settings (files and ``PIP_*`` variables), as
    ``pip config list`` reports them: ``name -> value``, the environment winning."""
    proc = run([sys.executable, "-m", "pip", "config", "list"], check=False)
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        section, _, name = key.rpartition(".")
        value = value.strip().strip("'\"")
        (env if section == ":env:" else files)[name] = value
    return {**files, **env}


def pip_mounts(directory: Path) -> tuple[Path, list[str]]:
    """A pip.conf holding this machine's pip settings, and the read-only paths it refers to
    (CA bundle, local wheel directories and file:// indexes, constraints), for handing into a
    build or a booted root as bind mounts. Nothing here names a host: the values are read from
    the machine at run time and never written into the repository or an image layer."""
    settings = pip_settings()
    settings.setdefault("cert", "/etc/ssl/certs/ca-certificates.crt")
    paths: list[str] = []
    for value in settings.values():
        for item in value.split():
            path = item[len("file://"):] if item.startswith("file://") else item
            if path.startswith("/") and os.path.exists(path):
                path = os.path.normpath(path)
                # a local "simple" index links to its files relative to itself (../../files/…)
                paths.append(os.path.dirname(path) if os.path.basename(path) == "simple" else path)
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return conf, sorted(set(paths))


#: The pip settings the Dockerfile's builder stage takes as build arguments (ARG PIP_…).
BUILD_ARG_SETTINGS = ("index-url", "extra-index-url", "find-links", "trusted-host", "cert", "constraint",
                      "default-timeout")
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class LocalPipServer:
    """This machine's local pip sources (``file://`` indexes, wheel directories, a constraints
    file) served over HTTP on the loopback for the length of an image build, so that the build
    gets them as ``PIP_*`` build arguments instead of bind mounts (a bind mount leaves its
    mount point behind in the layer of every RUN step). pip treats 127.0.0.0/8 as secure."""

    def __init__(self) -> None:
        self._servers: list = []

    def url_for(self, path: str) -> str:
        import functools
        import threading
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args):  # noqa: ARG002 - one line per file is noise
                pass

        path = os.path.normpath(path)
        is_dir = os.path.isdir(path)
        # a "simple" index links to its files relative to itself (../../files/…): serve its parent
        root = os.path.dirname(path) if not is_dir or os.path.basename(path) == "simple" else path
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        rel = os.path.relpath(path, root)
        return f"http://127.0.0.1:{server.server_address[1]}/" + ("" if rel == "." else rel) + ("/" if is_dir else "")

    def build_args(self) -> tuple[list[str], list[str]]:
        """(``--build-arg`` options, ``--volume`` options) for ``podman build``."""
        settings = pip_settings()
        args: list[str] = []
        for name in BUILD_ARG_SETTINGS:
            value = settings.get(name)
            if name == "cert" or not value:
                continue
            items = []
            for item in value.split():
                local = item[len("file://"):] if item.startswith("file://") else item
                items.append(self.url_for(local) if local.startswith("/") and os.path.exists(local) else item)
            args.append(f"--build-arg=PIP_{name.upper().replace('-', '_')}={' '.join(items)}")
        volumes: list[str] = []
        cert = settings.get("cert") or IMAGE_CA_BUNDLE
        if os.path.isfile(cert):
            # over the base image's own bundle (same path, so no new mount point in a layer)
            volumes.append(f"--volume={cert}:{IMAGE_CA_BUNDLE}:ro")
            args.append(f"--build-arg=PIP_CERT={IMAGE_CA_BUNDLE}")
        return args, volumes

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The project wheel, built the way README says (``pip wheel --no-deps .``), from a copy of
    what the wheel is made of: setuptools' in-tree build/ directory would otherwise carry
    modules deleted since an earlier build into it."""
    src = tmp_path_factory.mktemp("wheel-src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    for name in ("daemon", "providers", "sandbox"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)], timeout=300)
    (found,) = out.glob("alicertd-*.whl")
    return found


def config_text(world, certificates, *, broken: bool = False) -> str:
    """An alicertd config for the world, as seen from inside the image or the booted root:
    state in /var/lib/alicertd, Pebble's CA at /etc/alicertd/pebble-ca.pem. ``broken`` makes
    ``acme.profile`` a number (a config error naming its key path)."""
    data = world.config_data(Path("/var/lib/alicertd"), certificates)
    data["acme"]["ca_bundle"] = "/etc/alicertd/pebble-ca.pem"
    data["aliyun"]["endpoints"].setdefault("cas", world.sandbox.api_url)  # CDN deploys through CAS
    from tests.support.world import dump_toml
    text = dump_toml(data)
    return text.replace('profile = "default"', "profile = 7") if broken else text


def readme_block(heading: str, index: int = 0) -> str:
    """A ```sh block of README's ``heading`` section: the commands this test runs."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)[index]


def readme_commands(heading: str, index: int = 0, *, skip: tuple[str, ...] = ()) -> str:
    """The block's commands without comments, continuation lines joined (``\\``), minus ``skip``."""
    joined = readme_block(heading, index).replace("\\\n", " ")
    lines = [re.sub(r"\s+#.*$", "", ln) for ln in joined.splitlines()]
    return "\n".join(ln for ln in lines if ln.strip() and not ln.startswith(skip))


def wait_until(predicate, timeout: float, what: str, step: float = 0.5):
    from tests.support.world import wait_for
    return wait_for(predicate, timeout, what, step=step)


def files_under(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            yield Path(dirpath) / name
