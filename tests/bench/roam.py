#!/usr/bin/python3
"""tests/bench/roam.py - random roaming traffic across a federation of many
spaces, and the exactly-once check of its visits (tests/bench/many.sh).

  roam.py drive --spaces SPACES.json --concurrency C --duration S [...]
      Front-desk traffic at random hosts: a random free member of a random
      home checks in at a random other space (POST /api/v1/checkin with that
      space's concierge token); while fewer than --open visits are open the
      next action is a check-in, otherwise the check-out of a random open
      visit (POST /api/v1/visits/ID/checkout).  A member is in at most one
      place at a time: it is taken out of the pool from its check-in until
      its check-out is answered.  At the end every open visit is checked
      out (not counted).  Writes each visit it made (--log, JSON lines) and
      its figures (--out, one JSON object).

  roam.py check --spaces SPACES.json --server SOCKDIR:PORT --log FILE... \
      [--runs RUN.json... --results RESULTS.jsonl]
      Waits until every node's outbox is delivered, then checks every visit
      of the logs on both sides, in each space's database, and that no row
      exists that the driver does not know of.  Exit status 1 on any
      discrepancy.

The standard library only, and psycopg (python3-psycopg) for the check.
"""
import argparse
import base64
import collections
import http.client
import json
import os
import random
import resource
import sys
import threading
import time

IDLE_REOPEN_S = 5.0     # below the local face's 10 s request_timeout


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def percentile(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def figures(lat_s, window_s, errors):
    lat = sorted(x * 1000.0 for x in lat_s)
    return {"count": len(lat), "completed": len(lat), "errors": errors,
            "rate": len(lat) / window_s if window_s > 0 else 0.0,
            "p50_ms": round(percentile(lat, 0.50), 3),
            "p95_ms": round(percentile(lat, 0.95), 3),
            "p99_ms": round(percentile(lat, 0.99), 3),
            "max_ms": round(lat[-1], 3) if lat else 0.0}


# ------------------------------------------------------------ /proc readings

def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), [int(x) for x in fields[11:15]]


