"""What the home decides about a valid pass: tickets, one open visit at a
time, plans; and a space's own members, decided without a peer call."""
import datetime
import uuid

from harness import wait_until


def home_rows(home, member):
    return home.query("select h.visit_id::text, h.host, h.decision, h.reason_code"
                      " from home_visits h join members m on m.id = h.member_id"
                      " where m.pseudonym = %s order by h.authorized_at",
                      member["pseudonym"])


def test_tickets_exhausted(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=1)

    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert a["tickets_left"] == 0
    r = troquet.checkout(a["visit_id"])
    assert r.status == 200 and r.json()["units"] == 1, r
    assert cordee.balance(member) == (0, 0)

    b = troquet.checkin(token).json()
    assert b["decision"] == "refuse", b
    assert b["reason_code"] == "no_tickets", b
    assert b["home"] == "cordee"
    assert cordee.balance(member) == (0, 0)
    assert troquet.query_one("select status, reason_code, display_name from"
                             " host_visits where visit_id = %s", b["visit_id"]) \
        == ("refused", "no_tickets", None)
    assert [r[2:] for r in home_rows(cordee, member)] == \
        [("admit", None), ("refuse", "no_tickets")]

    # A top-up at home makes the same pass good again.
    cordee.cli_ok("member", "topup", member["email"], "2")
    c = troquet.checkin(token).json()
    assert c["decision"] == "admit", c
    assert c["tickets_left"] == 1
    assert cordee.balance(member) == (1, 1)
    troquet.checkout(c["visit_id"])


def test_already_checked_in(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=5)

    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    b = troquet.checkin(token).json()
    assert b["decision"] == "refuse", b
    assert b["reason_code"] == "already_checked_in", b
    assert "troquet" in b["reason"]
    assert b["visit_id"] != a["visit_id"]
    assert cordee.balance(member) == (4, 4)

    # Checked in at troquet, so not at cordee either, even with another pass.
    c = cordee.checkin(cordee.issue_pass(member)).json()
    assert c["decision"] == "refuse" and c["reason_code"] == "already_checked_in", c
    assert cordee.balance(member) == (4, 4)

    # Once out, in again.
    troquet.checkout(a["visit_id"])
    wait_until(lambda: cordee.query_one(
        "select checked_out_at is not null from home_visits where visit_id = %s",
        a["visit_id"]) == (True,), timeout=10, what="the check-out at home")
    d = troquet.checkin(token).json()
    assert d["decision"] == "admit", d
    assert cordee.balance(member) == (3, 3)
    troquet.checkout(d["visit_id"])


