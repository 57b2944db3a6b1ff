"""OSS Signature Version 4 (``OSS4-HMAC-SHA256``), computed the way the OSS server computes it.

From the published spec ("Signature Version 4 (recommended)", OSS developer reference), with
no SDK import on purpose (a bug shared by client and signer would verify itself):

    CanonicalRequest = VERB \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n
                       AdditionalHeaders \n HashedPayload
    StringToSign     = "OSS4-HMAC-SHA256" \n x-oss-date \n <date>/<region>/oss/aliyun_v4_request \n
                       hex(SHA256(CanonicalRequest))
    SigningKey       = HMAC chain over "aliyun_v4" + secret: date, region, "oss", "aliyun_v4_request"
    Signature        = hex(HMAC-SHA256(SigningKey, StringToSign))

- Canonical URI: ``/<bucket>/<object>`` (``/<bucket>/`` for bucket operations), percent-encoded
  except ``/``, whatever the addressing style (virtual host or path) of the request.
- Canonical query: every parameter percent-encoded, sorted by encoded key; a parameter without a
  value (``?cname``) is the key alone.
- Canonical headers: ``content-type``, ``content-md5``, every ``x-oss-*`` header and the headers
  named in ``AdditionalHeaders``, names lowercased, values trimmed, sorted, ``name:value\\n``.
- Hashed payload: the ``x-oss-content-sha256`` header (``UNSIGNED-PAYLOAD`` in practice).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "OSS4-HMAC-SHA256"
TERMINATOR = "aliyun_v4_request"


@dataclass(frozen=True)
class Authorization:
    access_key_id: str
    date: str
    region: str
    product: str
    additional: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    """``OSS4-HMAC-SHA256 Credential=AK/DATE/REGION/oss/aliyun_v4_request,
    AdditionalHeaders=a;b,Signature=hex`` -> its parts, or None when malformed."""
    if not value.startswith(ALGORITHM + " "):
        return None
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val.strip()
    cred = fields.get("Credential", "").split("/")
    if len(cred) != 5 or cred[4] != TERMINATOR or not fields.get("Signature"):
        return None
    extra = tuple(h.strip().lower() for h in fields.get("AdditionalHeaders", "").split(";") if h.strip())
    return Authorization(cred[0], cred[1], cred[2], cred[3], extra, fields["Signature"])


def _enc(text: str, safe: str = "-_.~") -> str:
    return quote(text, safe=safe, encoding="utf-8")


def canonical_uri(bucket: str | None, key: str = "") -> str:
    if not bucket:
        return "/"
    return _enc(f"/{bucket}/{key}", safe="-_.~/")


def canonical_query(query: list[tuple[str, str]]) -> str:
    items = sorted((_enc(k), _enc(v)) for k, v in query)
    return "&".join(f"{k}={v}" if v else k for k, v in items)


def signed_headers(headers: Mapping[str, str], additional: tuple[str, ...]) -> list[tuple[str, str]]:
    lowered = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    names = {n for n in lowered if n in ("content-type", "content-md5") or n.startswith("x-oss-")}
    names.update(n for n in additional if n in lowered)
    return sorted((n, lowered[n]) for n in names)


def canonical_request(method: str, uri: str, query: list[tuple[str, str]],
                      headers: Mapping[str, str], additional: tuple[str, ...]) -> str:
    hdrs = "".join(f"{n}:{v}\n" for n, v in signed_headers(headers, additional))
    payload = {k.lower(): v for k, v in headers.items()}.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
    return "\n".join([method.upper(), uri, canonical_query(query), hdrs, ";".join(sorted(additional)),
                      payload])


def string_to_sign(timestamp: str, date: str, region: str, product: str, canonical: str) -> str:
    scope = f"{date}/{region}/{product}/{TERMINATOR}"
    return "\n".join([ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


def signing_key(secret: str, date: str, region: str, product: str) -> bytes:
    key = hmac.new(("aliyun_v4" + secret).encode("utf-8"), date.encode(), hashlib.sha256).digest()
    for part in (region, product, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, auth: Authorization, text: str) -> str:
    return hmac.new(signing_key(secret, auth.date, auth.region, auth.product), text.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def signatures_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
