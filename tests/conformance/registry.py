"""Which official v2 model package describes each product the sandbox serves.

Adding a product is one line: the product code as the sandbox names it (``Product.name`` in
``sandbox/products/<x>.py``) -> the import name of its official model package (declared in
pyproject's ``test`` extra) and the RPC ``Version`` it serves. A call to a product missing here
fails the conformance check, so a new sandbox product cannot go unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Api:
    module: str  # import name of the official v2 model package
    version: str  # the RPC Version parameter


PRODUCTS: dict[str, Api] = {
    "Alidns": Api("alibabacloud_alidns20150109", "2015-01-09"),
    "Cdn": Api("alibabacloud_cdn20180510", "2018-05-10"),
    "CloudAPI": Api("alibabacloud_cloudapi20160714", "2016-07-14"),
    "cas": Api("alibabacloud_cas20200407", "2020-04-07"),
    "Sts": Api("alibabacloud_sts20150401", "2015-04-01"),
    "dcdn": Api("alibabacloud_dcdn20180115", "2018-01-15"),
    "ESA": Api("alibabacloud_esa20240910", "2024-09-10"),
    "Alb": Api("alibabacloud_alb20200616", "2020-06-16"),
    "Nlb": Api("alibabacloud_nlb20220430", "2022-04-30"),
    "Slb": Api("alibabacloud_slb20140515", "2014-05-15"),
}


def api_for(product: str, version: str) -> Api | None:
    """The registered package for a call, matched on product code (any case) and version."""
    for code, api in PRODUCTS.items():
        if code.lower() == product.lower() and api.version == version:
            return api
    return None
