"""Issuance throughput against the peers: 20 single-name certificates.

    .venv/bin/python bench/peers.py [--quick] [--reps N] [--peer-reps N] [--count 20]

- **alicertd**: one ``--run-now`` that issues 20 certificates and binds each to its CDN domain in
  the sandbox (20 names under example.com, 20 CDN domains), verification included (binding read
  back, TLS handshake with the sandbox edge). Sandbox CDN rollout 1 s (its default); a second row
  with the rollout at 0 s shows alicertd's own time.
- **certbot** (PyPI, own venv in bench/work/certbot-venv): one ``certbot certonly --manual``
  invocation per certificate, as its users script it, with auth/cleanup hooks that set/clear the
  TXT in pebble-challtestsrv (bench/hooks/certbot-*.sh, curl; no sleep in the hook).
- **lego** (Debian unstable's package, tools/sid via scripts/fetch-pebble.sh lego): one
  ``lego ... --dns exec run`` per certificate, EXEC_PATH=bench/hooks/lego-exec.sh (curl), lego's
  exec-provider defaults (EXEC_POLLING_INTERVAL 2 s, EXEC_PROPAGATION_TIMEOUT 60 s).

Every run starts from a fresh Pebble (PEBBLE_VA_NOSLEEP=1, PEBBLE_AUTHZREUSE=0, no injected
badNonce) and empty client state, so the first certificate also registers the ACME account, for
all three. The peers' Pebble validates through pebble-challtestsrv; alicertd's through the sandbox's
authoritative DNS (what its Alidns provider writes to).

Where the peers' time goes is read from their own logs: certbot's debug log (millisecond
timestamps) and lego's stderr (stamped on arrival here); gaps of ≥ 0.5 s with nothing logged are
counted as waits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

from sandbox.pebble import ChallTestSrv, Pebble  # noqa: E402

HOOKS = C.ROOT / "bench" / "hooks"
CERTBOT_VENV = C.WORK / "certbot-venv"
CERTBOT = CERTBOT_VENV / "bin" / "certbot"
TOOLS_BIN = C.ROOT / "tools" / "sid" / "usr" / "bin"
LEGO = TOOLS_BIN / "lego"
WAIT_GAP = 0.5  # s without a log line = a wait


def names(count: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:02d}.example.com" for i in range(count)]


# --------------------------------------------------------------------------- setup


def ensure_peers() -> dict[str, str]:
    """Install certbot into its venv and fetch lego when missing; return their versions."""
    if not CERTBOT.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CERTBOT_VENV)], check=True)
        subprocess.run([str(CERTBOT_VENV / "bin" / "pip"), "install", "-q", "certbot"], check=True)
    if not LEGO.exists():
        subprocess.run(["bash", str(C.ROOT / "scripts" / "fetch-pebble.sh"), "lego"], check=True,
                       stdout=subprocess.DEVNULL)
    certbot_v = subprocess.run([str(CERTBOT), "--version"], capture_output=True, text=True, check=True)
    lego_v = subprocess.run([str(LEGO), "--version"], capture_output=True, text=True, check=True)
    acme_v = subprocess.run([str(CERTBOT_VENV / "bin" / "python"), "-c",
                             "import importlib.metadata as m; print(m.version('acme'))"],
                            capture_output=True, text=True)
    return {"certbot": (certbot_v.stdout or certbot_v.stderr).strip(),
            "certbot_acme": acme_v.stdout.strip(),
            "lego": lego_v.stdout.strip()}


# --------------------------------------------------------------------------- alicertd


def run_alicertd(count: int, rollout: float) -> dict[str, float]:
    domains = names(count, "b")
    fx = C.fixture(cdn_domains=domains, cdn_rollout_seconds=rollout)
    with C.world(fx) as w:
        work = C.fresh_dir(C.WORK / "peers" / "alicertd")
        config = w.write_config(work, [w.cert(d.split(".")[0], [d], cdn=[d]) for d in domains])
        r = C.run_cli(w, config, "--run-now").check("alicertd 20 certificates")
        served = {d for d in domains if w.served_serial(d)}
    assert len(served) == count, f"only {len(served)} domains serve a certificate"
    stamps = [(t, line) for t, line in r.lines]
    first_issuing = min(t for t, line in stamps if "issuing (" in line)
    last_issued = max(t for t, line in stamps if "] issued serial" in line)
    last_served = max(t for t, line in stamps if "serves serial" in line)
    first_served = min(t for t, line in stamps if "serves serial" in line)
    first_wave = sum(1 for t, line in stamps if "binding serial" in line and t < first_served)
    return {"first_wave": first_wave, "wall": r.wall, "startup": first_issuing - r.started,
            "issue": last_issued - first_issuing,
            "deploy": last_served - last_issued, "exit": r.started + r.wall - last_served}


# --------------------------------------------------------------------------- peers


def _gaps(stamps: list[float]) -> float:
    return sum(b - a for a, b in zip(stamps, stamps[1:], strict=False) if b - a >= WAIT_GAP)


def _certbot_log_stamps(path: Path) -> list[float]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if len(line) > 23 and line[4] == "-" and line[10] == " " and line[19] == ",":
            try:
                out.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp())
            except ValueError:
                continue
    return out


def run_peer(peer: str, count: int) -> dict[str, object]:
    """``count`` sequential invocations of certbot or lego against a fresh Pebble."""
    work = C.fresh_dir(C.WORK / "peers" / peer)
    per_cert: list[float] = []
    waits: list[float] = []
    startups: list[float] = []
    with ChallTestSrv() as cts, Pebble(dns_server=cts.dns_addr, env=C.PEBBLE_ENV) as ca:
        env = dict(os.environ, CHALLTESTSRV_URL=cts.management_url)
        if peer == "certbot":
            env["REQUESTS_CA_BUNDLE"] = ca.ca_bundle
        else:
            env.update(LEGO_CA_CERTIFICATES=ca.ca_bundle, EXEC_PATH=str(HOOKS / "lego-exec.sh"))
        t_all = time.perf_counter()
        for domain in names(count, peer[0]):
            if peer == "certbot":
                argv = [str(CERTBOT), "certonly", "--manual", "--preferred-challenges", "dns",
                        "--manual-auth-hook", str(HOOKS / "certbot-auth.sh"),
                        "--manual-cleanup-hook", str(HOOKS / "certbot-cleanup.sh"),
                        "--server", ca.directory_url, "--non-interactive", "--agree-tos",
                        "-m", "x@example.com", "--no-eff-email",
                        "--config-dir", str(work / "config"), "--work-dir", str(work / "work"),
                        "--logs-dir", str(work / "logs"), "-d", domain]
            else:
                argv = [str(LEGO), "--server", ca.directory_url, "--email", "x@example.com", "--accept-tos",
                        "--dns", "exec", "--dns.resolvers", cts.dns_addr, "--dns.propagation-disable-ans",
                        "--domains", domain, "--path", str(work / "lego"), "run"]
            started = time.time()
            t = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=work)
            lines: list[tuple[float, str]] = []
            C._pump(proc.stderr, lines)
            rc = proc.wait()
            wall = time.perf_counter() - t
            if rc != 0:
                raise RuntimeError(f"{peer} failed for {domain} (exit {rc}):\n"
                                   + "\n".join(line for _, line in lines[-30:]))
            per_cert.append(wall)
            if peer == "certbot":
                stamps = _certbot_log_stamps(work / "logs" / "letsencrypt.log")
            else:
                stamps = [t for t, _ in lines]
            stamps = [s for s in stamps if started - 0.01 <= s <= started + wall + 0.05]
            waits.append(_gaps(stamps))
            startups.append(stamps[0] - started if stamps else float("nan"))
        total = time.perf_counter() - t_all
    return {"total": total, "per_cert": per_cert, "waits": waits, "startups": startups}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None, help="alicertd runs")
    ap.add_argument("--peer-reps", type=int, default=None, help="runs of 20 per peer")
    ap.add_argument("--count", type=int, default=20)
    args = ap.parse_args(argv)
    reps = args.reps or C.reps(args.quick, full=5, quick=2)
    peer_reps = args.peer_reps or (1 if args.quick else 3)
    n = args.count

    versions = ensure_peers()
    print(f"peers: {versions}")

    run_alicertd(2, 0.0)  # warm-up (page cache, .pyc files): not counted
    ali = [run_alicertd(n, 1.0) for _ in range(reps)]
    print(f"alicertd (rollout 1 s): {C.fmt([r['wall'] for r in ali])}")
    ali0 = [run_alicertd(n, 0.0) for _ in range(max(1, reps - 1))]
    print(f"alicertd (rollout 0 s): {C.fmt([r['wall'] for r in ali0])}")
    peers: dict[str, list[dict[str, object]]] = {}
    for peer in ("certbot", "lego"):
        peers[peer] = []
        for _ in range(peer_reps):
            res = run_peer(peer, n)
            peers[peer].append(res)
            print(f"{peer}: {res['total']:.1f} s for {n} ({statistics.median(res['per_cert']):.2f} s/cert median, "
                  f"waits {statistics.median(res['waits']):.2f} s/cert)")

    totals = {p: [r["total"] for r in rs] for p, rs in peers.items()}
    fastest = min(totals, key=lambda p: statistics.median(totals[p]))
    fastest_total = statistics.median(totals[fastest])
    ali_total = statistics.median(r["wall"] for r in ali)
    ali0_total = statistics.median(r["wall"] for r in ali0)

    def per_cert(p):
        return [c for r in peers[p] for c in r["per_cert"]]

    def wait_cert(p):
        return [c for r in peers[p] for c in r["waits"]]

    def start_cert(p):
        return [c for r in peers[p] for c in r["startups"]]

    rows = [
        ["alicertd, one `--run-now` (CDN rollout 1 s)", f"**{C.fmt([r['wall'] for r in ali])}**",
         C.fmt([r["wall"] / n for r in ali]), f"**{ali_total / fastest_total:.3f}**", len(ali)],
        ["alicertd, one `--run-now` (CDN rollout 0 s)", C.fmt([r["wall"] for r in ali0]),
         C.fmt([r["wall"] / n for r in ali0]), f"{ali0_total / fastest_total:.3f}", len(ali0)],
    ]
    for p in ("certbot", "lego"):
        rows.append([f"{p}, {n} invocations", f"**{C.fmt(totals[p], digits=1)}**", C.fmt(per_cert(p)),
                     f"{statistics.median(totals[p]) / fastest_total:.2f}", len(totals[p])])
    phase_rows = [[label, C.fmt([r[k] for r in rs])] for label, rs, k in (
        ("start → first `issuing` (Python, imports, config, plan)", ali, "startup"),
        (f"issuance of {n} (4 at a time; account registration included)", ali, "issue"),
        (f"bind + verify {n} CDN domains (rollout 1 s)", ali, "deploy"),
        (f"bind + verify {n} CDN domains (rollout 0 s)", ali0, "deploy"),
        ("summary + exit", ali, "exit"))]
    lego_all = per_cert("lego")
    lego_slow, lego_n = sum(1 for c in lego_all if c > 4.0), len(lego_all)
    peer_rows = []
    for p in ("certbot", "lego"):
        pc = statistics.median(per_cert(p))
        wc = statistics.median(wait_cert(p))
        sc = statistics.median(start_cert(p))
        peer_rows.append([p, f"{pc:.2f} s", f"{sc:.2f} s", f"{wc:.2f} s ({100 * wc / pc:.0f} %)",
                          f"{pc - wc - sc:.2f} s"])
    md = [
        f"{n} single-name certificates. Versions: alicertd {C.alicertd_version()}; {versions['certbot']} "
        f"(acme {versions['certbot_acme']}); {versions['lego']}. alicertd {len(ali)} runs, each peer "
        f"{peer_reps} run(s) of {n} invocations; a fresh Pebble per run (alicertd after one uncounted "
        f"warm-up run).",
        "",
        C.md_table(["client", f"total for {n}", "per certificate", "ratio to the faster peer", "runs"], rows),
        "",
        f"Faster peer: **{fastest}**, {fastest_total:.1f} s for {n}. alicertd's time includes deployment "
        f"(bind to the CDN domain, read back, TLS handshake with the new serial); the peers only issue.",
        "",
        "alicertd's phases (from its INFO lines, stamped on arrival):",
        "",
        C.md_table(["phase", "median (min–max)"], phase_rows),
        "",
        "Where the peers' time goes, per certificate (medians; waits = gaps of ≥ 0.5 s with nothing "
        "logged; certbot from its debug log, lego from its stderr):",
        "",
        C.md_table(["peer", "per certificate", "start → first log line", "waiting", "the rest (ACME round trips, "
                    "hooks, keys, files)"], peer_rows),
        "",
        "- **certbot**: sleeps 1 s after answering the challenge before it polls the authorization "
        "(`Waiting for verification...`), and 1 s after finalize before it polls the order; the manual "
        "plugin itself waits for nothing (propagation is left to the hook; ours returns at once — a "
        "real Alidns hook would have to sleep or poll). Python start + imports (~0.5 s) every invocation.",
        "- **lego**: `--dns exec` sleeps one `EXEC_POLLING_INTERVAL` (default 2 s) before its first "
        "propagation check (`time.Sleep(interval)` in dns01 `Solve`), then polls every 2 s up to "
        "`EXEC_PROPAGATION_TIMEOUT` (60 s). After the challenge POST it looks at the authorization "
        "once; if Pebble's validation has not finished by then it backs off 5 s ±50 % (its default "
        "when the CA sends no Retry-After) before the next look. Here that is a race with Pebble's "
        f"validator — {lego_slow} of {lego_n} lego certificates lost it and took > 4 s; with a real CA, "
        "whose validation takes longer than one loopback round trip, it is lost nearly every time. "
        "(The older ~3 s/cert figure for lego is its fast mode: 2 s sleep + round trips.) "
        "Flags: `--dns.resolvers <challtestsrv>` (lego finds the zone and follows CNAMEs through it) and "
        "`--dns.propagation-disable-ans`: pebble-challtestsrv answers SOA/NS queries with NOTIMP, so "
        "lego's lookup of the authoritative nameservers cannot work here; lego still checks the TXT "
        "through the resolver. Neither flag shortens its fixed waits.",
        "- certbot: `--manual --preferred-challenges dns --manual-auth-hook bench/hooks/certbot-auth.sh "
        "--manual-cleanup-hook bench/hooks/certbot-cleanup.sh --server <pebble> --non-interactive "
        "--agree-tos -m x@example.com --no-eff-email --config-dir/--work-dir/--logs-dir bench/work/peers/"
        "certbot/...`, `REQUESTS_CA_BUNDLE=<pebble listener CA>`. lego: `--server <pebble> --email "
        "x@example.com --accept-tos --dns exec --dns.resolvers <challtestsrv> "
        "--dns.propagation-disable-ans --domains D --path bench/work/peers/lego/lego run`, "
        "`LEGO_CA_CERTIFICATES=<pebble listener CA>`, `EXEC_PATH=bench/hooks/lego-exec.sh`. "
        "Key type: EC P-256 for all three (each one's default).",
    ]
    deploy1 = statistics.median(r["deploy"] for r in ali)
    md += [
        "",
        f"Deployment with the 1 s rollout takes {deploy1:.2f} s for {n} domains (all {n} bound before the "
        f"first one was verified: {C.fmt([r['first_wave'] for r in ali], unit='', digits=0)} binds), i.e. "
        f"about one rollout plus the read-back poll step, not one rollout per domain.",
    ]
    if ali_total > fastest_total / 10:
        md += [
            "",
            f"**Target missed** with the 1 s rollout: {ali_total:.2f} s > {fastest_total / 10:.2f} s; the "
            f"phase table shows where the time goes.",
        ]
    targets = [C.Target(f"throughput, {n} certificates (deployment included)",
                        f"≤ 1/10 of the faster peer ({fastest}: {fastest_total:.1f} s → ≤ {fastest_total / 10:.2f} s)",
                        f"{ali_total:.2f} s = {ali_total / fastest_total:.3f} × {fastest} (CDN rollout 1 s); "
                        f"{ali0_total:.2f} s = {ali0_total / fastest_total:.3f} × (rollout 0 s)",
                        ali_total <= fastest_total / 10)]
    C.write_result("1-peers", f"1. Issuance throughput against the peers ({n} certificates)", "\n".join(md),
                   targets, data={"alicertd": ali, "alicertd_rollout0": ali0, "peers": peers,
                                  "versions": versions})
    return 0


if __name__ == "__main__":
    sys.exit(main())
