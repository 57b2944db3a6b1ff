"""Authoritative DNS for the account's zones (UDP and TCP on loopback), with propagation delay.

Why a real DNS server: the daemon's ``wait`` must ask the zone's authoritative nameservers and
see records appear only after propagation. Each listener answers from the zone *as it was*
``delay`` seconds ago (see state.Zone versions); a second listener (ns2) may lag further
behind, so a client that asks only one nameserver is caught. Wire format comes from dnspython;
the answering logic (AA, NXDOMAIN vs NODATA with SOA, CNAME, wildcards, REFUSED outside the
zones, TC over UDP) is here, kept small and explicit.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections import deque

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from .state import RecordData, World, Zone
from .tcp import TrackingTCPServer

SOA_TTL = 600
NS_TTL = 86400
MAX_CNAME_CHAIN = 8


def _absolute(host: str) -> str:
    return host if host.endswith(".") else host + "."


def to_rdata(rec: RecordData) -> dns.rdata.Rdata | None:
    """The wire rdata of an Alidns record (Alidns stores values without trailing dots/quotes)."""
    rdtype = dns.rdatatype.from_text(rec.type)
    IN = dns.rdataclass.IN
    try:
        if rec.type == "TXT":
            raw = rec.value.encode("utf-8")
            chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
            return dns.rdtypes.ANY.TXT.TXT(IN, rdtype, chunks)
        if rec.type in ("CNAME", "NS"):
            return dns.rdata.from_text(IN, rdtype, _absolute(rec.value))
        if rec.type == "MX":
            return dns.rdata.from_text(IN, rdtype, f"{rec.priority or 10} {_absolute(rec.value)}")
        if rec.type == "SRV":
            p, w, port, target = rec.value.split()
            return dns.rdata.from_text(IN, rdtype, f"{p} {w} {port} {_absolute(target)}")
        return dns.rdata.from_text(IN, rdtype, rec.value)
    except (dns.exception.DNSException, ValueError):
        return None


class ZoneSnapshot:
    """One zone's records as visible at one instant, indexed by owner name."""

    def __init__(self, world: World, zone: Zone, as_of: float):
        self.zone = zone
        self.nameservers = world.settings.nameservers
        self.serial = zone.serial_at(as_of)
        self.nodes: dict[str, list[RecordData]] = {}
        for r in zone.records_at(as_of):
            if r.status == "ENABLE" and r.line == "default":
                self.nodes.setdefault(r.fqdn, []).append(r)

    def soa(self) -> dns.rrset.RRset:
        ns1 = _absolute(self.nameservers[0])
        text = f"{ns1} hostmaster.{_absolute(self.nameservers[0].split('.', 1)[-1])} " \
               f"{self.serial} 3600 1200 86400 {SOA_TTL}"
        return dns.rrset.from_text(_absolute(self.zone.name), SOA_TTL, "IN", "SOA", text)

    def apex_ns(self) -> dns.rrset.RRset:
        return dns.rrset.from_text(_absolute(self.zone.name), NS_TTL, "IN", "NS",
                                   *[_absolute(n) for n in self.nameservers])

    def exists(self, name: str) -> bool:
        if name == self.zone.name or name in self.nodes:
            return True
        suffix = "." + name
        return any(n.endswith(suffix) for n in self.nodes)  # empty non-terminal

    def rrsets(self, owner: dns.name.Name, name: str, rdtype: int | None) -> list[dns.rrset.RRset]:
        """RRsets at ``name`` (owner written as ``owner``); ``rdtype`` None means all."""
        by_type: dict[int, dns.rrset.RRset] = {}
        for r in self.nodes.get(name, []):
            rd = to_rdata(r)
            if rd is None or (rdtype is not None and rd.rdtype != rdtype):
                continue
            rrset = by_type.get(rd.rdtype)
            if rrset is None:
                rrset = by_type[rd.rdtype] = dns.rrset.RRset(owner, dns.rdataclass.IN, rd.rdtype)
                rrset.update_ttl(r.ttl)
            rrset.add(rd, r.ttl)
        out = list(by_type.values())
        if name == self.zone.name:
            for synth in (self.soa(), self.apex_ns()):
                if rdtype is None or rdtype == synth.rdtype:
                    synth.name = owner
                    out.append(synth)
        return out


def _closest_wildcard(snap: ZoneSnapshot, name: str) -> str | None:
    """The wildcard owner that synthesises ``name`` (RFC 4592), if any."""
    labels = name.split(".")
    for i in range(1, len(labels)):
        encloser = ".".join(labels[i:])
        if not (encloser == snap.zone.name or encloser.endswith("." + snap.zone.name)):
            return None
        if snap.exists(encloser):
            wildcard = "*." + encloser
            return wildcard if wildcard in snap.nodes else None
    return None


