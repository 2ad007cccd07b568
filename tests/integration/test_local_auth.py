"""The local face: staff tokens and roles."""
import pytest


def test_checkin_without_token_is_401(shared):
    troquet = shared["troquet"]
    for headers in ({}, {"Authorization": "Bearer pst_not-a-real-token"},
                    {"Authorization": "Basic YWRtaW46YWRtaW4="},
                    {"Authorization": "Bearer " + troquet.staff_token()[:-1]}):
        r = troquet.api("POST", "/api/v1/checkin", {"pass": "x"}, headers=headers)
        assert r.status == 401, (headers, r)
        assert r.json()["error"] == "unauthorized"


def test_token_of_another_node_is_401(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    r = troquet.api("GET", "/api/v1/visits", token=cordee.staff_token("admin"))
    assert r.status == 401, r


def test_concierge_cannot_manage_members(shared):
    troquet = shared["troquet"]
    concierge = troquet.staff_token("concierge")
    r = troquet.get("/api/v1/members", token=concierge)
    assert r.status == 403, r
    assert r.json()["error"] == "forbidden"
    r = troquet.api("POST", "/api/v1/members", {"full_name": "Sneaky Concierge",
                                                "tickets": 100}, token=concierge)
    assert r.status == 403, r
    assert troquet.query_one("select count(*) from members where full_name ="
                             " 'Sneaky Concierge'") == (0,)
    # But the desk's own work is allowed.
    assert troquet.get("/api/v1/visits", token=concierge).status == 200


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_manager_adds_member_and_issues_pass(shared, role):
    troquet, cordee = shared["troquet"], shared["cordee"]
    token = cordee.staff_token(role)
    r = cordee.api("POST", "/api/v1/members",
                   {"full_name": "Sacha Nguyen", "email": f"sacha-{role}@example.org",
                    "tickets": 10}, token=token)
    assert r.status == 201, r
    m = r.json()
    assert m["full_name"] == "Sacha Nguyen" and m["tickets"] == 10
    assert m["display_name"] == "Sacha N." and m["pseudonym"]

    r = cordee.get("/api/v1/members", token=token)
    assert r.status == 200, r
    assert m["pseudonym"] in {x["pseudonym"] for x in r.json()}
    r = cordee.get(f"/api/v1/members/{m['pseudonym']}", token=token)
    assert r.status == 200 and r.json()["id"] == m["id"], r

    r = cordee.api("POST", f"/api/v1/members/{m['pseudonym']}/passes", token=token)
    assert r.status == 201, r
    p = r.json()
    assert p["token"].count(".") == 2
    assert p["qr_svg"].lstrip().startswith(("<svg", "<?xml")), p["qr_svg"][:80]
    assert p["member"] == m["pseudonym"]
    # The pass is a real one.
    a = troquet.checkin(p["token"]).json()
    assert a["decision"] == "admit", a
    troquet.checkout(a["visit_id"])


def test_member_errors(shared):
    cordee = shared["cordee"]
    token = cordee.staff_token("manager")
    r = cordee.api("POST", "/api/v1/members", {"full_name": ""}, token=token)
    assert r.status == 400 and r.json()["error"] == "bad_request", r
    r = cordee.api("POST", "/api/v1/members", {"full_name": "X Y", "plan": "yearly"},
                   token=token)
    assert r.status == 400, r
    r = cordee.get("/api/v1/members/nobody-at-all", token=token)
    assert r.status == 404 and r.json()["error"] == "unknown_member", r
    r = cordee.api("POST", "/api/v1/members/nobody-at-all/passes", token=token)
    assert r.status == 404, r


def test_open_endpoints(shared):
    troquet = shared["troquet"]
    r = troquet.get("/healthz")
    assert r.status == 200, r
    assert r.json() == {"status": "ok", "space": "troquet", "directory_serial": 1,
                        "directory": "ok", "database": "ok"}
    r = troquet.get("/metrics")
    assert r.status == 200 and b"passerelle_directory_serial 1" in r.body, r
    r = troquet.get("/nothing")
    assert r.status == 404 and r.json()["error"] == "not_found", r
    r = troquet.get("/api/v1/nothing", token=troquet.staff_token())
    assert r.status == 404 and r.json()["error"] == "not_found", r


def test_checkin_body_checks(shared):
    troquet = shared["troquet"]
    token = troquet.staff_token()
    for body in ("", "nope", '{"pass": 12}', "{}", '["x"]'):
        r = troquet.api("POST", "/api/v1/checkin", body, token=token,
                        headers={"Content-Type": "application/json"})
        assert r.status == 400, (body, r)
        assert r.json()["error"] == "bad_request"
