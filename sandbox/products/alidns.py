"""Alidns 2015-01-09: the zones and records of the account.

Behaviour worth knowing (all of it exists to catch client mistakes real Alidns would punish;
each code's source is in docs/aliyun-api-notes.md):

* TTL below the zone's edition minimum (600 on the free edition; fixture ``min_ttl``) fails
  with ``QuotaExceeded.TTL`` (undocumented, but the code and message seen in real error output).
* An identical RR/Type/Line/Value is ``DomainRecordDuplicate`` (documented); so is an
  UpdateDomainRecord that changes nothing (our guess). A CNAME next to any other record of the
  same RR and line is ``DomainRecordConflict`` (documented; the conflict rule is ours).
* ``DescribeSubDomainRecords`` without ``DomainName`` looks in the *registrable* domain of
  SubDomain (``x.dev.example.com`` -> ``example.com``), not the longest-matching zone, as the
  v2 model's SubDomain doc describes: a client that forgets DomainName misses records in a
  nested zone.
* Malformed parameters are the documented ``InvalidParameter``; which checks the real service
  makes is not documented.
* A record added to a parent zone under a name that a nested zone owns is stored (the API
  accepts it) but never served: DNS answers come from the longest-matching zone.
"""

from __future__ import annotations

import ipaddress
import re

from ..errors import ApiError, invalid_param
from ..state import RecordData, World, Zone
from .base import Call, Product, enum_param, int_param, optional, page_of, paging, required

TYPES = ("A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA")
LINES = ("default", "telecom", "unicom", "mobile", "oversea", "edu", "drpeng", "btvn")
MAX_TTL = 86400
_LABEL = r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)"
_RR_RE = re.compile(rf"^(?:\*|{_LABEL})(?:\.{_LABEL})*$")
_HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$", re.IGNORECASE)
_MULTI_SUFFIXES = {"com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "ac.cn", "co.uk", "org.uk",
                   "co.jp", "com.hk", "com.tw", "com.au", "co.nz", "com.sg"}


# --------------------------------------------------------------------------- helpers


def _no_domain(name: str) -> ApiError:
    return ApiError(400, "InvalidDomainName.NoExist",
                    f"The specified domain name does not exist. Refresh the page and try again. "
                    f"({name})")


def _zone(call: Call, name: str) -> Zone:
    name = name.lower().rstrip(".")
    if not _HOST_RE.match(name) or "." not in name:
        raise ApiError(400, "InvalidDomainName.Format", f"The domain name {name!r} is invalid.")
    zone = call.world.zones.get(name)
    if zone is None:
        raise _no_domain(name)
    return zone


def main_domain(fqdn: str) -> str:
    """The registrable domain, the way GetMainDomainName sees it (no sub-zones)."""
    labels = fqdn.lower().rstrip(".").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _MULTI_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _check_rr(rr: str, zone: Zone) -> str:
    rr = rr.strip().lower()
    if rr != "@":
        ok = bool(_RR_RE.match(rr)) and "*" not in rr[1:]
        if not ok or len(rr) + 1 + len(zone.name) > 253:
            raise invalid_param("RR", f"The host record {rr!r} is malformed.")
    return rr


def _check_value(rtype: str, value: str) -> str:
    bad = invalid_param("Value", f"{value!r} is not a valid {rtype} record value.")
    try:
        if rtype == "A":
            return str(ipaddress.IPv4Address(value))
        if rtype == "AAAA":
            return str(ipaddress.IPv6Address(value))
    except ValueError:
        raise bad from None
    if rtype in ("CNAME", "NS", "MX"):
        if not _HOST_RE.match(value):
            raise bad
        return value.rstrip(".").lower()
    if rtype == "SRV":
        parts = value.split()
        if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]) or not _HOST_RE.match(parts[3]):
            raise bad
    if rtype == "CAA":
        parts = value.split(None, 2)
        if len(parts) != 3 or not parts[0].isdigit():
            raise bad
    if rtype == "TXT" and len(value) > 4096:
        raise bad
    return value


