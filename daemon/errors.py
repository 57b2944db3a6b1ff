"""Turning any exception into the one line a user sees.

Known errors (ours, typed) already carry a one-line, secret-free message. Anything else is a bug
or an environment problem: we still show one line, never a traceback.
"""

from __future__ import annotations


def _known_types() -> tuple[type[BaseException], ...]:
    from daemon.config_load import ConfigError
    from daemon.state import StateError
    from providers.base import ProviderError

    types: list[type[BaseException]] = [StateError, ProviderError, ConfigError]
    try:
        from daemon.acme.problems import AcmeError, AcmeProtocolError
        types += [AcmeError, AcmeProtocolError]
    except ImportError:  # pragma: no cover - during bootstrap
        pass
    try:
        from daemon.keys import KeyFormatError as KeyProblem
        types.append(KeyProblem)
    except ImportError:
        pass
    return tuple(types)


def describe_error(exc: BaseException) -> tuple[bool, str]:
    """(known, one-line text) for ``exc``."""
    from daemon.logs import redact

    if isinstance(exc, _known_types()):
        text = str(exc)
        known = True
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
        known = True
    else:
        text = f"{type(exc).__name__}: {exc}"
        known = False
    return known, redact(" ".join(text.split()))
