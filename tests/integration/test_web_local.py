"""The local face as staff and members use it through the web page: member
links, sign-in behind a proxy, the CSV exports, the plan form."""
import time

import pytest

from harness import unique


def log_text(node):
    return node.log.read_text(errors="replace")


def new_link(node):
    """A member with a pass and its link: (member, "/p/SECRET")."""
    token = node.staff_token("manager")
    m = node.add_member(tickets=2)
    r = node.api("POST", f"/api/v1/members/{m['pseudonym']}/passes", token=token)
    assert r.status in (200, 201), r
    return m, r.json()["link"]


def test_member_link_secret_is_never_logged(shared):
    """Whatever suffix follows a well-formed secret, the log shows the
    link redacted; with a trailing slash the link opens the card."""
    cordee = shared["cordee"]
    _, link = new_link(cordee)
    secret = link.split("/")[2]
    assert len(secret) == 43, link

    r = cordee.get(link + "/")
    assert r.status == 200 and b"<html" in r.body.lower(), r
    assert r.headers.get("x-robots-tag") == "noindex"
    assert cordee.get(link + "/pass.json").json()["status"] == "valid"
    for suffix in ("/pass.json/", "/qr.svg/", "/nothing", "//"):
        r = cordee.get(link + suffix)
        assert r.status == 404, (suffix, r)
        assert secret not in r.body.decode(), (suffix, r)
    r = cordee.api("POST", link, {"x": 1})
    assert r.status == 404 and secret not in r.body.decode(), r
    marker = unique("/after-link-")
    cordee.get(marker)
    # Lines are written as the answers go: wait for the last one.
    deadline = time.monotonic() + 5
    while marker not in log_text(cordee) and time.monotonic() < deadline:
        time.sleep(0.05)
    text = log_text(cordee)
    assert marker in text
    assert secret not in text, [l for l in text.splitlines() if secret in l]
    assert "/p/(link)/(other)" in text


# --------------------------------------------------------------------------
# Sign-in behind a TLS proxy ([local] trusted_proxy)

PASSWORD = "a long enough password"


def staff_with_password(node, role="manager"):
    name = unique(f"{role} ")
    node.cli_ok("staff", "add", name, "--role", role)
    pw = node.dir / unique("password-")
    pw.write_text(PASSWORD + "\n")
    node.cli_ok("staff", "passwd", name, "--password-file", pw)
    pw.unlink()
    return name


def signin(node, name, password=PASSWORD, **headers):
    return node.api("POST", "/api/v1/signin", {"name": name, "password": password},
                    headers={k.replace("_", "-"): v for k, v in headers.items()})


def failures(node, scope, key):
    row = node.query_one("select failures from web_signin_failures"
                         " where scope = %s and key = %s", scope, key)
    return row[0] if row else 0


@pytest.fixture(scope="module")
def proxied(module_federation):
    """troquet behind a proxy on 127.0.0.1 (the tests play the proxy)."""
    fed = module_federation(config={"troquet": {"local": {"trusted_proxy": "127.0.0.1"}}})
    return fed["troquet"]


def test_behind_the_proxy_failures_count_for_the_forwarded_address(proxied):
    """Ten failures by one client through the proxy no longer slow down a
    colleague's sign-in through the same proxy."""
    node = proxied
    name = staff_with_password(node)
    for _ in range(12):
        r = signin(node, unique("nobody "), "wrong", X_Forwarded_For="10.0.0.1")
        assert r.status in (401, 429), r
    assert failures(node, "address", "10.0.0.1") >= 11
    assert failures(node, "address", "127.0.0.1") == 0
    assert signin(node, unique("nobody "), "wrong",
                  X_Forwarded_For="10.0.0.1").status == 429
    r = signin(node, name, X_Forwarded_For="10.0.0.2")
    assert r.status == 200, r
    assert node.query_one("select remote from web_sessions order by created_at desc"
                          " limit 1")[0] == "10.0.0.2"


def test_behind_the_proxy_only_the_last_forwarded_entry_counts(proxied):
    node = proxied
    # The entries before the last are the client's own words.
    signin(node, unique("nobody "), "wrong", X_Forwarded_For="10.9.9.9, 10.0.0.3")
    assert failures(node, "address", "10.0.0.3") == 1
    assert failures(node, "address", "10.9.9.9") == 0
    # An address is counted in one spelling, however the proxy writes it.
    signin(node, unique("nobody "), "wrong", X_Forwarded_For="10.0.0.3 ,2001:DB8:0::1")
    assert failures(node, "address", "2001:db8::1") == 1
    # Not a bare address: the proxy's own is counted.
    for bad in ("10.0.0.4:5555", "unknown", "", "10.0.0.4,", "10.0.0.300"):
        signin(node, unique("nobody "), "wrong", X_Forwarded_For=bad)
    assert failures(node, "address", "127.0.0.1") == 5
    # A sign-in clears the address's count, and the account's.
    name = staff_with_password(node)
    signin(node, name, "wrong", X_Forwarded_For="10.0.0.5")
    assert failures(node, "address", "10.0.0.5") == 1
    assert failures(node, "account", name) == 1
    assert signin(node, name, X_Forwarded_For="10.0.0.5").status == 200
    assert failures(node, "address", "10.0.0.5") == 0
    assert failures(node, "account", name) == 0
    assert signin(node, name).status == 200
    assert failures(node, "address", "127.0.0.1") == 0


