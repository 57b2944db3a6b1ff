"""Finding providers: every class registered under the entry-point group ``alicertd.providers``.

A third-party provider is a distribution with one entry point (``name = "module:Class"``); the
built-ins are registered the same way in alicertd's own pyproject.toml, so nothing is special.
As in certbot's plugin discovery: the registry is sorted by name, a name registered by two
distributions is refused with both named (silently picking one would deploy with code nobody
chose), and an import failure is wrapped in one line naming the entry point and the module.

Loading is lazy, by name: the registry reads only the entry-point metadata up front (cheap),
and imports a provider's module the first time that name is asked for. A config that names
``cdn`` alone imports the CDN provider alone, so start-up time and idle memory do not grow
with the number of providers installed (each pulls in an SDK package of its own). Listing
every provider (``items()``, ``values()``) imports them all; only error messages and tests
do that.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Mapping
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


class Providers(Mapping[str, type]):
    """Provider name -> class, importing each class on first access (thread-safe).

    ``registry[name]`` / ``registry.get(name)`` raise RegistryError when that provider's
    module does not import or its class is invalid; other providers are unaffected."""

    def __init__(self, eps: Mapping[str, EntryPoint]):
        self._eps = dict(sorted(eps.items()))
        self._classes: dict[str, type] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> type:
        ep = self._eps[name]  # KeyError for an unknown name, as a Mapping should
        with self._lock:
            cls = self._classes.get(name)
            if cls is None:
                cls = self._classes[name] = _load(ep)
            return cls

    def __iter__(self) -> Iterator[str]:
        return iter(self._eps)

    def __len__(self) -> int:
        return len(self._eps)

    def __contains__(self, name: object) -> bool:
        return name in self._eps

    def loaded(self) -> tuple[str, ...]:
        """The names imported so far (for the footprint bench and its test)."""
        with self._lock:
            return tuple(sorted(self._classes))


@functools.cache
def load_providers() -> Providers:
    """Every registered provider by name, sorted, each class imported on first access.
    RegistryError at once for a name registered by two distributions."""
    by_name: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        same = by_name.setdefault(ep.name, [])
        if not any(o.value == ep.value and _origin(o) == _origin(ep) for o in same):
            same.append(ep)
    for name, eps in sorted(by_name.items()):
        if len(eps) > 1:
            which = " and ".join(f"{_origin(ep)} ({ep.value})" for ep in eps)
            raise RegistryError(f"provider {name!r} is registered twice: by {which}")
    return Providers({name: eps[0] for name, eps in by_name.items()})


def get_provider(name: str) -> type | None:
    """The provider class registered as ``name`` (imported now if it was not yet), or None."""
    return load_providers().get(name)


get = get_provider


def lookup(registry: Mapping[str, type], name: str) -> tuple[type | None, str | None]:
    """``(class, None)``, ``(None, None)`` for an unknown name, or ``(None, message)`` when the
    provider is registered but cannot be loaded (the config loader reports that message)."""
    try:
        return registry.get(name), None
    except RegistryError as exc:
        return None, str(exc)


def available(registry: Mapping[str, type], kind: str) -> list[str]:
    """The names of the providers of ``kind`` that load (for "unknown provider" messages:
    this imports every provider, so it is used on that error path only)."""
    names = []
    for name in registry:
        cls, _ = lookup(registry, name)
        if cls is not None and getattr(cls, "kind", None) == kind:
            names.append(name)
    return names
