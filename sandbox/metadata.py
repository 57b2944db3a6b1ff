"""ECS instance metadata: RAM-role credentials, in normal and security hardening mode.

Real instances expose ``http://100.100.100.200/latest/meta-data/ram/security-credentials/``;
the daemon makes the base URL configurable so the sandbox can stand in. Credentials are STS
keys the RPC server accepts until ``Expiration``; the same set is handed out until half its
life is gone (as ECS does), and the admin API can shorten the TTL or expire everything.

Access modes (``settings.metadata_mode``, fixture or ``POST /_admin/metadata-mode``):

* ``normal`` — plain GETs are answered; a token from ``PUT /latest/api/token`` (header
  ``X-aliyun-ecs-metadata-token-ttl-seconds``, 1..21600) may be sent and is then checked;
* ``hardened`` — ``HttpTokens=required``: a GET without a valid token gets 403;
* ``legacy`` — a metadata service without the token endpoint (the PUT gets 404), to exercise a
  client's fallback to plain GETs.

The 403 for a plain GET in hardened mode, the 401 for an unknown or expired token and the 400
for a bad TTL are undocumented by Alibaba (our guess); docs/aliyun-api-notes.md says so.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets

PREFIX = "/latest/meta-data/ram/security-credentials/"
TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"
TOKEN_TTL_MAX = 21600
MODES = ("normal", "hardened", "legacy")

_NOT_FOUND = b"<html><body>404 Not Found</body></html>"


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _put_token(world, headers, now: float) -> tuple[int, str, bytes, str]:
    if world.settings.metadata_mode == "legacy":
        return 404, "text/html", _NOT_FOUND, "MetadataToken"
    raw = (headers.get(TOKEN_TTL_HEADER) or "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= TOKEN_TTL_MAX:
        return 400, "text/plain", b"Bad Request", "MetadataToken"
    token = secrets.token_urlsafe(40)
    with world.lock:
        tokens = world.metadata_tokens
        for old in [t for t, exp in tokens.items() if exp <= now]:
            del tokens[old]
        tokens[token] = now + int(raw)
    return 200, "text/plain", token.encode("ascii"), "MetadataToken"


def _token_check(world, headers, now: float) -> tuple[int, str, bytes, str] | None:
    """None when the GET may be answered; else the refusal."""
    token = headers.get(TOKEN_HEADER)
    if token is not None and world.settings.metadata_mode != "legacy":
        with world.lock:
            expires = world.metadata_tokens.get(token.strip())
        if expires is None or expires <= now:
            return 401, "text/plain", b"Unauthorized", "Metadata"
        return None
    if world.settings.metadata_mode == "hardened":
        return 403, "text/plain", b"Forbidden", "Metadata"
    return None


def handle(world, method: str, path: str, headers, now: float) -> tuple[int, str, bytes, str]:
    """(status, content type, body, action name for the call log) for a metadata request."""
    if path == TOKEN_PATH:
        if method != "PUT":
            return 405, "text/plain", b"Method Not Allowed", "MetadataToken"
        return _put_token(world, headers, now)
    if not path.startswith("/latest/meta-data"):
        return 404, "text/html", _NOT_FOUND, "Metadata"
    if method != "GET":
        return 405, "text/plain", b"Method Not Allowed", "Metadata"
    refused = _token_check(world, headers, now)
    if refused is not None:
        return refused
    if path in (PREFIX, PREFIX.rstrip("/")):
        with world.lock:
            names = sorted(world.roles)
        return 200, "text/plain", "\n".join(names).encode("utf-8"), "MetadataListRoles"
    if path.startswith(PREFIX):
        role = path[len(PREFIX):].strip("/")
        cred = world.credentials_for_role(role, now)
        if cred is None:
            return 404, "text/html", _NOT_FOUND, "MetadataRoleCredentials"
        body = {
            "AccessKeyId": cred.access_key_id,
            "AccessKeySecret": cred.secret,
            "SecurityToken": cred.token,
            "Expiration": _utc(cred.expires_at),
            "LastUpdated": _utc(cred.issued_at),
            "Code": "Success",
        }
        return 200, "text/plain", json.dumps(body, indent=2).encode("utf-8"), "MetadataRoleCredentials"
    return 404, "text/html", _NOT_FOUND, "Metadata"