def test_behind_the_proxy_https_makes_the_cookie_secure(proxied):
    node = proxied
    name = staff_with_password(node)
    r = signin(node, name, X_Forwarded_Proto="https")
    assert r.status == 200, r
    cookie = r.headers["set-cookie"]
    assert "; Secure" in cookie and "HttpOnly" in cookie, cookie
    r2 = node.api("POST", "/api/v1/signout",
                  headers={"Cookie": cookie.split(";")[0], "X-CSRF-Token": r.json()["csrf"],
                           "X-Forwarded-Proto": "https"})
    assert r2.status == 200 and "; Secure" in r2.headers["set-cookie"], r2
    for proto in ("http", "https, http", "httpsx"):
        r = signin(node, name, X_Forwarded_Proto=proto)
        assert r.status == 200 and "Secure" not in r.headers["set-cookie"], (proto, r)


def test_forwarded_headers_from_anyone_else_are_ignored(shared):
    """Without trusted_proxy, a client cannot choose the address its
    failures count for, nor a Secure cookie; and a sign-in clears the
    address's count (which every sign-in through a proxy shares)."""
    troquet = shared["troquet"]
    name = staff_with_password(troquet)
    before = failures(troquet, "address", "127.0.0.1")
    r = signin(troquet, unique("nobody "), "wrong", X_Forwarded_For="10.0.0.7")
    assert r.status == 401, r
    assert failures(troquet, "address", "10.0.0.7") == 0
    assert failures(troquet, "address", "127.0.0.1") == before + 1
    r = signin(troquet, name, X_Forwarded_For="10.0.0.7", X_Forwarded_Proto="https")
    assert r.status == 200, r
    assert "Secure" not in r.headers["set-cookie"], r.headers["set-cookie"]
    assert failures(troquet, "address", "127.0.0.1") == 0


# --------------------------------------------------------------------------
# CSV exports

def csv_rows(node, path):
    import csv
    import io
    r = node.get(path, token=node.staff_token("manager"))
    assert r.status == 200, r
    return list(csv.reader(io.StringIO(r.body.decode(), newline="")))


@pytest.mark.parametrize("full_name", ["-1+cmd|' /C calc'!A0", "+33 6 12 34 56 78",
                                       "@SUM(A1)", "=1+1", "-Dupont"])
def test_csv_cells_that_look_like_formulas_are_neutralised(shared, full_name):
    troquet, cordee = shared["troquet"], shared["cordee"]
    # The API, not the command line, which would read "-1..." as an option.
    r = cordee.api("POST", "/api/v1/members",
                   {"full_name": full_name, "display_name": "Formula F.", "tickets": 2},
                   token=cordee.staff_token("manager"))
    assert r.status in (200, 201), r
    token = cordee.issue_pass(r.json())
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert troquet.checkout(a["visit_id"]).status == 200
    rows = csv_rows(cordee, "/api/v1/visit-history.csv?side=home")
    head, row = rows[0], next(r for r in rows if r[0] == a["visit_id"])
    cells = dict(zip(head, row))
    assert cells["full_name"] == "'" + full_name, cells
    # Numbers stay numbers.
    assert cells["units"] == "1" and cells["unpaid_units"].lstrip("-").isdigit(), cells
    assert cells["rate_cents"].isdigit(), cells
    rows = csv_rows(troquet, "/api/v1/statement.csv")
    assert all(c.lstrip("-").isdigit() for r in rows[1:] for c in r[4:]), rows


# --------------------------------------------------------------------------
# The plan form

def plan_audits(node, member_id):
    return [r[0] for r in node.query("select detail from audit where action = 'member.plan'"
                                      " and subject = %s order by id", str(member_id))]


def test_a_cap_with_a_ticket_plan_is_refused_and_the_audit_says_what_was_stored(shared):
    cordee = shared["cordee"]
    token = cordee.staff_token("manager")
    m = cordee.add_member(tickets=2)
    path = f"/api/v1/members/{m['pseudonym']}/plan"
    r = cordee.api("POST", path, {"plan": "tickets", "roam_cap": 3}, token=token)
    assert r.status == 400 and r.json()["error"] == "bad_request", r
    assert "monthly" in r.json()["detail"] and "cap" in r.json()["detail"], r.json()
    assert plan_audits(cordee, m["id"]) == []
    r = cordee.api("POST", path, {"plan": "tickets", "roam_cap": None}, token=token)
    assert r.status == 200 and "roam_cap" not in r.json(), r
    r = cordee.api("POST", path, {"plan": "monthly", "valid_until": "2099-12-31",
                                  "roam_cap": 3}, token=token)
    assert r.status == 200 and r.json()["roam_cap"] == 3, r
    today = cordee.query_one("select valid_from::text from members where id = %s",
                             m["id"])[0]
    r = cordee.api("POST", path, {"plan": "tickets", "valid_from": "2099-01-01",
                                  "valid_until": "2099-12-31"}, token=token)
    assert r.status == 200, r
    assert plan_audits(cordee, m["id"]) == [
        "tickets", f"monthly {today}..2099-12-31 cap 3", "tickets"]
    rc, out, err = cordee.cli("member", "plan", m["pseudonym"], "--tickets", "--cap", "3")
    assert rc != 0 and "no monthly cap" in err, (rc, out, err)
