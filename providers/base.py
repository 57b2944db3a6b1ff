"""The two plugin kinds alicertd knows, and the values that cross between them and the daemon.

A provider is one class, registered under the entry-point group ``alicertd.providers`` with its
name as the entry-point name (``cdn = "providers.cdn:CdnProvider"``). The class MUST carry
``kind`` ("dns" or "deploy") and ``name``, MUST validate its own config section in
``parse_config`` (reporting every problem by key path, raising nothing), and is instantiated
once per run with a :class:`ProviderContext`. Everything the daemon passes in is frozen.

Why one instance per run rather than per deploy block: reading bindings is batched across every
block of one provider (1,000 CDN domains cost pages of DescribeCdnHttpsDomainList, not 1,000
calls), which needs one object that sees all the targets at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from daemon.logs import register_secret

if TYPE_CHECKING:  # pragma: no cover - imported for types only
    from daemon.config import Config
    from daemon.state import DnsJournal


class ConfigErrors:
    """Collects config problems as one-line messages ``path: what is wrong``.

    Validation never stops at the first problem: a user fixes a file once, not once per error.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.messages.append(f"{path}: {message}" if path else message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


@dataclass(frozen=True)
class ConfigDefaults:
    """Values a provider may fall back on when its own section leaves them out."""

    region: str
    accounts: tuple[str, ...] = ("default",)  # account entry names a deploy block may name


# --------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """A provider operation failed. The message is one line, starts with the provider's name,
    and never contains a secret. ``retryable`` says whether the same call may succeed later."""

    retryable = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.code = code
        if retryable is not None:
            self.retryable = retryable


class CredentialError(ProviderError):
    """The Alibaba Cloud credentials are wrong, inactive or lack a permission: every further
    call with them fails the same way, so the run stops using them at once."""


class VerificationError(ProviderError):
    """The binding did not take effect (or was not observable) before the deadline."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class DnsChallenge:
    """One DNS-01 challenge: put TXT ``value`` at ``record_name``.

    ``domain`` is the identifier as ordered (``*.example.com`` stays a wildcard), ``record_name``
    is ``_acme-challenge.<domain without "*.">`` in ASCII (punycode), without a trailing dot.
    Two challenges may share a record name (wildcard + apex): both values must be served at once.
    """

    domain: str
    record_name: str
    value: str


@dataclass(frozen=True)
class CertificateBundle:
    """An issued certificate as the deploy targets need it. ``serial`` is lowercase hex without
    separators, ``fingerprint`` the lowercase hex SHA-256 of the leaf's DER."""

    name: str
    domains: tuple[str, ...]
    fullchain_pem: str
    key_pem: str = field(repr=False)
    serial: str
    fingerprint: str
    not_before: datetime
    not_after: datetime
    issuer: str

    def __post_init__(self) -> None:
        # Deploy calls carry this key (CAS UploadUserCertificate, API Gateway's inline PEM):
        # whatever quotes such a request in a log line shows *** instead.
        register_secret(self.key_pem)


@dataclass(frozen=True)
class Target:
    """One place a certificate is served: ``provider`` + ``name`` identify it (``cdn`` +
    ``img.example.com``; ``apigateway`` + ``cn-shanghai/abc123/api.example.com``).
    ``settings`` is the provider's own parsed deploy block; ``domain`` the host name a TLS
    handshake should use as SNI (None when the target has none, e.g. ``local``)."""

    provider: str
    name: str
    settings: Any = field(compare=False, hash=False)
    domain: str | None = None


@dataclass(frozen=True)
class Binding:
    """What a target serves right now, as the provider's API reports it.

    ``state``: ``none`` (no certificate), ``ok`` (serving, settled), ``pending`` (a change is
    rolling out), ``error`` (the API reports a failure), ``unknown`` (could not be read).
    ``serial``/``fingerprint`` may be None when the API does not expose them; ``cert_name`` is
    the provider's own name for the certificate (CDN CertName, API Gateway CertificateName).
    """

    state: str
    serial: str | None = None
    fingerprint: str | None = None
    not_after: datetime | None = None
    cert_name: str | None = None
    detail: str | None = None

    def serves(self, bundle: CertificateBundle) -> bool:
        """True when this binding is known to serve exactly ``bundle``."""
        if self.state not in ("ok", "pending"):
            return False
        if self.fingerprint is not None:
            return self.fingerprint == bundle.fingerprint
        if self.serial is not None:
            return self.serial == bundle.serial
        return False


@dataclass
class ProviderContext:
    """What the daemon hands every provider instance for one run.

    ``stop`` is set when the daemon is shutting down: long waits MUST watch it and give up
    (raising ProviderError) so that cleanup can still run within the shutdown budget.
    ``journal`` is the state store's crash journal for DNS records (see DnsJournal).
    ``bundles`` maps certificate name -> its current bundle; the daemon fills it before it reads
    bindings, so a provider can recognise our certificates from a listing's names alone
    (providers never read the state dir themselves). ``shared()`` gives providers of one run
    one instance of an expensive resource (one Alibaba Cloud client: one credential lookup).
    ``cas_records`` is the state store's record of the CAS certificates alicertd uploaded
    (``daemon.state.CasRecords``: entries/put/remove); None keeps them in memory for the run.
    """

    config: Config
    journal: DnsJournal
    log: logging.Logger
    stop: threading.Event = field(default_factory=threading.Event)
    dry_run: bool = False
    bundles: dict[str, CertificateBundle] = field(default_factory=dict)
    cas_records: Any = None
    _resources: dict[str, Any] = field(default_factory=dict, repr=False)
    _resources_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def shared(self, key: str, factory: Callable[[], Any]) -> Any:
        with self._resources_lock:
            if key not in self._resources:
                self._resources[key] = factory()
            return self._resources[key]


# --------------------------------------------------------------------------- plugin kinds


@runtime_checkable
class DnsProvider(Protocol):
    """Answers DNS-01 challenges.

    The daemon calls ``present`` once with every challenge of an order, then ``wait`` once, then
    ``cleanup`` in a ``finally``, even after a failure or cancellation. ``cleanup_leftovers`` runs
    at the start of each cycle and removes what a crashed run left (from the journal).
    """

    kind: ClassVar[str]  # "dns"
    name: ClassVar[str]

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> Any: ...

    def present(self, challenges: Sequence[DnsChallenge]) -> object:
        """Create a TXT record per challenge; return a handle for ``wait`` and ``cleanup``.
        Every record MUST be noted in the journal before it is created."""

    def wait(self, handle: object, deadline: float) -> None:
        """Return when every authoritative nameserver serves every value (``deadline`` is a
        ``time.monotonic()`` value); raise ProviderError when the deadline passes."""

    def cleanup(self, handle: object) -> None:
        """Remove exactly the records ``present`` created (by record id), then forget them in
        the journal. Never raises for a record already gone."""

    def cleanup_leftovers(self) -> int:
        """Remove records journaled by an earlier run that did not clean up; return how many."""


@runtime_checkable
class DeployProvider(Protocol):
    """Serves certificates somewhere (a CDN domain, an API Gateway custom domain, files)."""

    kind: ClassVar[str]  # "deploy"
    name: ClassVar[str]

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> Any:
        """Validate one ``[[certificate.deploy]]`` block (``provider`` already removed) and
        return a frozen settings object, or None when ``errors`` got something."""

    @classmethod
    def expand(cls, settings: Any) -> list[Target]:
        """The targets one deploy block stands for (one per CDN domain, for example)."""

    def read_bindings(self, targets: Sequence[Target]) -> Mapping[Target, Binding]:
        """What each target serves now, in as few API calls as the API allows."""

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        """Make ``target`` serve ``bundle``. Idempotent: a retry after a crash must not fail
        because the previous attempt got halfway."""

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        """Wait until the binding took effect (API readback, then a TLS handshake when
        ``config.verify.tls``); raise VerificationError at ``deadline`` (monotonic)."""
