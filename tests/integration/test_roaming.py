"""A roaming visit end to end: a La Cordée member checks in and out at
Le Troquet's front desk, and both databases keep an exact record."""
import json

from jwcrypto import jws

from harness import jws_parts, wait_until


def test_roaming_visit(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(full_name="Camille Durand", tickets=10)
    assert cordee.balance(member) == (10, 10)

    r = troquet.checkin(token)
    assert r.status == 200, r
    a = r.json()
    assert a["decision"] == "admit", a
    assert a["display_name"] == "Camille D."
    assert a["home"] == "cordee"
    assert a["tickets_left"] == 9
    assert "reason_code" not in a
    visit = a["visit_id"]

    # The host's record: an open visit, with the name shown at the desk.
    row = troquet.query_one(
        "select home, pseudonym, display_name, status, receipt from host_visits"
        " where visit_id = %s", visit)
    assert row is not None, "no host_visits row at troquet"
    assert row[:4] == ("cordee", member["pseudonym"], "Camille D.", "open")
    assert row[4] == a["receipt"]

    # The home's record, and exactly one ticket gone, ledger included.
    row = cordee.query_one(
        "select host, decision, checked_out_at from home_visits h"
        " join members m on m.id = h.member_id"
        " where h.visit_id = %s and m.pseudonym = %s", visit, member["pseudonym"])
    assert row == ("troquet", "admit", None)
    assert cordee.balance(member) == (9, 9)
    assert cordee.query_one(
        "select count(*) from ticket_movements where visit_id = %s and delta = -1"
        " and reason = 'visit'", visit) == (1,)

    # The receipt is the home's signature, verifiable by any JOSE library
    # with the key the signed directory lists for cordee.
    header, payload, _ = jws_parts(a["receipt"])
    receipt = jws.JWS()
    receipt.deserialize(a["receipt"])
    receipt.verify(shared.jwks("cordee").get_key(header["kid"]), alg="EdDSA")
    claims = json.loads(receipt.payload)
    assert claims["visit_id"] == visit
    assert claims["decision"] == "admit"
    assert claims["home"] == "cordee" and claims["host"] == "troquet"
    assert claims["sub"] == member["pseudonym"]

    # So does the pass itself, with the directory's JWKS.
    header, payload, _ = jws_parts(token)
    p = jws.JWS()
    p.deserialize(token)
    p.verify(shared.jwks("cordee").get_key(header["kid"]), alg="EdDSA")
    pass_claims = json.loads(p.payload)
    assert pass_claims["iss"] == "cordee"
    assert pass_claims["sub"] == member["pseudonym"]
    assert member["email"] not in p.payload.decode()
    assert len(token) < 350

    # Check-out: one half-day unit, reported to the home.
    r = troquet.checkout(visit)
    assert r.status == 200, r
    out = r.json()
    assert out["visit_id"] == visit and out["units"] == 1
    assert out["already_closed"] is False

    def home_closed():
        return cordee.query_one(
            "select checked_out_at is not null, units from home_visits"
            " where visit_id = %s", visit) == (True, 1)
    wait_until(home_closed, timeout=10, what="the home to record the check-out")

    row = troquet.query_one(
        "select status, units, display_name, checked_out_at is not null"
        " from host_visits where visit_id = %s", visit)
    assert row == ("closed", 1, None, True)
    assert cordee.balance(member) == (9, 9)


def test_checkout_twice_is_harmless(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=3)
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    first = troquet.checkout(a["visit_id"])
    assert first.status == 200 and first.json()["already_closed"] is False, first
    again = troquet.checkout(a["visit_id"])
    assert again.status == 200, again
    assert again.json()["already_closed"] is True
    assert again.json()["units"] == 1
    wait_until(lambda: cordee.query_one(
        "select units from home_visits where visit_id = %s", a["visit_id"]) == (1,),
        timeout=10, what="the home to record the check-out")
    assert cordee.balance(member) == (2, 2)


def test_checkout_unknown_visit(shared):
    troquet = shared["troquet"]
    r = troquet.checkout("00000000-0000-4000-8000-000000000000")
    assert r.status == 404, r
    assert r.json()["error"] == "unknown_visit"


def test_present_list_shows_the_visitor(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(full_name="Dominique Présent")
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    r = troquet.get("/api/v1/visits", token=troquet.staff_token())
    assert r.status == 200, r
    visits = {v["visit_id"]: v for v in r.json()["visits"]}
    assert visits[a["visit_id"]]["display_name"] == "Dominique P."
    assert visits[a["visit_id"]]["home"] == "cordee"
    troquet.checkout(a["visit_id"])
    r = troquet.get("/api/v1/visits", token=troquet.staff_token())
    assert a["visit_id"] not in {v["visit_id"] for v in r.json()["visits"]}
