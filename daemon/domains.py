"""Domain names as certificates need them: IDNA-aware, lowercase ASCII, wildcard only as the
whole leftmost label. Returns the ASCII (punycode) form that ACME and Alibaba Cloud expect."""

from __future__ import annotations

import ipaddress
import re

import idna

_LDH = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_domain(name: object, *, allow_wildcard: bool = True) -> str:
    """Return the ASCII form of ``name`` or raise ValueError with a short reason."""
    if not isinstance(name, str):
        raise ValueError(f"expected a domain name string, got {type(name).__name__}")
    text = name.strip()
    if not text:
        raise ValueError("empty domain name")
    if text != name:
        raise ValueError(f"domain {name!r} has surrounding white space")
    if text.endswith("."):
        raise ValueError(f"domain {name!r} must not end with a dot")
    wildcard = False
    if text.startswith("*."):
        if not allow_wildcard:
            raise ValueError(f"domain {name!r}: a wildcard is not allowed here")
        wildcard, text = True, text[2:]
    if "*" in text:
        raise ValueError(f"domain {name!r}: a wildcard may only be the whole leftmost label ('*.')")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        raise ValueError(f"{name!r} is an IP address, not a domain name")
    labels = text.split(".")
    if len(labels) < 2:
        raise ValueError(f"domain {name!r} needs at least two labels")
    ascii_labels = []
    for label in labels:
        if not label:
            raise ValueError(f"domain {name!r} has an empty label")
        if label.isascii():
            low = label.lower()
            if not _LDH.match(low):
                raise ValueError(f"domain {name!r}: label {label!r} may only hold letters, digits "
                                 f"and inner hyphens (1-63 characters)")
            if low[2:4] == "--" and not low.startswith("xn--"):
                raise ValueError(f"domain {name!r}: label {label!r} has '--' in positions 3-4")
            if low.startswith("xn--"):
                try:
                    idna.decode(low)
                except idna.IDNAError as exc:
                    raise ValueError(f"domain {name!r}: invalid punycode label {label!r} ({exc})") from None
            ascii_labels.append(low)
        else:
            try:
                ascii_labels.append(idna.encode(label, uts46=True).decode("ascii"))
            except idna.IDNAError as exc:
                raise ValueError(f"domain {name!r}: label {label!r} is not a valid IDN ({exc})") from None
    if labels[-1].isdigit():
        raise ValueError(f"domain {name!r}: the top-level label cannot be all digits")
    result = ".".join(ascii_labels)
    if len(result) > 253:
        raise ValueError(f"domain {name!r} is longer than 253 characters")
    return ("*." if wildcard else "") + result


def dot_wildcard(domain: str) -> str:
    """``domain`` as CDN and DCDN name an accelerated domain: a wildcard ``*.example.com`` is
    ``.example.com`` there ("the domain name must start with a period"); lowercase."""
    domain = domain.lower()
    return domain[1:] if domain.startswith("*.") else domain


def covers(pattern: str, host: str) -> bool:
    """RFC 6125 matching: ``*.example.com`` covers ``a.example.com`` only."""
    pattern, host = pattern.lower(), host.lower()
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host
