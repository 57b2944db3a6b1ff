"""ECS instance metadata: RAM-role credentials, served without auth on the API port.

Real instances expose ``http://100.100.100.200/latest/meta-data/ram/security-credentials/``;
the daemon makes the base URL configurable so the sandbox can stand in. Credentials are STS
keys the RPC server accepts until ``Expiration``; the same set is handed out until half its
life is gone (as ECS does), and the admin API can shorten the TTL or expire everything.
"""

from __future__ import annotations

import datetime as dt
import json

PREFIX = "/latest/meta-data/ram/security-credentials/"


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def handle(world, path: str, now: float) -> tuple[int, str, bytes, str]:
    """(status, content type, body, action name for the call log) for a metadata GET."""
    if path in (PREFIX, PREFIX.rstrip("/")):
        with world.lock:
            names = sorted(world.roles)
        return 200, "text/plain", "\n".join(names).encode("utf-8"), "MetadataListRoles"
    if path.startswith(PREFIX):
        role = path[len(PREFIX):].strip("/")
        cred = world.credentials_for_role(role, now)
        if cred is None:
            return 404, "text/html", b"<html><body>404 Not Found</body></html>", "MetadataRoleCredentials"
        body = {
            "AccessKeyId": cred.access_key_id,
            "AccessKeySecret": cred.secret,
            "SecurityToken": cred.token,
            "Expiration": _utc(cred.expires_at),
            "LastUpdated": _utc(cred.issued_at),
            "Code": "Success",
        }
        return 200, "text/plain", json.dumps(body, indent=2).encode("utf-8"), "MetadataRoleCredentials"
    return 404, "text/html", b"<html><body>404 Not Found</body></html>", "Metadata"
