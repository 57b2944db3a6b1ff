"""The admin API: JSON over HTTP under ``/_admin/`` on the API port.

Only a thin mapping of routes onto ``Sandbox`` methods, so the HTTP and Python surfaces cannot
drift apart. No authentication: the sandbox listens on loopback and holds no real secrets.

Routes (GET unless noted; bodies and answers are JSON):
  /_admin/info                       addresses, keys, roles
  /_admin/settings
  POST /_admin/reset                 back to the loaded fixture, faults and logs cleared
  POST /_admin/fixture               body: a fixture object, {"path": ...} or {"toml": "..."}
  /_admin/zones
  /_admin/records[?zone=Z]
  POST /_admin/records               {zone, rr, type, value, ttl?, line?} -> {record_id}
  DELETE /_admin/records/<id>
  /_admin/cdn   /_admin/cdn/<domain>
  POST /_admin/cdn/<domain>          {cert_pem, key_pem, cert_name?, rollout?}; cert_pem null = HTTPS off
  /_admin/apigateway   /_admin/apigateway/<region>/<group>/<domain>
  POST /_admin/apigateway/<region>/<group>/<domain>   {cert_pem, key_pem, cert_name?}
  POST /_admin/apigateway-active/<region>/<group>/<domain>   {active}  false = BOUND (inactive)
  /_admin/calls[?since=T&action=A]   /_admin/calls/counts[?since=T]   DELETE /_admin/calls
  /_admin/faults   POST /_admin/faults {action?, throttle?, ...}   DELETE /_admin/faults[?action=A]
  POST /_admin/dns-delay {delay?, ns2_extra?}
  POST /_admin/cdn-rollout {seconds}   POST /_admin/apigateway-rollout {seconds}
  POST /_admin/sts/ttl {seconds, role?}   POST /_admin/sts/expire
  POST /_admin/metadata-mode {mode}  normal | hardened (tokens required) | legacy (no token endpoint)
  /_admin/dns-queries[?since=T&server=ns1]   /_admin/edge-log[?since=T]
"""

from __future__ import annotations

import json
import tomllib
from urllib.parse import unquote

from .fixture import FixtureError


class _BadRequest(Exception):
    pass


def _since(query: dict) -> float | None:
    if "since" not in query:
        return None
    try:
        return float(query["since"])
    except ValueError:
        raise _BadRequest("since must be an epoch time in seconds") from None


def _body(raw: bytes) -> dict:
    if not raw:
        return {}
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _BadRequest("body must be a JSON object")
    return obj


def _route(sb, method: str, parts: list[str], query: dict, body: dict):
    head = parts[0] if parts else ""
    rest = parts[1:]
    if method == "GET" and head == "info":
        return sb.info()
    if method == "GET" and head == "settings":
        return sb.settings()
    if method == "POST" and head == "reset":
        sb.reset()
        return {"ok": True}
    if method == "POST" and head == "fixture":
        if "path" in body:
            sb.load_fixture(body["path"])
        elif "toml" in body:
            sb.load_fixture(tomllib.loads(body["toml"]))
        else:
            sb.load_fixture(body)
        return {"ok": True, "zones": [z["name"] for z in sb.zones()]}
    if method == "GET" and head == "zones":
        return sb.zones()
    if head == "records":
        if method == "GET" and not rest:
            return sb.records(query.get("zone"))
        if method == "POST" and not rest:
            missing = [k for k in ("zone", "rr", "type", "value") if k not in body]
            if missing:
                raise _BadRequest(f"missing: {', '.join(missing)}")
            return {"record_id": sb.add_record(body["zone"], body["rr"], body["type"], body["value"],
                                               int(body.get("ttl", 600)), body.get("line", "default"))}
        if method == "DELETE" and len(rest) == 1:
            return {"deleted": sb.delete_record(rest[0])}
    if head == "cdn":
        if method == "GET":
            return sb.cdn_binding(rest[0]) if rest else sb.cdn_bindings()
        if method in ("POST", "PUT") and len(rest) == 1:
            return sb.replace_cdn_binding(rest[0], body.get("cert_pem"), body.get("key_pem"),
                                          body.get("cert_name"), bool(body.get("rollout", False)))
    if head == "apigateway":
        if method == "GET" and not rest:
            return sb.apigateway_domains()
        if len(rest) == 3:
            if method == "GET":
                return sb.apigateway_domain(*rest)
            if method in ("POST", "PUT"):
                return sb.replace_apigateway_binding(*rest, body.get("cert_pem"), body.get("key_pem"),
                                                     body.get("cert_name"))
    if head == "apigateway-active" and method == "POST" and len(rest) == 3:
        return sb.set_apigateway_domain_active(*rest, bool(body["active"]))
    if head == "calls":
        if method == "GET" and not rest:
            return sb.calls(since=_since(query), action=query.get("action"))
        if method == "GET" and rest == ["counts"]:
            return sb.call_counts(since=_since(query))
        if method == "DELETE" and not rest:
            sb.clear_calls()
            return {"ok": True}
    if head == "faults":
        if method == "GET":
            return sb.fault_rules()
        if method == "POST":
            rule = dict(body)
            action = rule.pop("action", "*")
            return {action: sb.set_faults(action, **rule)}
        if method == "DELETE":
            sb.clear_faults(query.get("action"))
            return {"ok": True}
    if method == "POST" and head == "dns-delay":
        return sb.set_dns_delay(body.get("delay"), body.get("ns2_extra"))
    if method == "POST" and head == "cdn-rollout":
        return sb.set_cdn_rollout_seconds(float(body["seconds"]))
    if method == "POST" and head == "apigateway-rollout":
        return sb.set_apigateway_rollout_seconds(float(body["seconds"]))
    if method == "POST" and head == "metadata-mode":
        return sb.set_metadata_mode(str(body["mode"]))
    if head == "sts" and method == "POST":
        if rest == ["expire"]:
            return {"expired": sb.expire_sts_credentials()}
        if rest == ["ttl"]:
            return sb.set_sts_ttl(float(body["seconds"]), body.get("role"))
    if method == "GET" and head == "dns-queries":
        return sb.dns_queries(since=_since(query), server=query.get("server"))
    if method == "GET" and head == "edge-log":
        return sb.edge_log(since=_since(query))
    return None


def handle(sb, method: str, path: str, query: dict, raw_body: bytes) -> tuple[int, object]:
    from .app import SandboxError  # app imports rpc imports admin: resolve at call time

    parts = [unquote(p) for p in path[len("/_admin"):].split("/") if p]
    try:
        result = _route(sb, method, parts, query, _body(raw_body))
    except (_BadRequest, SandboxError, FixtureError, KeyError, TypeError, ValueError, OSError) as exc:
        msg = str(exc) if not isinstance(exc, KeyError) else f"missing field {exc}"
        return 400, {"error": msg}
    if result is None:
        return 404, {"error": f"no admin route {method} {path}"}
    return 200, result