def all_procs():
    procs = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                procs[int(p)] = proc_stat(p)
            except (OSError, IndexError, ValueError):
                pass
    return procs


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_snapshot(node_pids, postmaster):
    """CPU seconds so far: the nodes; the server (postmaster, reaped
    children, live children)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs = all_procs()
    nodes = sum(sum(procs[p][1][:2]) for p in node_pids if p in procs)
    pg = 0
    if postmaster in procs:
        pg = sum(procs[postmaster][1])
        pg += sum(sum(v[1][:2]) for k, v in procs.items() if v[0] == postmaster)
    return {"nodes": nodes / tick, "pg": pg / tick}


def machine_cpu():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


def resources(node_pids, postmaster):
    procs = all_procs()
    kids = [k for k, v in procs.items() if v[0] == postmaster]
    backends = [k for k in kids if cmdline(k).startswith("postgres: passerelle ")]
    return {"nodes_rss_kb": sum(status_kb(p, "VmRSS") for p in node_pids),
            "nodes_threads": sum(status_kb(p, "Threads") for p in node_pids),
            "pg_pss_kb": pss_kb(postmaster) + sum(pss_kb(k) for k in kids),
            "pg_rss_kb": status_kb(postmaster, "VmRSS") +
            sum(status_kb(k, "VmRSS") for k in kids),
            "pg_processes": 1 + len(kids),
            "pg_node_connections": len(backends)}


# ---------------------------------------------------------------- the driver

class Driver:
    def __init__(self, a):
        self.a = a
        self.spaces = json.load(open(a.spaces))
        self.members = []            # (home index, token, sub)
        for i, s in enumerate(self.spaces):
            for line in open(s["passes"]):
                tok = line.strip()
                if tok:
                    self.members.append((i, tok, b64url_json(tok.split(".")[1])["sub"]))
        self.free = list(range(len(self.members)))
        self.open = []               # [visit_id, host index, member index]
        self.lock = threading.Lock()
        self.rng = random.Random(a.seed)
        self.log = open(a.log, "a")
        self.visits = 0              # check-ins started
        self.stopping = False
        self.t0 = self.t_warm = self.t_end = 0.0
        self.lat_in, self.lat_out = [], []
        self.err_in = self.err_out = 0
        self.decisions = collections.Counter()
        self.unreported = 0          # check-outs the courier reports
        self.error_samples = []
        self.peak = {}

    # One keep-alive connection per thread and host, reopened when idle.
    def request(self, conns, host, method, path, body):
        s = self.spaces[host]
        c = conns.get(host)
        now = time.monotonic()
        if c is not None and now - c[1] > IDLE_REOPEN_S:
            c[0].close()
            c = None
        if c is None:
            c = [http.client.HTTPConnection("127.0.0.1", s["port"], timeout=60), now]
            conns[host] = c
        hdrs = {"Authorization": "Bearer " + s["token"]}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            c[0].request(method, path, body=body, headers=hdrs)
            r = c[0].getresponse()
            data = r.read()
            c[1] = time.monotonic()
            return r.status, data
        except (OSError, http.client.HTTPException):
            c[0].close()
            del conns[host]
            raise

    def note_error(self, what):
        with self.lock:
            if len(self.error_samples) < 20:
                self.error_samples.append(what)

    def counted(self, start, end):
        """Only what starts after the warm-up and ends inside the window."""
        return start >= self.t_warm and end <= (self.t_end or self.t_warm + self.a.duration)

    def step(self, conns):
        a = self.a
        with self.lock:
            now = time.monotonic()
            if not self.stopping and (now >= self.t_warm + a.duration or
                                      (a.visits and self.visits >= a.visits)):
                self.stopping = True
                self.t_end = min(now, self.t_warm + a.duration)
            if self.stopping or len(self.open) >= a.open or not self.free:
                if not self.open:
                    if self.stopping:
                        return False
                    action = None
                else:
                    action = "out"
                    k = self.rng.randrange(len(self.open))
                    self.open[k], self.open[-1] = self.open[-1], self.open[k]
                    visit = self.open.pop()
            else:
                action = "in"
                k = self.rng.randrange(len(self.free))
                self.free[k], self.free[-1] = self.free[-1], self.free[k]
                m = self.free.pop()
                home = self.members[m][0]
                host = self.rng.randrange(len(self.spaces) - 1)
                if host >= home:
                    host += 1
                self.visits += 1
        if action is None:
            time.sleep(0.005)
            return True
        if action == "in":
            self.check_in(conns, m, home, host)
        else:
            self.check_out(conns, visit)
        return True

    def check_in(self, conns, m, home, host):
        body = json.dumps({"pass": self.members[m][1]})
        t = time.monotonic()
        try:
            status, data = self.request(conns, host, "POST", "/api/v1/checkin", body)
        except (OSError, http.client.HTTPException) as e:
            status, data = 0, repr(e).encode()
        end = time.monotonic()
        ok, admitted, d = False, False, None
        if status == 200:
            try:
                d = json.loads(data)
            except ValueError:
                d = None
        if d is not None and d.get("visit_id"):
            admitted = d.get("decision") == "admit"
            code = d.get("reason_code") or ""
            # The home refusing a member still counted present elsewhere
            # (a completion its courier has yet to deliver) is correct.
            ok = admitted or code == "already_checked_in"
            rec = {"visit_id": d["visit_id"], "host": self.spaces[host]["id"],
                   "home": self.spaces[home]["id"], "sub": self.members[m][2],
                   "decision": d.get("decision"), "reason_code": code}
            with self.lock:
                self.decisions[(d.get("decision") or "?") + (":" + code if code else "")] += 1
                if not admitted:
                    self.log.write(json.dumps(rec) + "\n")
        if not ok:
            self.note_error(f"check-in at {self.spaces[host]['id']}: HTTP {status} "
                            f"{data[:300].decode(errors='replace')}")
        with self.lock:
            # Errors count wherever they happen (warm-up and drain too).
            if not ok:
                self.err_in += 1
            elif self.counted(t, end):
                self.lat_in.append(end - t)
            if admitted:
                self.open.append([d["visit_id"], host, m, rec])
            else:
                self.free.append(m)

    def check_out(self, conns, visit):
        vid, host, m, rec = visit
        t = time.monotonic()
        status, data, d = 0, b"", None
        for attempt in range(3):   # a check-out is idempotent
            try:
                status, data = self.request(conns, host, "POST",
                                            f"/api/v1/visits/{vid}/checkout", None)
            except (OSError, http.client.HTTPException) as e:
                status, data = 0, repr(e).encode()
            if status == 200:
                break
            time.sleep(0.2)
        end = time.monotonic()
        try:
            d = json.loads(data) if status == 200 else None
        except ValueError:
            d = None
        ok = d is not None and d.get("visit_id") == vid and "units" in d
        rec = dict(rec, checked_out=ok, units=d.get("units") if ok else None,
                   reported_to_home=d.get("reported_to_home") if ok else None,
                   already_closed=d.get("already_closed") if ok else None)
        if not ok:
            self.note_error(f"check-out {vid} at {self.spaces[host]['id']}: HTTP {status} "
                            f"{data[:300].decode(errors='replace')}")
        with self.lock:
            self.log.write(json.dumps(rec) + "\n")
            if ok and not d.get("reported_to_home"):
                self.unreported += 1
            if not ok:
                self.err_out += 1
            elif self.counted(t, end):
                self.lat_out.append(end - t)
            self.free.append(m)

    def worker(self):
        conns = {}
        try:
            while self.step(conns):
                pass
        finally:
            for c in conns.values():
                c[0].close()

    def peer_counters(self):
        """passerelle_peer_calls_total and _connections_total, summed over the nodes."""
        calls = conns = 0
        for s in self.spaces:
            c = http.client.HTTPConnection("127.0.0.1", s["port"], timeout=10)
            try:
                c.request("GET", "/metrics")
                for line in c.getresponse().read().decode().splitlines():
                    f = line.split()
                    if len(f) == 2 and f[0] == "passerelle_peer_calls_total":
                        calls += int(float(f[1]))
                    elif len(f) == 2 and f[0] == "passerelle_peer_connections_total":
                        conns += int(float(f[1]))
            except (OSError, http.client.HTTPException, ValueError):
                pass
            finally:
                c.close()
        return calls, conns

    def sampler(self, stop):
        pids = [s["pid"] for s in self.spaces]
        while not stop.wait(2.0):
            r = resources(pids, self.a.postmaster)
            for k, v in r.items():
                self.peak[k] = max(self.peak.get(k, 0), v)

    def run(self):
        a = self.a
        pids = [s["pid"] for s in self.spaces]
        cpu0, ru0 = cpu_snapshot(pids, a.postmaster), resource.getrusage(resource.RUSAGE_SELF)
        m0 = machine_cpu()
        peer0 = self.peer_counters()
        stop = threading.Event()
        smp = threading.Thread(target=self.sampler, args=(stop,), daemon=True)
        smp.start()
        self.t0 = time.monotonic()
        self.t_warm = self.t0 + a.warmup
        threads = [threading.Thread(target=self.worker) for _ in range(a.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - self.t0
        stop.set()
        smp.join()
        cpu1, ru1 = cpu_snapshot(pids, a.postmaster), resource.getrusage(resource.RUSAGE_SELF)
        m1 = machine_cpu()
        peer1 = self.peer_counters()
        calls, new_conns = peer1[0] - peer0[0], peer1[1] - peer0[1]
        tick = os.sysconf("SC_CLK_TCK")
        machine_busy_s = (m1[0] - m0[0]) / tick
        loadavg = float(open("/proc/loadavg").read().split()[0])
        self.log.close()
        window = self.t_end - self.t_warm
        out = {"scenario": "federation50", "label": f"federation{len(self.spaces)}-c{a.concurrency}",
               "spaces": len(self.spaces), "members": len(self.members),
               "concurrency": a.concurrency, "open_target": a.open,
               "warmup_s": a.warmup, "window_s": round(window, 3), "wall_s": round(wall, 3),
               "checkins_started": self.visits,
               "primary": figures(self.lat_in, window, self.err_in),
               "then": figures(self.lat_out, window, self.err_out),
               "decisions": dict(self.decisions),
               "checkouts_reported_by_courier": self.unreported,
               "peer_calls": calls, "peer_new_connections": new_conns,
               "peer_reuse_pct": round(100.0 * (calls - new_conns) / calls, 2) if calls else 0.0,
               "peak": self.peak,
               "cpu_s": {"nodes": round(cpu1["nodes"] - cpu0["nodes"], 3),
                         "pg": round(cpu1["pg"] - cpu0["pg"], 3),
                         "driver": round(ru1.ru_utime + ru1.ru_stime
                                         - ru0.ru_utime - ru0.ru_stime, 3)},
               "machine": {"cores": os.cpu_count(), "busy_s": round(machine_busy_s, 3),
                           "loadavg_1m_end": loadavg},
               "error_samples": self.error_samples}
        json.dump(out, open(a.out, "w"))
        p, q = out["primary"], out["then"]
        print(f"  {len(self.spaces)} spaces, {len(self.members)} members, concurrency "
              f"{a.concurrency}, up to {a.open} visits open, {window:.1f} s measured "
              f"(+{a.warmup:g} s warm-up, {wall:.1f} s with the drain)")
        print(f"  check-ins : {p['rate']:8.1f}/s  p50 {p['p50_ms']:.2f} ms  p95 "
              f"{p['p95_ms']:.2f} ms  p99 {p['p99_ms']:.2f} ms  max {p['max_ms']:.2f} ms"
              f"  ({p['count']} measured, {p['errors']} errors)")
        print(f"  check-outs: {q['rate']:8.1f}/s  p50 {q['p50_ms']:.2f} ms  p95 "
              f"{q['p95_ms']:.2f} ms  p99 {q['p99_ms']:.2f} ms  max {q['max_ms']:.2f} ms"
              f"  ({q['count']} measured, {q['errors']} errors)")
        print(f"  decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items()))
              + f"; check-outs reported by the courier, not at once: {self.unreported}")
        print(f"  peer calls between the nodes {calls}, new peer connections {new_conns}:"
              f" {out['peer_reuse_pct']:.2f} % reused")
        c = out["cpu_s"]
        print(f"  CPU: nodes {c['nodes']:.1f} s, PostgreSQL {c['pg']:.1f} s, driver "
              f"{c['driver']:.1f} s over {wall:.1f} s wall "
              f"({100 * sum(c.values()) / (os.cpu_count() * wall):.0f} % of "
              f"{os.cpu_count()} cores); the whole machine was "
              f"{100 * machine_busy_s / (os.cpu_count() * wall):.0f} % busy, load average "
              f"{loadavg:.1f} at the end")
        if self.peak:
            print("  peak (sampled every 2 s, each figure its own maximum): "
                  + describe(self.peak, len(self.spaces)))
        for e in self.error_samples[:5]:
            print("  error: " + e, file=sys.stderr)


def describe(r, n):
    return (f"nodes {r['nodes_rss_kb'] / 1024:.1f} MiB resident in all ({r['nodes_rss_kb'] / 1024 / n:.1f}"
            f" MiB each, {r['nodes_threads']} threads); PostgreSQL {r['pg_pss_kb'] / 1024:.1f} MiB"
            f" PSS ({r['pg_rss_kb'] / 1024:.0f} MiB RSS summed), {r['pg_processes']} processes,"
            f" {r['pg_node_connections']} node connections")


def show_resources(a):
    """Prints the figures (stderr) and their JSON (stdout)."""
    spaces = json.load(open(a.spaces))
    r = resources([s["pid"] for s in spaces], a.postmaster)
    print(f"  {a.label}: " + describe(r, len(spaces)), file=sys.stderr)
    print(json.dumps(r))
    return 0


# ----------------------------------------------------------------- the check

def connect(server, db):
    import psycopg
    sock, port = server.rsplit(":", 1)
    return psycopg.connect(host=sock, port=port, user="postgres", dbname=db, autocommit=True)


def wait_outboxes(spaces, server, timeout):
    t0 = time.monotonic()
    conns = {s["id"]: connect(server, s["db"]) for s in spaces}
    try:
        while True:
            pending, failed, busy = 0, 0, 0
            for c in conns.values():
                p, f = c.execute("select count(*) filter (where delivered_at is null"
                                 " and failed_at is null), count(*) filter"
                                 " (where failed_at is not null) from outbox").fetchone()
                b, = c.execute("select count(*) from host_visits"
                               " where under_way").fetchone()
                pending, failed, busy = pending + p, failed + f, busy + b
            if pending == 0 and busy == 0:
                return time.monotonic() - t0, failed
            if time.monotonic() - t0 > timeout:
                print(f"outboxes: {pending} messages still undelivered and {busy} visits"
                      f" open or pending after {timeout} s", file=sys.stderr)
                return None, failed
            time.sleep(0.25)
    finally:
        for c in conns.values():
            c.close()


def check(a):
    spaces = json.load(open(a.spaces))
    by_id = {s["id"]: s for s in spaces}
    driver = {}
    dup_log = 0
    for path in a.log:
        for line in open(path):
            r = json.loads(line)
            if r["visit_id"] in driver:
                dup_log += 1
            driver[r["visit_id"]] = r

    waited, failed = wait_outboxes(spaces, a.server, a.timeout)
    if waited is not None:
        print(f"outboxes: every message delivered ({waited:.1f} s after the traffic),"
              f" {failed} refused for good")

    host_rows = collections.defaultdict(list)   # visit_id -> [(space, row)]
    home_rows = collections.defaultdict(list)
    ledger_bad, ticket_debits = 0, collections.Counter()
    outbox_total = 0
    for s in spaces:
        with connect(a.server, s["db"]) as c:
            for r in c.execute("select visit_id::text, home, pseudonym, status, reason_code,"
                               " units, checked_out_at is not null, disputed_at is not null"
                               " from host_visits"):
                host_rows[r[0]].append((s["id"], r))
            for r in c.execute("select v.visit_id::text, v.host, m.pseudonym, v.decision,"
                               " v.reason_code, v.units, v.checked_out_at is not null"
                               " from home_visits v join members m on m.id = v.member_id"):
                home_rows[r[0]].append((s["id"], r))
            ledger_bad += c.execute(
                "select count(*) from members m where tickets <> (select coalesce(sum(delta), 0)"
                " from ticket_movements t where t.member_id = m.id)").fetchone()[0]
            ticket_debits[s["id"]] = -c.execute(
                "select coalesce(sum(delta), 0) from ticket_movements"
                " where reason in ('visit', 'visit_unit', 'refund')").fetchone()[0]
            outbox_total += c.execute("select count(*) from outbox").fetchone()[0]

    missing = duplicated = mismatched = 0
    problems = []

    def bad(kind, vid, why):
        if len(problems) < 30:
            problems.append(f"{kind} {vid}: {why}")

    admitted = refused = 0
    pairs_driver = collections.Counter()
    for vid, d in driver.items():
        hs, ms = host_rows.get(vid, []), home_rows.get(vid, [])
        adm = d["decision"] == "admit"
        admitted += adm
        refused += not adm
        if adm:
            pairs_driver[(d["host"], d["home"])] += 1
        if not hs:
            missing += 1
            bad("missing", vid, f"no row in {d['host']}'s host_visits")
        if adm and not ms:
            missing += 1
            bad("missing", vid, f"no row in {d['home']}'s home_visits")
        if len(hs) > 1 or len(ms) > 1:
            duplicated += 1
            bad("duplicated", vid, f"host rows in {[x[0] for x in hs]}, home rows in "
                f"{[x[0] for x in ms]}")
        why = []
        for space, r in hs:
            _, home, sub, status, code, units, out, disputed = r
            if space != d["host"] or home != d["home"] or sub != d["sub"]:
                why.append(f"host row at {space} for {home}/{sub}")
            if adm and (status != "closed" or not out or disputed):
                why.append(f"host row {status}{' disputed' if disputed else ''}")
            if adm and units != d.get("units"):
                why.append(f"host units {units}, desk was told {d.get('units')}")
            if not adm and status != "refused":
                why.append(f"refused at the desk but host row {status}")
        for space, r in ms:
            _, host, sub, decision, code, units, out = r
            if space != d["home"] or host != d["host"] or sub != d["sub"]:
                why.append(f"home row at {space} for {host}/{sub}")
            if adm and (decision != "admit" or not out):
                why.append(f"home row {decision}, {'closed' if out else 'open'}")
            if adm and hs and units != hs[0][1][5]:
                why.append(f"home units {units}, host units {hs[0][1][5]}")
            if not adm and decision != "refuse":
                why.append(f"refused at the desk but home row {decision}")
        if adm and not d.get("checked_out"):
            why.append("the driver's check-out failed")
        if why:
            mismatched += 1
            bad("mismatched", vid, "; ".join(why))

    unknown_host = [v for v in host_rows if v not in driver]
    unknown_home = [v for v in home_rows if v not in driver]
    for v in unknown_host[:5]:
        bad("unknown", v, f"host row at {host_rows[v][0][0]}: {host_rows[v][0][1][1:]}")
    for v in unknown_home[:5]:
        bad("unknown", v, f"home row at {home_rows[v][0][0]}: {home_rows[v][0][1][1:]}")

    # Per pair of spaces: admitted visits as the host counts them, as the
    # home counts them, as the driver made them.
    pairs_host = collections.Counter((s, r[1]) for v, rows in host_rows.items()
                                     for s, r in rows if r[3] == "closed")
    pairs_home = collections.Counter((r[1], s) for v, rows in home_rows.items()
                                     for s, r in rows if r[3] == "admit")
    pair_diff = [p for p in set(pairs_host) | set(pairs_home) | set(pairs_driver)
                 if not pairs_host[p] == pairs_home[p] == pairs_driver[p]]
    for p in pair_diff[:5]:
        bad("pair", f"{p[0]}<-{p[1]}", f"host {pairs_host[p]}, home {pairs_home[p]},"
            f" driver {pairs_driver[p]}")
    # Each home debited one ticket per admitted visit (ticket_per_unit = no).
    homes_admitted = collections.Counter(d["home"] for d in driver.values()
                                         if d["decision"] == "admit")
    debit_diff = [h for h in by_id if ticket_debits[h] != homes_admitted[h]]
    for h in debit_diff[:5]:
        bad("tickets", h, f"{ticket_debits[h]} tickets debited for {homes_admitted[h]} visits")

    print(f"exactly once: {admitted} visits checked on both sides, {missing} missing,"
          f" {duplicated} duplicated, {mismatched} mismatched")
    print(f"  and {refused} refusals recorded as such, {len(unknown_host)} host rows and"
          f" {len(unknown_home)} home rows the driver does not know of, {len(pair_diff)} of"
          f" {len(pairs_driver)} pairs of spaces whose counts differ, {len(debit_diff)}"
          f" homes whose ticket debits differ, {ledger_bad} members whose tickets differ"
          f" from their ledger, {failed} outbox messages refused for good"
          f" ({outbox_total} messages in all)")
    for p in problems:
        print("  " + p, file=sys.stderr)
    runs = [json.load(open(path)) for path in a.runs or []]
    desk_errors = sum(r["primary"]["errors"] + r["then"]["errors"] for r in runs)
    if desk_errors:
        print(f"  and {desk_errors} errors at the front desks during the traffic (above)")
    ok = (waited is not None and missing == duplicated == mismatched == 0 and dup_log == 0
          and desk_errors == 0
          and not unknown_host and not unknown_home and not pair_diff and not debit_diff
          and ledger_bad == 0 and failed == 0 and admitted > 0)
    result = {"ok": ok, "visits": admitted, "refusals": refused, "missing": missing,
              "duplicated": duplicated, "mismatched": mismatched, "desk_errors": desk_errors,
              "unknown_host_rows": len(unknown_host), "unknown_home_rows": len(unknown_home),
              "pairs": len(pairs_driver), "pairs_differing": len(pair_diff),
              "ticket_debits_differing": len(debit_diff), "ledger_differing": ledger_bad,
              "outbox_messages": outbox_total, "outbox_failed": failed,
              "outbox_drain_s": round(waited, 3) if waited is not None else None}
    extra = json.loads(a.extra) if a.extra else {}
    for d in runs:
        d["exactly_once"] = result
        d.update(extra)
        line = json.dumps(d)
        print(line)
        if a.results:
            with open(a.results, "a") as f:
                f.write(line + "\n")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--spaces", required=True)
    d.add_argument("--concurrency", type=int, default=16)
    d.add_argument("--duration", type=float, default=30)
    d.add_argument("--warmup", type=float, default=2)
    d.add_argument("--visits", type=int, default=0, help="stop after this many check-ins")
    d.add_argument("--open", type=int, default=100, help="visits open at once, at most")
    d.add_argument("--postmaster", type=int, required=True)
    d.add_argument("--seed", type=int, default=None)
    d.add_argument("--log", required=True)
    d.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--spaces", required=True)
    c.add_argument("--server", required=True, help="SOCKDIR:PORT")
    c.add_argument("--log", nargs="+", required=True)
    c.add_argument("--runs", nargs="*")
    c.add_argument("--results")
    c.add_argument("--extra", help="JSON merged into each run's line")
    c.add_argument("--timeout", type=float, default=120)
    r = sub.add_parser("resources")
    r.add_argument("--spaces", required=True)
    r.add_argument("--postmaster", type=int, required=True)
    r.add_argument("--label", default="now")
    a = ap.parse_args()
    if a.cmd == "resources":
        return show_resources(a)
    if a.cmd == "drive":
        Driver(a).run()
        return 0
    return check(a)


if __name__ == "__main__":
    sys.exit(main())
