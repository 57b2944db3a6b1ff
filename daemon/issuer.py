"""The ACME side of a cycle, wired to the state store: the account (created once, found again
when its URL is lost, never re-created while a key exists), issuance with a key that survives a
crash, renewal information.

Why the key is written before the order: a run killed after finalize but before commit would
otherwise leave the CA holding a certificate for a key we no longer have. ``pending/NAME.key.pem``
is reused by the next attempt and removed once the certificate is committed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.acme.account import client_for, ensure_account
from daemon.acme.client import AcmeClient
from daemon.acme.issue import Dns01Record, issue_certificate
from daemon.acme.problems import AccountDoesNotExist
from daemon.config import CertificateConfig, Config
from daemon.keys import (
    KeyFormatError,
    ari_cert_id,
    generate_private_key,
    key_type_of,
    load_private_key,
    private_key_to_pem,
)
from daemon.state import StateCorrupt, StateStore, atomic_write, check_name

log = logging.getLogger("alicertd")

ARI_DEFAULT_RETRY = 6 * 3600.0  # no Retry-After on renewalInfo: ask again in 6 h
ARI_MIN_RETRY = 60.0  # RFC 9773 §4.3: "values under one minute could be treated as ... one minute"
ARI_MAX_RETRY = 86400.0  # ... "and values over one day ... as if they were one day"


@dataclass(frozen=True)
class NewCertificate:
    serial: str
    not_after: datetime


class AccountKeeper:
    """Loads or creates the account key and account URL of one state dir."""

    def __init__(self, config: Config, store: StateStore):
        self.config = config
        self.store = store

    def load_key(self, *, create: bool):
        pem = self.store.read_account_key()
        path = self.store.root / "account" / "key.pem"
        if pem is None:
            if not create:
                return None
            key = generate_private_key(self.config.acme.account_key_type)
            self.store.ensure()
            self.store.write_account_key(private_key_to_pem(key).encode("ascii"))
            log.info("created a new %s ACME account key", self.config.acme.account_key_type)
            return key
        try:
            return load_private_key(pem)
        except KeyFormatError:
            # Never regenerate: the account (and its rate-limit history, its orders) hangs on it.
            raise StateCorrupt(f"{path} exists but is not a readable private key; restore it from a "
                               f"backup or move it away to start a new account") from None

    def client(self, key, account_url: str | None = None) -> AcmeClient:
        return client_for(self.config.acme, key, account_url)

    def saved_url(self) -> str | None:
        data = self.store.read_account() or {}
        if data.get("directory") == self.config.acme.directory and data.get("url"):
            return str(data["url"])
        return None

    def ensure_account(self, client: AcmeClient) -> str:
        """The account URL for the client's key: saved, found again (onlyReturnExisting) or
        registered; see daemon.acme.account.ensure_account. A rollover that a crash left
        unrecorded is completed first, so it never turns into a second account."""
        if self.store.read_next_account_key() is not None:
            self._recover_rollover(client)
        saved = self.saved_url()
        ensured = ensure_account(client, self.config.acme, saved)
        if ensured.url != saved or ensured.created or ensured.recovered:
            self.save(client, ensured.url, ensured.account.contact)
        return ensured.url

    def _recover_rollover(self, client: AcmeClient) -> None:
        """A rollover the CA accepted but a crash kept us from recording: the staged next key
        is now the account's key. Promote it; a staged key the CA does not know is dropped."""
        pem = self.store.read_next_account_key()
        try:
            key = load_private_key(pem)
        except KeyFormatError:
            self.store.discard_next_account_key()
            return
        with self.client(key) as probe:
            try:
                account = probe.find_account()
            except AccountDoesNotExist:
                self.store.discard_next_account_key()
                return
        self.store.promote_next_account_key()
        client.account_key = key
        self.store.write_account({**(self.store.read_account() or {}), "url": account.url,
                                  "directory": self.config.acme.directory})
        log.warning("completed an interrupted account key rollover for %s", account.url)

    def save(self, client: AcmeClient, url: str, contact) -> None:
        self.store.write_account({"url": url, "directory": self.config.acme.directory,
                                  "contact": list(contact), "thumbprint": client.thumbprint,
                                  "key_type": key_type_of(client.account_key),
                                  "saved_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})


class Issuer:
    """Issues certificates for one cycle. Thread-safe: each worker thread gets its own
    AcmeClient (its own nonce and connection), the account is settled once under a lock."""

    def __init__(self, config: Config, store: StateStore, *, stop: threading.Event | None = None):
        self.config = config
        self.store = store
        self.stop = stop or threading.Event()
        self.keeper = AccountKeeper(config, store)
        self._lock = threading.Lock()
        self._key = None
        self._url: str | None = None
        self._local = threading.local()

    def _client(self, *, with_account: bool) -> AcmeClient:
        client = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                if self._key is None:
                    self._key = self.keeper.load_key(create=with_account)
                key = self._key
            if key is None:  # read-only use (ARI) before any account exists
                key = generate_private_key("ec256")
            client = self.keeper.client(key)
            self._local.client = client
        if with_account and client.account_url is None:
            with self._lock:
                if self._url is None:
                    self._url = self.keeper.ensure_account(client)
                    # A recovered rollover swapped this client's key: every thread signs with it.
                    self._key = client.account_key
                client.account_key = self._key
            client.account_url = self._url
        return client

    def renewal_info(self, fullchain_pem: str):
        """(start, end, retry_after, explanation_url) of the CA's ARI window, or None when it
        has no ARI. A GET (RFC 9773 §4.1): no account, no nonce. The Retry-After is clamped to
        [1 min, 1 day] as RFC 9773 §4.3 suggests: never hammer the CA, never miss a "renew now"
        for days."""
        info = self._client(with_account=False).renewal_info(fullchain_pem)
        if info is None:
            return None
        wait = info.retry_after if info.retry_after is not None else ARI_DEFAULT_RETRY
        wait = min(max(wait, ARI_MIN_RETRY), ARI_MAX_RETRY)
        return info.start, info.end, datetime.now(UTC) + timedelta(seconds=wait), info.explanation_url

    def issue(self, cert: CertificateConfig, dns, previous_fullchain: str | None,
              previous_meta: dict | None = None) -> NewCertificate:
        client = self._client(with_account=True)
        key = self._pending_key(cert)
        replaces = self._replaces(client, previous_fullchain, previous_meta or {})
        clog = logging.LoggerAdapter(log, {"certificate": cert.name})
        resume = self._pending_order(cert, client)

        def remember(order_url: str) -> None:
            # Before finalize: a crash from here on leaves an order the CA may complete, and
            # the next attempt must pick it up rather than re-order (a second ``replaces`` of
            # the same certificate is refused as alreadyReplaced).
            write_pending_order(self.store, cert.name, {"url": order_url, "directory": self.config.acme.directory,
                                                       "account": self._url})

        issued = issue_certificate(client, list(cert.domains), key, DnsSolver(dns), profile=self.config.acme.profile,
                                   replaces=replaces, preferred_chain=self.config.acme.preferred_chain,
                                   deadline_seconds=self.config.dns.propagation_timeout + 300, log=clog,
                                   resume_order=resume, on_order=remember)
        info = issued.cert_info
        meta = {"serial": info.serial, "not_before": info.not_before.isoformat(),
                "not_after": info.not_after.isoformat(), "domains": list(cert.domains),
                "key_type": cert.key_type, "issuer": info.issuer, "fingerprint": info.fingerprint,
                "order_url": issued.order_url, "directory": self.config.acme.directory,
                "account_url": self._url,
                "issued_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        self.store.commit_certificate(cert.name, info.serial, private_key_to_pem(key), issued.fullchain_pem,
                                      meta)
        clear_pending_order(self.store, cert.name)
        self.store.clear_pending_key(cert.name)
        return NewCertificate(serial=info.serial, not_after=info.not_after)

    def _replaces(self, client: AcmeClient, previous_fullchain: str | None, meta: dict) -> str | None:
        """The ARI id for ``replaces`` (RFC 9773 §5), only for a certificate this CA issued to
        this account: after a change of CA or account the CA cannot match it and may refuse."""
        if not previous_fullchain or not client.directory.renewal_info:
            return None
        if meta.get("directory") != self.config.acme.directory:
            return None
        if meta.get("account_url") and meta["account_url"] != self._url:
            return None
        try:
            return ari_cert_id(previous_fullchain)
        except Exception:  # noqa: BLE001 - an unparsable old chain just means no "replaces"
            return None

    def _pending_order(self, cert: CertificateConfig, client: AcmeClient) -> str | None:
        """The order URL an interrupted attempt recorded, if it is for this CA and account."""
        data = read_pending_order(self.store, cert.name) or {}
        if data.get("url") and data.get("directory") == self.config.acme.directory \
                and data.get("account") == self._url:
            return str(data["url"])
        return None

    def _pending_key(self, cert: CertificateConfig):
        """The key for a new order: the one a crashed attempt left (so a certificate the CA
        issued for it is still usable), unless that is already the current certificate's key
        (a crash between commit and cleanup) — a renewal never reuses the key it replaces."""
        pem = self.store.read_pending_key(cert.name)
        if pem is not None:
            current = self.store.read_certificate(cert.name)
            try:
                key = load_private_key(pem)
                reused = current is not None and load_private_key(current.key_pem).public_key() == key.public_key()
                if key_type_of(key) == cert.key_type and not reused:
                    return key
            except KeyFormatError:
                log.warning("discarding an unreadable pending key", extra={"certificate": cert.name})
        key = generate_private_key(cert.key_type)
        self.store.write_pending_key(cert.name, private_key_to_pem(key).encode("ascii"))
        return key


def _pending_order_path(store: StateStore, name: str) -> Path:
    return store.root / "pending" / f"{check_name(name)}.order.json"


def read_pending_order(store: StateStore, name: str) -> dict | None:
    """The order an interrupted attempt recorded before finalize (``pending/NAME.order.json``).
    Unreadable counts as absent: it is only a shortcut, a new order is always possible."""
    try:
        data = json.loads(_pending_order_path(store, name).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_pending_order(store: StateStore, name: str, data: dict) -> None:
    atomic_write(_pending_order_path(store, name), json.dumps(data, sort_keys=True).encode())


def clear_pending_order(store: StateStore, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_pending_order_path(store, name))


class DnsSolver:
    """The ACME side's dns-01 records turned into the DNS plugin's challenges: the ACME package
    imports nothing from ``providers``; this is the one place the two meet."""

    def __init__(self, dns):
        self.dns = dns

    def present(self, records: list[Dns01Record]):
        from providers.base import DnsChallenge
        return self.dns.present([DnsChallenge(domain=r.domain, record_name=r.record_name, value=r.value)
                                 for r in records])

    def wait(self, handle, deadline: float) -> None:
        self.dns.wait(handle, deadline)

    def cleanup(self, handle) -> None:
        self.dns.cleanup(handle)
