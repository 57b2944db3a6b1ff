"""Who is calling, and may they: signature 1.0 verification plus RAM-style permissions.

Checks run in the gateway's order so each error is produced for its own reason: common
parameters present -> Timestamp well-formed and within 15 minutes -> access key known (STS keys
need a valid, unexpired, matching SecurityToken) -> signature -> nonce unused (recorded only
after the signature verified, so a forged request cannot burn a nonce) -> RAM permission.
Codes and messages are those of Alibaba's common client error table ("管控OpenAPI的客户端公用错误码");
``MissingSecurityToken`` and the ``InvalidSecurityToken.*`` family are not in the parts of it we
could read but are seen in real error output (docs/aliyun-api-notes.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .errors import ApiError, missing_common
from .signature import sign_string, signatures_equal, string_to_sign
from .state import TIMESTAMP_WINDOW, World

REQUIRED_COMMON = ("AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
                   "SignatureNonce", "Timestamp")
_TS_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Principal:
    access_key_id: str
    permissions: tuple[str, ...]
    principal_type: str  # SubUser | AssumedRoleUser
    display_name: str


def parse_timestamp(value: str) -> float:
    for fmt in _TS_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC).timestamp()
        except ValueError:
            continue
    raise ApiError(400, "InvalidTimeStamp.Format",
                   "Specified time stamp or date value is not well formatted.")


def authenticate(world: World, params: dict[str, str], method: str, now: float) -> Principal:
    for name in REQUIRED_COMMON:
        if not params.get(name):
            raise missing_common(name)
    if params["SignatureMethod"] != "HMAC-SHA1":
        raise ApiError(400, "InvalidSignatureMethod", "Specified signature method is not valid.")
    if params["SignatureVersion"] != "1.0":
        # The documented Invalid{ParameterName} pattern (no code of its own is documented).
        raise ApiError(400, "InvalidSignatureVersion", "Specified parameter SignatureVersion is not valid.")
    ts = parse_timestamp(params["Timestamp"])
    if abs(now - ts) > TIMESTAMP_WINDOW:
        raise ApiError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")

    ak = params["AccessKeyId"]
    not_found = ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    with world.lock:
        if ak.startswith("STS."):
            cred = world.sts_by_ak.get(ak)
            if cred is None:
                raise not_found
            token = params.get("SecurityToken")
            if not token:
                raise ApiError(400, "MissingSecurityToken", "SecurityToken is mandatory for this action.")
            owner = next((c for c in world.sts_by_ak.values() if c.token == token), None)
            if owner is None:
                raise ApiError(400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
            if owner.access_key_id != ak:
                raise ApiError(400, "InvalidSecurityToken.MismatchWithAccessKey",
                               "Specified SecurityToken mismatch with the AccessKey.")
            if cred.expires_at <= now:
                raise ApiError(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
            role = world.roles.get(cred.role)
            secret = cred.secret
            principal = Principal(ak, role.permissions if role else (), "AssumedRoleUser",
                                  f"{cred.role}:{ak}")
        else:
            key = world.access_keys.get(ak)
            if key is None:
                raise not_found
            secret = key.secret
            principal = Principal(ak, key.permissions, "SubUser", key.name or ak)

    expected_sts = string_to_sign(method, params)
    if not signatures_equal(sign_string(expected_sts, secret), params["Signature"]):
        raise ApiError(400, "SignatureDoesNotMatch",
                       "Specified signature is not matched with our calculation. "
                       f"server string to sign is:{expected_sts}")
    if world.nonce_used(params["SignatureNonce"], now):
        raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    return principal


def allowed(permissions: tuple[str, ...], ram_action: str) -> bool:
    action = ram_action.lower()
    return any(fnmatchcase(action, p.lower()) for p in permissions)


def authorize(principal: Principal, ram_action: str, account_id: str) -> None:
    if allowed(principal.permissions, ram_action):
        return
    raise ApiError(403, "Forbidden.RAM",
                   "User not authorized to operate on the specified resource, or this API doesn't "
                   "support RAM.",
                   extra={"AccessDeniedDetail": {
                       "PolicyType": "AccountLevelIdentityBasedPolicy",
                       "AuthPrincipalOwnerId": account_id,
                       "AuthPrincipalType": principal.principal_type,
                       "AuthPrincipalDisplayName": principal.display_name,
                       "NoPermissionType": "ImplicitDeny",
                       "AuthAction": ram_action,
                       "EncodedDiagnosticMessage": "",
                   }})
