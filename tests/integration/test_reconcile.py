"""Reconciliation and settlement (the "who owes whom, with proof" issue).

Three spaces run a month of more than a thousand cross-visits through the
real front-desk API (check-in at the host, authorization at the home over
mutual TLS, check-out, completion through the outbox).  Then discrepancies
are injected on purpose into one side's database: a visit missing on one
side, units changed, a rate changed, a receipt signed with the wrong key,
a tampered receipt, a provisional visit the home has not confirmed.  The
real offline path adds two provisional admissions: one the home confirmed,
one it refused (disputed).  Each space reconciles with each peer; the
statements must find exactly those and nothing else, their totals must
equal what this file computes from the databases on its own, the CSV must
parse, and the settlement's transfers must bring every balance to zero.
"""
import concurrent.futures
import csv
import datetime
import http.server
import io
import json
import random
import time
import uuid
from decimal import Decimal

import pytest
from jwcrypto import jws as jwcrypto_jws

from harness import FakeFace, b64url, compact_json, jws_parts, sign_as, wait_until

SPACES = ("cordee", "grenoble", "troquet")
MEMBERS_PER_SPACE = 40
WAVES = 10
OWN_SPACE_SHARE = 0.1
# Concurrent check-ins.  A check-in holds one of its host's workers while
# the home's answer comes, and the home answers from the same pool: the
# nodes get more workers than there are check-ins in flight, so that the
# pools of three busy nodes cannot all wait on one another.
WORKERS = 8
NODE_CONFIG = {"limits": {"workers": "12"}}

# What each host charges each home's members per half-day: (cents, currency).
RATES = {
    ("troquet", "cordee"): (900, "EUR"),
    ("troquet", "grenoble"): (1000, "EUR"),
    ("cordee", "troquet"): (1200, "EUR"),
    ("cordee", "grenoble"): (1100, "EUR"),
    ("grenoble", "troquet"): (1500, "CHF"),   # a statement per currency
    ("grenoble", "cordee"): (850, "EUR"),
}
# Halfway through the month troquet raises its rate for cordee's members:
# the visits before keep the rate they froze.
RATE_CHANGE = (("troquet", "cordee"), (950, "EUR"))

CSV_HEADER = ["month", "space", "peer", "currency", "visit_id", "owed_by", "owed_to",
              "member", "checked_in_at", "checked_out_at", "units", "units_peer",
              "rate", "rate_peer", "amount", "result", "held", "provisional",
              "disputed", "detail", "note"]


# ---------------------------------------------------------------- helpers

def utc_month():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m")


def cents(text):
    """'12.50' -> 1250, exactly."""
    return int(Decimal(text) * 100)


def set_rate(node, peer, rate):
    node.cli_ok("peer", "terms", peer, "--rate", str(rate[0]), "--currency", rate[1])


def make_members(node, n):
    """n ticket-book members with a pass each, through the managers' API."""
    staff = node.staff_token("manager")
    passes = []
    for i in range(n):
        r = node.api("POST", "/api/v1/members", {
            "full_name": f"Membre {node.id} {i}", "email": f"{uuid.uuid4().hex}@example.org",
            "plan": "tickets", "tickets": 1000}, token=staff)
        assert r.status == 201, r
        m = r.json()
        r = node.api("POST", f"/api/v1/members/{m['id']}/passes", token=staff)
        assert r.status == 201, r
        passes.append((m["pseudonym"], r.json()["token"]))
    return passes


def outbox_empty(node):
    return node.query_one("select count(*) from outbox where delivered_at is null"
                          " and failed_at is null") == (0,)


