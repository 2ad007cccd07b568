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


def test_same_key_with_another_body_is_a_conflict(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    visit = str(uuid.uuid4())
    assert authorize(cordee, troquet, visit, token).json()["decision"] == "admit"
    key = {"Idempotency-Key": f"complete-{visit}"}
    first = cordee.fed_request(troquet, "POST", "/federation/v1/complete",
                               report(troquet, cordee, visit), headers=key)
    assert first.status == 200 and first.json() == {"status": "recorded"}, first
    again = cordee.fed_request(troquet, "POST", "/federation/v1/complete",
                               report(troquet, cordee, visit), headers=key)
    # The completion's iat differs, so the body does: same key, other body.
    other = cordee.fed_request(troquet, "POST", "/federation/v1/complete",
                               report(troquet, cordee, visit, units=2), headers=key)
    assert other.status == 409 and other.json()["error"] == "conflict", other
    assert again.status in (200, 409), again
    assert cordee.query_one("select units from home_visits where visit_id = %s",
                            visit) == (1,)


def test_repeat_with_the_same_key_and_body_is_replayed(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    visit = str(uuid.uuid4())
    assert authorize(cordee, troquet, visit, token).json()["decision"] == "admit"
    done = report(troquet, cordee, visit)
    key = {"Idempotency-Key": f"complete-{visit}"}
    answers = [cordee.fed_request(troquet, "POST", "/federation/v1/complete", done,
                                  headers=key) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200], answers
    assert answers[0].body == answers[1].body == answers[2].body
    assert cordee.query_one("select repeats from idempotency_keys where caller ="
                            " 'troquet' and key = %s", key["Idempotency-Key"]) == (2,)


def test_post_without_an_idempotency_key_is_refused(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    r = cordee.fed_request(troquet, "POST", "/federation/v1/complete",
                           report(troquet, cordee, str(uuid.uuid4())),
                           headers={"Idempotency-Key": None})
    assert r.status == 400 and r.json()["error"] == "idempotency_key_required", r


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
    # Signed by another space's key: a key troquet's entry does not list,
    # which may be its new one, in a directory cordee has yet to fetch, so
    # "not yet" (503, sent again), and nothing changes either way.
    for forged, status in ((dict(honest, units=2), 400),        # not what was signed
                           (dict(honest, completion=completion(cordee, cordee, honest)),
                            503),
                           ({k: v for k, v in honest.items() if k != "completion"}, 400)):
        r = cordee.fed_request(troquet, "POST", "/federation/v1/complete", forged)
        assert r.status == status, (forged, r)
        assert r.json()["error"] == ("unknown_key" if status == 503 else
                                     "bad_completion" if "completion" in forged
                                     else "bad_request"), r.json()
    assert cordee.query_one("select checked_out_at from home_visits"
                            " where visit_id = %s", visit) == (None,)


def test_completions_in_one_batch_are_each_answered(shared):
    """POST /federation/v1/completions: each completion recorded (or refused)
    on its own, in order; a repeat of the batch is replayed; a malformed
    batch records nothing."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    members, visits = [], []
    for _ in range(3):
        member, token = cordee.member_with_pass(tickets=10)
        visit = str(uuid.uuid4())
        assert authorize(cordee, troquet, visit, token).json()["decision"] == "admit"
        members.append(member)
        visits.append(visit)
    good = [report(troquet, cordee, v) for v in visits]
    forged = dict(good[1], units=2)                 # not what troquet signed
    unknown = report(troquet, cordee, str(uuid.uuid4()))
    batch = {"completions": [good[0], forged, unknown, good[2]]}
    key = {"Idempotency-Key": f"completions-{uuid.uuid4()}"}
    r = cordee.fed_request(troquet, "POST", "/federation/v1/completions", batch,
                           headers=key)
    assert r.status == 200, r
    results = r.json()["results"]
    assert [x["status"] for x in results] == [200, 400, 404, 200], results
    assert [x["visit_id"] for x in results] == [visits[0], visits[1],
                                                unknown["visit_id"], visits[2]]
    assert results[0]["answer"] == {"status": "recorded"}
    assert results[1]["answer"]["error"] == "bad_completion"
    assert results[2]["answer"]["error"] == "unknown_visit"
    closed = [cordee.query_one("select units from home_visits where visit_id = %s",
                               v) for v in visits]
    assert closed == [(1,), (None,), (1,)], closed

    again = cordee.fed_request(troquet, "POST", "/federation/v1/completions", batch,
                               headers=key)
    assert again.status == 200 and again.body == r.body, again
    # The forged one, sent honestly later, is recorded then.
    r = cordee.fed_request(troquet, "POST", "/federation/v1/completions",
                           {"completions": [good[1], good[0]]})
    assert [x["answer"]["status"] for x in r.json()["results"]] == \
        ["recorded", "already_recorded"], r
    for bad in ({"completions": []}, {"completions": good[0]}, {},
                {"completions": [good[0]] * 201}):
        r = cordee.fed_request(troquet, "POST", "/federation/v1/completions", bad)
        assert r.status in (400, 413), (bad, r)
    for m in members:
        assert cordee.balance(m) == (9, 9)


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
