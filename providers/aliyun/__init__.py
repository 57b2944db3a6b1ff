"""Alibaba Cloud access layer shared by the alidns, cdn and apigateway providers.

``AliyunApi.call(product, request)`` is the only way alicertd sends an OpenAPI request; see
:mod:`providers.aliyun.client` for the SDK hazards it fixes, :mod:`.credentials` for the
credential precedence and :mod:`.errors` for the error table.
"""

from providers.aliyun.client import PRODUCTS, AliyunApi, Endpoint, clamp_sdk_loggers
from providers.aliyun.credentials import Credentials, CredentialSource
from providers.aliyun.errors import ERROR_TABLE, ClockSkewError, classify

__all__ = [
    "AliyunApi", "Endpoint", "PRODUCTS", "clamp_sdk_loggers", "CredentialSource", "Credentials",
    "ERROR_TABLE", "ClockSkewError", "classify",
]
