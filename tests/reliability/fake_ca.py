"""A misbehaving ACME server on loopback HTTP, for the answers Pebble never gives.

alicertd accepts an ``http://`` directory only on loopback, which is what this is. It verifies
no signature and keeps no accounts: every key "has" account ``/acct/1``. What it serves is
decided by the path of the directory and by the names in an order:

- ``/dir``          a valid directory (with the ``default`` profile); the flow below
- ``/dir-html``     200 with an HTML page instead of JSON
- ``/dir-missing``  a JSON object without ``newOrder``/``revokeCert``
- ``/dir-types``    every URL of the wrong JSON type

Orders (``/dir`` only) go straight to ``ready`` (authorizations already valid: no DNS challenge
is needed), unless the first name contains

- ``garbage``   newOrder answers 201 with an HTML body
- ``wrongtype`` newOrder answers 201 with JSON whose fields have the wrong types
- ``otherkey``  the whole flow works, but the chain certifies a key that is not the CSR's

Anything else is issued properly: a leaf for the CSR's key, signed by a throwaway CA.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class FakeCA:
    def __init__(self) -> None:
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self._ca_cert = (x509.CertificateBuilder().subject_name(_name("alicertd fake CA"))
                         .issuer_name(_name("alicertd fake CA")).public_key(self._ca_key.public_key())
                         .serial_number(x509.random_serial_number())
                         .not_valid_before(now - dt.timedelta(hours=1))
                         .not_valid_after(now + dt.timedelta(days=30))
                         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                         .sign(self._ca_key, hashes.SHA256()))
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.orders: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path), for the test to look at
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                fake._record("HEAD", self.path)
                self._send(200, b"")

            def do_GET(self) -> None:  # noqa: N802
                fake._record("GET", self.path)
                status, body, ctype, headers = fake._get(self.path)
                self._send(status, body, ctype, headers)

            def do_POST(self) -> None:  # noqa: N802
                fake._record("POST", self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    jws = json.loads(raw)
                    payload_b64 = jws.get("payload", "")
                    payload = json.loads(_b64url_decode(payload_b64)) if payload_b64 else None
                except ValueError:
                    payload = None
                status, body, ctype, headers = fake._post(self.path, payload)
                self._send(status, body, ctype, headers)

            def _send(self, status: int, body: bytes, ctype: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Replay-Nonce", uuid.uuid4().hex)
                self.send_header("Cache-Control", "no-store")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ca", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str = "/dir") -> str:
        return self.base + path

    def __enter__(self) -> FakeCA:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    # ------------------------------------------------------------------ answers

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None):
        return status, json.dumps(data).encode(), "application/json", headers or {}

    def _get(self, path: str):
        b = self.base
        if path == "/dir":
            return self._json(200, {"newNonce": f"{b}/nonce", "newAccount": f"{b}/acct",
                                    "newOrder": f"{b}/order", "revokeCert": f"{b}/revoke",
                                    "keyChange": f"{b}/key-change",
                                    "meta": {"profiles": {"default": "the only one"}}})
        if path == "/dir-html":
            return 200, HTML, "text/html", {}
        if path == "/dir-missing":
            return self._json(200, {"newNonce": f"{b}/nonce", "newAccount": f"{b}/acct",
                                    "meta": {"profiles": {"default": "x"}}})
        if path == "/dir-types":
            return self._json(200, {"newNonce": 42, "newAccount": [f"{b}/acct"], "newOrder": {"url": "x"},
                                    "revokeCert": None, "meta": "nope"})
        if path == "/nonce":
            return 200, b"", "text/plain", {}
        return self._json(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": "no such thing"})

    def _post(self, path: str, payload: Any):
        b = self.base
        if path == "/acct":
            return self._json(201, {"status": "valid", "contact": []}, {"Location": f"{b}/acct/1"})
        if path == "/acct/1":
            return self._json(200, {"status": "valid", "contact": []})
        if path == "/order":
            names = [str(i.get("value")) for i in (payload or {}).get("identifiers", []) if isinstance(i, dict)]
            first = names[0] if names else ""
            if "garbage" in first:
                return 201, HTML, "text/html", {"Location": f"{b}/order/0"}
            if "wrongtype" in first:
                return self._json(201, {"status": 7, "identifiers": [{"type": "dns", "value": first}],
                                        "authorizations": f"{b}/authz/0", "finalize": [f"{b}/finalize/0"]},
                                  {"Location": f"{b}/order/0"})
            oid = str(next(self._ids))
            with self._lock:
                self.orders[oid] = {"names": names, "status": "ready", "chain": None}
            return self._json(201, self._order(oid), {"Location": f"{b}/order/{oid}"})
        kind, _, oid = path.strip("/").partition("/")
        with self._lock:
            order = self.orders.get(oid)
        if order is None:
            return self._json(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": "unknown"})
        if kind == "authz":
            return self._json(200, {"status": "valid", "identifier": {"type": "dns", "value": order["names"][0]},
                                    "challenges": []})
        if kind == "order":
            return self._json(200, self._order(oid))
        if kind == "finalize":
            csr = x509.load_der_x509_csr(_b64url_decode(payload["csr"]))
            key = csr.public_key()
            if any("otherkey" in n for n in order["names"]):
                key = ec.generate_private_key(ec.SECP256R1()).public_key()
            order["chain"] = self._issue(order["names"], key)
            order["status"] = "valid"
            return self._json(200, self._order(oid))
        if kind == "cert" and order["chain"]:
            return 200, order["chain"].encode(), "application/pem-certificate-chain", {}
        return self._json(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": "unknown"})

    def _order(self, oid: str) -> dict[str, Any]:
        b, order = self.base, self.orders[oid]
        data = {"status": order["status"], "identifiers": [{"type": "dns", "value": n} for n in order["names"]],
                "authorizations": [f"{b}/authz/{oid}"], "finalize": f"{b}/finalize/{oid}"}
        if order["status"] == "valid":
            data["certificate"] = f"{b}/cert/{oid}"
        return data

    def _issue(self, names: list[str], public_key) -> str:
        now = dt.datetime.now(dt.UTC)
        leaf = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(self._ca_cert.subject)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=20))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .sign(self._ca_key, hashes.SHA256()))
        pem = serialization.Encoding.PEM
        return (leaf.public_bytes(pem) + self._ca_cert.public_bytes(pem)).decode()
