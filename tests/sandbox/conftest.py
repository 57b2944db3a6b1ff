"""Shared fixtures for the sandbox tests.

The SDK is used unchanged (AcsClient + the product request classes) with the endpoint pointed
at the sandbox; requests the SDK cannot produce (stale timestamps, replays) are signed by the
tiny independent signer below, never by sandbox.signature. Certificates come from a throwaway
CA generated per session: no key is ever committed.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import time
import uuid
from urllib.parse import quote

import pytest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.client import AcsClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandbox import Sandbox

AK = "LTAIsandboxdemo000001"
SECRET = "sandbox-demo-secret-not-a-real-key"


# --------------------------------------------------------------------------- certificates


class LocalCA:
    """A tiny CA: ``issue(names)`` -> (fullchain PEM, key PEM, leaf certificate)."""

    def __init__(self, name: str = "Sandbox Test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "alicertd tests")])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, names, days: int = 90, not_before_days: int = -1):
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=not_before_days))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        chain = leaf.public_bytes(serialization.Encoding.PEM).decode() + self.pem
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return chain, key_pem, leaf


@pytest.fixture(scope="session")
def ca() -> LocalCA:
    return LocalCA()


def serial_of(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def handshake(sb, sni, ca_pem=None):
    """Serial (hex) of the leaf the edge serves for ``sni``; verified against ``ca_pem`` if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", sb.edge_port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
    return serial_of(x509.load_der_x509_certificate(der))


# --------------------------------------------------------------------------- sandbox + SDK


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """The SDK reads credentials and proxies from the environment; none may leak in."""
    for var in ("ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "HTTP_PROXY", "HTTPS_PROXY",
                "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def shared_sb():
    with Sandbox(cdn_rollout_seconds=0.3) as sb:
        yield sb


@pytest.fixture
def sb(shared_sb):
    """The demo world, reset before each test (one set of listeners per test module)."""
    shared_sb.load_fixture(None)  # a test may have loaded another fixture
    shared_sb.reset()
    return shared_sb


@pytest.fixture
def client():
    return AcsClient(AK, SECRET, "cn-hangzhou")


def call(sb, client, req, method: str | None = None) -> dict:
    """Run ``req`` against the sandbox through the unchanged SDK; parsed JSON back."""
    req.set_endpoint(sb.api_host)
    if method:
        req.set_method(method)
    return json.loads(client.do_action_with_exception(req))


def call_error(sb, client, req, method: str | None = None) -> ServerException:
    with pytest.raises(ServerException) as info:
        call(sb, client, req, method)
    return info.value


def client_error(sb, client, req) -> ClientException:
    with pytest.raises(ClientException) as info:
        call(sb, client, req)
    return info.value


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02):
    """Poll ``predicate`` until truthy (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# --------------------------------------------------------------------------- independent signer


def _enc(s: str) -> str:
    return quote(str(s), safe="-_.~")


def independent_sign(method: str, params: dict, secret: str) -> str:
    """Signature 1.0 written from the spec, sharing no code with the sandbox or the SDK."""
    import base64
    import hashlib
    import hmac

    canon = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()) if k != "Signature")
    sts = f"{method}&{_enc('/')}&{_enc(canon)}"
    return base64.b64encode(hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()


def signed_params(action: str, version: str, extra: dict | None = None, *, ak: str = AK,
                  secret: str = SECRET, method: str = "GET", timestamp: str | None = None,
                  nonce: str | None = None) -> dict:
    params = {
        "Action": action, "Version": version, "Format": "JSON", "RegionId": "cn-hangzhou",
        "AccessKeyId": ak, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "SignatureType": "", "SignatureNonce": nonce or uuid.uuid4().hex,
        "Timestamp": timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    params.update(extra or {})
    params["Signature"] = independent_sign(method, params, secret)
    return params


def signed_url(sb, params: dict) -> str:
    return sb.api_url + "/?" + "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params.items())
