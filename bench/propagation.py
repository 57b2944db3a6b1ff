"""DNS propagation overhead: how long after the TXT record is created does alicertd answer the
challenge, when the nameservers serve it D seconds late?

    .venv/bin/python bench/propagation.py [--quick] [--reps N] [--delay 5]

The sandbox's nameservers answer from the zone as it was D = 5 s ago. One certificate, one name,
``--run-now --log-level debug --log-format json``. Start: the sandbox call-log timestamp of
``AddDomainRecord``. End: alicertd's log line for the challenge POST (``POST https://…/chalZ/…
-> 200``, logged by daemon.acme.transport at DEBUG right after the CA answered): its own
millisecond ``ts``, cross-checked with the line's arrival here. Overhead = end − start − D; the
target is ≤ 1 s.

Also extracted: the ``alidns: propagated to N nameservers in X s`` INFO line (alicertd's own
measure of its wait).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

from providers import propagation as _prop  # noqa: E402  (only to state the poll schedule)

NAME = "p.example.com"
CHALLENGE_POST = re.compile(r"^POST \S+/chalZ/\S+ -> 2\d\d$")
PROPAGATED = re.compile(r"propagated to (\d+) nameservers in ([0-9.]+) s")

# The peers' fixed waits (documented defaults; not run here: neither speaks to the sandbox).
PEER_WAITS = [
    ("certbot-dns-aliyun", "sleeps `--dns-aliyun-propagation-seconds` (default 30 s), then answers; "
     "no DNS check", lambda d: 30.0 if d <= 30 else None),
    ("acme.sh (dns_ali)", "sleeps 20 s, then checks over DNS-over-HTTPS every 10 s until the record "
     "is seen", lambda d: 20.0 + 10.0 * max(0, -(-(d - 20.0) // 10.0))),
]


def poll_schedule(until: float) -> list[float]:
    """Offsets (s from the start of the wait) at which alicertd asks the nameservers."""
    t, interval, out = 0.0, _prop.FIRST_INTERVAL, [0.0]
    while t < until:
        t += interval
        interval = min(_prop.MAX_INTERVAL, interval * _prop.GROWTH)
        out.append(round(t, 3))
    return out


def one_run(delay: float) -> dict[str, float]:
    fx = C.fixture(cdn_domains=[NAME])
    with C.world(fx, dns_delay=delay) as w:
        work = C.fresh_dir(C.WORK / "propagation")
        config = w.write_config(work, [w.cert("p", [NAME], cdn=[NAME])])
        r = C.run_cli(w, config, "--run-now", "--log-level", "debug", "--log-format", "json")
        r.check("propagation run")
        adds = w.sandbox.calls(action="AddDomainRecord")
        queries = [q["time"] for q in w.sandbox.dns_queries()
                   if q["qtype"] == "TXT" and q["qname"].rstrip(".") == f"_acme-challenge.{NAME}"]
    assert len(adds) == 1, adds
    added = adds[0]["time"]
    # (log ts if it has milliseconds, else arrival, arrival) per line
    posts = [(r.log_time(o) or t, t) for t, o in r.json_lines() if CHALLENGE_POST.match(str(o.get("msg", "")))]
    props = [(r.log_time(o) or t, float(m.group(2))) for t, o in r.json_lines()
             if (m := PROPAGATED.search(str(o.get("msg", ""))))]
    if not posts:
        raise RuntimeError("no challenge POST line in the debug log:\n" + r.stderr[-3000:])
    return {"add_to_post": posts[0][0] - added, "overhead": posts[0][0] - added - delay,
            "arrival_minus_ts": posts[0][1] - posts[0][0],
            "own_wait": props[0][1] if props else float("nan"),
            "add_to_propagated_line": props[0][0] - added if props else float("nan"),
            "wall": r.wall,
            # alicertd's own TXT queries (up to its "propagated" line; the CA's come after it)
            "queries": [round(q - added, 3) for q in queries if props and q <= props[0][0]]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--delay", type=float, default=5.0)
    args = ap.parse_args(argv)
    reps = args.reps or C.reps(args.quick, full=5, quick=2)
    d = args.delay

    runs = []
    for i in range(reps):
        res = one_run(d)
        runs.append(res)
        print(f"run {i + 1}: AddDomainRecord → challenge POST {res['add_to_post']:.3f} s "
              f"(overhead {res['overhead']:+.3f} s; alicertd's own wait {res['own_wait']:.2f} s)")

    overhead = [r["overhead"] for r in runs]
    add_to_post = [r["add_to_post"] for r in runs]
    own = [r["own_wait"] for r in runs]
    skew = [r["arrival_minus_ts"] for r in runs]
    sched = poll_schedule(d + 2.5)
    after = next(t for t in sched if t >= d)
    before = max(t for t in sched if t < d)
    rows = [
        ["AddDomainRecord → challenge POST", C.fmt(add_to_post)],
        ["overhead beyond D", C.fmt(overhead, digits=3)],
        ["alicertd's own wait (`propagated … in X s` line)", C.fmt(own)],
        ["`--run-now` wall (one certificate, CDN rollout 1 s)", C.fmt([r["wall"] for r in runs])],
    ]
    peer_rows = []
    for name, how, fn in PEER_WAITS:
        wait = fn(d)
        peer_rows.append([name, how, f"{wait:.0f} s" if wait is not None else "fails",
                          f"{wait - d:.0f} s" if wait is not None else "—"])
    md = [
        f"Sandbox nameserver delay D = {d:g} s; {reps} runs; one certificate for `{NAME}`.",
        "",
        C.md_table(["measure", "median (min–max)"], rows),
        "",
        "Start: sandbox call-log time of `AddDomainRecord`. End: the `ts` (milliseconds) of "
        "alicertd's DEBUG line `POST https://…/chalZ/… -> 200` in its JSON log. No log line says "
        "\"answering the challenge for NAME\": this transport line, logged when the CA has answered "
        "the POST, is the closest (one loopback round trip, a few ms, after the POST went out); an "
        "INFO line `answering dns-01 challenge for NAME` just before the POST would be exact and "
        "readable at the default level. The `alidns: propagated to N nameservers in X s` INFO line "
        "comes just before it. Cross-check: the line reached the benchmark "
        f"{C.fmt([x * 1000 for x in skew], unit='ms', digits=1)} after its `ts`.",
        "",
        f"Why the overhead is what it is: alicertd polls every authoritative nameserver at "
        f"{_prop.FIRST_INTERVAL:g} s intervals growing ×{_prop.GROWTH:g} up to {_prop.MAX_INTERVAL:g} s "
        f"(providers/propagation.py), i.e. at {', '.join(f'{t:g}' for t in sched[:10])} s after the "
        f"record was added. With D = {d:g} s the last miss is at {before:g} s and the first hit at "
        f"{after:g} s: {after - d:.2f} s of overhead from the poll schedule alone, plus the DNS query, "
        f"the POST and the time between `AddDomainRecord` and the first query. The sandbox's DNS log "
        f"shows alicertd's TXT queries (run 1) at "
        f"{', '.join(f'{q:.2f}' for q in runs[0]['queries'])} s after `AddDomainRecord`.",
        "",
        "The peers' fixed waits for the same D (from their documented defaults; not run here):",
        "",
        C.md_table(["client", "what it does", "answers after", "overhead beyond D"], peer_rows),
    ]
    med = statistics.median(overhead)
    targets = [C.Target("DNS propagation: AddDomainRecord → challenge POST", f"≤ D + 1 s = {d + 1:g} s",
                        f"{C.fmt(add_to_post)} (overhead {med:+.2f} s)", statistics.median(add_to_post) <= d + 1)]
    C.write_result("3-propagation", f"3. DNS propagation overhead (D = {d:g} s)", "\n".join(md), targets,
                   data={"runs": runs, "delay": d, "schedule": sched})
    return 0


if __name__ == "__main__":
    sys.exit(main())
