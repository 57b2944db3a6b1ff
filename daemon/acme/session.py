"""What every ACME verb needs: the account key and URL, the CA's directory, and signed POSTs.

The base of ``AcmeClient``: the verb modules (``account_management``, ``orders``,
``revocation``, ``ari``) each subclass it, so they share one transport, one nonce and one
directory without knowing about each other. Signing, nonces, retries and problem documents
stay in ``transport.py``; this only decides which key and ``kid`` sign a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Self

from daemon.acme import jws
from daemon.acme.directory import Directory, fetch_directory
from daemon.acme.polling import POLL_INTERVALS
from daemon.acme.problems import AcmeError
from daemon.acme.transport import Response, Transport
from daemon.keys import PrivateKey


class AcmeSession:
    """One account at one CA.

    ``account_key`` signs every request; ``account_url`` (the ``kid``) is set by
    ``new_account``/``find_account`` or given when known. ``clock`` (monotonic seconds) and
    ``sleep`` are injectable; every deadline argument is a ``clock()`` value.
    """

    def __init__(self, directory_url: str, account_key: PrivateKey, *, account_url: str | None = None,
                 ca_bundle: str | None = None, timeout: float = 30.0, transport: Transport | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 poll_intervals: Sequence[float] = POLL_INTERVALS):
        self.directory_url = directory_url
        self.account_key = account_key
        self.account_url = account_url
        self.transport = transport or Transport(ca_bundle=ca_bundle, timeout=timeout, clock=clock, sleep=sleep)
        self.clock = self.transport.clock
        self.sleep = self.transport.sleep
        self.poll_intervals = tuple(poll_intervals)
        self._directory: Directory | None = None

    @property
    def directory(self) -> Directory:
        """The CA's directory, fetched on first use and kept for this client's life."""
        if self._directory is None:
            self._directory = fetch_directory(self.transport, self.directory_url)
            self.transport.new_nonce_url = self._directory.new_nonce
        return self._directory

    @property
    def thumbprint(self) -> str:
        """RFC 7638 thumbprint of the account key (base64url)."""
        return jws.thumbprint(self.account_key)

    @property
    def round_trips(self) -> int:
        return self.transport.round_trips

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _kid(self) -> str:
        if not self.account_url:
            raise AcmeError("no ACME account URL known: register or find the account first")
        return self.account_url

    def _post(self, url: str, payload: Any, *, use_kid: bool = True, accept: str | None = None,
              retry: bool = True) -> Response:
        _ = self.directory  # the transport needs newNonce
        kid = self._kid() if use_kid else None
        return self.transport.post(url, payload, key=self.account_key, kid=kid, accept=accept, retry=retry)

    def _fetch(self, url: str, parse: Callable[[str, Response], Any]) -> tuple[Any, Response]:
        response = self._post(url, None)
        return parse(url, response), response
