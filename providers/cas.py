"""Certificate Management Service (CAS, ``cas`` 2020-04-07) as the certificate hub.

Every Alibaba product alicertd deploys to by id (CDN, DCDN, ESA, OSS, ALB, NLB, ...) binds a
CAS certificate. The hub uploads each issued certificate once per account and hands out its
``CertId``; deploy providers never send the private key again.

Never twice: a certificate is found by its SHA-256 fingerprint, first in the records the
state store keeps of our uploads (``ctx.cas_records``, written right after each upload), then
in the account's CAS listing (``ListUserCertificateOrder``, ``OrderType=UPLOAD``: only uploaded
certificates, with ``CertificateId``, ``Name``, ``SerialNo``, ``Fingerprint`` and ``Sha2``).
Only then is it uploaded (``UploadUserCertificate``) under the deterministic name
``alicertd-<certificate>-<12 hex of the fingerprint>`` and with a deterministic ``ClientToken``
(the model documents it as the request's idempotence token). A crash between upload and
record is healed by the listing: the next run finds the upload by name *and* serial, confirms
the fingerprint, records it, and binds it.

Why ListUserCertificateOrder rather than ListCertificates: the model documents it as the place
to obtain the CertId that GetUserCertificateDetail and DeleteUserCertificate take, and its
``UPLOAD`` order type returns exactly the certificates someone uploaded (ours among them);
ListCertificates mixes bought and test certificates and pages at most 100.

Ours or foreign: a CAS certificate is ours when the state store records our upload of it, or
when the listing shows our name for it and its fingerprint is one we issued. Everything else is
foreign: never deleted, never renamed (``identify`` returns None for it).

One hub per run (``cas_hub(ctx)``), shared by every provider through ``ctx.shared``;
thread-safe (targets are bound from several threads at once).

Deletion (``delete``, used by ``daemon.cas_cleanup``): only our records, and only when
``ListCloudResources`` names no cloud resource still using the certificate.

RAM actions (RAM code ``yundun-cert``): yundun-cert:UploadUserCertificate,
yundun-cert:ListUserCertificateOrder, yundun-cert:GetUserCertificateDetail,
yundun-cert:ListCloudResources, yundun-cert:DeleteUserCertificate.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aliyunsdkcore.request import CommonRequest

from providers.base import CertificateBundle, CredentialError, ProviderContext, ProviderError
from providers.certnames import CAS_NAME_MAX, cert_name, fingerprint_prefix, leaf_of_pem

VERSION = "2020-04-07"
DEFAULT_REGION = "cn-hangzhou"
#: UploadUserCertificate ``Name``: "Maximum length: 63 characters" (model).
NAME_MAX = CAS_NAME_MAX
#: ListUserCertificateOrder ``ShowSize``: the documented default (no maximum is documented).
SHOW_SIZE = 50
#: ClientToken: "up to 64 characters ... cannot contain non-ASCII characters" (model).
_TOKEN_PREFIX = "alicertd-"


@dataclass(frozen=True)
class CasCertificate:
    cert_id: int  # CAS CertId as UploadUserCertificate returns it
    region: str  # the CAS region it lives in (the account's cas_region)
    name: str  # its CAS name
    fingerprint: str  # lowercase hex SHA-256 of the leaf DER
    serial: str  # lowercase hex


def cas_hub(ctx: ProviderContext) -> CasHub:
    """The run's one hub (one record set, one listing per account)."""
    return ctx.shared("cas_hub", lambda: CasHub(ctx))


