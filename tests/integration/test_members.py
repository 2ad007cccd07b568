"""Members at home: names as people write them, display names, top-ups."""
import json
import os

import pytest

from harness import jws_parts


@pytest.mark.parametrize("full_name,display", [
    ("Chloé Éluard", "Chloé É."),
    ("Zoë Œuvray", "Zoë Œ."),
])
def test_accented_initial(shared, full_name, display):
    cordee = shared["cordee"]
    m = cordee.add_member(full_name=full_name, tickets=1)
    assert m["display_name"] == display


@pytest.mark.parametrize("full_name", ["A" * 23 + "é", "é" * 13, "Ægir" * 10 + " Ø"])
def test_long_names_are_cut_on_a_character(shared, full_name):
    """Default display names are short (at most 24 bytes, like explicit
    ones) and cut between characters, never inside one."""
    cordee = shared["cordee"]
    m = cordee.add_member(full_name=full_name, tickets=1)
    display = m["display_name"]  # the JSON decoder checked its UTF-8
    assert 0 < len(display.encode()) <= 24, display
    assert full_name.startswith(display.split(" ")[0]), display


def test_accented_names_travel_in_the_pass(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(full_name="Émilie Dupré", tickets=2)
    assert member["display_name"] == "Émilie D."
    claims = json.loads(jws_parts(token)[1])
    assert claims["name"] == "Émilie D."
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit" and a["display_name"] == "Émilie D.", a
    troquet.checkout(a["visit_id"])


def test_explicit_display_name(shared):
    cordee = shared["cordee"]
    m = cordee.add_member(full_name="Maximilienne Durand-Lefèvre",
                          display_name="Max", tickets=1)
    assert m["display_name"] == "Max"
    rc, out, err = cordee.cli("member", "add", "Someone Else", "--display-name",
                              "x" * 25)
    assert rc == 1 and "display name" in err, err


def test_no_email_in_the_pass(shared):
    cordee = shared["cordee"]
    member, token = cordee.member_with_pass(full_name="Rémi Fontaine", tickets=1)
    _, payload, _ = jws_parts(token)
    text = payload.decode()
    assert member["email"] not in text and "Fontaine" not in text
    assert set(json.loads(payload)) == {"iss", "sub", "name", "plan", "iat", "nbf",
                                        "exp", "jti"}


def test_topup_over_the_api(shared):
    cordee = shared["cordee"]
    token = cordee.staff_token("manager")
    m = cordee.add_member(tickets=1)
    r = cordee.api("POST", f"/api/v1/members/{m['email']}/topup", {"tickets": 10},
                   token=token)
    assert r.status == 200, r
    assert r.json()["tickets"] == 11 and r.json()["ledger_sum"] == 11
    for bad in ({"tickets": 0}, {"tickets": -5}, {"tickets": "ten"}, {}, {"tickets": 1.7},
                {"tickets": True}, {"tickets": 1e10}):
        r = cordee.api("POST", f"/api/v1/members/{m['email']}/topup", bad, token=token)
        assert r.status == 400, (bad, r)
    assert cordee.balance(m) == (11, 11)
    assert cordee.query_one("select count(*) from ticket_movements t join members mm"
                            " on mm.id = t.member_id where mm.pseudonym = %s",
                            m["pseudonym"]) == (2,)


def test_checkout_with_a_malformed_visit_id(shared):
    troquet = shared["troquet"]
    r = troquet.checkout("9131DD1A-7BB6-4FC1-86E7-EE01454F87D4")
    assert r.status in (400, 404), r
    assert r.json()["error"] != "not_open"


def test_checkout_of_a_refused_visit_is_409(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=0)
    a = troquet.checkin(token).json()
    assert a["decision"] == "refuse", a
    r = troquet.checkout(a["visit_id"])
    assert r.status == 409, r
    assert r.json()["error"] == "not_open"


def test_topup_is_for_ticket_books_only(shared):
    """A monthly member has no tickets to top up, however they are named."""
    cordee = shared["cordee"]
    m = cordee.add_member(plan="monthly", until="2099-12-31")
    for ref in (m["pseudonym"], str(m["id"]), m["email"]):
        rc, out, err = cordee.cli("member", "topup", ref, "5")
        assert rc != 0 and "no ticket-book member" in err, (ref, rc, out, err)
    assert cordee.balance(m) == (0, 0)


def test_member_numbers_and_dates_over_the_api(shared):
    """A count is a whole number (1.7 was taken as 1), a plan's dates are
    dates, in order, said without the command line's words or a SQLSTATE."""
    cordee = shared["cordee"]
    token = cordee.staff_token("manager")
    for bad in ({"full_name": "Ana Lima", "tickets": 1.7},
                {"full_name": "Ana Lima", "tickets": "3"}):
        r = cordee.api("POST", "/api/v1/members", bad, token=token)
        assert r.status == 400 and "whole number" in r.json()["detail"], (bad, r)
    r = cordee.api("POST", "/api/v1/members", {"full_name": "Ana Lima", "plan": "monthly",
                                               "valid_until": "2099-02-30"}, token=token)
    assert r.status == 400, r
    assert r.json()["detail"] == "the day the plan ends must be YYYY-MM-DD", r.json()
    m = cordee.add_member(tickets=2)
    path = f"/api/v1/members/{m['pseudonym']}/plan"
    for bad in ({"plan": "monthly", "valid_until": "2099-12-31", "roam_cap": 2.5},
                {"plan": "monthly", "valid_until": "2099-12-31", "roam_cap": "2"}):
        r = cordee.api("POST", path, bad, token=token)
        assert r.status == 400, (bad, r)
    r = cordee.api("POST", path, {"plan": "monthly", "valid_from": "2099-06-01",
                                  "valid_until": "2099-05-31"}, token=token)
    assert r.status == 400, r
    assert "start on or before the day it ends" in r.json()["detail"], r.json()
    r = cordee.api("POST", path, {"plan": "monthly", "valid_until": "someday"}, token=token)
    assert r.status == 400 and "YYYY-MM-DD" in r.json()["detail"], r
    # A name from the command line is bytes: not UTF-8, it is said so.
    rc, out, err = cordee.cli("member", "add", os.fsdecode(b"Ana \xffLima"))
    assert rc == 1 and "must be UTF-8 text" in err, (rc, out, err)
    rc, out, err = cordee.cli("member", "plan", m["pseudonym"], "--monthly", "--from",
                              "2099-06-01", "--until", "2099-05-31")
    assert rc != 0 and "start on or before" in err, (rc, out, err)
    # Nothing changed on the way.
    r = cordee.api("GET", f"/api/v1/members/{m['pseudonym']}", token=token)
    assert r.json()["plan"] == "tickets" and r.json()["tickets"] == 2, r.json()
    r = cordee.api("POST", path, {"plan": "monthly", "valid_from": "2099-05-31",
                                  "valid_until": "2099-05-31", "roam_cap": 4}, token=token)
    assert r.status == 200 and r.json()["plan"] == "monthly", r.json()


def test_bad_dates_are_one_line(shared):
    """A date PostgreSQL cannot place is the command's own one-line error,
    with no "query failed" log line before it."""
    cordee = shared["cordee"]
    m = cordee.add_member(tickets=1)
    for args in (("member", "add", "Ana Lima", "--plan", "monthly", "--until", "2026-02-30"),
                 ("member", "add", "Ana Lima", "--plan", "monthly", "--until", "someday"),
                 ("member", "plan", m["pseudonym"], "--monthly", "--until", "2026-02-30"),
                 ("member", "plan", m["pseudonym"], "--monthly", "--from", "2026-13-01",
                  "--until", "2099-01-01")):
        rc, out, err = cordee.cli(*args)
        assert rc == 1, (args, rc, out, err)
        assert len(err.splitlines()) == 1 and "YYYY-MM-DD" in err, (args, err)
    assert cordee.balance(m) == (1, 1)


def test_pass_issue_svg_path_is_checked_before_the_pass_is_made(shared, tmp_path):
    cordee = shared["cordee"]
    m = cordee.add_member(tickets=1)

    def passes():
        return cordee.query_one("select count(*) from passes where member_id = %s",
                                m["id"])[0]

    bad = tmp_path / "nonexistent" / "x.svg"
    rc, out, err = cordee.cli("pass", "issue", m["pseudonym"], "--svg", bad)
    assert rc == 1, (rc, out, err)
    assert out == "", out
    assert len(err.splitlines()) == 1 and str(bad) in err, err
    assert passes() == 0

    # A new file: made with the QR code.  An existing one: replaced whole.
    svg = tmp_path / "qr.svg"
    rc, out, err = cordee.cli("pass", "issue", m["pseudonym"], "--svg", svg)
    assert rc == 0, err
    assert svg.read_text().lstrip().startswith(("<svg", "<?xml"))
    first = svg.read_text()
    svg.write_text(first + "x" * 100000)
    cordee.cli_ok("pass", "issue", m["pseudonym"], "--svg", svg)
    assert svg.read_text().rstrip().endswith("</svg>") and len(svg.read_text()) < 100000
    assert passes() == 2

    # A member that does not exist leaves no file behind.
    none = tmp_path / "none.svg"
    rc, out, err = cordee.cli("pass", "issue", "nobody-at-all", "--svg", none)
    assert rc == 1 and not none.exists(), (rc, err)


def test_an_email_names_one_member(shared):
    """A second member with an e-mail one has already (in any case) is
    refused, on the command line and over the API."""
    cordee = shared["cordee"]
    m = cordee.add_member(tickets=1)
    email = m["email"]
    rc, out, err = cordee.cli("member", "add", "Autre Personne", "--email", email.upper())
    assert rc == 1, (rc, out, err)
    assert err == f"passerelle: e-mail {email.upper()} is member {m['id']}'s already\n", err
    r = cordee.api("POST", "/api/v1/members", {"full_name": "Autre Personne",
                                               "email": email},
                   token=cordee.staff_token("manager"))
    assert r.status == 409, r
    assert f"is member {m['id']}'s already" in r.json()["detail"], r.json()
    assert cordee.query_one("select count(*) from members where lower(email) = lower(%s)",
                            email) == (1,)


def test_an_email_two_members_share_is_said_so(shared):
    """A database from before may hold an e-mail twice: naming a member by it
    says it names several, and changes nothing."""
    cordee = shared["cordee"]
    m = cordee.add_member(tickets=1)
    pseudonym = m["pseudonym"]
    cordee.issue_pass(m)
    (other,) = cordee.query_one(
        "insert into members (pseudonym, display_name, full_name, email, plan, tickets)"
        " values (%s, 'Old D.', 'Old Duplicate', %s, 'tickets', 0) returning id",
        pseudonym + "-dup", m["email"].upper())
    ids = sorted([m["id"], other])
    said = f"'{m['email']}' names 2 members (ids {ids[0]}, {ids[1]}): give the id or the pseudonym"
    for args in (("member", "show", m["email"]),
                 ("member", "topup", m["email"], "1"),
                 ("member", "history", m["email"]),
                 ("member", "suspend", m["email"]),
                 ("member", "plan", m["email"], "--monthly", "--until", "2099-01-01"),
                 ("pass", "issue", m["email"]),
                 ("pass", "revoke", "--member", m["email"])):
        rc, out, err = cordee.cli(*args)
        assert rc == 1, (args, rc, out, err)
        assert err == f"passerelle: {said}\n", (args, err)
    r = cordee.api("GET", f"/api/v1/members/{m['email']}",
                   token=cordee.staff_token("manager"))
    assert r.status == 409 and r.json()["detail"] == said, r
    assert cordee.balance(m) == (1, 1)
    assert cordee.query_one("select count(*) from passes where member_id = %s"
                            " and revoked_at is null", m["id"]) == (1,)
    # By id or pseudonym, each is itself.
    assert json.loads(cordee.cli_ok("member", "show", "--json", str(other)))["id"] == other
    assert json.loads(cordee.cli_ok("member", "show", "--json", "--", pseudonym))["id"] == m["id"]
    cordee.db().execute("delete from members where id = %s", (other,))
