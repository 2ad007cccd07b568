"""Staff accounts on the command line: list, remove, a new token."""
import json
import time

from harness import unique


def add(node, role="concierge"):
    """A new account: (name, token)."""
    name = unique(f"{role} ")
    token = node.cli_ok("staff", "add", name, "--role", role).strip()
    assert token.startswith("pst_"), token
    return name, token


def listed(node):
    return {a["name"]: a for a in json.loads(node.cli_ok("staff", "list", "--json"))}


def can_read_visits(node, token):
    r = node.get("/api/v1/visits", token=token)
    assert r.status in (200, 401), r
    return r.status == 200


def refused(node, token):
    """The token is refused.  A worker that has it cached hears of the
    change by a notification that PostgreSQL sends as the change commits;
    on a busy machine it may come a few milliseconds after the command has
    returned, so the first refusal may take up to a second."""
    deadline = time.monotonic() + 1.0
    while can_read_visits(node, token):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_list_shows_the_accounts_without_their_hashes(shared):
    troquet = shared["troquet"]
    desk, _ = add(troquet, "concierge")
    boss, _ = add(troquet, "manager")
    pw = troquet.dir / "staff-list-password"
    pw.write_text("a long enough password\n")
    troquet.cli_ok("staff", "passwd", boss, "--password-file", pw)

    accounts = listed(troquet)
    assert accounts[desk]["role"] == "concierge"
    assert accounts[desk]["password_set"] is False
    assert accounts[boss]["role"] == "manager"
    assert accounts[boss]["password_set"] is True
    for a in accounts.values():
        assert set(a) == {"name", "role", "created_at", "password_set"}, a
        assert a["created_at"].endswith("Z"), a

    out = troquet.cli_ok("staff", "list")
    assert out.startswith("NAME"), out
    assert desk in out and boss in out, out
    hashes = [h for (h,) in troquet.query("select token_hash from staff")]
    hashes += [h for (h,) in troquet.query("select password_hash from staff"
                                           " where password_hash is not null")]
    for h in hashes:
        assert h not in out, "a hash was printed"


def test_new_token_replaces_the_old_one_at_once(shared):
    troquet = shared["troquet"]
    name, old = add(troquet, "concierge")
    assert can_read_visits(troquet, old)

    new = troquet.cli_ok("staff", "token", name).strip()
    assert new.startswith("pst_") and new != old, new
    assert len(new.splitlines()) == 1
    assert can_read_visits(troquet, new)
    assert refused(troquet, old)
    assert listed(troquet)[name]["role"] == "concierge"

    again = json.loads(troquet.cli_ok("staff", "token", name, "--json"))
    assert again["name"] == name and again["role"] == "concierge", again
    assert again["token"].startswith("pst_") and again["token"] != new
    assert refused(troquet, new)
    assert can_read_visits(troquet, again["token"])
    assert troquet.query_one(
        "select count(*) from audit where action = 'staff.token' and subject = %s"
        " and actor = 'cli'", name) == (2,)


def test_remove_ends_the_token_and_the_web_sessions(shared):
    troquet = shared["troquet"]
    name, token = add(troquet, "manager")
    pw = troquet.dir / "staff-remove-password"
    pw.write_text("another long password\n")
    troquet.cli_ok("staff", "passwd", name, "--password-file", pw)
    r = troquet.api("POST", "/api/v1/signin",
                    {"name": name, "password": "another long password"})
    assert r.status == 200, r
    cookie = r.headers["set-cookie"].split(";")[0]
    assert troquet.api("GET", "/api/v1/session",
                       headers={"Cookie": cookie}).status == 200
    assert can_read_visits(troquet, token)

    rc, out, err = troquet.cli("staff", "remove", name)
    assert rc == 0, err
    assert name in out
    assert refused(troquet, token)
    assert troquet.api("GET", "/api/v1/session",
                       headers={"Cookie": cookie}).status == 401
    assert name not in listed(troquet)
    assert name not in troquet.cli_ok("staff", "list")
    assert troquet.query_one(
        "select actor, detail from audit where action = 'staff.remove'"
        " and subject = %s", name) == ("cli", "manager")

    # The name is free again, for a new account with a new token.
    fresh = troquet.cli_ok("staff", "add", name).strip()
    assert listed(troquet)[name]["role"] == "concierge"
    assert can_read_visits(troquet, fresh)
    assert not can_read_visits(troquet, token)


def test_remove_json(shared):
    troquet = shared["troquet"]
    name, _ = add(troquet, "admin")
    out = json.loads(troquet.cli_ok("staff", "remove", name, "--json"))
    assert out == {"name": name, "role": "admin", "removed": True}, out


def test_unknown_account_is_a_clear_error(shared):
    troquet = shared["troquet"]
    before = listed(troquet)
    for cmd in ("remove", "token"):
        rc, out, err = troquet.cli("staff", cmd, "Nobody Here")
        assert rc == 1, (cmd, rc, err)
        assert out == ""
        assert len(err.splitlines()) == 1, err
        assert "no staff account named 'Nobody Here'" in err, err
    assert listed(troquet) == before


def test_usage_errors(shared):
    troquet = shared["troquet"]
    for args in (("remove",), ("token",), ("remove", "a", "b"), ("list", "extra")):
        rc, out, err = troquet.cli("staff", *args)
        assert rc == 2, (args, rc, err)
        assert len(err.splitlines()) == 1, err


def test_names_are_printed_as_json_strings(shared):
    """A name with quotes stays valid JSON in every staff command."""
    troquet = shared["troquet"]
    name = unique('Dany "the desk" ')
    added = json.loads(troquet.cli_ok("staff", "add", name, "--json"))
    assert added["name"] == name
    assert json.loads(troquet.cli_ok("staff", "token", name, "--json"))["name"] == name
    assert name in listed(troquet)
    troquet.cli_ok("staff", "remove", name)


def test_every_worker_forgets_a_removed_token(shared):
    """A node's workers keep the tokens they have checked (node/staff.c);
    a removed or replaced one is refused by all of them from the next
    request on, not after some expiry."""
    troquet = shared["troquet"]
    name, token = add(troquet, "concierge")
    # Enough requests, on new connections, for every worker to have it.
    for _ in range(40):
        assert can_read_visits(troquet, token)
    new = troquet.cli_ok("staff", "token", name).strip()
    assert refused(troquet, token)
    assert [can_read_visits(troquet, token) for _ in range(40)] == [False] * 40
    for _ in range(40):
        assert can_read_visits(troquet, new)
    troquet.cli_ok("staff", "remove", name)
    assert refused(troquet, new)
    assert [can_read_visits(troquet, new) for _ in range(40)] == [False] * 40


def test_duplicate_name_is_one_line(shared):
    troquet = shared["troquet"]
    name, _ = add(troquet)
    rc, out, err = troquet.cli("staff", "add", name, "--role", "concierge")
    assert rc == 1, (rc, out, err)
    assert err.splitlines() == [f"passerelle: a staff account named '{name}' exists already"], err
