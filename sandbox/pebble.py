"""Pebble (the ACME test CA) and pebble-challtestsrv (its mock DNS) as local processes.

Used by tests/acme, by other test suites that need a real ACME server, and by bench/. Both
servers listen on free loopback ports only. ``start()`` waits by polling with a deadline (never a
fixed sleep) and raises with the log tail when a process dies or never answers.

    with ChallTestSrv() as dns, Pebble(dns_server=dns.dns_addr) as ca:
        client = AcmeClient(ca.directory_url, key, ca_bundle=ca.ca_bundle)

Pebble's listener certificate is generated here (a throwaway CA + leaf for 127.0.0.1 and
localhost, made with ``cryptography``); ``ca_bundle`` is the PEM to pass as ``verify=``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parents[1]
FETCH_SCRIPT = REPO_ROOT / "scripts" / "fetch-pebble.sh"

START_TIMEOUT = 30.0  # seconds: Pebble generates its CA keys at start, which can take a moment
POLL_INTERVAL = 0.05  # seconds between readiness probes
STOP_TIMEOUT = 5.0

# Default profiles, as in Pebble's own example config: the "shortlived" one issues 6-day certs.
DEFAULT_PROFILES = {
    "default": {"description": "The profile you know and love", "validityPeriod": 7776000},
    "shortlived": {"description": "A short-lived cert profile", "validityPeriod": 518400},
}
BLOCKED_DOMAIN = "blocked-domain.example"


class PebbleUnavailable(RuntimeError):
    """The Pebble binaries could not be fetched or run on this machine."""


def ensure_pebble() -> Path:
    """Return the directory holding ``pebble`` and ``pebble-challtestsrv``, fetching them with
    scripts/fetch-pebble.sh when needed. Under pytest an unavailable Pebble skips the test with
    the reason; elsewhere it raises PebbleUnavailable."""
    try:
        bin_dir = _fetch()
    except PebbleUnavailable as exc:
        if "pytest" in sys.modules:
            import pytest

            pytest.skip(f"Pebble is not available: {exc}")
        raise
    return bin_dir


_fetched: Path | None = None


def _fetch() -> Path:
    global _fetched
    if _fetched is not None:
        return _fetched
    if not FETCH_SCRIPT.exists():
        raise PebbleUnavailable(f"{FETCH_SCRIPT} is missing")
    try:
        out = subprocess.run(["bash", str(FETCH_SCRIPT)], capture_output=True, text=True,
                             timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PebbleUnavailable(f"scripts/fetch-pebble.sh failed: {exc}") from None
    if out.returncode != 0:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        raise PebbleUnavailable(f"scripts/fetch-pebble.sh exited {out.returncode}: {tail}")
    bin_dir = Path(out.stdout.strip().splitlines()[-1])
    for name in ("pebble", "pebble-challtestsrv"):
        if not os.access(bin_dir / name, os.X_OK):
            raise PebbleUnavailable(f"{bin_dir / name} is not an executable")
    _fetched = bin_dir
    return bin_dir


def pebble_finds_by_cert_id(serial_hex: str) -> bool:
    """Whether Pebble 2.10 finds its certificate of serial ``serial_hex`` from an ARI CertID,
    the ``replaces`` of a new order (RFC 9773 §5). It files orders under the hex of the
    serial's minimal big-endian bytes but looks ``replaces`` up by the hex of the CertID's
    serial octets, which are DER's: with a leading zero octet when the top bit is set. One of
    its 63-bit serials in 256 (seven octets, top bit set) is never found, and a ``replaces``
    naming it is answered with a 500: neither accepted nor refused as alreadyReplaced. Tests
    of Pebble's ``replaces`` semantics reissue until this is true."""
    return int(serial_hex, 16).bit_length() % 8 != 0


