"""The HTTP front door: RPC API (all products, one port), instance metadata and admin API.

RPC requests are dispatched on ``Version`` + ``Action`` after the gateway's own steps: parse
query *and* form body (both are signed), authenticate, authorize (RAM action
``<product>:<Action>``), then apply any injected fault, then run the handler under the world
lock. Every RPC and metadata request lands in the call log, secrets redacted.

The server speaks HTTP/1.1 keep-alive like Alibaba's endpoints (the SDK pools connections),
tracks its open connections so ``stop()`` can cut idle keep-alive sockets at once, and can
close a socket without answering (the ``drop`` faults) to produce a client-side SDK.HttpError.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from . import admin, calllog, metadata
from .auth import authenticate, authorize
from .calllog import redact_params
from .errors import ApiError, error_body, missing_common, new_request_id
from .products import PRODUCTS, Call, oss

JSON_TYPE = "application/json;charset=utf-8"
MALFORMED_BODY = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"


@dataclass
class Outcome:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON_TYPE
    drop: bool = False


def _fault_error(kind: str) -> ApiError:
    return {
        "throttle": ApiError(400, "Throttling.User", "Request was denied due to user flow control."),
        "unavailable": ApiError(503, "ServiceUnavailable",
                                "The request has failed due to a temporary failure of the server."),
        "internal": ApiError(500, "InternalError",
                             "The request processing has failed due to some unknown error, "
                             "exception or failure."),
    }[kind]


def handle_rpc(sb, method: str, params: dict[str, str]) -> Outcome:
    """One RPC call end to end; returns what to send (or that the socket must be dropped)."""
    arrived = time.time()
    world = sb.world
    request_id = new_request_id()
    action = params.get("Action", "")
    version = params.get("Version", "")
    region = params.get("RegionId") or "cn-hangzhou"
    product = PRODUCTS.get(version)
    product_name = product.name if product else "Unknown"
    host_id = product.host_id(region) if product else "aliyuncs.com"
    entry = {
        "time": arrived, "action": action, "version": version, "product": product_name,
        "access_key_id": params.get("AccessKeyId", ""), "method": method, "region": region,
        "status": None, "code": None, "request_id": request_id,
        "params": redact_params(params), "fault": None,
    }
    outcome = Outcome()
    try:
        if not action:
            raise missing_common("Action")
        if not version:
            raise missing_common("Version")
        if product is None or action not in product.actions:
            raise ApiError(404, "InvalidAction.NotFound",
                           "Specified api is not found, please check your url and method.")
        world = world.account_for_key(params.get("AccessKeyId", ""))  # the caller's account
        principal = authenticate(world, params, method, arrived)
        authorize(principal, f"{product.ram_prefix}:{action}", world.settings.account_id)

        fault, latency = sb.faults.pick(action)
        entry["fault"] = fault
        if latency:
            time.sleep(latency)
        if fault == "drop":
            outcome.drop = True
            return outcome
        if fault in ("throttle", "unavailable", "internal"):
            raise _fault_error(fault)
        if fault == "malformed":
            outcome.body, outcome.content_type = MALFORMED_BODY, "text/html"
            entry["status"] = 200
            return outcome
        if fault == "error_200":
            err = ApiError(200, "InternalError", "The request processing has failed due to some "
                                                 "unknown error, exception or failure.")
            entry["status"], entry["code"] = 200, err.code
            outcome.body = json.dumps(error_body(err, request_id, host_id, product_name)).encode()
            return outcome

        now = time.time()
        with world.lock:
            world.settle(now)
            result = product.actions[action](Call(world, params, region, now, method))
        body = {"RequestId": request_id}
        body.update(result)
        outcome.body = json.dumps(body, ensure_ascii=False).encode("utf-8")
        entry["status"] = 200
        if fault == "drop_after":
            outcome.drop = True
        return outcome
    except ApiError as err:
        entry["status"], entry["code"] = err.status, err.code
        outcome.status = err.status
        outcome.body = json.dumps(error_body(err, request_id, host_id, product_name),
                                  ensure_ascii=False).encode("utf-8")
        return outcome
    except Exception:  # a sandbox bug: answer like the gateway would, keep the trace visible
        traceback.print_exc(file=sys.stderr)
        err = ApiError(500, "InternalError", "The request processing has failed due to some "
                                             "unknown error, exception or failure.")
        entry["status"], entry["code"] = 500, err.code
        outcome.status = 500
        outcome.body = json.dumps(error_body(err, request_id, host_id, product_name)).encode()
        return outcome
    finally:
        if outcome.drop:
            entry["dropped"] = True
        entry["duration_ms"] = round((time.time() - arrived) * 1000, 2)
        sb.record_call(entry)
        if calllog.listening():
            _publish(entry, params, outcome)


def _publish(entry: dict, params: dict[str, str], outcome: Outcome) -> None:
    """Hand the exchange to the test listeners of :mod:`sandbox.calllog` (none in production)."""
    try:
        body = json.loads(outcome.body) if outcome.body and not outcome.drop else None
    except ValueError:
        body = None
    calllog.publish_exchange(entry["product"], entry["version"], entry["action"], entry["method"],
                             entry["status"] or 0, params, body if isinstance(body, dict) else None,
                             entry["fault"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AliyunSandbox/1.0"
    sys_version = ""
    timeout = 30
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms stalls

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_HEAD(self):
        self._send(405, b"", "text/plain")

    def _dispatch(self, method: str) -> None:
        sb = self.server.sandbox
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            self._send(400, b'{"Code":"BadRequest","Message":"bad Content-Length"}', JSON_TYPE)
            return
        raw_body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        path = url.path or "/"
        query = dict(parse_qsl(url.query, keep_blank_values=True))

        if oss.is_oss_request(path, self.headers):  # REST with its own signature, not RPC
            status, ctype, body, extra = oss.handle_rest(sb, method, self.path, self.headers, raw_body)
            self._send(status, body, ctype, extra)
            return
        if path.startswith("/_admin"):
            status, obj = admin.handle(sb, method, path, query, raw_body)
            self._send(status, json.dumps(obj, indent=1, default=str).encode("utf-8"), JSON_TYPE)
            return
        if path.startswith("/latest/"):
            status, ctype, body, action = metadata.handle(sb.world, method, path, self.headers,
                                                          time.time())
            sb.record_call({"time": time.time(), "action": action, "version": "", "product": "Metadata",
                            "access_key_id": "", "method": method, "region": "", "status": status,
                            "code": None if status == 200 else f"HTTP{status}", "request_id": "",
                            "params": {"path": path}, "fault": None, "duration_ms": 0.0})
            self._send(status, body, ctype)
            return
        if path != "/" or method not in ("GET", "POST"):
            self._send(404, json.dumps({"Code": "NotFound", "Message": f"no route for {path}"}).encode(),
                       JSON_TYPE)
            return

        params = dict(query)
        ctype = (self.headers.get("Content-Type") or "").lower()
        if raw_body and "application/x-www-form-urlencoded" in ctype:
            params.update(parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True))
        outcome = handle_rpc(sb, method, params)
        if outcome.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(outcome.status, outcome.body, outcome.content_type)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class ApiServer(ThreadingHTTPServer):
    """One listener for RPC, metadata and admin; ``sandbox`` is the owning Sandbox."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sandbox, host: str, port: int):
        self.sandbox = sandbox
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
