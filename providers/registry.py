"""Finding providers: every class registered under the entry-point group ``alicertd.providers``.

A third-party provider is a distribution with one entry point (``name = "module:Class"``); the
built-ins are registered the same way in alicertd's own pyproject.toml, so nothing is special.
As in certbot's plugin discovery: the registry is sorted by name, a name registered by two
distributions is refused with both named (silently picking one would deploy with code nobody
chose), and an import failure is wrapped in one line naming the entry point and the module.
Loaded once per process.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

GROUP = "alicertd.providers"
KINDS = ("dns", "deploy")


class RegistryError(Exception):
    """A provider could not be registered. One line, naming the entry point."""


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def _load(ep: EntryPoint) -> type:
    where = f"entry point {ep.name!r} = {ep.value!r} ({_origin(ep)})"
    try:
        cls = ep.load()
    except Exception as exc:
        raise RegistryError(f"provider {where}: cannot import {ep.module}: {_first_line(exc)}") from exc
    kind = getattr(cls, "kind", None)
    if kind not in KINDS:
        raise RegistryError(f"provider {where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if getattr(cls, "name", None) != ep.name:
        raise RegistryError(f"provider {where}: the class's name is {getattr(cls, 'name', None)!r}, "
                            f"not {ep.name!r}")
    if not callable(getattr(cls, "parse_config", None)):
        raise RegistryError(f"provider {where}: has no parse_config")
    return cls


@functools.cache
def load_providers() -> dict[str, type]:
    """Every registered provider class by name, sorted. RegistryError for a duplicate name, an
    entry point that does not import, or a class without a valid ``kind``/``name``."""
    by_name: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        same = by_name.setdefault(ep.name, [])
        if not any(o.value == ep.value and _origin(o) == _origin(ep) for o in same):
            same.append(ep)
    for name, eps in sorted(by_name.items()):
        if len(eps) > 1:
            which = " and ".join(f"{_origin(ep)} ({ep.value})" for ep in eps)
            raise RegistryError(f"provider {name!r} is registered twice: by {which}")
    return {name: _load(eps[0]) for name, eps in sorted(by_name.items())}


def get_provider(name: str) -> type | None:
    """The provider class registered as ``name``, or None."""
    return load_providers().get(name)


get = get_provider