def generate_month(f, month):
    """Runs WAVES waves of visits: every member checks in somewhere (mostly
    at a peer), some visits are made longer than a half-day, all check out.
    Returns the number of admitted visits per (host, home)."""
    rng = random.Random(20261130)
    members = {s: make_members(f[s], MEMBERS_PER_SPACE) for s in SPACES}
    concierge = {s: f[s].staff_token("concierge") for s in SPACES}
    admitted = {}

    def checkin(job):
        host, home, token = job
        r = f[host].checkin(token, staff=concierge[host], timeout=30)
        assert r.status == 200, r
        a = r.json()
        assert a["decision"] == "admit", (host, home, a.get("reason_code"), a.get("reason"))
        return host, home, a["visit_id"]

    def checkout(job):
        host, _, vid = job
        r = f[host].checkout(vid, staff=concierge[host])
        assert r.status == 200, r

    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for wave in range(WAVES):
            if wave == WAVES // 2:
                set_rate(f[RATE_CHANGE[0][0]], RATE_CHANGE[0][1], RATE_CHANGE[1])
            jobs = []
            for home in SPACES:
                for _, token in members[home]:
                    if rng.random() < OWN_SPACE_SHARE:
                        host = home
                    else:
                        host = rng.choice([s for s in SPACES if s != home])
                    jobs.append((host, home, token))
            visits = list(pool.map(checkin, jobs, timeout=120))
            # Some visits began earlier today (never before the month), so
            # that they count two half-day units.
            for s in SPACES:
                f[s].query(
                    "update host_visits set checked_in_at = greatest("
                    " date_trunc('month', now() at time zone 'UTC') at time zone 'UTC',"
                    " checked_in_at - interval '6 hours') where status = 'open'"
                    " and random() < 0.3 returning 1")
            list(pool.map(checkout, visits, timeout=120))
            for s in SPACES:
                wait_until(lambda: outbox_empty(f[s]), timeout=30,
                           what=f"{s}'s outbox to be delivered")
            for host, home, _ in visits:
                admitted[host, home] = admitted.get((host, home), 0) + 1
    return admitted


def offline_admissions(f):
    """grenoble's node is down while two of its members arrive at troquet:
    both are admitted provisionally.  Meanwhile one of them is suspended at
    home, so when grenoble is back it confirms one visit and refuses the
    other, which troquet then records as disputed.  Returns (confirmed,
    disputed) visit ids."""
    troquet, grenoble = f["troquet"], f["grenoble"]
    troquet.cli_ok("peer", "terms", "grenoble", "--offline", "5")
    (_, ok_token), (bad, bad_token) = [grenoble.member_with_pass(tickets=5)
                                       for _ in range(2)]
    assert grenoble.stop() == 0
    ids = []
    for token in (ok_token, bad_token):
        a = troquet.checkin(token).json()
        assert (a["decision"], a["reason_code"]) == ("admit", "provisional"), a
        assert troquet.checkout(a["visit_id"]).status == 200
        ids.append(a["visit_id"])
    grenoble.cli_ok("member", "suspend", "--", bad["pseudonym"])
    grenoble.start()
    troquet.cli_ok("outbox", "retry")

    def settled():
        return troquet.query(
            "select confirmed_at is not null, disputed_at is not null from host_visits"
            " where visit_id = any(%s::uuid[]) order by visit_id = %s desc",
            ids, ids[0]) == [(True, False), (False, True)] and outbox_empty(troquet)
    wait_until(settled, timeout=60, interval=0.3,
               what="grenoble to confirm one provisional visit and refuse the other")
    return ids


