#!/usr/bin/python3
"""tests/bench/summary.py RESULTS.jsonl - the benchmark's summary: every
figure, the CPU each process spent per request, and the targets of
docs/benchmarks.md with their ratios.  run.sh calls it at the end of a run;
it can be run again on any results file."""
import json
import sys

import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {r["label"]: r for r in rows}
def rate(label):
    r = by.get(label)
    return r and (r.get("primary") or {}).get("rate")
print(f"{'figure':<16}{'rate/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}  notes")
for r in rows:
    p = r.get("primary")
    if p:
        note = ""
        if "peer_reuse_pct" in r:
            note = f"peer reuse {r['peer_reuse_pct']:.2f} %"
        print(f"{r['label']:<16}{p['rate']:>10.1f}{p['p50_ms']:>9.2f}{p['p95_ms']:>9.2f}"
              f"{p['p99_ms']:>9.2f}{p['max_ms']:>9.2f}{p['errors']:>8}  {note}")
        if "then" in r:
            t = r["then"]
            print(f"{r['label'] + ' (out)':<16}{t['rate']:>10.1f}{t['p50_ms']:>9.2f}{t['p95_ms']:>9.2f}"
                  f"{t['p99_ms']:>9.2f}{t['max_ms']:>9.2f}{t['errors']:>8}")
    elif r["scenario"] in ("pgbench", "pgmix"):
        print(f"{r['label']:<16}{r['tps']:>10.1f}")
print()
print("CPU per request, microseconds (warm-up and drain included; from /proc and getrusage)")
order = ["troquet", "troquet_pg", "cordee", "cordee_pg", "nginx", "loadgen", "nodes", "pg", "driver"]
cols = [c for c in order if any(c in (r.get("cpu_s") or {}) for r in rows)]
print(f"{'figure':<16}" + "".join(f"{c:>12}" for c in cols) + f"{'total':>10}{'of 2 cores':>11}")
for r in rows:
    cpu, p = r.get("cpu_s"), r.get("primary")
    if not cpu or not p:
        continue
    n = p.get("completed", 0) + (r.get("then") or {}).get("completed", 0)
    if not n:
        continue
    vals = [1e6 * cpu.get(c, 0) / n for c in cols]
    busy = sum(cpu.get(c, 0) for c in cols) / (2 * (r.get("wall_s") or 1))
    print(f"{r['label']:<16}" + "".join(f"{v:>12.0f}" for v in vals)
          + f"{sum(vals):>10.0f}{100 * busy:>10.0f}%")
print()
def check(name, value, target, ok):
    if value is None:
        return
    print(f"{name:<58} {value:<22} target {target:<12} {'MET' if ok else 'MISSED'}")
c16 = by.get("checkin-c16")
if c16:
    p = c16["primary"]
    check("federated check-ins at concurrency 16", f"{p['rate']:.0f}/s", ">= 2000/s", p["rate"] >= 2000)
    check("  their p99", f"{p['p99_ms']:.1f} ms", "<= 15 ms", p["p99_ms"] <= 15)
    if "peer_reuse_pct" in c16:
        check("  peer requests on reused connections", f"{c16['peer_reuse_pct']:.2f} %", ">= 99 %",
              c16["peer_reuse_pct"] >= 99)
v = by.get("verify")
if v:
    check("pass verification / raw libsodium verify", f"{100 * v['ratio']:.1f} %", ">= 90 %", v["ratio"] >= 0.9)
for c in (16, 64):
    n = rate(f"nginx-c{c}")
    for what in ("authorize", "ping"):
        f = rate(f"{what}-c{c}")
        if n and f:
            check(f"federation face ({what}) / nginx mTLS static, c={c}",
                  f"{100 * f / n:.1f} %", ">= 30 %", f / n >= 0.3)
    cin, pg = rate(f"checkin-c{c}"), by.get(f"pgbench-c{c}")
    if cin and pg and pg["tps"]:
        print(f"{'check-ins / pgbench one-row inserts, c=%d' % c:<58} {100 * cin / pg['tps']:.1f} %")
ext, prep = by.get("pgmix-extended"), by.get("pgmix-prepared")
if ext and prep and ext["tps"]:
    print(f"{'home transaction, prepared / extended protocol (pgbench)':<58} "
          f"{100 * prep['tps'] / ext['tps']:.0f} %")
lk, un = by.get("pghost-locked"), by.get("pghost-unlocked")
if lk and un and un["tps"]:
    print(f"{'host pending-visit txn, with the seats lock / without':<58} "
          f"{100 * lk['tps'] / un['tps']:.0f} %")
d = by.get("directory")
if d:
    check(f"directory of {d['spaces']} spaces verified and loaded", f"{d['median_ms']:.1f} ms",
          "<= 100 ms", d["median_ms"] <= 100)
for space in ("troquet", "cordee"):
    r = by.get(f"rss-{space}")
    if r:
        check(f"idle node resident memory ({space})",
              f"{r['rss_kb'] * 1024 / 1e6:.1f} MB ({r['rss_kb'] / 1024:.1f} MiB)", "<= 15 MB",
              r["rss_kb"] * 1024 <= 15e6)
for r in rows:
    if r.get("scenario") == "outbox" and r.get("drained"):
        per = ", ".join(f"{k} {1e6 * v / r['drained']:.0f}" for k, v in r["cpu_s"].items())
        print(f"{r['label']}: {r['drained']} of {r['messages']} in {r['elapsed_s']:.1f} s,"
              f" CPU per message (us): {per}; verification {'OK' if r['verify']['ok'] else 'FAILED'}")
        check(f"outbox backlog drained to a live peer ({r['couriers']} couriers)",
              f"{r['rate']:.0f}/s", ">= 5000/s", r["rate"] >= 5000 and not r["timed_out"])
