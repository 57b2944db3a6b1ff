"""STS 2015-04-01 ``AssumeRole``, and the fixture's further accounts (``[[account]]``).

Several accounts: the fixture's top level is the first account; each ``[[account]]`` table is
another one, written like a whole fixture (``account_id`` plus its own ``access_key``,
``ram_role``, ``zone``, ``cdn_domain`` ... sections; ``[settings]`` are shared). Every account
is its own World; RPC calls run in the world of the caller's AccessKeyId, the nameservers and
the TLS edge serve every account.

AssumeRole (alibabacloud-sts20150401 models: AssumeRoleRequest, AssumeRoleResponseBody): the
caller needs ``sts:AssumeRole``; the role's trust policy must name the caller's account
(``acs:ram::<uid>:root``) or, for a caller holding role credentials, that role
(``acs:ram::<uid>:role/<name>``). The credentials expire after DurationSeconds (900 to the
role's MaxSessionDuration, default 3600), or the sandbox's shorter ``sts_ttl``/role ``ttl``.
Error codes: ``NoPermission`` and ``InvalidParameter.RoleSessionName`` are on Alibaba's "STS
AssumeRole common errors" page; ``EntityNotExist.Role``, ``InvalidParameter.RoleArn`` and
``InvalidParameter.DurationSeconds`` are our guess (docs/aliyun-api-notes.md, STS).
"""

from __future__ import annotations

import re
import secrets
import time

from ..errors import ApiError
from ..state import StsCredential, World
from .base import Call, Product, int_param, required

_ARN = re.compile(r"^acs:ram::([0-9]+):role/([A-Za-z0-9.\-]+)$")
_SESSION = re.compile(r"^[A-Za-z0-9.@_-]{2,64}$")


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _caller(call: Call) -> tuple[str, str]:
    """(account id, principal ARN) of the caller, from its AccessKeyId."""
    world, ak = call.world, call.params.get("AccessKeyId", "")
    uid = world.settings.account_id
    cred = world.sts_by_ak.get(ak)
    if cred is not None:
        return uid, f"acs:ram::{uid}:role/{cred.role}"
    return uid, f"acs:ram::{uid}:root"


def assume_role(call: Call) -> dict:
    arn = required(call, "RoleArn")
    session = required(call, "RoleSessionName")
    if not _SESSION.match(session):
        raise ApiError(400, "InvalidParameter.RoleSessionName",
                       "The parameter RoleSessionName is wrongly formed.")
    m = _ARN.match(arn)
    if m is None:
        raise ApiError(400, "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed.")
    uid, name = m.groups()
    target: World | None = next((w for w in call.world.all_accounts()
                                 if w.settings.account_id == uid), None)
    role = target.roles.get(name) if target is not None else None
    if target is None or role is None:
        raise ApiError(404, "EntityNotExist.Role", "The role not exists: " + arn)
    max_seconds = role.max_session_duration
    duration = int_param(call, "DurationSeconds", 3600)
    if duration is None or not 900 <= duration <= max_seconds:
        raise ApiError(400, "InvalidParameter.DurationSeconds",
                       f"The Min/Max value of DurationSeconds is 900/{max_seconds} seconds.")
    caller_uid, caller_arn = _caller(call)
    if f"acs:ram::{caller_uid}:root" not in role.trust and caller_arn not in role.trust:
        raise ApiError(403, "NoPermission",
                       "You are not authorized to do this action. You should be authorized by RAM.")
    ttl = min(float(duration), target.role_ttl(role))
    now = call.now
    cred = StsCredential(access_key_id="STS." + secrets.token_hex(12),
                         secret=secrets.token_urlsafe(30), token="CAIS" + secrets.token_urlsafe(96),
                         role=name, issued_at=now, expires_at=now + ttl)
    with target.lock:  # the caller's world lock is held; the target's is taken briefly
        target.sts_by_ak[cred.access_key_id] = cred
    role_id = str(abs(hash((uid, name))) % 10**18)
    return {
        "AssumedRoleUser": {"Arn": f"acs:ram::{uid}:role/{name.lower()}/{session}",
                            "AssumedRoleId": f"{role_id}:{session}"},
        "Credentials": {"AccessKeyId": cred.access_key_id, "AccessKeySecret": cred.secret,
                        "SecurityToken": cred.token, "Expiration": _utc(cred.expires_at)},
    }


PRODUCT = Product(name="Sts", version="2015-04-01", ram_prefix="sts",
                  host_pattern="sts.{region}.aliyuncs.com", actions={"AssumeRole": assume_role})


def load_accounts(world: World, items: list, problems: list[str], now: float) -> None:
    """``[[account]]``: each table is built like a fixture of its own, sharing [settings]."""
    from ..fixture import SETTING_TYPES, FixtureError, build_world  # fixture imports products

    accounts = {world.settings.account_id: world}
    for i, item in enumerate(items):
        uid = item.get("account_id")
        if not isinstance(uid, str) or not re.fullmatch(r"[0-9]{16}", uid):
            problems.append(f"account[{i}].account_id: must be 16 digits (a string)")
            continue
        if uid in accounts:
            problems.append(f"account[{i}].account_id: duplicate account {uid}")
            continue
        raw = {k: v for k, v in item.items() if k != "account_id"}
        if "settings" in raw or "account" in raw:
            problems.append(f"account[{i}]: settings and nested accounts belong at the top level")
            continue
        settings = {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in vars(world.settings).items() if k in SETTING_TYPES}
        raw["settings"] = {**settings, "account_id": uid}
        try:
            sub = build_world(raw)
        except FixtureError as exc:
            problems.extend(f"account[{i}].{p}" for p in exc.problems)
            continue
        dup = sorted(set(sub.access_keys) & {k for w in accounts.values() for k in w.access_keys})
        if dup:
            problems.append(f"account[{i}].access_key: ids already used by another account: "
                            f"{', '.join(dup)}")
        accounts[uid] = sub
    if len(accounts) > 1:
        for w in accounts.values():
            w.accounts = accounts


FIXTURE = {"account": load_accounts}