def snapshot(f, month):
    """Every cross-visit of the month as the hosts recorded it:
    {visit_id: dict(host, home, sub, units, rate, currency)}, after checking
    that the homes recorded the same."""
    lo = datetime.datetime.strptime(month + "-01", "%Y-%m-%d").replace(
        tzinfo=datetime.timezone.utc)
    visits = {}
    for host in SPACES:
        for vid, home, sub, units, rate, cur, cin in f[host].query(
                "select visit_id::text, home, pseudonym, units, rate_cents,"
                " currency::text, checked_in_at from host_visits"
                " where home <> %s and status = 'closed' and disputed_at is null",
                host):
            assert cin >= lo, (vid, cin)
            visits[vid] = dict(host=host, home=home, sub=sub, units=units, rate=rate,
                               currency=cur)
    for home in SPACES:
        rows = f[home].query(
            "select v.visit_id::text, v.host, m.pseudonym, v.units, v.rate_cents,"
            " v.currency::text from home_visits v join members m on m.id = v.member_id"
            " where v.host <> %s and v.decision = 'admit'", home)
        for vid, host, sub, units, rate, cur in rows:
            v = visits[vid]
            assert (v["host"], v["home"], v["sub"], v["units"], v["rate"],
                    v["currency"]) == (host, home, sub, units, rate, cur), (vid, v)
        assert len(rows) == sum(1 for v in visits.values() if v["home"] == home)
    return visits


def expected_totals(visits, held):
    """{(space, peer, currency): (receivable, payable)} in cents, over the
    visits not held back: computed here, independently of the node."""
    totals = {}
    for vid, v in visits.items():
        if vid in held:
            continue
        amount = v["units"] * v["rate"]
        for space, peer, side in ((v["host"], v["home"], 0), (v["home"], v["host"], 1)):
            t = totals.setdefault((space, peer, v["currency"]), [0, 0])
            t[side] += amount
    return {k: tuple(t) for k, t in totals.items()}


def reconcile(node, peer, month, *extra):
    out = node.cli_ok("reconcile", "--peer", peer, "--month", month, "--json", *extra)
    st = json.loads(out)
    assert st["space"] == node.id and st["peer"] == peer and st["month"] == month
    return st


def statements_by_currency(st):
    return {s["currency"]: s for s in st["statements"]}


def not_matched(st):
    """{visit_id: line} of the lines that are not plain matches."""
    return {line["visit_id"]: line for s in st["statements"] for line in s["lines"]
            if line["held"] or line["result"] != "matched"}


def pick(visits, host, home, taken, **where):
    for vid, v in sorted(visits.items()):
        if v["host"] == host and v["home"] == home and vid not in taken and \
                all(v[k] == val for k, val in where.items()):
            taken.add(vid)
            return vid
    raise AssertionError(f"no visit {host} <- {home} left to pick")


# ---------------------------------------------------------------- the month

