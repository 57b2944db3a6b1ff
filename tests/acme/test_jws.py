"""daemon.acme.jws: algorithms, JWK thumbprints, key authorizations, EAB. No server."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from daemon import keys
from daemon.acme import jws

RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)


def decode(part: str) -> dict:
    return json.loads(jws.b64url_decode(part))


def test_rfc7638_thumbprint_vector():
    # RFC 7638 §3.1; extra members ("alg", "kid") must not change the thumbprint.
    key = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert jws.thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rsa_jwk_round_trips_to_the_same_thumbprint():
    from cryptography.hazmat.primitives.asymmetric import rsa

    n = int.from_bytes(jws.b64url_decode(RFC7638_N), "big")
    pub = rsa.RSAPublicNumbers(65537, n).public_key()
    assert jws.jwk(pub) == {"kty": "RSA", "n": RFC7638_N, "e": "AQAB"}
    assert jws.thumbprint(pub) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("key_type, alg, size, crv", [("ec256", "ES256", 32, "P-256"), ("ec384", "ES384", 48, "P-384")])
def test_ec_signature_is_raw_r_s_and_verifies(key_type, alg, size, crv):
    key = keys.generate_private_key(key_type)
    body = jws.sign(key, {"hello": "world"}, url="https://ca.example/new-order", nonce="n0")
    header = decode(body["protected"])
    assert header == {"alg": alg, "url": "https://ca.example/new-order", "nonce": "n0", "jwk": jws.jwk(key)}
    assert header["jwk"]["crv"] == crv and len(jws.b64url_decode(header["jwk"]["x"])) == size
    raw = jws.b64url_decode(body["signature"])
    assert len(raw) == 2 * size
    der = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    digest = hashes.SHA256() if size == 32 else hashes.SHA384()
    key.public_key().verify(der, f"{body['protected']}.{body['payload']}".encode(), ec.ECDSA(digest))
    assert decode(body["payload"]) == {"hello": "world"}


def test_rsa_signature_rs256_with_kid():
    key = keys.generate_private_key("rsa2048")
    body = jws.sign(key, None, url="https://ca.example/authz/1", nonce="n1", kid="https://ca.example/acct/7")
    header = decode(body["protected"])
    assert header == {"alg": "RS256", "url": "https://ca.example/authz/1", "nonce": "n1",
                      "kid": "https://ca.example/acct/7"}
    assert body["payload"] == ""  # POST-as-GET
    key.public_key().verify(jws.b64url_decode(body["signature"]), f"{body['protected']}.".encode(),
                            padding.PKCS1v15(), hashes.SHA256())


def test_key_authorization_and_dns01_value():
    key = keys.generate_private_key("ec256")
    ka = jws.key_authorization("tok-123", key)
    assert ka == "tok-123." + jws.thumbprint(key)
    value = jws.dns01_txt_value(ka)
    assert value == jws.b64url(hashlib.sha256(ka.encode()).digest())
    assert len(value) == 43 and "=" not in value


def test_eab_is_hs256_over_the_account_jwk():
    account_key = keys.generate_private_key("ec256")
    mac_key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    binding = jws.eab_binding(jws.jwk(account_key), kid="kid-1", hmac_key=mac_key, url="https://ca.example/acct")
    assert decode(binding["protected"]) == {"alg": "HS256", "kid": "kid-1", "url": "https://ca.example/acct"}
    assert decode(binding["payload"]) == jws.jwk(account_key)
    expected = hmac.new(jws.b64url_decode(mac_key), f"{binding['protected']}.{binding['payload']}".encode(),
                        hashlib.sha256).digest()
    assert jws.b64url_decode(binding["signature"]) == expected


def test_inner_key_change_jws_has_no_nonce():
    new = keys.generate_private_key("ec384")
    inner = jws.sign(new, {"account": "a", "oldKey": {}}, url="https://ca.example/key-change", nonce=None)
    assert "nonce" not in decode(inner["protected"])
    assert decode(inner["protected"])["jwk"] == jws.jwk(new)


def test_b64url_padding_tolerant():
    assert jws.b64url(b"\xff\xfe") == "__4"
    assert jws.b64url_decode("__4") == jws.b64url_decode("__4=") == b"\xff\xfe"