class _MemoryRecords:
    """Records for a context without a state store (unit tests): kept for the run only."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._items]

    def put(self, entry: dict[str, Any]) -> None:
        with self._lock:
            key = (entry.get("account"), entry.get("cert_id"))
            self._items = [e for e in self._items if (e.get("account"), e.get("cert_id")) != key]
            self._items.append(dict(entry))

    def remove(self, account: str, cert_id: int) -> None:
        with self._lock:
            self._items = [e for e in self._items
                           if (e.get("account"), e.get("cert_id")) != (account, cert_id)]


def _request(action: str, **params: Any) -> CommonRequest:
    # The endpoint is set by AliyunApi.prepare; CommonRequest needs a domain to be valid.
    request = CommonRequest(domain="cas.aliyuncs.com", version=VERSION, action_name=action)
    for key, value in params.items():
        if value is not None:
            request.add_query_param(key, value)
    return request


def _hex(value: Any) -> str:
    """Lowercase hex without separators or leading zeros (serials are written many ways)."""
    text = re.sub(r"[^0-9a-fA-F]", "", str(value or "")).lower().lstrip("0")
    return text or ("0" if value not in (None, "") else "")


def _digest(value: Any) -> str:
    return re.sub(r"[^0-9a-fA-F]", "", str(value or "")).lower()


def client_token(account: str, fingerprint: str) -> str:
    """The idempotence token of our upload of ``fingerprint`` into ``account``: the same on
    every retry and every run, distinct per certificate and account (<= 64 ASCII chars)."""
    digest = hashlib.sha256(f"{account}\n{fingerprint}".encode()).hexdigest()
    return _TOKEN_PREFIX + digest[:48]


def _record(cert: CasCertificate, account: str, certificate: str,
            not_after: datetime | None) -> dict[str, Any]:
    return {"account": account, "region": cert.region, "cert_id": cert.cert_id, "name": cert.name,
            "certificate": certificate, "fingerprint": cert.fingerprint, "serial": cert.serial,
            "not_after": not_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if not_after else None,
            "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _from_record(entry: dict[str, Any]) -> CasCertificate | None:
    try:
        return CasCertificate(cert_id=int(entry["cert_id"]), region=str(entry["region"]),
                              name=str(entry.get("name") or ""), fingerprint=str(entry["fingerprint"]),
                              serial=str(entry.get("serial") or ""))
    except (KeyError, TypeError, ValueError):
        return None


class CasHub:
    """Upload once, hand out ids, tell ours from foreign. See the module docstring."""

    def __init__(self, ctx: ProviderContext, api_for: Callable[[str], Any] | None = None):
        self.ctx = ctx
        self.records = ctx.cas_records if ctx.cas_records is not None else _MemoryRecords()
        self._api_for = api_for or self._default_api
        self._lock = threading.Lock()
        self._cert_locks: dict[tuple[str, str], threading.Lock] = {}
        self._listing_locks: dict[str, threading.Lock] = {}
        self._listings: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ the interface

    def ensure(self, bundle: CertificateBundle, account: str = "default") -> CasCertificate:
        """The CAS certificate holding ``bundle`` in ``account``'s CAS: found by fingerprint
        first (state dir, then a CAS listing), uploaded only if absent. Never uploads twice."""
        with self._cert_lock(account, bundle.fingerprint):
            found = self.lookup(bundle, account)
            if found is not None:
                return found
            if self.ctx.dry_run:
                raise ProviderError(f"cas: {bundle.name}: not uploaded to CAS of account "
                                    f"{account!r} yet (dry run)")
            return self._upload(bundle, account)

    def identify(self, cert_id: int | str, account: str = "default") -> CasCertificate | None:
        """One of OUR CAS certificates (uploaded by alicertd, current or superseded) by id, or
        None for a certificate alicertd did not upload (foreign: never delete/detach it)."""
        try:
            wanted = int(str(cert_id).strip())
        except ValueError:
            return None
        for entry in self.records.entries():
            if entry.get("account") == account and _as_int(entry.get("cert_id")) == wanted:
                return _from_record(entry)
        return None

    def current(self, cert_name: str, account: str = "default") -> CasCertificate | None:
        """Our CAS certificate for the current bundle of [[certificate]] ``cert_name``, if uploaded."""
        bundle = self.ctx.bundles.get(cert_name)
        if bundle is None:
            return None
        return self._recorded(account, bundle.fingerprint)

    # ------------------------------------------------------------------ beyond the interface

    def lookup(self, bundle: CertificateBundle, account: str = "default") -> CasCertificate | None:
        """Like ``ensure`` without uploading: our record, else our upload in the listing (which
        is then recorded, so the next run needs no listing). ``--dry-run`` uses this to tell
        planned uploads apart."""
        found = self._recorded(account, bundle.fingerprint)
        if found is not None:
            return found
        found = self._listed(bundle, account)
        if found is not None and not self.ctx.dry_run:
            self.records.put(_record(found, account, bundle.name, bundle.not_after))
            self.ctx.log.info("cas: %s: found our earlier upload %d in CAS (%s) of account %s",
                              bundle.name, found.cert_id, found.region, account)
        return found

    def ours(self, account: str | None = None) -> list[dict[str, Any]]:
        """Every record of our uploads (of ``account``, or all), as stored."""
        return [e for e in self.records.entries() if account is None or e.get("account") == account]

    def delete(self, cert_id: int, account: str = "default") -> None:
        """Delete one of OUR CAS certificates and forget it. Refuses a foreign id. A failure
        (still in use, permission, ...) raises ProviderError and keeps the record, so a later
        run tries again."""
        mine = self.identify(cert_id, account)
        if mine is None:
            raise ProviderError(f"cas: certificate {cert_id} was not uploaded by alicertd: not deleting it")
        users = self.used_by(mine, account)
        if users:
            more = f" and {len(users) - 3} more" if len(users) > 3 else ""
            raise ProviderError(f"cas: certificate {mine.cert_id} ({mine.name}) is still used by "
                                f"{', '.join(users[:3])}{more}: not deleting it")
        self._api(account).call("cas", _request("DeleteUserCertificate", CertId=mine.cert_id),
                                region=mine.region)
        self.records.remove(account, mine.cert_id)
        with self._lock:
            for item in self._listings.get(account, []):
                if _as_int(item.get("CertificateId")) == mine.cert_id:
                    item["_deleted"] = True
        self.ctx.log.info("cas: deleted superseded certificate %d (%s) from CAS of account %s",
                          mine.cert_id, mine.name, account)

    def forget_if_gone(self, cert: CasCertificate, account: str = "default") -> bool:
        """After a product refused ``cert``'s id: when the CAS listing no longer shows it
        (deleted by hand), forget our record so that ``ensure`` uploads again, and say so.
        Decided from the listing, never from the refusal's (undocumented) code."""
        listed = {_as_int(i.get("CertificateId")) for i in self._listing(account, refresh=True)
                  if not i.get("_deleted")}
        if cert.cert_id in listed:
            return False
        self.records.remove(account, cert.cert_id)
        self.ctx.log.warning("cas: certificate %d (%s) is gone from CAS of account %s; uploading "
                             "it again", cert.cert_id, cert.name, account)
        return True

    def used_by(self, cert: CasCertificate, account: str = "default") -> list[str]:
        """The cloud resources CAS reports using ``cert`` (``ListCloudResources`` by CertIds),
        as ``"<product> <domain or instance>"``. Whether CAS itself refuses to delete a
        certificate in use is not documented, so alicertd asks first; how soon CAS learns of a
        new binding is not documented either, so an empty answer is not taken as a promise (a
        refused deletion is retried next cycle)."""
        body = self._api(account).call("cas", _request("ListCloudResources", CertIds=f"[{cert.cert_id}]"),
                                       region=cert.region)
        users = []
        for item in body.get("Data") or []:
            if isinstance(item, dict) and _as_int(item.get("CertId")) in (None, cert.cert_id):
                where = item.get("Domain") or item.get("InstanceId") or item.get("Id") or "?"
                users.append(f"{item.get('CloudProduct') or 'a cloud product'} {where}")
        return users

    def region(self, account: str = "default") -> str:
        """The account's CAS region (``[aliyun] cas_region`` or the account entry's)."""
        aliyun = self.ctx.config.aliyun
        if account != "default":
            entry = (getattr(aliyun, "accounts", None) or {}).get(account)
            if entry is not None and getattr(entry, "cas_region", None):
                return entry.cas_region
        return getattr(aliyun, "cas_region", None) or DEFAULT_REGION

    # ------------------------------------------------------------------ internals

    def _cert_lock(self, account: str, fingerprint: str) -> threading.Lock:
        with self._lock:
            return self._cert_locks.setdefault((account, fingerprint), threading.Lock())

    def _recorded(self, account: str, fingerprint: str) -> CasCertificate | None:
        region = self.region(account)
        for entry in self.records.entries():
            if (entry.get("account") == account and entry.get("fingerprint") == fingerprint
                    and entry.get("region") == region):
                return _from_record(entry)
        return None

    def _default_api(self, account: str) -> Any:
        from providers.aliyun.client import shared_api
        return shared_api(self.ctx, account)

    def _api(self, account: str) -> Any:
        return self._api_for(account)

    def _listing(self, account: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        """Every uploaded certificate of the account's CAS (all pages), read once per run."""
        with self._lock:
            lock = self._listing_locks.setdefault(account, threading.Lock())
        with lock:
            if refresh or account not in self._listings:
                self._listings[account] = self._read_listing(account)
            return self._listings[account]

    def _read_listing(self, account: str) -> list[dict[str, Any]]:
        api, region = self._api(account), self.region(account)
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            body = api.call("cas", _request("ListUserCertificateOrder", OrderType="UPLOAD",
                                            CurrentPage=page, ShowSize=SHOW_SIZE), region=region)
            batch = [i for i in body.get("CertificateOrderList") or [] if isinstance(i, dict)]
            items.extend(batch)
            total = _as_int(body.get("TotalCount")) or 0
            if not batch or len(items) >= total:
                return items
            page += 1

    def _listed(self, bundle: CertificateBundle, account: str) -> CasCertificate | None:
        """Our earlier upload of ``bundle`` in the listing: our name for this fingerprint, the
        same serial, and the fingerprint confirmed (by the listing's hashes or the PEM)."""
        region = self.region(account)
        prefix = bundle.fingerprint[:12]
        serial = _hex(bundle.serial)
        for item in self._listing(account):
            if item.get("_deleted") or fingerprint_prefix(str(item.get("Name") or "")) != prefix:
                continue
            if _hex(item.get("SerialNo")) != serial:
                continue
            cert_id = _as_int(item.get("CertificateId"))
            if cert_id is None:
                continue
            if self._confirmed(item, bundle, account, region, cert_id):
                return CasCertificate(cert_id=cert_id, region=region, name=str(item["Name"]),
                                      fingerprint=bundle.fingerprint, serial=bundle.serial)
        return None

    def _confirmed(self, item: dict[str, Any], bundle: CertificateBundle, account: str,
                   region: str, cert_id: int) -> bool:
        """Is this listed certificate exactly ``bundle``'s leaf? The listing's ``Sha2`` and
        ``Fingerprint`` are not documented to be of which digest or in which format: one that
        equals the SHA-256 settles it; otherwise the certificate's PEM (GetUserCertificateDetail)
        is compared."""
        if bundle.fingerprint in (_digest(item.get("Sha2")), _digest(item.get("Fingerprint"))):
            return True
        body = self._api(account).call("cas", _request("GetUserCertificateDetail", CertId=cert_id),
                                       region=region)
        try:
            return leaf_of_pem(str(body.get("Cert") or "")).fingerprint == bundle.fingerprint
        except ValueError:
            return False

    def _upload(self, bundle: CertificateBundle, account: str) -> CasCertificate:
        region = self.region(account)
        name = cert_name(bundle.name, bundle.fingerprint, NAME_MAX)
        api = self._api(account)
        try:
            body = api.call("cas", _request("UploadUserCertificate", Name=name, Cert=bundle.fullchain_pem,
                                            Key=bundle.key_pem,
                                            ClientToken=client_token(account, bundle.fingerprint)),
                            region=region)
        except CredentialError:
            raise
        except ProviderError:
            # Whether the upload happened is unknown (a lost answer, a name check): look
            # again instead of sending it a second time.
            self._listing(account, refresh=True)
            found = self._listed(bundle, account)
            if found is None:
                raise
            body = {"CertId": found.cert_id}
        cert_id = _as_int(body.get("CertId"))
        if cert_id is None:
            raise ProviderError(f"cas: UploadUserCertificate for {bundle.name} returned no CertId")
        cert = CasCertificate(cert_id=cert_id, region=region, name=name, fingerprint=bundle.fingerprint,
                              serial=bundle.serial)
        self.records.put(_record(cert, account, bundle.name, bundle.not_after))
        self.ctx.log.info("cas: %s: uploaded serial %s to CAS (%s) of account %s as %d (%s)",
                          bundle.name, bundle.serial, region, account, cert_id, name)
        return cert


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None

