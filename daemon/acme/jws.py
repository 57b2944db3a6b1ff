"""JSON Web Signatures as ACME uses them (RFC 8555 §6.2, RFC 7515, RFC 7518, RFC 7638).

The algorithm follows the key: ES256 for P-256, ES384 for P-384, RS256 for RSA. ECDSA
signatures are the raw ``r || s`` form JWS requires (RFC 7518 §3.4), not cryptography's DER.
Requests carry either ``jwk`` (newAccount, revocation by certificate key) or ``kid`` (the
account URL, everything else); never both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from daemon.keys import PrivateKey, PublicKey, key_type_of

_ALGORITHMS = {
    "ec256": ("ES256", hashes.SHA256(), 32, "P-256"),
    "ec384": ("ES384", hashes.SHA384(), 48, "P-384"),
}


def b64url(data: bytes | str) -> str:
    """base64url without padding (RFC 7515 §2)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url, with or without padding."""
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def algorithm(key: PrivateKey | PublicKey) -> str:
    """The JWS ``alg`` for ``key``."""
    key_type = key_type_of(key)
    return _ALGORITHMS[key_type][0] if key_type in _ALGORITHMS else "RS256"


def jwk(key: PrivateKey | PublicKey) -> dict[str, str]:
    """The public JWK of ``key`` with only its required members (RFC 7517, RFC 7518 §6)."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else key
    if isinstance(pub, ec.EllipticCurvePublicKey):
        _, _, size, crv = _ALGORITHMS[key_type_of(pub)]
        numbers = pub.public_numbers()
        return {"kty": "EC", "crv": crv,
                "x": b64url(numbers.x.to_bytes(size, "big")), "y": b64url(numbers.y.to_bytes(size, "big"))}
    numbers = pub.public_numbers()
    return {"kty": "RSA", "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}


def thumbprint(key_or_jwk: PrivateKey | PublicKey | dict[str, str]) -> str:
    """The RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, JSON
    without white space, base64url."""
    data = key_or_jwk if isinstance(key_or_jwk, dict) else jwk(key_or_jwk)
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "oct": ("k", "kty")}[data["kty"]]
    canonical = json_bytes({name: data[name] for name in required})
    return b64url(hashlib.sha256(canonical).digest())


def key_authorization(token: str, account_key: PrivateKey) -> str:
    """RFC 8555 §8.1: ``token || '.' || base64url(thumbprint(accountKey))``."""
    return f"{token}.{thumbprint(account_key)}"


def dns01_txt_value(key_auth: str) -> str:
    """RFC 8555 §8.4: the TXT record value is base64url(SHA-256(keyAuthorization))."""
    return b64url(hashlib.sha256(key_auth.encode("ascii")).digest())


def sign_raw(key: PrivateKey, signing_input: bytes) -> bytes:
    """The JWS signature of ``signing_input`` with ``key`` (raw r||s for ECDSA)."""
    key_type = key_type_of(key)
    if key_type in _ALGORITHMS:
        _, digest, size, _ = _ALGORITHMS[key_type]
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))  # type: ignore[call-arg]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]


def sign(key: PrivateKey, payload: Any, *, url: str, nonce: str | None, kid: str | None = None,
         ) -> dict[str, str]:
    """A flattened JWS (RFC 7515 §7.2.2) for an ACME request to ``url``.

    ``payload`` None means POST-as-GET (the empty payload, RFC 8555 §6.3). With ``kid`` the
    account URL is named, otherwise the public key is embedded as ``jwk``. ``nonce`` None is
    only for the inner JWS of a key change (RFC 8555 §7.3.5).
    """
    protected: dict[str, Any] = {"alg": algorithm(key), "url": url}
    if nonce is not None:
        protected["nonce"] = nonce
    if kid is not None:
        protected["kid"] = kid
    else:
        protected["jwk"] = jwk(key)
    return _flattened(protected, payload, lambda data: sign_raw(key, data))


def eab_binding(account_jwk: dict[str, str], *, kid: str, hmac_key: str, url: str) -> dict[str, str]:
    """The ``externalAccountBinding`` member of a newAccount payload (RFC 8555 §7.3.4): a JWS
    over the account's public JWK, HS256 with the CA-issued MAC key (given base64url)."""
    try:
        mac_key = b64url_decode(hmac_key)
    except ValueError:
        raise ValueError("acme.eab_hmac_key is not base64url") from None
    protected = {"alg": "HS256", "kid": kid, "url": url}
    return _flattened(protected, account_jwk,
                      lambda data: hmac.new(mac_key, data, hashlib.sha256).digest())


def _flattened(protected: dict[str, Any], payload: Any, signer) -> dict[str, str]:
    protected_b64 = b64url(json_bytes(protected))
    payload_b64 = "" if payload is None else b64url(json_bytes(payload))
    signature = signer(f"{protected_b64}.{payload_b64}".encode("ascii"))
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64url(signature)}


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
