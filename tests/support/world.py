"""A whole local world for end-to-end tests and benchmarks: the alicertd sandbox (Alibaba Cloud
API, authoritative DNS, TLS edge), Pebble validating DNS-01 through the sandbox's DNS, and
helpers to write an alicertd config for it and run the real CLI in a subprocess.

    with World() as world:
        config = world.write_config(tmp_path, certificates=[world.cert("www", ["example.com"],
                                                                        cdn=["cdn.example.com"])])
        proc = world.cli(config, "--run-now")

The AccessKey secret reaches alicertd only through the environment (``${VAR}`` in the config),
as an operator would do it. Nothing here imports alicertd's own code: the CLI is the interface.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox import Sandbox
from tests.support.pebble import Pebble

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_FIXTURE = REPO_ROOT / "sandbox" / "fixtures" / "demo.toml"
SECRET_ENV = "ALICERTD_TEST_AK_SECRET"


# --------------------------------------------------------------------------- TOML writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dump_toml(data: Mapping[str, Any]) -> str:
    """Enough TOML for alicertd configs: scalars, lists, tables, arrays of tables (nested)."""
    out: list[str] = []

    def table(prefix: str, body: Mapping[str, Any], header: str | None) -> None:
        scalars = {k: v for k, v in body.items() if not _is_table(v) and not _is_table_array(v)}
        if header is not None:
            out.append("")
            out.append(header)
        for k, v in scalars.items():
            out.append(f"{k} = {_toml_value(v)}")
        for k, v in body.items():
            name = f"{prefix}.{k}" if prefix else k
            if _is_table(v):
                table(name, v, f"[{name}]")
            elif _is_table_array(v):
                for item in v:
                    table(name, item, f"[[{name}]]")

    table("", data, None)
    return "\n".join(out) + "\n"


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(i, Mapping) for i in v)


# --------------------------------------------------------------------------- the world


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


class World:
    def __init__(self, fixture: Path | Mapping[str, Any] = DEMO_FIXTURE, *,
                 pebble_env: Mapping[str, str] | None = None, dns_delay: float | None = None,
                 eab: Mapping[str, str] | None = None, pebble_config: Mapping[str, Any] | None = None):
        """``eab`` (EAB key id -> base64url HMAC key) makes Pebble require external account
        binding; the config then needs ``extra={"acme": {"eab_kid": …, "eab_hmac_key": …}}``."""
        self.fixture = fixture
        self.pebble_env = dict(pebble_env or {})
        self.eab = dict(eab) if eab else None
        self.pebble_config = dict(pebble_config or {})  # merged into Pebble's config (e.g. profiles)
        self.dns_delay = dns_delay
        self.sandbox: Sandbox | None = None
        self.pebble: Pebble | None = None
        data = tomllib.loads(Path(fixture).read_text()) if isinstance(fixture, (str, Path)) else fixture
        key = data["access_key"][0]
        self.access_key_id, self.access_key_secret = key["id"], key["secret"]

    def start(self) -> World:
        self.sandbox = Sandbox(fixture=self.fixture, dns_delay=self.dns_delay)
        self.sandbox.start()
        self.pebble = Pebble(dns_server=f"127.0.0.1:{self.sandbox.dns_port}", env=self.pebble_env,
                             eab=self.eab, extra_config=self.pebble_config)
        self.pebble.start()
        return self

    def stop(self) -> None:
        if self.pebble is not None:
            self.pebble.stop()
        if self.sandbox is not None:
            self.sandbox.stop()

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- config -------------------------------------------------------------

    @staticmethod
    def cert(name: str, domains: Sequence[str], *, cdn: Sequence[str] = (), apigateway: Sequence[str] = (),
             key_type: str | None = None, **extra: Any) -> dict[str, Any]:
        """A [[certificate]] block. ``apigateway`` items are ``"region/group/domain"``."""
        block: dict[str, Any] = {"name": name, "domains": list(domains), **extra}
        if key_type:
            block["key_type"] = key_type
        deploy: list[dict[str, Any]] = []
        if cdn:
            deploy.append({"provider": "cdn", "domains": list(cdn)})
        for spec in apigateway:
            region, group, domain = spec.split("/")
            deploy.append({"provider": "apigateway", "region": region, "group_id": group, "domain": domain})
        if deploy:
            block["deploy"] = deploy
        return block

    def config_data(self, state_dir: Path, certificates: Sequence[Mapping[str, Any]], *,
                    verify_timeout: str = "30s", propagation_timeout: str = "30s",
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        assert self.sandbox is not None and self.pebble is not None, "World not started"
        api = self.sandbox.api_url
        data: dict[str, Any] = {
            "state_dir": str(state_dir),
            # Pebble picks a profile itself when an order names none: pin it for repeatable tests.
            "acme": {"directory": self.pebble.directory_url, "ca_bundle": self.pebble.ca_bundle,
                     "email": "ops@example.com", "profile": "default"},
            "aliyun": {"access_key_id": self.access_key_id, "access_key_secret": "${" + SECRET_ENV + "}",
                       "region": "cn-hangzhou",
                       "endpoints": {"alidns": api, "cdn": api, "apigateway": api, "cas": api}},
            "dns": {"nameservers": [f"127.0.0.1:{self.sandbox.dns_port}"],
                    "propagation_timeout": propagation_timeout, "ttl": 600},
            "verify": {"tls": True, "connect_to": f"127.0.0.1:{self.sandbox.edge_port}",
                       "timeout": verify_timeout},
            "schedule": {"interval": "12h", "jitter": "0s"},
            "runtime": {"lock_timeout": "30s"},
        }
        for key, value in (extra or {}).items():
            if isinstance(value, Mapping) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        data["certificate"] = [dict(c) for c in certificates]
        return data

    def write_config(self, directory: Path, certificates: Sequence[Mapping[str, Any]], **kw: Any) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "alicertd.toml"
        path.write_text(dump_toml(self.config_data(directory / "state", certificates, **kw)))
        return path

    # -- running alicertd ----------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ALICERTD_", "ALIBABA_CLOUD_", "ALIYUN_"))}
        env[SECRET_ENV] = self.access_key_secret
        env.update(extra)
        return env

    def cli(self, config: Path, *args: str, timeout: float = 120, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
                              env=self.env(**dict(env or {})))

    def spawn(self, config: Path, *args: str, env: Mapping[str, str] | None = None,
              log_path: Path | None = None) -> subprocess.Popen:
        """Start alicertd (the daemon unless args say otherwise); output goes to ``log_path``."""
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        return subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(config), *args],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                env=self.env(**dict(env or {})), start_new_session=True)

    @staticmethod
    def terminate(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    # -- looking at the sandbox ---------------------------------------------

    def txt_records(self) -> list[dict[str, Any]]:
        assert self.sandbox is not None
        return [r for r in self.sandbox.records() if r.get("type", r.get("Type")) == "TXT"
                and "_acme-challenge" in str(r.get("rr", r.get("RR", "")))]

    def served_serial(self, domain: str) -> str | None:
        """What the sandbox edge serves for ``domain`` right now, by a real TLS handshake."""
        import socket
        import ssl

        from cryptography import x509
        assert self.sandbox is not None
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection(("127.0.0.1", self.sandbox.edge_port), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname=domain) as tls:
                der = tls.getpeercert(binary_form=True)
        except OSError:
            return None
        return format(x509.load_der_x509_certificate(der).serial_number, "x")

    @staticmethod
    def chain_serial(state_dir: Path, name: str) -> str | None:
        from cryptography import x509
        path = state_dir / "certificates" / name / "fullchain.pem"
        if not path.exists():
            return None
        return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "x")
