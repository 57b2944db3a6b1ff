"""Alibaba Cloud RPC signature 1.0 (HMAC-SHA1), computed the way the gateway computes it.

Kept free of any SDK import on purpose: if the sandbox reused the SDK's signer, a bug shared by
client and server would verify itself. The server always signs the *decoded* parameters after
re-encoding them (RFC 3986, only ``A-Z a-z 0-9 - _ . ~`` literal), never the raw query text, and
uses the real HTTP method of the request in the string to sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8 text: space -> %20, ``*`` -> %2A, ``~`` stays."""
    return quote(str(value), safe="-_.~", encoding="utf-8")


def canonical_query(params: Mapping[str, str]) -> str:
    """``k=v`` pairs sorted by key (code-point order == UTF-8 byte order), ``Signature`` left out."""
    items = sorted((k, v) for k, v in params.items() if k != "Signature")
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in items)


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign_string(text: str, secret: str) -> str:
    digest = hmac.new((secret + "&").encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    """The Signature value for ``params`` sent with ``method``."""
    return sign_string(string_to_sign(method, params), secret)


def signatures_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