def _record_from_params(call: Call, zone: Zone, record_id: str, created_ms: int) -> RecordData:
    rr = _check_rr(required(call, "RR"), zone)
    rtype = required(call, "Type").upper()
    if rtype not in TYPES:
        raise invalid_param("Type", f"Valid values: {', '.join(TYPES)}.")
    value = _check_value(rtype, required(call, "Value"))
    ttl = int_param(call, "TTL", 600)
    if ttl < zone.min_ttl or ttl > MAX_TTL:
        raise ApiError(400, "QuotaExceeded.TTL",
                       f"The specified TTL is invalid. A valid TTL must be in the range of "
                       f"{zone.min_ttl} to {MAX_TTL}.")
    line = enum_param(call, "Line", LINES, "default")
    priority = int_param(call, "Priority", 10 if rtype == "MX" else None, 1, 50)
    now_ms = int(call.now * 1000)
    return RecordData(record_id=record_id, zone=zone.name, rr=rr, type=rtype, value=value,
                      ttl=ttl, line=line, priority=priority if rtype == "MX" else None,
                      created_ms=created_ms or now_ms, updated_ms=now_ms)


def _same_value(a: RecordData, b: RecordData) -> bool:
    if a.type in ("TXT", "CAA", "SRV"):
        return a.value == b.value
    return a.value.lower() == b.value.lower()


def _check_conflicts(zone: Zone, new: RecordData, ignore_id: str | None = None) -> None:
    for r in zone.current.values():
        if r.record_id == ignore_id or r.rr != new.rr or r.line != new.line:
            continue
        if r.type == new.type and _same_value(r, new):
            raise ApiError(400, "DomainRecordDuplicate", "The DNS record already exists.")
        if "CNAME" in (r.type, new.type):
            raise ApiError(400, "DomainRecordConflict",
                           f"The DNS record conflicts with another record: {r.type} and "
                           f"{new.type} cannot share the host record {new.rr!r}.")


# DescribeDomainRecords' Record carries these, DescribeSubDomainRecords' does not
# (alibabacloud-alidns20150109 4.6.1 models: the two ResponseBodyDomainRecordsRecord classes).
_TIMESTAMPS = ("CreateTimestamp", "UpdateTimestamp")


def _records_page(records: list[RecordData], number: int, size: int, *, timestamps: bool) -> dict:
    records = sorted(records, key=lambda r: int(r.record_id))
    items = [r.to_api() for r in page_of(records, number, size)]
    if not timestamps:
        items = [{k: v for k, v in item.items() if k not in _TIMESTAMPS} for item in items]
    return {
        "TotalCount": len(records),
        "PageNumber": number,
        "PageSize": size,
        "DomainRecords": {"Record": items},
    }


def _zone_api(world: World, zone: Zone) -> dict:
    return {
        "DomainId": zone.domain_id,
        "DomainName": zone.name,
        "PunyCode": zone.name,
        "AliDomain": False,
        "RecordCount": len(zone.current),
        "GroupId": "",
        "GroupName": "",
        "InstanceId": f"dns-sandbox-{zone.domain_id[:8]}",
        "VersionCode": "mianfei" if zone.min_ttl >= 600 else "version_personal",
        "VersionName": "Alibaba Cloud DNS" if zone.min_ttl >= 600 else "Personal Edition",
        "InstanceEndTime": "",
        "InstanceExpired": False,
        "RegistrantEmail": "",
        "Remark": zone.remark,
        "Starmark": False,
        "CreateTimestamp": zone.created_ms,
        "ResourceGroupId": "rg-sandbox",
        "DnsServers": {"DnsServer": list(world.settings.nameservers)},
        "Tags": {"Tag": []},
    }


# --------------------------------------------------------------------------- actions


def describe_domains(call: Call) -> dict:
    number, size = paging(call, 20, 100)
    keyword = (optional(call, "KeyWord") or "").lower()
    mode = enum_param(call, "SearchMode", ("LIKE", "EXACT"), "LIKE")
    zones = sorted(call.world.zones.values(), key=lambda z: z.name)
    if keyword:
        zones = [z for z in zones if (z.name == keyword if mode == "EXACT" else keyword in z.name)]
    return {
        "TotalCount": len(zones),
        "PageNumber": number,
        "PageSize": size,
        "Domains": {"Domain": [_zone_api(call.world, z) for z in page_of(zones, number, size)]},
    }