def test_local_member_at_home_needs_no_peer(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(full_name="Lou Martin", tickets=4)
    calls = cordee.peer_calls(), troquet.peer_calls()

    a = cordee.checkin(token).json()
    assert a["decision"] == "admit", a
    assert a["home"] == "cordee" and a["display_name"] == "Lou M."
    assert a["tickets_left"] == 3
    visit = a["visit_id"]
    assert (cordee.peer_calls(), troquet.peer_calls()) == calls

    # Both sides of the visit in cordee's own database, nothing at troquet.
    assert cordee.query_one("select home, status, display_name from host_visits"
                            " where visit_id = %s", visit) == ("cordee", "open", "Lou M.")
    assert cordee.query_one("select host, decision from home_visits"
                            " where visit_id = %s", visit) == ("cordee", "admit")
    assert troquet.query_one("select count(*) from host_visits where visit_id = %s",
                             visit) == (0,)
    assert cordee.balance(member) == (3, 3)

    r = cordee.checkout(visit)
    assert r.status == 200, r
    assert r.json()["units"] == 1 and r.json()["reported_to_home"] is True
    assert cordee.query_one("select units, checked_out_at is not null from"
                            " home_visits where visit_id = %s", visit) == (1, True)
    assert cordee.query_one("select status, display_name from host_visits"
                            " where visit_id = %s", visit) == ("closed", None)
    assert (cordee.peer_calls(), troquet.peer_calls()) == calls


def test_local_member_without_tickets(shared):
    cordee = shared["cordee"]
    member, token = cordee.member_with_pass(tickets=0)
    a = cordee.checkin(token).json()
    assert a["decision"] == "refuse" and a["reason_code"] == "no_tickets", a
    assert cordee.query_one("select status from host_visits where visit_id = %s",
                            a["visit_id"]) == ("refused",)


def test_monthly_plan_is_not_debited(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    until = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    member, token = cordee.member_with_pass(plan="monthly", until=until)
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert a["plan"] == "monthly"
    assert "tickets_left" not in a
    assert cordee.query_one("select count(*) from ticket_movements t join members m"
                            " on m.id = t.member_id where m.pseudonym = %s",
                            member["pseudonym"]) == (0,)
    troquet.checkout(a["visit_id"])


def test_monthly_plan_ended(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    until = (datetime.date.today() - datetime.timedelta(days=2)).isoformat()
    member, token = cordee.member_with_pass(plan="monthly", until=until)
    a = troquet.checkin(token).json()
    assert a["decision"] == "refuse", a
    assert a["reason_code"] == "plan_expired", a


def test_suspended_member(shared):
    """Suspension is a home decision: a pass issued before it stops working."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=5)
    cordee.query("update members set status = 'suspended' where pseudonym = %s"
                 " returning id", member["pseudonym"])
    a = troquet.checkin(token).json()
    assert a["decision"] == "refuse" and a["reason_code"] == "suspended", a
    assert cordee.balance(member) == (5, 5)


def test_revoked_pass(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=5)
    cordee.query("update passes set revoked_at = now() where member_id ="
                 " (select id from members where pseudonym = %s) returning jti",
                 member["pseudonym"])
    a = troquet.checkin(token).json()
    assert a["decision"] == "refuse" and a["reason_code"] == "revoked", a
    assert cordee.balance(member) == (5, 5)
    # A new pass is not revoked.
    b = troquet.checkin(cordee.issue_pass(member)).json()
    assert b["decision"] == "admit", b
    troquet.checkout(b["visit_id"])


def test_concurrent_authorizations_debit_once(shared):
    """Two hosts' requests for one member at the same moment: one visit."""
    import threading

    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    results = []
    log_size = cordee.log.stat().st_size

    def go():
        r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize",
                               {"visit_id": str(uuid.uuid4()), "pass": token})
        results.append((r.status, r.json().get("decision"), r.json().get("reason_code")))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 6, results
    assert all(s == 200 for s, _, _ in results), results
    admitted = [r for r in results if r[1] == "admit"]
    assert len(admitted) == 1, results
    assert all(r[2] == "already_checked_in" for r in results if r[1] != "admit"), results
    assert cordee.balance(member) == (9, 9)
    # The race is the home's to resolve, not an error to report.
    with open(cordee.log, "rb") as f:
        f.seek(log_size)
        assert b"query failed" not in f.read()


def test_a_decision_that_waited_reads_the_visits_again(shared):
    """A decision that waits for the member's lock, held by a transaction
    that closes the member's visit and changes their row (a completion's
    refund, a manager), decides on what that transaction left: admitted,
    not refused as still checked in."""
    import threading

    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)

    def authorize():
        r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize",
                               {"visit_id": str(uuid.uuid4()), "pass": token})
        assert r.status == 200, r
        return r.json()

    first = authorize()
    assert first["decision"] == "admit", first
    results = []
    holder = shared.pg.connect(cordee.dbname)
    try:
        holder.autocommit = False
        holder.execute("update home_visits set checked_out_at = now(), units = 1"
                       " where visit_id = %s", (first["visit_id"],))
        holder.execute("update members set tickets = tickets + 0 where pseudonym = %s",
                       (member["pseudonym"],))
        t = threading.Thread(target=lambda: results.append(authorize()))
        t.start()
        wait_until(lambda: cordee.query_one(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
            " and datname = current_database()")[0] == 1, 10,
            what="the decision waiting for the member's lock")
        holder.commit()
        t.join(timeout=30)
    finally:
        holder.close()
    assert len(results) == 1 and results[0]["decision"] == "admit", results


def test_concurrent_local_checkins_admit_once(shared):
    """Several desks of the member's own space scan the pass at once (no
    seats set, so nothing queues them but the member's lock): one admission,
    the others refused as already checked in, never a database error."""
    import threading

    cordee = shared["cordee"]
    staff = cordee.staff_token("concierge")
    for _ in range(10):
        member, token = cordee.member_with_pass(tickets=10)
        results = []
        barrier = threading.Barrier(4)

        def go():
            barrier.wait()
            r = cordee.checkin(token, staff=staff)
            results.append((r.status, r.json().get("decision"),
                            r.json().get("reason_code")))

        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 4, results
        admitted = [r for r in results if r[1] == "admit"]
        assert len(admitted) == 1, results
        assert all(r[2] == "already_checked_in" for r in results
                   if r[1] != "admit"), results
        assert cordee.balance(member) == (9, 9)