def free_port(udp_too: bool = False) -> int:
    """A loopback port free right now (for TCP, and for UDP as well when ``udp_too``)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not udp_too:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free loopback port found")


def _wait_until(probe: Callable[[], bool], proc: subprocess.Popen, log_path: Path, what: str,
                timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start:\n{_tail(log_path)}")
        if probe():
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:.0f}s:\n{_tail(log_path)}")
        time.sleep(POLL_INTERVAL)


def _port_taken(log_text: str) -> bool:
    """A start failed because a port picked as free was taken meanwhile (worth another try)."""
    return "address already in use" in log_text.lower()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class _Process:
    """A child process with its log in a temp dir, started in its own process group."""

    name = "process"

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None
        self._log = None

    def _spawn(self, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        assert self.workdir is not None
        self.log_path = self.workdir / f"{self.name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
                                     cwd=self.workdir, start_new_session=True)

    def _start_with_retries(self, launch: Callable[[], None], attempts: int = 3) -> None:
        """Run ``launch`` (pick ports, spawn) until the server answers. A port picked as free
        can be taken before the server binds it: only that failure is worth another try."""
        last_error: Exception | None = None
        for _ in range(attempts):
            launch()
            try:
                _wait_until(self._answers, self.proc, self.log_path, self.name)
                return
            except RuntimeError as exc:
                last_error = exc
                self.stop()
                if not _port_taken(str(exc)):
                    break
        raise RuntimeError(str(last_error))

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines) if self.log_path else "(not started)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError


class ChallTestSrv(_Process):
    """pebble-challtestsrv serving only mock DNS (no HTTP-01/TLS-ALPN-01/DoH listeners).

    ``set_txt`` adds a value (several values on one name are all served, which a wildcard +
    apex pair needs); ``clear_txt`` removes every value of the name.
    """

    name = "pebble-challtestsrv"

    def __init__(self) -> None:
        super().__init__()
        self.dns_port = 0
        self.management_port = 0

    @property
    def dns_addr(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def start(self) -> ChallTestSrv:
        bin_dir = ensure_pebble()

        def launch() -> None:
            self.workdir = Path(tempfile.mkdtemp(prefix="challtestsrv-"))
            self.dns_port = free_port(udp_too=True)
            self.management_port = free_port()
            self._spawn([str(bin_dir / "pebble-challtestsrv"),
                         "-dnsserver", self.dns_addr, "-management", f"127.0.0.1:{self.management_port}",
                         "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""])
        self._start_with_retries(launch)
        return self

    def _answers(self) -> bool:
        try:
            requests.post(f"{self.management_url}/clear-txt", json={"host": "probe.invalid."}, timeout=1)
        except requests.RequestException:
            return False
        return _dns_answers(self.dns_port)

    def _post(self, path: str, body: dict[str, Any]) -> None:
        resp = requests.post(f"{self.management_url}{path}", json=body, timeout=5)
        resp.raise_for_status()

    def set_txt(self, name: str, value: str) -> None:
        """Serve TXT ``value`` at ``name`` (in addition to values already there)."""
        self._post("/set-txt", {"host": _fqdn(name), "value": value})

    def clear_txt(self, name: str) -> None:
        """Stop serving every TXT value at ``name``."""
        self._post("/clear-txt", {"host": _fqdn(name)})

    def set_default_ipv4(self, ip: str) -> None:
        self._post("/set-default-ipv4", {"ip": ip})


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _dns_answers(port: int) -> bool:
    """True when something answers a DNS query on 127.0.0.1:port (UDP)."""
    import dns.exception
    import dns.message
    import dns.query

    try:
        dns.query.udp(dns.message.make_query("probe.invalid.", "TXT"), "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.DNSException, OSError):
        return False
    return True


class Pebble(_Process):
    """Pebble 2.10 on loopback ports with a generated listener certificate.

    ``env`` is added to the defaults ``PEBBLE_VA_NOSLEEP=1`` and ``PEBBLE_AUTHZREUSE=0`` (set a
    key to override it). ``eab`` maps EAB key ids to base64url HMAC keys and makes Pebble require
    external account binding. ``extra_config`` is merged into the ``"pebble"`` config object.
    Pebble's own defaults here: the profiles ``default`` (90 days) and ``shortlived`` (6 days),
    ``blocked-domain.example`` on the block list, no Retry-After on polls. Pebble's own nonce
    rejection (5 % of good nonces) stays on unless ``env`` sets PEBBLE_WFE_NONCEREJECT, so every
    test exercises the badNonce retry a little.

    Pebble 2.10 picks a *random* profile for an order that names none (Go map order): ask for
    ``profile="default"`` when the lifetime matters. ``PEBBLE_AUTHZREUSE=0`` does not turn reuse
    off: Pebble reuses an account's valid authorization for a name unless ``rand.Intn(100) >
    percent``, which a draw of 0 is not: a second order for the same names skips a challenge
    one time in 100. A test that counts what a second order presents needs names of its own.
    """

    name = "pebble"

    def __init__(self, dns_server: str | None = None, env: Mapping[str, str] | None = None,
                 eab: Mapping[str, str] | None = None, extra_config: Mapping[str, Any] | None = None):
        super().__init__()
        self.dns_server = dns_server
        self.env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0", **dict(env or {})}
        self.eab = dict(eab) if eab else None
        self.extra_config = dict(extra_config or {})
        self.port = 0
        self.management_port = 0
        self.config: dict[str, Any] = {}

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM that verifies Pebble's listeners (ACME and management)."""
        assert self.workdir is not None, "Pebble is not started"
        return str(self.workdir / "listener-ca.pem")

    def start(self) -> Pebble:
        bin_dir = ensure_pebble()

        def launch() -> None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pebble-"))
            self.port, self.management_port = free_port(), free_port()
            self._write_tls_files()
            self.config = self._config()
            (self.workdir / "pebble-config.json").write_text(json.dumps({"pebble": self.config}, indent=2))
            argv = [str(bin_dir / "pebble"), "-config", str(self.workdir / "pebble-config.json")]
            if self.dns_server:
                argv += ["-dnsserver", self.dns_server]
            self._spawn(argv, self.env)
        self._start_with_retries(launch)
        return self

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.workdir / "listener-cert.pem"),
            "privateKey": str(self.workdir / "listener-key.pem"),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab),
            "externalAccountMACKeys": dict(self.eab or {}),
            "domainBlocklist": [BLOCKED_DOMAIN],
            "retryAfter": {"authz": 0, "order": 0},
            "profiles": DEFAULT_PROFILES,
        }
        config.update(self.extra_config)
        return config

    def _answers(self) -> bool:
        try:
            resp = requests.get(self.directory_url, verify=self.ca_bundle, timeout=1)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    def _write_tls_files(self) -> None:
        ca_pem, cert_pem, key_pem = make_listener_certificate(["127.0.0.1", "localhost", "::1"])
        assert self.workdir is not None
        (self.workdir / "listener-ca.pem").write_bytes(ca_pem)
        (self.workdir / "listener-cert.pem").write_bytes(cert_pem)
        key_path = self.workdir / "listener-key.pem"
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)

    # ------------------------------------------------------------------ management interface

    def _management_get(self, path: str) -> requests.Response:
        resp = requests.get(f"{self.management_url}{path}", verify=self.ca_bundle, timeout=10)
        resp.raise_for_status()
        return resp

    def root_pem(self, index: int = 0) -> str:
        """Pebble's issuing root (regenerated at every start); ``index`` > 0 for alternate roots."""
        return self._management_get(f"/roots/{index}").text

    def intermediate_pem(self, index: int = 0) -> str:
        return self._management_get(f"/intermediates/{index}").text

    def cert_status(self, serial_hex: str) -> dict[str, Any]:
        """``{"Status": "Valid"|"Revoked", "Reason", "RevokedAt", "Serial", "Certificate"}``."""
        return self._management_get(f"/cert-status-by-serial/{serial_hex}").json()


