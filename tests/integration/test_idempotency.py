"""Retries never debit twice: the home answers a repeated authorization with
the stored answer, byte for byte, and a repeated completion changes nothing.

These tests speak the federation protocol themselves, as troquet, with
troquet's own certificate."""
import uuid

from harness import jws_parts, load_ed25519_private, make_jws


def completion(host, home, report):
    """The host's signed completion of a report (JWS typ "completion")."""
    payload = {"visit_id": report["visit_id"], "host": host.id, "home": home.id,
               "sub": "x", "checked_in_at": report["checked_in_at"],
               "checked_out_at": report["checked_out_at"], "units": report["units"]}
    key = load_ed25519_private(host.dir / "pass.key")
    return make_jws({"alg": "EdDSA", "typ": "completion", "kid": host.kid},
                    payload, key)


def report(host, home, visit, out="2024-03-01T11:30:00Z", units=1):
    done = {"visit_id": visit, "checked_in_at": "2024-03-01T08:00:00Z",
            "checked_out_at": out, "units": units}
    done["completion"] = completion(host, home, done)
    return done


def authorize(home, host, visit_id, token):
    return home.fed_request(host, "POST", "/federation/v1/authorize",
                            {"visit_id": visit_id, "pass": token},
                            headers={"Idempotency-Key": visit_id})


def home_visit_rows(home, visit_id):
    return home.query("select host, member_id, jti, decision, response"
                      " from home_visits where visit_id = %s", visit_id)


def test_authorize_retry_gets_the_same_answer(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    visit = str(uuid.uuid4())

    first = authorize(cordee, troquet, visit, token)
    assert first.status == 200, first
    a = first.json()
    assert a["decision"] == "admit" and a["visit_id"] == visit
    assert a["host"] == "troquet" and a["tickets_left"] == 9
    assert first.headers.get("passerelle-directory-serial") == str(shared.serial)

    second = authorize(cordee, troquet, visit, token)
    assert second.status == 200, second
    assert second.body == first.body
    assert cordee.balance(member) == (9, 9)
    rows = home_visit_rows(cordee, visit)
    assert len(rows) == 1 and rows[0][0] == "troquet" and rows[0][3] == "admit"
    assert rows[0][4].encode() == first.body


def test_same_visit_id_with_another_pass_is_a_conflict(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    other, other_token = cordee.member_with_pass(tickets=10)
    visit = str(uuid.uuid4())

    first = authorize(cordee, troquet, visit, token)
    assert first.status == 200 and first.json()["decision"] == "admit", first
    before = home_visit_rows(cordee, visit)

    for different in (other_token, cordee.issue_pass(member)):
        r = authorize(cordee, troquet, visit, different)
        assert r.status == 409, r
        assert r.json()["error"] == "conflict"
    assert home_visit_rows(cordee, visit) == before
    assert cordee.balance(member) == (9, 9)
    assert cordee.balance(other) == (10, 10)
    assert cordee.query_one("select count(*) from home_visits h join members m"
                            " on m.id = h.member_id where m.pseudonym = %s",
                            other["pseudonym"]) == (0,)


def test_complete_twice_records_once(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    visit = str(uuid.uuid4())
    assert authorize(cordee, troquet, visit, token).json()["decision"] == "admit"

    done = report(troquet, cordee, visit)
    r = cordee.fed_request(troquet, "POST", "/federation/v1/complete", done)
    assert r.status == 200, r
    assert r.json() == {"status": "recorded"}
    r = cordee.fed_request(troquet, "POST", "/federation/v1/complete",
                           report(troquet, cordee, visit, "2024-03-01T18:00:00Z", 2))
    assert r.status == 200, r
    assert r.json() == {"status": "already_recorded"}

    rows = cordee.query("select units, checked_out_at::text from home_visits"
                        " where visit_id = %s", visit)
    assert rows == [(1, "2024-03-01 11:30:00+00")]
    assert cordee.balance(member) == (9, 9)


def test_complete_of_an_unknown_visit(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    r = cordee.fed_request(troquet, "POST", "/federation/v1/complete",
                           report(troquet, cordee, str(uuid.uuid4())))
    assert r.status == 404, r
    assert r.json()["error"] == "unknown_visit"


def test_complete_needs_the_hosts_signature(shared):
    """Evidence: a report whose completion is not the host's signature over
    it changes nothing."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    visit = str(uuid.uuid4())
    assert authorize(cordee, troquet, visit, token).json()["decision"] == "admit"
    honest = report(troquet, cordee, visit)
    for forged in (dict(honest, units=2),                       # not what was signed
                   dict(honest, completion=completion(cordee, cordee, honest)),
                   {k: v for k, v in honest.items() if k != "completion"}):
        r = cordee.fed_request(troquet, "POST", "/federation/v1/complete", forged)
        assert r.status == 400, (forged, r)
    assert cordee.query_one("select checked_out_at from home_visits"
                            " where visit_id = %s", visit) == (None,)


def test_complete_only_by_the_host_of_the_visit(federation):
    """A third space cannot close (or learn of) another host's visit."""
    f = federation(spaces=("troquet", "cordee", "grenoble"))
    troquet, cordee, grenoble = f["troquet"], f["cordee"], f["grenoble"]
    member, token = cordee.member_with_pass(tickets=5)
    visit = str(uuid.uuid4())
    assert authorize(cordee, troquet, visit, token).json()["decision"] == "admit"
    r = cordee.fed_request(grenoble, "POST", "/federation/v1/complete",
                           report(grenoble, cordee, visit))
    assert r.status == 404, r
    assert cordee.query_one("select checked_out_at from home_visits"
                            " where visit_id = %s", visit) == (None,)
    # Nor reuse its visit id to get an answer about that member.
    r = authorize(cordee, grenoble, visit, token)
    assert r.status == 409, r


def test_receipt_names_the_host_that_asked(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=2)
    visit = str(uuid.uuid4())
    a = authorize(cordee, troquet, visit, token).json()
    header, payload, _ = jws_parts(a["receipt"])
    assert header["typ"] == "receipt" and header["kid"] == "cordee-1"
    assert b'"host":"troquet"' in payload