def answer(world: World, query: dns.message.Message, as_of: float) -> dns.message.Message:
    response = dns.message.make_response(query, our_payload=1232)
    response.flags &= ~dns.flags.RA
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    q = query.question[0]
    qname, qtype = q.name, q.rdtype
    name = qname.to_text(omit_final_dot=True).lower()
    with world.lock:
        zone = world.zone_for(name)
        if zone is None or q.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        snap = ZoneSnapshot(world, zone, as_of)
        chain_snaps = {zone.name: snap}
        response.flags |= dns.flags.AA
        want = None if qtype == dns.rdatatype.ANY else qtype
        owner, lookup = qname, name
        for _ in range(MAX_CNAME_CHAIN):
            if not snap.exists(lookup):
                wildcard = _closest_wildcard(snap, lookup)
                if wildcard is None:  # RFC 6604: the rcode describes the last name of a chain
                    response.set_rcode(dns.rcode.NXDOMAIN)
                    response.authority.append(snap.soa())
                    return response
                lookup_owner = wildcard
            else:
                lookup_owner = lookup
            found = snap.rrsets(owner, lookup_owner, want)
            if found:
                response.answer.extend(found)
                return response
            cname = snap.rrsets(owner, lookup_owner, dns.rdatatype.CNAME)
            if not cname or want == dns.rdatatype.CNAME:
                response.authority.append(snap.soa())  # NODATA
                return response
            response.answer.extend(cname)
            target = cname[0][0].target
            tname = target.to_text(omit_final_dot=True).lower()
            tzone = world.zone_for(tname)
            if tzone is None:
                return response
            snap = chain_snaps.get(tzone.name) or chain_snaps.setdefault(
                tzone.name, ZoneSnapshot(world, tzone, as_of))
            owner, lookup = target, tname
        return response


def to_wire(response: dns.message.Message, query: dns.message.Message, udp: bool) -> bytes:
    if not udp:
        return response.to_wire(max_size=65535)
    limit = 512 if query.edns < 0 else max(512, min(query.payload, 1232))
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


class DnsListener:
    """UDP + TCP on one port, answering from the world ``delay()`` seconds in the past."""

    def __init__(self, sb, host: str, port: int, label: str, delay) -> None:
        self.sb = sb
        self.host = host
        self.label = label
        self.delay = delay  # callable -> seconds
        self.log: deque[dict] = deque(maxlen=20000)
        self._stop = threading.Event()
        self._udp, self._tcp = self._bind(host, port)
        self.port = self._udp.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._started = False

    def _bind(self, host: str, port: int):
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((host, port))
                actual = udp.getsockname()[1]
                tcp = _TcpServer((host, actual), _TcpHandler, self)
                return udp, tcp
            except OSError:
                udp.close()
                if port != 0:
                    raise
        raise OSError("could not find a port free for both UDP and TCP")

    def respond(self, wire: bytes, udp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            if len(wire) >= 12:  # echo the id with FORMERR
                header = bytearray(wire[:12])
                header[2] |= 0x80
                header[3] = (header[3] & 0xF0) | dns.rcode.FORMERR
                return bytes(header[:4]) + b"\x00" * 8
            return None
        now = time.time()
        world = self.sb.world
        if query.question and world.accounts:  # the zone's account serves it
            world = world.account_for_name(query.question[0].name.to_text().rstrip("."))
        response = answer(world, query, now - self.delay())
        if query.question:
            q = query.question[0]
            self.log.append({"time": now, "server": self.label, "qname": q.name.to_text(),
                             "qtype": dns.rdatatype.to_text(q.rdtype),
                             "rcode": dns.rcode.to_text(response.rcode()),
                             "transport": "udp" if udp else "tcp"})
        return to_wire(response, query, udp)

    def start(self) -> None:
        t1 = threading.Thread(target=self._udp_loop, name=f"sandbox-dns-{self.label}-udp", daemon=True)
        t2 = threading.Thread(target=self._tcp.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"sandbox-dns-{self.label}-tcp", daemon=True)
        self._threads = [t1, t2]
        self._started = True
        for t in self._threads:
            t.start()

    def _udp_loop(self) -> None:
        self._udp.settimeout(0.5)
        while not self._stop.is_set():
            try:
                wire, addr = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                break
            if self._stop.is_set():
                break
            try:
                out = self.respond(wire, udp=True)
                if out:
                    self._udp.sendto(out, addr)
            except Exception:  # never let one bad packet kill the listener
                continue

    def stop(self) -> None:
        self._stop.set()
        try:  # wake the UDP loop at once
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"", (self.host, self.port))
        except OSError:
            pass
        if self._started:  # shutdown() waits for a serve_forever that must have run
            self._tcp.shutdown()
        self._tcp.server_close()
        self._tcp.close_all()
        for t in self._threads:
            t.join(timeout=2)
        self._udp.close()


class _TcpServer(TrackingTCPServer):
    def __init__(self, addr, handler, listener: DnsListener):
        self.listener = listener
        super().__init__(addr, handler)


class _TcpHandler(socketserver.BaseRequestHandler):
    def _read(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def handle(self) -> None:
        self.server.track(self.request, True)
        self.request.settimeout(10)
        try:
            while True:
                head = self._read(2)
                if head is None:
                    return
                wire = self._read(struct.unpack("!H", head)[0])
                if wire is None:
                    return
                out = self.server.listener.respond(wire, udp=False)
                if out is None:
                    return
                self.request.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return
        finally:
            self.server.track(self.request, False)