def describe_domain_records(call: Call) -> dict:
    zone = _zone(call, required(call, "DomainName"))
    number, size = paging(call, 20, 500)
    mode = enum_param(call, "SearchMode", ("LIKE", "EXACT", "ADVANCED"), "LIKE")
    exact = mode == "EXACT"

    def match(text: str, kw: str | None) -> bool:
        if kw is None:
            return True
        return text.lower() == kw.lower() if exact else kw.lower() in text.lower()

    keyword = optional(call, "KeyWord")
    rr_kw, value_kw = optional(call, "RRKeyWord"), optional(call, "ValueKeyWord")
    type_kw = (optional(call, "TypeKeyWord") or optional(call, "Type") or "").upper() or None
    line = optional(call, "Line")
    status = (optional(call, "Status") or "").upper() or None
    out = []
    for r in zone.current.values():
        if keyword is not None and not (match(r.rr, keyword) if exact else
                                        (match(r.rr, keyword) or match(r.value, keyword))):
            continue
        if not match(r.rr, rr_kw) or not match(r.value, value_kw):
            continue
        if type_kw and r.type != type_kw:
            continue
        if line and r.line != line:
            continue
        if status and r.status != status:
            continue
        out.append(r)
    return _records_page(out, number, size, timestamps=True)


def describe_sub_domain_records(call: Call) -> dict:
    sub = required(call, "SubDomain").lower().rstrip(".")
    number, size = paging(call, 20, 100)
    domain = optional(call, "DomainName")
    zone = _zone(call, domain if domain else main_domain(sub))
    if sub != zone.name and not sub.endswith("." + zone.name):
        raise invalid_param("SubDomain", f"{sub!r} is not in the domain {zone.name!r}.")
    rr = "@" if sub == zone.name else sub[: -len(zone.name) - 1]
    rtype = (optional(call, "Type") or "").upper() or None
    line = optional(call, "Line")
    out = [r for r in zone.current.values()
           if r.rr == rr and (rtype is None or r.type == rtype) and (line is None or r.line == line)]
    return _records_page(out, number, size, timestamps=False)


def add_domain_record(call: Call) -> dict:
    zone = _zone(call, required(call, "DomainName"))
    data = _record_from_params(call, zone, call.world.new_record_id(), 0)
    _check_conflicts(zone, data)
    call.world.put_record(zone, data, call.now)
    return {"RecordId": data.record_id}


def _owned_record(call: Call) -> tuple[Zone, RecordData]:
    record_id = required(call, "RecordId")
    found = call.world.find_record(record_id)
    if found is None:
        raise ApiError(400, "DomainRecordNotBelongToUser",
                       "The DNS record does not belong to the current user.")
    return found


def update_domain_record(call: Call) -> dict:
    zone, old = _owned_record(call)
    new = _record_from_params(call, zone, old.record_id, old.created_ms)
    if (new.rr, new.type, new.value, new.ttl, new.line, new.priority) == (
            old.rr, old.type, old.value, old.ttl, old.line, old.priority):
        raise ApiError(400, "DomainRecordDuplicate", "The DNS record already exists.")
    _check_conflicts(zone, new, ignore_id=old.record_id)
    call.world.put_record(zone, new, call.now)
    return {"RecordId": new.record_id}


def delete_domain_record(call: Call) -> dict:
    zone, rec = _owned_record(call)
    call.world.remove_record(zone, rec.record_id, call.now)
    return {"RecordId": rec.record_id}


def delete_sub_domain_records(call: Call) -> dict:
    zone = _zone(call, required(call, "DomainName"))
    rr = required(call, "RR").strip().lower()
    rtype = (optional(call, "Type") or "").upper() or None
    victims = [r for r in zone.current.values() if r.rr == rr and (rtype is None or r.type == rtype)]
    # Matching nothing: no error code is documented for it; answer an empty deletion.
    for r in victims:
        call.world.remove_record(zone, r.record_id, call.now)
    return {"RR": rr, "TotalCount": str(len(victims))}


def describe_domain_ns(call: Call) -> dict:
    _zone(call, required(call, "DomainName"))
    ns = list(call.world.settings.nameservers)
    return {
        "AllAliDns": True,
        "IncludeAliDns": True,
        "DnsServers": {"DnsServer": ns},
        "ExpectDnsServers": {"ExpectDnsServer": ns},
    }


PRODUCT = Product(
    name="Alidns",
    version="2015-01-09",
    ram_prefix="alidns",
    host_pattern="alidns.aliyuncs.com",
    actions={
        "DescribeDomains": describe_domains,
        "DescribeDomainRecords": describe_domain_records,
        "DescribeSubDomainRecords": describe_sub_domain_records,
        "AddDomainRecord": add_domain_record,
        "UpdateDomainRecord": update_domain_record,
        "DeleteDomainRecord": delete_domain_record,
        "DeleteSubDomainRecords": delete_sub_domain_records,
        "DescribeDomainNs": describe_domain_ns,
    },
)
