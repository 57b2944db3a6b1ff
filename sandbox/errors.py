"""The one error type every sandbox layer raises, and the exact body Alibaba sends with it.

Why a single exception: auth, validation and product handlers all end the same way (an HTTP
status plus ``{"RequestId","HostId","Code","Message","Recommend"}``), so the HTTP layer renders
them in one place and the call log records the code uniformly. Every code the sandbox sends
and its source is listed in sandbox/README.md and docs/aliyun-api-notes.md.
"""

from __future__ import annotations

import uuid
from typing import Any


class ApiError(Exception):
    """An Alibaba-style API error. ``extra`` adds fields to the body (e.g. AccessDeniedDetail)."""

    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


def new_request_id() -> str:
    """Upper-case UUID, the shape of real RequestIds (``019F4678-0863-5A7E-AB27-2D2ACB3FC8F4``)."""
    return str(uuid.uuid4()).upper()


def error_body(err: ApiError, request_id: str, host_id: str, product: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "RequestId": request_id,
        "HostId": host_id,
        "Code": err.code,
        "Message": err.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product={product}"
                     f"&requestId={request_id}",
    }
    body.update(err.extra)
    return body


# --------------------------------------------------------------------------- common errors


def missing_common(name: str) -> ApiError:
    """A common parameter is absent: the gateway's documented MissingParameter."""
    return ApiError(400, "MissingParameter",
                    f'The input parameter "{name}" that is mandatory for processing this request '
                    f"is not supplied.")


def missing(name: str) -> ApiError:
    """An operation parameter is absent: the documented ``Missing{ParameterName}`` (common client
    error table "管控OpenAPI的客户端公用错误码")."""
    return ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")


def invalid_param(name: str, detail: str = "") -> ApiError:
    """The documented ``InvalidParameter`` (400, "The specified value of parameter ... is not
    valid."), plus why."""
    msg = f'The specified value of parameter "{name}" is not valid.'
    if detail:
        msg += f" {detail}"
    return ApiError(400, "InvalidParameter", msg)
