"""The emulated products, found by the request's ``Version`` (one port serves them all).

Besides its RPC actions, a product module may offer two hooks (collected here, so the shared
sandbox files need no per-product code):

- ``served_for(world, server_name, port, now)``: what the TLS edge presents (see sandbox/edge.py);
- ``FIXTURE`` = ``{section: loader}``: fixture sections it owns, each loader called as
  ``loader(world, items, problems, now)`` with the section's list of tables (see sandbox/fixture.py).
- ``cas_users(world, cert_id)``: ``[(CloudProduct, domain)]`` of the product's resources that
  use CAS certificate ``cert_id`` (CAS's ListCloudResources, and its refusal to delete a
  certificate in use; see sandbox/products/cas.py). A resource without a domain (a load
  balancer listener) is ``(CloudProduct, name, fields)``: ``name`` for people, ``fields`` its
  ListCloudResources fields (``InstanceId``, ``ListenerId``, ...).

A REST product (OSS) has no RPC ``PRODUCT``; sandbox/rpc.py routes its requests by their
signature and Host before RPC dispatch.
"""

from __future__ import annotations

from collections.abc import Callable

from . import alb, alidns, apigateway, cas, cdn, dcdn, esa, nlb, oss, slb, sts
from .base import Call, Product

#: (chain PEM, key PEM, SHA-256 fingerprint of the leaf)
Served = tuple[str, str, str]

_MODULES = (alidns, cdn, apigateway, dcdn, cas, alb, esa, slb, nlb, oss, sts)

PRODUCTS: dict[str, Product] = {m.PRODUCT.version: m.PRODUCT for m in _MODULES if hasattr(m, "PRODUCT")}

EDGE_HOOKS: tuple[Callable[..., Served | None], ...] = tuple(
    m.served_for for m in _MODULES if hasattr(m, "served_for"))

CAS_USERS: tuple[Callable[..., list[tuple[str, str]]], ...] = tuple(
    m.cas_users for m in _MODULES if hasattr(m, "cas_users"))

FIXTURE_LOADERS: dict[str, Callable[..., None]] = {
    section: loader for m in _MODULES for section, loader in getattr(m, "FIXTURE", {}).items()}

__all__ = ["CAS_USERS", "EDGE_HOOKS", "FIXTURE_LOADERS", "PRODUCTS", "Call", "Product", "Served"]
