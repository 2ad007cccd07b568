"""As if subscribed there: plans, terms between spaces, the host's house
rules, one place at a time, revocation (the rules issue)."""
import concurrent.futures
import datetime
import json
import signal
import uuid
from zoneinfo import ZoneInfo

from harness import jws_parts, rows_read, wait_until

PARIS = ZoneInfo("Europe/Paris")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def visit(host, token):
    """Checks in; returns the decision's JSON."""
    r = host.checkin(token)
    assert r.status == 200, r
    return r.json()


def round_trip(host, token):
    a = visit(host, token)
    if a["decision"] == "admit":
        r = host.checkout(a["visit_id"])
        assert r.status == 200, r
    return a


def test_ticket_book_of_ten(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    for i in range(10):
        a = round_trip(troquet, token)
        assert a["decision"] == "admit", (i, a)
        assert a["tickets_left"] == 9 - i, a
    a = visit(troquet, token)
    assert (a["decision"], a["reason_code"]) == ("refuse", "no_tickets"), a
    assert "no half-day tickets left" in a["reason"].lower()
    assert cordee.balance(member) == (0, 0)
    hist = json.loads(cordee.cli_ok("member", "history", "--json", "--",
                                    member["pseudonym"]))
    moves = [e for e in hist["history"] if e["what"].startswith("tickets.")]
    assert sum(e["tickets"] for e in moves) == 0
    assert len([e for e in moves if e["what"] == "tickets.visit"]) == 10


def test_monthly_cap_of_roaming(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    member = cordee.add_member(plan="monthly", until="2099-12-31")
    cordee.cli_ok("member", "plan", "--monthly", "--until", "2099-12-31", "--cap", "2",
                  "--", member["pseudonym"])
    token = cordee.issue_pass(member)
    assert round_trip(troquet, token)["decision"] == "admit"
    assert round_trip(troquet, token)["decision"] == "admit"
    a = visit(troquet, token)
    assert (a["decision"], a["reason_code"]) == ("refuse", "roaming_cap"), a
    # At home the cap does not apply: it counts half-days elsewhere.
    assert round_trip(cordee, token)["decision"] == "admit"


def test_monthly_caps_read_one_members_visits(federation):
    """Both monthly caps count one member's visits through an index on the
    member: a busy month (3,000 visits of others on each side) costs a
    check-in a few rows read, not the month's."""
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    troquet.cli_ok("peer", "terms", "cordee", "--cap", "5")
    member = cordee.add_member(plan="monthly", until="2099-12-31")
    cordee.cli_ok("member", "plan", "--monthly", "--until", "2099-12-31", "--cap", "5",
                  "--", member["pseudonym"])
    token = cordee.issue_pass(member)
    other = cordee.add_member()
    cordee.db().execute(
        "insert into home_visits (visit_id, host, member_id, jti, decision,"
        " request_hash, response, checked_out_at, units)"
        " select gen_random_uuid(), 'troquet', m.id, 'j', 'admit', 'h',"
        " repeat('x', 400), now(), 1 from members m, generate_series(1, 3000)"
        " where m.pseudonym = %s", (other["pseudonym"],))
    troquet.db().execute(
        "insert into host_visits (visit_id, home, pseudonym, jti, status,"
        " receipt, checked_out_at, units)"
        " select gen_random_uuid(), 'cordee', 'other' || i, 'j', 'closed',"
        " repeat('x', 400), now(), 1 from generate_series(1, 3000) i")
    cordee.db().execute("analyze home_visits")
    troquet.db().execute("analyze host_visits")
    before = rows_read(cordee, "home_visits"), rows_read(troquet, "host_visits")
    a = visit(troquet, token)
    assert a["decision"] == "admit", a
    after = (rows_read(cordee, "home_visits", before[0]),
             rows_read(troquet, "host_visits", before[1]))
    # Without the indexes: the 3,000 rows at each side.
    assert after[0][0] - before[0][0] < 30, (before, after)
    assert after[1][0] - before[1][0] < 30, (before, after)


def test_host_monthly_cap_per_visitor(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    troquet.cli_ok("peer", "terms", "cordee", "--cap", "1")
    member, token = cordee.member_with_pass(tickets=5)
    assert round_trip(troquet, token)["decision"] == "admit"
    a = visit(troquet, token)
    assert (a["decision"], a["reason_code"]) == ("refuse", "host_cap"), a
    assert cordee.balance(member) == (4, 4), "a host's refusal debits nothing"


def test_roaming_not_allowed_by_the_home(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    cordee.cli_ok("peer", "terms", "troquet", "--roaming", "no")
    member, token = cordee.member_with_pass(tickets=5)
    a = visit(troquet, token)
    assert (a["decision"], a["reason_code"]) == ("refuse", "roaming_not_allowed"), a
    assert cordee.balance(member) == (5, 5)


def test_host_does_not_accept(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    troquet.cli_ok("peer", "terms", "cordee", "--accept", "no")
    member, token = cordee.member_with_pass(tickets=5)
    calls = troquet.peer_calls()
    a = visit(troquet, token)
    assert (a["decision"], a["reason_code"]) == ("refuse", "not_accepted"), a
    assert troquet.peer_calls() == calls, "the home was asked for nothing"


def test_outside_opening_hours(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    now = datetime.datetime.now(PARIS)
    hours = "20:00-21:00" if now.hour < 12 else "01:00-02:00"
    for day in DAYS:
        troquet.cli_ok("house", "hours", day, hours)
    member, token = cordee.member_with_pass(tickets=5)
    a = visit(troquet, token)
    assert (a["decision"], a["reason_code"]) == ("refuse", "closed"), a
    assert f"Mon-Sun {hours}" in a["reason"], a["reason"]
    # A closure day, with its reason.
    for day in DAYS:
        troquet.cli_ok("house", "hours", day, "00:00-23:59")
    troquet.cli_ok("house", "close", now.date().isoformat(), "--reason", "inventaire")
    a = visit(troquet, token)
    assert a["reason_code"] == "closed" and "inventaire" in a["reason"], a
    troquet.cli_ok("house", "reopen", now.date().isoformat())
    if now.time() < datetime.time(23, 58):
        assert visit(troquet, token)["decision"] == "admit"


def test_full_capacity(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    troquet.cli_ok("house", "capacity", "2")
    local, local_token = troquet.member_with_pass(tickets=5)
    _, t1 = cordee.member_with_pass(tickets=5)
    _, t2 = cordee.member_with_pass(tickets=5)
    a0 = visit(troquet, local_token)  # own members take seats too
    a1 = visit(troquet, t1)
    assert a0["decision"] == a1["decision"] == "admit", (a0, a1)
    a2 = visit(troquet, t2)
    assert (a2["decision"], a2["reason_code"]) == ("refuse", "full"), a2
    assert "2 of 2" in a2["reason"], a2["reason"]
    troquet.checkout(a1["visit_id"])
    assert visit(troquet, t2)["decision"] == "admit"


def test_one_pass_at_two_hosts_at_once(federation):
    """100 authorizations of one pass, from two hosts at once: exactly one
    admission and exactly one ticket debited."""
    f = federation(spaces=("troquet", "cordee", "grenoble"))
    troquet, cordee, grenoble = f["troquet"], f["cordee"], f["grenoble"]
    member, token = cordee.member_with_pass(tickets=10)

    def authorize(host):
        r = cordee.fed_request(host, "POST", "/federation/v1/authorize",
                               {"visit_id": str(uuid.uuid4()), "pass": token})
        assert r.status == 200, r
        return r.json()["decision"], r.json().get("reason_code")

    hosts = [troquet, grenoble] * 50
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(authorize, hosts, timeout=120))
    admitted = [r for r in results if r[0] == "admit"]
    assert len(admitted) == 1, results
    assert {r for r in results if r[0] == "refuse"} == {("refuse", "already_checked_in")}
    assert cordee.balance(member) == (9, 9)
    assert cordee.query_one("select count(*) from home_visits where decision = 'admit'"
                            " and checked_out_at is null") == (1,)


def test_revoked_pass(federation):
    f = federation(config={"troquet": {"visit": {"peer_timeout": "1s"}}})
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=5)
    jti = json.loads(jws_parts(token)[1])["jti"]
    out = cordee.cli_ok("pass", "revoke", "--member", "--", member["pseudonym"])
    assert "1 pass revoked" in out, out
    a = visit(troquet, token)
    assert (a["decision"], a["reason_code"]) == ("refuse", "revoked"), a
    assert cordee.balance(member) == (5, 5)

    # The host keeps the home's signed list for when the home is down.
    troquet.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: troquet.query_one(
        "select count(*) from peer_revocations where home = 'cordee' and jti = %s",
        jti) == (1,), timeout=15, what="troquet to fetch cordee's revocations")
    assert cordee.stop() == 0
    a = visit(troquet, token)
    assert (a["decision"], a["reason_code"]) == ("refuse", "revoked"), a


def test_auto_checkout_at_closing_time(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=5)
    a = visit(troquet, token)
    assert a["decision"] == "admit", a
    # The visit began yesterday at 10:00 (Paris), a day that closed at 19:00.
    yesterday = datetime.datetime.now(PARIS).date() - datetime.timedelta(days=1)
    began = datetime.datetime.combine(yesterday, datetime.time(10, 0), PARIS)
    closing = datetime.datetime.combine(yesterday, datetime.time(19, 0), PARIS)
    troquet.query("update host_visits set checked_in_at = %s where visit_id = %s"
                  " returning 1", began, a["visit_id"])
    troquet.cli_ok("house", "hours", DAYS[yesterday.weekday()], "09:00-19:00")
    wait_until(lambda: troquet.query_one(
        "select status from host_visits where visit_id = %s", a["visit_id"])
        == ("closed",), timeout=20, interval=0.2, what="the automatic check-out")
    out, units = troquet.query_one("select checked_out_at, units from host_visits"
                                   " where visit_id = %s", a["visit_id"])
    assert out == closing, (out, closing)
    assert units == 2, "9 hours are two half-day units"
    wait_until(lambda: cordee.query_one(
        "select units from home_visits where visit_id = %s", a["visit_id"]) == (2,),
        timeout=20, what="the home to learn of the check-out")


def test_terms_changed_after_a_visit_keep_its_rate(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    troquet.cli_ok("peer", "terms", "cordee", "--rate", "900", "--currency", "EUR")
    member, token = cordee.member_with_pass(tickets=5)
    a = visit(troquet, token)
    assert a["decision"] == "admit", a
    receipt = json.loads(jws_parts(a["receipt"])[1])
    assert (receipt["rate_cents"], receipt["currency"]) == (900, "EUR"), receipt
    troquet.cli_ok("peer", "terms", "cordee", "--rate", "1500")
    b = round_trip(troquet, cordee.issue_pass(cordee.add_member(tickets=2)))
    assert b["decision"] == "admit"
    assert troquet.query_one("select rate_cents, currency from host_visits"
                             " where visit_id = %s", a["visit_id"]) == (900, "EUR")
    assert cordee.query_one("select rate_cents, currency from home_visits"
                            " where visit_id = %s", a["visit_id"]) == (900, "EUR")
    assert troquet.query_one("select rate_cents from host_visits"
                             " where visit_id = %s", b["visit_id"]) == (1500,)


def check_out_two_units_later(host, visit_id):
    """Checks a visit out as if six hours had passed: two half-day units."""
    host.query("update host_visits set checked_in_at = now() - interval '6 hours'"
               " where visit_id = %s returning 1", visit_id)
    r = host.checkout(visit_id)
    assert r.status == 200 and r.json()["units"] == 2, r


def test_one_ticket_per_unit_when_the_terms_say_so(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    cordee.cli_ok("peer", "terms", "troquet", "--ticket-per-unit", "yes")
    member, token = cordee.member_with_pass(tickets=5)
    a = visit(troquet, token)
    assert a["decision"] == "admit", a
    # Six hours later: two units, so one more ticket.
    check_out_two_units_later(troquet, a["visit_id"])
    wait_until(lambda: cordee.balance(member) == (3, 3), timeout=20,
               what="the second unit's ticket")


def test_ticket_per_unit_is_frozen_with_the_visit(federation):
    """The terms in force when a visit was admitted say what its units cost,
    as its rate: a change made while it is open rewrites nothing."""
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    cordee.cli_ok("peer", "terms", "troquet", "--ticket-per-unit", "yes")
    member, token = cordee.member_with_pass(tickets=5)
    a = visit(troquet, token)
    assert a["decision"] == "admit", a
    cordee.cli_ok("peer", "terms", "troquet", "--ticket-per-unit", "no")
    check_out_two_units_later(troquet, a["visit_id"])
    wait_until(lambda: cordee.balance(member) == (3, 3), timeout=20,
               what="the second unit's ticket, under the terms of the visit")

    # And the other way round: admitted under "no", checked out under "yes".
    b = visit(troquet, token)
    assert b["decision"] == "admit", b
    cordee.cli_ok("peer", "terms", "troquet", "--ticket-per-unit", "yes")
    check_out_two_units_later(troquet, b["visit_id"])
    wait_until(lambda: cordee.query_one("select checked_out_at is not null from"
                                        " home_visits where visit_id = %s",
                                        b["visit_id"]) == (True,),
               timeout=20, what="the check-out at home")
    assert cordee.balance(member) == (2, 2)