@pytest.fixture(scope="module")
def world(module_federation):
    """The federation, its month of visits and the discrepancies injected:
    (federation, month, pristine visits, expected non-matched lines)."""
    started = time.monotonic()
    f = module_federation(spaces=SPACES, config={s: NODE_CONFIG for s in SPACES})
    month = utc_month()
    now = datetime.datetime.now(datetime.timezone.utc)
    nxt = (now.replace(day=28) + datetime.timedelta(days=4)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0)
    if nxt - now < datetime.timedelta(minutes=10):
        pytest.skip("too close to the end of the UTC month for one month of visits")
    for (host, home), rate in RATES.items():
        set_rate(f[host], home, rate)
    try:
        admitted = generate_month(f, month)
    except BaseException:
        print(f"\nnode logs:\n{f.log_tails(40)}")
        raise
    cross = sum(n for (host, home), n in admitted.items() if host != home)
    assert cross >= 1000, admitted
    confirmed, disputed = offline_admissions(f)
    visits = snapshot(f, month)
    assert len(visits) == cross + 1 and confirmed in visits and disputed not in visits
    if now - now.replace(day=1, hour=0, minute=0, second=0) > datetime.timedelta(hours=6):
        assert {v["units"] for v in visits.values()} == {1, 2}
    assert 950 in {v["rate"] for v in visits.values()}, "the rate change froze on visits"
    print(f"\n{cross} cross-visits (and {sum(admitted.values()) - cross} at home)"
          f" generated in {time.monotonic() - started:.1f}s")

    # The discrepancies, each in one side's database only.
    taken = set()
    expect = {}   # (space, peer) -> {visit_id: (result, provisional, disputed)}

    def both(host, home, vid, here_host, here_home, **flags):
        expect.setdefault((host, home), {})[vid] = (here_host, flags)
        expect.setdefault((home, host), {})[vid] = (here_home, flags)

    # 1. The home lost a visit: troquet hosted it, cordee has no record.
    vid = pick(visits, "troquet", "cordee", taken)
    f["cordee"].query("delete from home_visits where visit_id = %s returning 1", vid)
    both("troquet", "cordee", vid, "only_here", "only_there")
    # 2. The host lost one: grenoble hosted troquet's member (in CHF).
    vid = pick(visits, "grenoble", "troquet", taken)
    f["grenoble"].query("delete from host_visits where visit_id = %s returning 1", vid)
    both("grenoble", "troquet", vid, "only_there", "only_here")
    # 3. Units changed at the home.
    vid = pick(visits, "cordee", "grenoble", taken, units=1)
    f["grenoble"].query("update home_visits set units = 2 where visit_id = %s"
                        " returning 1", vid)
    both("cordee", "grenoble", vid, "units_differ", "units_differ")
    # 4. A rate changed at the host.
    vid = pick(visits, "grenoble", "cordee", taken)
    f["grenoble"].query("update host_visits set rate_cents = rate_cents + 50"
                        " where visit_id = %s returning 1", vid)
    both("grenoble", "cordee", vid, "rate_differs", "rate_differs")
    # 5. A receipt signed with the wrong key: troquet's key under grenoble's kid.
    vid = pick(visits, "troquet", "grenoble", taken)
    receipt = f["troquet"].query_one("select receipt from host_visits where"
                                     " visit_id = %s", vid)[0]
    _, payload, _ = jws_parts(receipt)
    forged = sign_as(f["troquet"], "receipt", json.loads(payload), kid="grenoble-1")
    f["troquet"].query("update host_visits set receipt = %s where visit_id = %s"
                       " returning 1", forged, vid)
    both("troquet", "grenoble", vid, "evidence_invalid", "evidence_invalid")
    # 6. A tampered receipt: another member named, the signature kept.
    vid = pick(visits, "cordee", "troquet", taken)
    receipt = f["cordee"].query_one("select receipt from host_visits where"
                                    " visit_id = %s", vid)[0]
    h, p, s = receipt.split(".")
    claims = json.loads(jws_parts(receipt)[1])
    claims["sub"] = "somebodyElse"
    tampered = f"{h}.{b64url(compact_json(claims))}.{s}"
    f["cordee"].query("update host_visits set receipt = %s where visit_id = %s"
                      " returning 1", tampered, vid)
    both("cordee", "troquet", vid, "evidence_invalid", "evidence_invalid")
    # 7. A provisional admission the home has not confirmed yet (what the
    # host records when the home cannot be reached): no receipt, and no
    # record at the home.
    vid = str(uuid.uuid4())
    sub = f["cordee"].query("select pseudonym from members limit 1")[0][0]
    cin = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    stamp = cin.strftime("%Y-%m-%dT%H:%M:%SZ")
    completion = sign_as(f["troquet"], "completion", {
        "visit_id": vid, "host": "troquet", "home": "cordee", "sub": sub,
        "checked_in_at": stamp, "checked_out_at": stamp, "units": 1,
        "rate_cents": 950, "currency": "EUR", "iat": int(time.time())})
    f["troquet"].query(
        "insert into host_visits (visit_id, home, pseudonym, jti, status, reason_code,"
        " reason, checked_in_at, checked_out_at, units, rate_cents, currency,"
        " completion) values (%s, 'cordee', %s, 'offline0jti', 'closed',"
        " 'provisional', 'Admitted provisionally.', %s, %s, 1, 950, 'EUR', %s)"
        " returning 1", vid, sub, cin, cin, completion)
    both("troquet", "cordee", vid, "only_here", "only_there", provisional=True)
    # 8. The provisional admission grenoble refused (offline_admissions).
    both("troquet", "grenoble", disputed, "only_here", "only_there", disputed=True)
    visits_held = taken | {vid, disputed}
    return f, month, visits, expect, visits_held


