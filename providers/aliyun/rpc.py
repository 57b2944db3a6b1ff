"""Building legacy-SDK RPC requests and reading their list-shaped answers, the one way every
provider does it.

Every parameter goes into the query string with ``add_query_param`` (the SDK signs query and
body alike, and the access layer forces POST, so nothing secret ends up in a URL that is
logged). Alibaba's list answers nest as ``{"Outer": {"Inner": [...]}}`` and leave the inner
key out, or send it as something other than a list, when there is nothing to list: ``items``
reads all of these as "no entries" rather than failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def request(cls: type, **params: Any) -> Any:
    """An instance of the SDK request class ``cls`` carrying ``params`` as query parameters."""
    req = cls()
    for key, value in params.items():
        req.add_query_param(key, value)
    return req


def items(body: Mapping[str, Any], outer: str, inner: str) -> list[dict[str, Any]]:
    """The entries of ``body[outer][inner]`` that are objects (none when the list is absent)."""
    container = body.get(outer)
    value = container.get(inner) if isinstance(container, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