def make_listener_certificate(names: list[str]) -> tuple[bytes, bytes, bytes]:
    """A one-day CA and a server certificate for ``names`` (IPs or DNS names) signed by it.
    Returns (ca_pem, cert_pem, key_pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alicertd test listener CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )



class ChallTestSolver:
    """A DNS-01 solver (``present``/``wait``/``cleanup``, the shape of providers.base.DnsProvider)
    that serves the records from a ChallTestSrv.

    ``wait`` asks the mock DNS server itself, as a real provider asks the authoritative
    nameservers, until every value is served or the deadline (``time.monotonic()``) passes.
    ``presented``/``cleaned`` record the calls so tests can check the issuance drove them.
    """

    def __init__(self, server: ChallTestSrv, *, mangle: Callable[[Any], str | None] | None = None):
        self.server = server
        self.mangle = mangle  # challenge -> the value to serve instead (None: the right one)
        self.presented: list[list[Any]] = []
        self.waited = 0
        self.cleaned: list[list[Any]] = []

    def present(self, challenges):
        challenges = list(challenges)
        self.presented.append(challenges)
        served = []
        for ch in challenges:
            value = (self.mangle(ch) if self.mangle else None) or ch.value
            self.server.set_txt(ch.record_name, value)
            served.append((ch.record_name, value))
        return served

    def wait(self, handle, deadline: float) -> None:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rdatatype

        self.waited += 1
        want: dict[str, set[str]] = {}
        for name, value in handle:
            want.setdefault(_fqdn(name), set()).add(value)
        while True:
            missing = []
            for name, values in want.items():
                try:
                    reply = dns.query.udp(dns.message.make_query(name, "TXT"), "127.0.0.1",
                                          port=self.server.dns_port, timeout=1)
                except (dns.exception.DNSException, OSError):
                    missing.append(name)
                    continue
                seen = {b"".join(r.strings).decode() for rrset in reply.answer
                        if rrset.rdtype == dns.rdatatype.TXT for r in rrset}
                if not values <= seen:
                    missing.append(name)
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"challtestsrv: TXT not served at {', '.join(missing)} by the deadline")
            time.sleep(POLL_INTERVAL)

    def cleanup(self, handle) -> None:
        self.cleaned.append(list(handle))
        for name in sorted({name for name, _ in handle}):
            self.server.clear_txt(name)