def check_statement(st, expect, visits, held, peer):
    """The statement lists exactly the expected lines, and its totals are
    the independent ones."""
    space = st["space"]
    got = not_matched(st)
    want = expect.get((space, peer), {})
    assert {v: line["result"] for v, line in got.items()} == \
        {v: w[0] for v, w in want.items()}, f"{space} with {peer}"
    for vid, (result, flags) in want.items():
        line = got[vid]
        assert line["held"] is True
        assert line["provisional"] is bool(flags.get("provisional")), line
        assert (line["disputed_here"] or line["disputed_there"]) is \
            bool(flags.get("disputed")), line
    totals = expected_totals(visits, held)
    by_cur = statements_by_currency(st)
    want_curs = {cur for (s, p, cur) in totals if s == space and p == peer}
    assert set(by_cur) == want_curs, (space, peer, set(by_cur), want_curs)
    for cur, s in by_cur.items():
        receivable, payable = totals[space, peer, cur]
        t = s["totals"]
        assert (t["receivable_cents"], t["payable_cents"]) == (receivable, payable), \
            (space, peer, cur)
        assert t["net_cents"] == receivable - payable
        matched = [line for line in s["lines"] if not line["held"]]
        assert sum(line["amount_cents"] for line in matched) == receivable + payable
        for line in matched:
            v = visits[line["visit_id"]]
            assert line["amount_cents"] == v["units"] * v["rate"]
            assert line["direction"] == ("receivable" if v["host"] == space
                                         else "payable")


# ---------------------------------------------------------------- the tests

