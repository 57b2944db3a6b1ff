"""Files on this machine as a deploy target, for nginx, HAProxy, Postfix and the like.

Also the example to copy for a third-party deploy target: one module, one class, registered
under the entry-point group ``alicertd.providers`` (see ``examples/plugin/``)::

    [[certificate.deploy]]
    provider = "local"
    directory = "/etc/nginx/tls/www"                      # absolute; created 0700 if missing
    reload_command = ["systemctl", "reload", "nginx"]     # optional, run without a shell
    tls_check = "127.0.0.1:443"                           # optional, handshake after the reload

Writes ``fullchain.pem`` and ``privkey.pem`` (0600), each atomically (temp file, fsync, rename).
The key goes first: a crash between the two renames leaves the old chain, which
``read_bindings`` reports as the old certificate, so the next run binds again.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.base import (
    Binding,
    CertificateBundle,
    ConfigDefaults,
    ConfigErrors,
    ProviderContext,
    ProviderError,
    Target,
    VerificationError,
)
from providers.certnames import leaf_of_pem
from providers.settings import Section
from providers.tls import wait_for_edge

CHAIN = "fullchain.pem"
KEY = "privkey.pem"
RELOAD_TIMEOUT = 60.0


@dataclass(frozen=True)
class LocalSettings:
    directory: Path
    reload_command: tuple[str, ...] = ()
    tls_check: str | None = None  # host:port


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a 0600 temp file beside it, fsync, rename, fsync the
    directory. A reader sees the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalProvider:
    """Write the certificate and key into a directory, then run a reload command."""

    kind = "deploy"
    name = "local"

    def __init__(self, ctx: ProviderContext):
        self.ctx = ctx

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> LocalSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        directory = s.str("directory", required=True)
        reload_command = s.str_list("reload_command", ())
        tls_check = s.host_port("tls_check")
        s.finish()
        if directory is not None and not Path(directory).is_absolute():
            s.error("directory", f"{directory!r} is not an absolute path")
        if s.has("reload_command") and not reload_command and len(errors) == before:
            s.error("reload_command", "must not be an empty list (leave it out instead)")
        if len(errors) > before:
            return None
        return LocalSettings(Path(directory), tuple(reload_command), tls_check)

    @classmethod
    def expand(cls, settings: LocalSettings) -> list[Target]:
        return [Target(cls.name, str(settings.directory), settings)]

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        return {t: self._read(t.settings) for t in targets}

    def _read(self, s: LocalSettings) -> Binding:
        try:
            leaf = leaf_of_pem((s.directory / CHAIN).read_bytes())
        except FileNotFoundError:
            return Binding("none")
        except (OSError, ValueError) as exc:
            return Binding("error", detail=f"{s.directory / CHAIN}: {exc}")
        return Binding("ok", serial=leaf.serial, fingerprint=leaf.fingerprint, not_after=leaf.not_after)

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        s: LocalSettings = target.settings
        try:
            s.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(s.directory / KEY, bundle.key_pem)
            write_atomic(s.directory / CHAIN, bundle.fullchain_pem)
        except OSError as exc:
            raise ProviderError(f"local: cannot write {s.directory}: {exc.strerror or exc}") from None
        if s.reload_command:
            self._reload(s.reload_command)

    def _reload(self, command: tuple[str, ...]) -> None:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=RELOAD_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ProviderError(f"local: {command[0]} did not finish within {RELOAD_TIMEOUT:g}s",
                                retryable=True) from None
        except OSError as exc:
            raise ProviderError(f"local: cannot run {command[0]}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise ProviderError(f"local: {command[0]} exited with {done.returncode}"
                                + (f": {lines[-1]}" if lines else ""))

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        s: LocalSettings = target.settings
        binding = self._read(s)
        try:
            key_ok = (s.directory / KEY).read_text("ascii") == bundle.key_pem
        except (OSError, ValueError):
            key_ok = False
        if binding.fingerprint != bundle.fingerprint or not key_ok:
            raise VerificationError(f"local: {s.directory} does not hold serial {bundle.serial}")
        if s.tls_check and self.ctx.config.verify.tls:
            wait_for_edge("local", bundle.domains[0], bundle, connect_to=s.tls_check,
                          deadline=deadline, stop=self.ctx.stop, started=time.monotonic())
        return binding
