"""DNS-01 through Alibaba Cloud DNS (Alidns).

The story of one order: ``present`` finds, per challenge, where the TXT record must go (follows
an ``_acme-challenge`` CNAME into whatever zone of the account holds its target), finds the
longest zone of the account containing that name, notes the record in the crash journal, and
creates it. ``wait`` asks every authoritative nameserver until all values are served.
``cleanup`` deletes exactly the records ``present`` created, by RecordId, and forgets them.
``cleanup_leftovers`` does the same for what a crashed run left in the journal.

Why by RecordId and never by name: a wildcard and its apex share ``_acme-challenge.<name>``;
deleting by name (``DeleteSubDomainRecords``) would remove the other order's value, or another
tool's record. Every error message starts with ``alidns: ``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from providers import _alidns_api as wire
from providers import propagation
from providers.aliyun.client import AliyunApi, shared_api
from providers.base import ConfigDefaults, ConfigErrors, DnsChallenge, ProviderContext, ProviderError

NAME = "alidns"
MAX_CNAME_DEPTH = 4
DNS_LOOKUP_LIFETIME = 3.0


@dataclass
class TxtRecord:
    """One TXT value at one name, as created (or being created) by this provider."""

    zone: str
    rr: str
    fqdn: str
    value: str
    journal_id: str | None = None
    record_id: str | None = None
    done: bool = False  # deleted (or never ours to delete)
    account: str = "default"  # the account entry holding ``zone`` ([dns] accounts)

    def journal_entry(self) -> dict[str, Any]:
        entry = {"zone": self.zone, "rr": self.rr, "fqdn": self.fqdn, "value": self.value}
        if self.record_id:
            entry["record_id"] = self.record_id
        if self.account != "default":
            entry["account"] = self.account
        return entry


@dataclass
class AlidnsHandle:
    """What ``present`` returns: the records, for ``wait`` and ``cleanup``."""

    records: list[TxtRecord] = field(default_factory=list)


def _same_value(a: str, b: str) -> bool:
    return a.strip().strip('"') == b.strip().strip('"')


def _relative(fqdn: str, zone: str) -> str:
    return "@" if fqdn == zone else fqdn[: -len(zone) - 1]


class AlidnsProvider:
    """DnsProvider for Alidns. One instance per run: the zone list is read once and cached."""

    kind: ClassVar[str] = "dns"
    name: ClassVar[str] = NAME

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> Any:
        """Alidns has no settings of its own yet (credentials live in ``[aliyun]``)."""
        for key in raw or {}:
            errors.add(f"{path}.{key}" if path else key, "unknown key (alidns has no settings of its own)")
        return None

    def __init__(self, ctx: ProviderContext, settings: Any = None, *, api: AliyunApi | None = None):
        self.ctx = ctx
        self.log = ctx.log
        self.settings = settings
        self.api = api or shared_api(ctx)
        self._lock = threading.Lock()  # present/wait may run for several orders at once
        self._zones: list[wire.Zone] | None = None
        self._zone_account: dict[str, str] = {}  # zone name -> account entry holding it
        self._servers: dict[str, list[propagation.Nameserver]] = {}
        self._targets: dict[str, str] = {}

    # -- zones and names ----------------------------------------------------------

    def api_for(self, account: str) -> AliyunApi:
        """The API of account entry ``account`` (the one given to the constructor is default's)."""
        return self.api if account == "default" else shared_api(self.ctx, account)

    def account_of(self, zone: str) -> str:
        """The account entry whose Alidns holds ``zone`` (after :meth:`zones`)."""
        self.zones()
        return self._zone_account.get(zone, "default")

    def zones(self) -> list[wire.Zone]:
        """Every zone of every account in ``[dns] accounts`` (DescribeDomains, all pages), read
        once per instance. The same zone in two accounts is an error naming both: which of
        them the CA's resolvers see cannot be told from here."""
        with self._lock:
            if self._zones is None:
                zones: list[wire.Zone] = []
                owner: dict[str, str] = {}
                for account in self.ctx.config.dns.accounts:
                    for zone in wire.describe_domains(self.api_for(account)):
                        if zone.name in owner and owner[zone.name] != account:
                            raise ProviderError(
                                f"alidns: zone {zone.name} is in two accounts of [dns] accounts, "
                                f"{owner[zone.name]} and {account}; keep it in one of them")
                        if zone.name not in owner:
                            owner[zone.name] = account
                            zones.append(zone)
                self._zones, self._zone_account = zones, owner
                self.log.debug("alidns: %d zones in %d account(s)", len(zones),
                               len(self.ctx.config.dns.accounts))
            return self._zones

    def zone_of(self, fqdn: str) -> wire.Zone | None:
        """The longest zone of the account that ``fqdn`` is in (nested zones win)."""
        fqdn = propagation.to_ascii(fqdn)
        best: wire.Zone | None = None
        for zone in self.zones():
            if (fqdn == zone.name or fqdn.endswith("." + zone.name)) and (
                    best is None or len(zone.name) > len(best.name)):
                best = zone
        return best

    def _require_zone(self, fqdn: str, via: str | None = None) -> wire.Zone:
        zone = self.zone_of(fqdn)
        if zone is None:
            names = ", ".join(z.name for z in self.zones()[:5]) or "none"
            more = ", …" if len(self.zones()) > 5 else ""
            through = f" (the target of the CNAME at {via})" if via else ""
            where = ("this Alibaba Cloud account" if self.ctx.config.dns.accounts == ("default",)
                     else "the accounts of [dns] accounts (" + ", ".join(self.ctx.config.dns.accounts) + ")")
            raise ProviderError(f"alidns: {fqdn}{through} is in no zone of {where} "
                                f"(zones: {names}{more})")
        return zone

    def target_of(self, record_name: str) -> str:
        """Where the TXT for ``record_name`` goes: the name itself, or the end of its CNAME
        chain (``_acme-challenge.www.example.com CNAME www.acme-validation.example.org``).
        Names in an account zone are resolved through the API (the truth, no cache
        delays); names outside it through DNS."""
        name = propagation.to_ascii(record_name)
        if name in self._targets:
            return self._targets[name]
        seen = [name]
        current = name
        for _ in range(MAX_CNAME_DEPTH + 1):
            nxt = self._cname(current)
            if nxt is None:
                break
            if nxt in seen:
                raise ProviderError(f"alidns: CNAME loop at {record_name}: {' -> '.join(seen + [nxt])}")
            seen.append(nxt)
            current = nxt
        else:
            raise ProviderError(f"alidns: CNAME chain at {record_name} is longer than "
                                f"{MAX_CNAME_DEPTH}: {' -> '.join(seen)}")
        if current != name:
            self.log.info("alidns: %s is delegated by CNAME to %s", name, current)
        self._targets[name] = current
        return current

    def _cname(self, name: str) -> str | None:
        zone = self.zone_of(name)
        if zone is not None:
            records = wire.describe_sub_domain_records(self.api_for(self.account_of(zone.name)),
                                                       zone.name, name, "CNAME")
            live = [r for r in records if r.status != "DISABLE"]
            return propagation.to_ascii(live[0].value) if live else None
        return self._dns_cname(name)

    def _dns_cname(self, name: str) -> str | None:
        """CNAME of a name outside the account (a domain hosted elsewhere that delegates its
        challenge into one of our zones). Asked of ``[dns] nameservers`` first, then of the
        system resolver when none of them answers for the name (REFUSED, timeout). No answer
        means no delegation: the zone check then names the problem."""
        qname = dns.name.from_text(name)
        if self.ctx.config.dns.nameservers:
            try:
                servers = propagation.resolve_nameservers(self.ctx.config.dns.nameservers)
            except ProviderError:
                servers = []
            for ns in servers:
                query = dns.message.make_query(qname, dns.rdatatype.CNAME)
                try:
                    resp, _ = dns.query.udp_with_fallback(query, ns.address, port=ns.port,
                                                          timeout=DNS_LOOKUP_LIFETIME)
                except (OSError, dns.exception.DNSException):
                    continue
                if resp.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    continue
                for rrset in resp.answer:
                    if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == qname:
                        return propagation.to_ascii(rrset[0].target.to_text())
                return None
        try:
            answer = dns.resolver.resolve(qname, dns.rdatatype.CNAME, lifetime=DNS_LOOKUP_LIFETIME,
                                          raise_on_no_answer=False)
        except (dns.exception.DNSException, OSError):
            return None
        return propagation.to_ascii(answer.rrset[0].target.to_text()) if answer.rrset is not None else None

    # -- DnsProvider ------------------------------------------------------------------

    def present(self, challenges: Sequence[DnsChallenge]) -> AlidnsHandle:
        """Create one TXT record per distinct (name, value), each journaled before creation.
        On failure, whatever was created is removed again before the error propagates."""
        handle = AlidnsHandle()
        try:
            planned: list[TxtRecord] = []
            for ch in challenges:
                fqdn = self.target_of(ch.record_name)
                zone = self._require_zone(fqdn, via=None if fqdn == propagation.to_ascii(
                    ch.record_name) else ch.record_name)
                if any(r.fqdn == fqdn and r.value == ch.value for r in planned):
                    continue
                planned.append(TxtRecord(zone.name, _relative(fqdn, zone.name), fqdn, ch.value,
                                         account=self.account_of(zone.name)))
            for rec in planned:
                handle.records.append(rec)
                self._create(rec)
        except BaseException:
            try:
                self.cleanup(handle)
            except ProviderError as exc:
                self.log.warning("%s", exc)
            raise
        return handle

    def _create(self, rec: TxtRecord) -> None:
        journal = self.ctx.journal
        rec.journal_id = journal.add(NAME, rec.journal_entry())
        try:
            rec.record_id = wire.add_txt(self.api_for(rec.account), rec.zone, rec.rr, rec.value,
                                         self.ctx.config.dns.ttl)
        except ProviderError as exc:
            if exc.code == "DomainRecordDuplicate":
                self._adopt_duplicate(rec)
                return
            # Even a definite refusal does not prove that nothing was created: the access layer
            # re-sends AddDomainRecord after a lost answer, and the refusal may be about the
            # record the first attempt made. DomainRecordDuplicate is the documented code for
            # that, but nothing else may be assumed, so the journal entry stays either way and
            # cleanup looks the record up by its value (one read when there is none).
            raise
        journal.update(rec.journal_id, rec.journal_entry())
        self.log.debug("alidns: added TXT %s (RecordId %s)", rec.fqdn, rec.record_id)

    def _adopt_duplicate(self, rec: TxtRecord) -> None:
        """AddDomainRecord said the identical record exists (a retry whose first attempt got
        through, or an earlier run): take it over when it carries our value."""
        found = [r for r in wire.describe_sub_domain_records(self.api_for(rec.account), rec.zone,
                                                             rec.fqdn, "TXT")
                 if _same_value(r.value, rec.value)]
        if found:
            rec.record_id = found[0].record_id
            self.ctx.journal.update(rec.journal_id, rec.journal_entry())
            self.log.info("alidns: TXT %s already present (RecordId %s)", rec.fqdn, rec.record_id)
        else:
            self.ctx.journal.remove(rec.journal_id)
            rec.done = True
            self.log.info("alidns: TXT %s reported as duplicate but not found with our value; "
                          "treating it as present and not ours", rec.fqdn)

    def wait(self, handle: object, deadline: float) -> None:
        """Return when every authoritative nameserver of each record's zone (or every server
        of ``[dns] nameservers``) serves every value."""
        assert isinstance(handle, AlidnsHandle)
        expected: dict[str, set[str]] = {}
        servers: dict[str, list[propagation.Nameserver]] = {}
        for rec in handle.records:
            expected.setdefault(rec.fqdn, set()).add(rec.value)
            servers[rec.fqdn] = self.nameservers(rec.zone)
        if not expected:
            return
        # [dns] propagation_timeout bounds this wait; the caller's deadline bounds the order.
        deadline = min(deadline, time.monotonic() + self.ctx.config.dns.propagation_timeout)
        propagation.wait_for_txt(expected, servers, deadline, log=self.log, stop=self.ctx.stop,
                                 prefix=NAME)

    def nameservers(self, zone: str) -> list[propagation.Nameserver]:
        """``[dns] nameservers`` when set, else the zone's authoritative servers (DescribeDomains
        DnsServers, or DescribeDomainNs ExpectDnsServers), resolved to addresses."""
        key = "" if self.ctx.config.dns.nameservers else zone
        if key not in self._servers:
            names: Sequence[str] = self.ctx.config.dns.nameservers
            if not names:
                z = next((z for z in self.zones() if z.name == zone), None)
                names = (z.nameservers if z else ()) or wire.describe_domain_ns(
                    self.api_for(self.account_of(zone)), zone)
                if not names:
                    raise ProviderError(f"alidns: no nameservers known for zone {zone}; "
                                        f"set [dns] nameservers")
            try:
                self._servers[key] = propagation.resolve_nameservers(names, log=self.log)
            except ProviderError as exc:
                raise ProviderError(f"alidns: {exc}") from None
        return self._servers[key]

    def cleanup(self, handle: object) -> None:
        """Delete every record of ``handle`` by RecordId (already gone is fine), then forget it.
        Every record is attempted; failures leave the journal entry for the next run."""
        assert isinstance(handle, AlidnsHandle)
        failures: list[str] = []
        for rec in handle.records:
            if rec.done:
                continue
            try:
                self._delete(rec)
            except ProviderError as exc:
                failures.append(str(exc))
        if failures:
            raise ProviderError(f"alidns: {len(failures)} TXT record(s) not deleted, kept in the "
                                f"journal for the next run: {failures[0].removeprefix('alidns: ')}", retryable=True)

    def _delete(self, rec: TxtRecord, *, check: bool = False) -> int:
        """Delete ``rec``; returns how many records were actually removed. With ``check``
        (journal leftovers), a known RecordId is first confirmed to still carry our value."""
        removed = 0
        api = self.api_for(rec.account)
        if rec.record_id:
            if check:
                current = {r.record_id: r for r in wire.describe_sub_domain_records(
                    api, rec.zone, rec.fqdn, "TXT")}
                found = current.get(rec.record_id)
                if found is not None and not _same_value(found.value, rec.value):
                    self.log.warning("alidns: RecordId %s at %s no longer carries our value; "
                                     "leaving it alone", rec.record_id, rec.fqdn)
                    found = None
                if found is not None and wire.delete_record(api, rec.record_id):
                    removed += 1
            elif wire.delete_record(api, rec.record_id):
                removed += 1
        else:
            # Journaled but the create's outcome is unknown: find it by exact name and value.
            for r in wire.describe_sub_domain_records(api, rec.zone, rec.fqdn, "TXT"):
                if _same_value(r.value, rec.value) and wire.delete_record(api, r.record_id):
                    removed += 1
        if rec.journal_id:
            self.ctx.journal.remove(rec.journal_id)
        rec.done = True
        self.log.debug("alidns: removed TXT %s (%s)", rec.fqdn, rec.record_id or "found by value")
        return removed

    def cleanup_leftovers(self) -> int:
        """Remove the records journaled by earlier runs that did not clean up."""
        removed = 0
        failures: list[str] = []
        for journal_id, entry in self.ctx.journal.entries(NAME).items():
            try:
                rec = TxtRecord(zone=str(entry["zone"]), rr=str(entry["rr"]), fqdn=str(entry["fqdn"]),
                                value=str(entry["value"]), journal_id=journal_id,
                                record_id=str(entry["record_id"]) if entry.get("record_id") else None,
                                account=str(entry.get("account") or "default"))
            except KeyError as exc:
                self.log.warning("alidns: journal entry %s lacks %s; leaving it for an operator",
                                 journal_id, exc)
                continue
            if rec.account not in self.ctx.config.aliyun.account_names:
                self.log.warning("alidns: journal entry %s is for account %s, which is no longer "
                                 "configured; leaving TXT %s for an operator", journal_id,
                                 rec.account, rec.fqdn)
                continue
            try:
                removed += self._delete(rec, check=True)
            except ProviderError as exc:
                failures.append(str(exc))
        if removed:
            self.log.info("alidns: removed %d TXT record(s) left by an earlier run", removed)
        if failures:
            raise ProviderError(f"alidns: {len(failures)} leftover TXT record(s) not deleted: "
                                f"{failures[0].removeprefix('alidns: ')}", retryable=True)
        return removed