def test_ledger_is_signed_paginated_and_private(world):
    """troquet asks cordee's ledger as a peer would: signed pages, every
    visit between the two and nothing about grenoble."""
    f, month, visits, _, _ = world
    troquet, cordee = f["troquet"], f["cordee"]
    jwks = f.jwks("cordee")
    after, seen, pages = "", [], 0
    while True:
        path = f"/federation/v1/ledger?month={month}" + (f"&after={after}" if after else "")
        r = cordee.fed_request(troquet, "GET", path)
        assert r.status == 200, r
        assert r.headers["content-type"].startswith("application/jose")
        token = r.body.decode()
        header, _, _ = jws_parts(token)
        assert header["typ"] == "ledger" and header["alg"] == "EdDSA"
        j = jwcrypto_jws.JWS()
        j.deserialize(token)
        j.verify(jwks.get_key(header["kid"]), alg="EdDSA")
        page = json.loads(j.payload)
        assert (page["space"], page["caller"], page["month"], page["after"]) == \
            ("cordee", "troquet", month, after)
        assert len(page["records"]) <= 200
        seen += page["records"]
        pages += 1
        if page["next"] is None:
            break
        after = page["next"]
    assert pages >= 2, "more than one page of visits between troquet and cordee"
    ids = [(rec["visit_id"], rec["role"]) for rec in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Exactly the visits cordee holds with troquet, as host and as home.
    want = {v for v, x in visits.items() if {x["host"], x["home"]} == {"troquet", "cordee"}}
    deleted = {vid for vid, (res, _) in world[3][("cordee", "troquet")].items()
               if res == "only_there"}
    assert {rec["visit_id"] for rec in seen} == want - deleted
    for rec in seen:
        v = visits[rec["visit_id"]]
        assert rec["role"] == ("host" if v["host"] == "cordee" else "home")
        assert rec["sub"] == v["sub"] and rec["units"] == v["units"]
        assert rec["receipt"] and rec["completion"]
        assert "grenoble" not in json.dumps(rec)

    # The caller is its certificate: grenoble gets its own ledger, not troquet's.
    r = cordee.fed_request(f["grenoble"], "GET", f"/federation/v1/ledger?month={month}")
    page = json.loads(jws_parts(r.body.decode())[1])
    assert page["caller"] == "grenoble"
    assert not {rec["visit_id"] for rec in page["records"]} & want

    for path, status in ((f"/federation/v1/ledger?month={month[:4]}-13", 400),
                         ("/federation/v1/ledger", 400),
                         (f"/federation/v1/ledger?month={month}&after=x", 400),
                         ("/federation/v1/balances?month=2026", 400)):
        r = cordee.fed_request(troquet, "GET", path)
        assert r.status == status, (path, r)
        assert r.json()["error"] == "bad_request"
    r = cordee.fed_request(troquet, "POST", f"/federation/v1/ledger?month={month}", {})
    assert r.status in (400, 405), r


def test_statements_find_exactly_the_injected_discrepancies(world):
    f, month, visits, expect, held = world
    started = time.monotonic()
    for space in SPACES:
        for peer in SPACES:
            if peer != space:
                st = reconcile(f[space], peer, month)
                check_statement(st, expect, visits, held, peer)
    print(f"\n6 statements in {time.monotonic() - started:.1f}s")
    # The table names the discrepancies and the net.
    out = f["troquet"].cli_ok("reconcile", "show", "--peer", "grenoble", "--month", month)
    assert "evidence_invalid" in out and "net:" in out and "CHF" in out
    rc, out, err = f["troquet"].cli("reconcile", "--peer", "nowhere", "--month", month)
    assert rc != 0 and "not another space" in err
    rc, out, err = f["troquet"].cli("reconcile", "--peer", "cordee", "--month", "2026-13")
    assert rc == 2 and "YYYY-MM" in err


def test_csv_round_trips(world, tmp_path):
    f, month, visits, expect, held = world
    troquet = f["troquet"]
    st = reconcile(troquet, "grenoble", month)
    path = tmp_path / "statement.csv"
    troquet.cli_ok("reconcile", "show", "--peer", "grenoble", "--month", month,
                   "--csv", "--output", path)
    raw = path.read_bytes()
    raw.decode("utf-8")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == CSV_HEADER
    rows = [dict(zip(CSV_HEADER, r)) for r in rows[1:]]
    assert all(len(r) == len(CSV_HEADER) for r in rows)
    lines = {line["visit_id"]: (s["currency"], line) for s in st["statements"]
             for line in s["lines"]}
    assert sorted(r["visit_id"] for r in rows) == sorted(lines)
    per_currency = {}
    for r in rows:
        cur, line = lines[r["visit_id"]]
        assert r["currency"] == cur and r["month"] == month
        assert r["result"] == line["result"]
        assert r["held"] == ("yes" if line["held"] else "no")
        assert cents(r["amount"]) == line["amount_cents"]
        assert r["amount"].count(".") == 1 and len(r["amount"].split(".")[1]) == 2
        if r["result"] == "matched":
            v = visits[r["visit_id"]]
            assert cents(r["rate"]) == v["rate"] and int(r["units"]) == v["units"]
            assert (r["owed_by"], r["owed_to"]) == (v["home"], v["host"])
        if r["held"] == "no":
            sign = 1 if r["owed_to"] == "troquet" else -1
            per_currency[cur] = per_currency.get(cur, 0) + sign * cents(r["amount"])
    for cur, s in statements_by_currency(st).items():
        assert per_currency.get(cur, 0) == s["totals"]["net_cents"]
    # Free text that a spreadsheet would take for a formula is defused.
    vid = next(v for v, (_, line) in lines.items() if line["result"] == "matched")
    troquet.cli_ok("reconcile", "dispute", "--peer", "grenoble", "--month", month,
                   vid, "--note", '=HYPERLINK("x"), "quoted", über')
    out = troquet.cli_ok("reconcile", "show", "--peer", "grenoble", "--month", month,
                         "--csv")
    row = next(r for r in csv.DictReader(io.StringIO(out)) if r["visit_id"] == vid)
    assert row["note"] == '\'=HYPERLINK("x"), "quoted", über'
    assert row["held"] == "yes" and row["disputed"] == "yes"
    troquet.cli_ok("reconcile", "dispute", "--peer", "grenoble", "--month", month,
                   vid, "--withdraw")


def settle(node, month):
    return json.loads(node.cli_ok("settle", "--month", month, "--json"))


def agree_all(f, month):
    for space in SPACES:
        for peer in SPACES:
            if peer != space:
                f[space].cli_ok("reconcile", "agree", "--peer", peer, "--month", month)


def test_disputes_and_settlement(world):
    f, month, visits, expect, held = world
    troquet, cordee = f["troquet"], f["cordee"]
    for space in SPACES:
        for peer in SPACES:
            if peer != space:
                reconcile(f[space], peer, month)

    # Nothing agreed yet: every pair is held back, nothing moves.
    s = settle(troquet, month)
    assert s["currencies"] == []
    assert {p["status"] for p in s["pairs"]} == {"held"}

    # troquet disputes one of cordee's members' visits; its statement
    # holds it back at once, cordee's only once it reconciles again.
    vid = pick(visits, "troquet", "cordee", set(held))
    note = "The member says she left before noon: one unit, not two."
    out = troquet.cli_ok("reconcile", "dispute", "--peer", "cordee", "--month", month,
                         vid, "--note", note, "--json")
    line = not_matched(json.loads(out))[vid]
    assert line["disputed_here"] is True and line["note_here"] == note
    disputed = set(held) | {vid}
    agree_all(f, month)
    s = settle(troquet, month)
    pair = next(p for p in s["pairs"] if (p["a"], p["b"], p["currency"]) ==
                ("cordee", "troquet", "EUR"))
    assert pair["status"] == "held" and "disagree" in pair["reason"], pair

    st = reconcile(cordee, "troquet", month)
    line = not_matched(st)[vid]
    assert line["disputed_there"] is True and line["note_there"] == note
    assert line["held"] is True and line["result"] == "matched"
    assert statements_by_currency(st)["EUR"]["status"] == "open", \
        "an agreed statement whose lines changed is open again"
    s = settle(troquet, month)
    pair = next(p for p in s["pairs"] if (p["a"], p["b"]) == ("cordee", "troquet"))
    assert pair["status"] == "held" and "open" in pair["reason"], pair
    cordee.cli_ok("reconcile", "agree", "--peer", "troquet", "--month", month)
    listed = json.loads(cordee.cli_ok("reconcile", "list", "--month", month, "--json"))
    assert {x["status"] for x in listed} == {"agreed"} and len(listed) == 2

    # Every pair agreed: the settlement, recomputed the same by every node.
    s = settle(troquet, month)
    assert {p["status"] for p in s["pairs"]} == {"agreed"}, s["pairs"]
    assert s["unreachable"] == []
    totals = expected_totals(visits, disputed)
    for p in s["pairs"]:
        receivable, payable = totals.get((p["a"], p["b"], p["currency"]), (0, 0))
        assert p["b_owes_a_cents"] == receivable - payable, p
    for c in s["currencies"]:
        cur = c["currency"]
        positions = {x["space"]: x["net_cents"] for x in c["positions"]}
        want = {}
        for (space, peer, tc), (receivable, payable) in totals.items():
            if tc == cur:
                want[space] = want.get(space, 0) + receivable - payable
        assert positions == want, cur
        assert len(c["transfers"]) <= len(positions) - 1
        balance = dict(positions)
        for t in c["transfers"]:
            assert t["amount_cents"] > 0
            balance[t["from"]] += t["amount_cents"]
            balance[t["to"]] -= t["amount_cents"]
        assert set(balance.values()) == {0}, (cur, balance, c["transfers"])
    assert {c["currency"] for c in s["currencies"]} == {"EUR", "CHF"}
    # The balances each space signed come with the settlement.
    for space in SPACES:
        header, payload, _ = jws_parts(s["balances"][space])
        assert header["typ"] == "balances" and json.loads(payload)["space"] == space
    for other in ("cordee", "grenoble"):
        o = settle(f[other], month)
        assert (o["digest"], o["currencies"]) == (s["digest"], s["currencies"])
    out = troquet.cli_ok("settle", "--month", month)
    assert "pays" in out and s["digest"] in out

    # A whole statement disputed is held back again, with its reason.
    f["grenoble"].cli_ok("reconcile", "dispute", "--peer", "troquet", "--month", month,
                         "--currency", "CHF", "--note", "Not our CHF rate.")
    s = settle(cordee, month)
    pair = next(p for p in s["pairs"] if p["currency"] == "CHF")
    assert pair["status"] == "held" and "disputed" in pair["reason"], pair
    assert "CHF" not in {c["currency"] for c in s["currencies"]}


# ---------------------------------------------------------------- a lying peer

class FakePeer:
    """cordee's federation face replaced by a Python server holding cordee's
    certificate, answering GET requests with answer(path)."""

    def __init__(self, node, answer):
        self.paths = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake.paths.append(self.path)
                if not self.path.startswith("/federation/v1/ledger"):
                    self.send_error(404)
                    return
                out = answer(self.path).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/jose")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.face = FakeFace(node, Handler)

    def close(self):
        self.face.close()


def test_a_ledger_that_does_not_answer_us_is_refused(federation):
    """Pages signed by another key, for another caller, another page, or
    that would loop: the reconciliation stops and stores nothing."""
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    month = utc_month()
    assert cordee.stop() == 0
    vid = str(uuid.uuid4())

    def page(signer=cordee, kid=None, after="", nxt=None, records=(), **changes):
        p = {"v": 1, "space": "cordee", "caller": "troquet", "month": month,
             "after": after, "next": nxt, "iat": int(time.time()),
             "records": list(records)}
        p.update(changes)
        return sign_as(signer, "ledger", p, kid=kid or "cordee-1")

    record = {"visit_id": vid, "role": "home", "sub": "C4fVs6R4209v",
              "checked_in_at": "2026-11-30T09:02:11Z", "checked_out_at": None,
              "units": None, "rate_cents": 900, "currency": "EUR", "state": "open",
              "receipt": None, "completion": None}
    cases = [
        (lambda path: page(signer=troquet), "does not verify"),
        (lambda path: page(caller="grenoble"), "does not answer our request"),
        (lambda path: page(month="2001-01"), "does not answer our request"),
        (lambda path: page(after=f"{vid}.home"), "does not answer our request"),
        # An empty page that points to itself would have us ask forever.
        (lambda path: page(after="" if "after" not in path else f"{vid}.home",
                           nxt=f"{vid}.home",
                           records=[] if "after" in path else [record]),
         "next page"),
        (lambda path: page(records=[record, record]), "out of order"),
    ]
    for answer, why in cases:
        fake = FakePeer(cordee, answer)
        try:
            rc, out, err = troquet.cli("reconcile", "--peer", "cordee", "--month", month)
        finally:
            fake.close()
        assert rc == 1 and why in err, (why, rc, err)
        # (troquet's daemon may also ask for revocations meanwhile.)
        asked = [p for p in fake.paths if p.startswith("/federation/v1/ledger")]
        assert 1 <= len(asked) <= 2, fake.paths
    assert troquet.query("select * from statements") == []

    # The same page, honest, is accepted: a visit only cordee knows of.
    fake = FakePeer(cordee, lambda path: page(records=[record]))
    try:
        st = reconcile(troquet, "cordee", month)
    finally:
        fake.close()
    (line,) = st["statements"][0]["lines"]
    assert (line["visit_id"], line["result"], line["held"]) == (vid, "only_there", True)
