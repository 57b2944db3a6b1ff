"""`make demo`: alicertd's main job, end to end, on this machine alone.

Starts the alicertd sandbox (a local Alibaba Cloud: Alidns, CDN, API Gateway, an authoritative
DNS server and a TLS edge) and Pebble (Let's Encrypt's test CA, validating DNS-01 against the
sandbox's DNS), runs ``alicertd --run-now`` with config/sandbox.toml, then shows what was issued
and what every target serves, by a real TLS handshake with the sandbox edge. Stops everything it
started. Exit 0 only when every target serves the new certificate.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox import Sandbox  # noqa: E402
from sandbox.pebble import Pebble  # noqa: E402

API_PORT, DNS_PORT, EDGE_PORT = 18080, 15353, 18443
FIXTURE = REPO / "sandbox" / "fixtures" / "demo.toml"
CONFIG = REPO / "config" / "sandbox.toml"
TARGETS = [("www", "cdn.example.com"), ("www", "img.example.com"), ("api", "api.example.com"),
           ("lb", "shop.example.com"), ("lb", "tls.example.com"), ("lb", "legacy.example.com"),
           ("edge", "dcdn.example.com"), ("edge", "www.example.net"), ("edge", "files.example.com")]


def say(text: str = "") -> None:
    print(text, flush=True)


def handshake(sni: str) -> tuple[str, str]:
    """(serial hex, issuer CN) of the certificate the edge serves for ``sni``."""
    import socket
    import ssl

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", EDGE_PORT), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return format(cert.serial_number, "x"), issuer[0].value if issuer else "?"


KEEP_DIR = Path(tempfile.gettempdir()) / "alicertd-demo"


#: ``--accounts``: the two-account setup (issue #16): A's instance role, B's CDN by AssumeRole.
ACCOUNTS_FIXTURE = REPO / "sandbox" / "fixtures" / "accounts.toml"
ACCOUNTS_CONFIG = REPO / "config" / "sandbox-accounts.toml"
ACCOUNTS_TARGETS = [("www", "cdn.example.com"), ("www", "img.example.com")]


def main(argv: list[str]) -> int:
    global FIXTURE, CONFIG, TARGETS
    keep = "--keep-running" in argv
    accounts = "--accounts" in argv
    if accounts:
        FIXTURE, CONFIG, TARGETS = ACCOUNTS_FIXTURE, ACCOUNTS_CONFIG, ACCOUNTS_TARGETS
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what we started, then exit
    started = time.monotonic()
    fixture = tomllib.loads(FIXTURE.read_text())
    key = (fixture.get("access_key") or [{"id": "", "secret": ""}])[0]
    if keep:  # a fixed place, so that README's walk-through can be pasted as it is
        shutil.rmtree(KEEP_DIR, ignore_errors=True)
        KEEP_DIR.mkdir(mode=0o700)
        work = KEEP_DIR
    else:
        work = Path(tempfile.mkdtemp(prefix="alicertd-demo-"))
    sandbox = Sandbox(fixture=FIXTURE, api_port=API_PORT, dns_port=DNS_PORT, edge_port=EDGE_PORT)
    if accounts:
        say("accounts: A 1000000000000001 (zone example.com, instance role alicertd-role, hardened "
            "metadata), B 2000000000000002 (CDN, role alicertd-deploy trusting A's instance role)")
    pebble = Pebble(dns_server=f"127.0.0.1:{DNS_PORT}")
    try:
        try:
            sandbox.start()
        except OSError as exc:
            say(f"demo: cannot start the sandbox on ports {API_PORT}/{DNS_PORT}/{EDGE_PORT}: {exc}")
            return 1
        say(f"sandbox: Alibaba Cloud API at {sandbox.api_url}, DNS at 127.0.0.1:{DNS_PORT}, "
            f"TLS edge at 127.0.0.1:{EDGE_PORT}")
        if accounts:
            sandbox.set_metadata_mode("hardened")
        pebble.start()
        shutil.copy(pebble.ca_bundle, work / "pebble-listener.pem")
        say(f"pebble:  ACME directory at {pebble.directory_url} (validating DNS-01 through the sandbox)")
        env = dict(os.environ, ALICERTD_DEMO_DIR=str(work), ALICERTD_DEMO_ACME_URL=pebble.directory_url,
                   ALIBABA_CLOUD_ACCESS_KEY_ID=key["id"], ALIBABA_CLOUD_ACCESS_KEY_SECRET=key["secret"])
        if accounts:  # no AccessKey at all: the instance role, then AssumeRole
            env.pop("ALIBABA_CLOUD_ACCESS_KEY_ID")
            env.pop("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        env.pop("ALICERTD_CONFIG", None)
        cli = [sys.executable, "-m", "daemon", "--config", str(CONFIG)]
        say()
        say(f"$ alicertd --config {CONFIG.relative_to(REPO)} --run-now")
        run = subprocess.run([*cli, "--run-now"], env=env, cwd=REPO)
        say()
        say("$ alicertd status")
        subprocess.run([*cli, "status"], env=env, cwd=REPO)

        say()
        say("What the sandbox's TLS edge serves now (a real TLS handshake per domain):")
        ok = run.returncode == 0
        for name, domain in TARGETS:
            chain = work / "state" / "certificates" / name / "fullchain.pem"
            expected = None
            if chain.exists():
                from cryptography import x509
                expected = format(x509.load_pem_x509_certificate(chain.read_bytes()).serial_number, "x")
            try:
                served, issuer = handshake(domain)
            except OSError as exc:
                served, issuer = f"handshake failed: {exc}", "-"
            match = served == expected
            ok = ok and match
            say(f"  {domain:<18} serial {served:<40} issuer {issuer:<28} "
                f"{'= ' + name + ' (new)' if match else 'MISMATCH (expected ' + str(expected) + ')'}")
        uploads = [c for c in sandbox.cas_certificates() if c["source"] == "cas"]
        if uploads:
            say()
            say("Certificates alicertd uploaded to the sandbox's CAS (bound by id, the key sent once):")
            for c in uploads:
                bound = ", ".join(u.replace(" .", " *.", 1) for u in c["users"]) or "-"
                say(f"  CAS {c['cert_id']:<12} {c['region']:<14} {c['cert_name']:<32} serial "
                    f"{c['serial']:<34} served on {bound}")
        calls = sandbox.call_counts() if hasattr(sandbox, "call_counts") else {}
        if calls:
            say()
            say("Alibaba Cloud API calls made: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))
        say()
        say(f"demo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s "
            f"(state dir: {work / 'state'})")
        if keep:
            env_file = work / "demo.env"
            keys = tuple(k for k in ("ALICERTD_DEMO_DIR", "ALICERTD_DEMO_ACME_URL",
                                     "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
                         if k in env)
            lines = [f"export {k}={env[k]}" for k in keys] + [f"export ALICERTD_CONFIG={CONFIG}",
                                                               f"export PATH={Path(sys.executable).parent}:$PATH"]
            env_file.write_text("\n".join(lines) + "\n")
            env_file.chmod(0o600)
            say()
            say(f"Pebble and the sandbox keep running. In another shell:  . {env_file}")
            say("then try: alicertd account show; alicertd acme directory; alicertd status --json")
            say("Press Ctrl-C here to stop them.")
            try:
                signal.pause()
            except KeyboardInterrupt:
                say("stopping")
        return 0 if ok else 1
    finally:
        pebble.stop()
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
