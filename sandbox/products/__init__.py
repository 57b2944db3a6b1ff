"""The emulated products, found by the request's ``Version`` (one port serves them all)."""

from __future__ import annotations

from . import alidns, apigateway, cdn
from .base import Call, Product

PRODUCTS: dict[str, Product] = {p.version: p for p in (alidns.PRODUCT, cdn.PRODUCT, apigateway.PRODUCT)}

__all__ = ["PRODUCTS", "Call", "Product"]
