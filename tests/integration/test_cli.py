"""The command line: help, exit statuses, one-line errors, --json."""
import json

import pytest

from harness import unique, wait_until

COMMANDS = [
    "serve", "db migrate", "db status", "config check", "config reference",
    "member add", "member list", "member show", "member topup", "pass issue",
    "staff add", "staff list", "staff remove", "staff token", "visit checkin",
    "visit checkout", "visit list", "key generate", "directory sign", "directory show",
]


def run(fed, *args):
    return fed.passerelle(*args, check=False)


def test_help_lists_the_commands(fed):
    rc, out, err = run(fed, "--help")
    assert rc == 0, err
    for cmd in COMMANDS:
        assert f"  {cmd} " in out, f"'{cmd}' missing from --help:\n{out}"
    assert err == ""


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_has_help(fed, cmd):
    rc, out, err = run(fed, *cmd.split(), "--help")
    assert rc == 0, err
    assert out.startswith(f"usage: passerelle [-c FILE] {cmd}"), out
    assert "--json" in out


def test_unknown_command(fed):
    rc, out, err = run(fed, "frobnicate")
    assert rc == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and "frobnicate" in err, err


def test_no_command_is_usage(fed):
    rc, out, err = run(fed)
    assert rc == 2 and "usage:" in err


def test_topup_needs_a_number(fed):
    cordee = fed["cordee"]
    m = cordee.add_member(tickets=1)
    for bad in ("notanumber", "-3", "0", "1.5", "99999999999"):
        rc, out, err = cordee.cli("member", "topup", m["email"], bad)
        assert rc == 2, (bad, rc, err)
        assert len(err.splitlines()) == 1, err
    assert cordee.balance(m) == (1, 1)


def test_unknown_option_is_usage(fed):
    rc, out, err = fed["cordee"].cli("member", "list", "--frobnicate")
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err


def test_config_check_reports_every_error_with_its_line(fed, tmp_path):
    troquet = fed["troquet"]
    good = troquet.conf.read_text().splitlines()
    lines = list(good)
    node = lines.index("[node]")
    lines.insert(node + 1, "frobnicate = 1")              # unknown option
    visit_at = len(lines) + 1
    lines += ["[visit]", "peer_timeout = soon"]           # bad value
    limits_at = len(lines) + 1
    lines += ["[limits]", "max_json_depth = 100000"]      # out of range
    bad = troquet.dir / "bad.conf"
    bad.write_text("\n".join(lines) + "\n")

    rc, out, err = troquet.fed.passerelle("-c", bad, "config", "check", check=False)
    assert rc != 0
    assert f"{bad}:{node + 2}: " in err and "frobnicate" in err, err
    assert f"{bad}:{visit_at + 1}: " in err and "peer_timeout" in err, err
    assert f"{bad}:{limits_at + 1}: " in err and "max_json_depth" in err, err
    for line in err.splitlines():
        assert line.startswith(("passerelle:", f"{bad}:")), line


def test_config_check_unknown_section_and_missing_required(fed):
    troquet = fed["troquet"]
    bad = troquet.dir / "bad2.conf"
    text = troquet.conf.read_text().replace("space_id = troquet\n", "")
    bad.write_text(text + "[nonsense]\nx = 1\n")
    rc, out, err = troquet.fed.passerelle("-c", bad, "config", "check", check=False)
    assert rc != 0
    assert "space_id is required" in err, err
    n = len(text.splitlines())
    assert f"{bad}:{n + 2}: unknown section [nonsense]" in err, err


def test_config_check_good(fed):
    for node in fed.nodes.values():
        rc, out, err = node.cli("config", "check")
        assert rc == 0, err
        assert f"space {node.id}" in out and "serial 1" in out


def test_config_check_wrong_certificate(fed):
    """The configuration names troquet but holds cordee's certificate."""
    troquet, cordee = fed["troquet"], fed["cordee"]
    bad = troquet.dir / "bad3.conf"
    bad.write_text(troquet.conf.read_text().replace(
        "cert = node.crt", f"cert = {cordee.dir / 'node.crt'}").replace(
        "key = node.key", f"key = {cordee.dir / 'node.key'}"))
    rc, out, err = troquet.fed.passerelle("-c", bad, "config", "check", check=False)
    assert rc != 0
    assert "cordee" in err, err


def test_visit_checkin_garbage(fed):
    rc, out, err = fed["troquet"].cli("visit", "checkin", "GARBAGE")
    assert rc == 3, (rc, out, err)
    assert "malformed" in err and len(err.splitlines()) == 1, err
    assert "REFUSED" in out


def test_visit_checkin_and_checkout_from_the_cli(fed):
    troquet, cordee = fed["troquet"], fed["cordee"]
    member, token = cordee.member_with_pass(full_name="Alix Bernard", tickets=2)
    rc, out, err = troquet.cli("visit", "checkin", token, "--json")
    assert rc == 0, err
    a = json.loads(out)
    assert a["decision"] == "admit" and a["display_name"] == "Alix B.", a
    rc, out, err = troquet.cli("visit", "list", "--present", "--json")
    assert rc == 0, err
    assert a["visit_id"] in {v["visit_id"] for v in json.loads(out)}
    rc, out, err = troquet.cli("visit", "checkout", a["visit_id"], "--json")
    assert rc == 0, err
    assert json.loads(out)["units"] == 1
    rc, out, err = troquet.cli("visit", "checkout", "not-a-visit")
    assert rc != 0 and len(err.splitlines()) == 1, err
    assert cordee.balance(member) == (1, 1)


def test_db_status_json(fed):
    rc, out, err = fed["troquet"].cli("db", "status", "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert s["latest"] >= 1
    assert s["embedded"] is False
    rc, out, err = fed["troquet"].cli("db", "status")
    assert rc == 0 and "up to date" in out, (out, err)
    rc, out, err = fed["troquet"].cli("db", "migrate", "--json")
    assert rc == 0, err
    assert json.loads(out) == {"applied": 0}


def test_a_new_database_is_not_taken_for_an_empty_one(federation):
    """A migration that analyzes a table of a new database records it as
    known to be empty (reltuples 0, against -1 for a table never analyzed),
    and PostgreSQL then plans a sequential scan of it for as long as the
    statement stays prepared, whatever the table grows to: the home read
    every visit it held at each check-in until autovacuum analyzed
    home_visits.  The migrations leave empty tables unanalyzed."""
    f = federation()
    for node in (f["troquet"], f["cordee"]):
        rows = dict(node.query(
            "select relname, reltuples from pg_class where relname in"
            " ('home_visits', 'host_visits', 'ticket_movements', 'members')"))
        assert rows == {"home_visits": -1, "host_visits": -1,
                        "ticket_movements": -1, "members": -1}, (node.id, rows)


def test_db_status_json_names_the_current_version(fed):
    rc, out, err = fed["troquet"].cli("db", "status", "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert s.get("current") == s["latest"], s


def test_json_outputs_parse(fed):
    cordee = fed["cordee"]
    m = cordee.add_member(tickets=3)
    for args in (("member", "list"), ("member", "show", m["email"]),
                 ("directory", "show"), ("staff", "add", unique("json "), "--role",
                                         "manager")):
        rc, out, err = cordee.cli(*args, "--json")
        assert rc == 0, (args, err)
        json.loads(out)


def test_member_refs_never_look_like_options(fed):
    """Pseudonyms and pass ids are given to commands as arguments: none may
    start with '-' (one random base64url id in 64 did)."""
    cordee = fed["cordee"]
    token = cordee.staff_token("manager")
    ids = []
    for i in range(40):
        r = cordee.api("POST", "/api/v1/members", {"full_name": f"Id Check {i}",
                                                   "tickets": 1}, token=token)
        assert r.status == 201, r
        p = cordee.api("POST", f"/api/v1/members/{r.json()['pseudonym']}/passes",
                       token=token)
        assert p.status == 201, p
        ids += [r.json()["pseudonym"], p.json()["jti"]]
    bad = [i for i in ids if i.startswith("-")]
    assert not bad, bad
    m = cordee.add_member(tickets=1)
    rc, out, err = cordee.cli("member", "show", m["pseudonym"], "--json")
    assert rc == 0, err
    assert json.loads(out)["id"] == m["id"]


def test_member_show_unknown(fed):
    rc, out, err = fed["cordee"].cli("member", "show", "nobody@example.org")
    assert rc == 1
    assert len(err.splitlines()) == 1 and "nobody@example.org" in err, err


def test_cannot_reach_database(fed, tmp_path):
    troquet = fed["troquet"]
    bad = troquet.dir / "nodb.conf"
    bad.write_text(troquet.conf.read_text().replace(
        f"database = {fed.pg.url(troquet.dbname)}",
        f"database = postgresql:///nope?host={tmp_path}&user=postgres"))
    rc, out, err = troquet.fed.passerelle("-c", bad, "member", "list", check=False)
    assert rc == 1
    assert len(err.splitlines()) == 1 and "PostgreSQL" in err, err


def test_key_generate_refuses_to_overwrite_the_public_file(fed, tmp_path):
    """An existing --public file, or --public naming FILE itself, is refused
    before anything is made, and nothing is removed."""
    pub = tmp_path / "p.pub"
    pub.write_text("keep me\n")
    rc, out, err = run(fed, "key", "generate", tmp_path / "k.key", "--public", pub)
    assert rc == 1, (rc, err)
    assert len(err.splitlines()) == 1 and "exists already" in err, err
    assert pub.read_text() == "keep me\n"
    assert not (tmp_path / "k.key").exists()

    same = tmp_path / "same.key"
    for spelt in (same, tmp_path / "." / "same.key"):
        rc, out, err = run(fed, "key", "generate", same, "--public", spelt)
        assert rc == 1, (rc, err)
        assert len(err.splitlines()) == 1 and "private key file" in err, err
        assert not same.exists()

    rc, out, err = run(fed, "key", "generate", same, "--public", tmp_path / "same.pub")
    assert rc == 0, err
    assert "PRIVATE KEY" in same.read_text()
    assert "PUBLIC KEY" in (tmp_path / "same.pub").read_text()


def test_config_check_pass_key_the_directory_does_not_list(fed):
    """A key or kid the directory does not list for this space would sign
    passes every node refuses as altered: config check says which."""
    troquet = fed["troquet"]
    other = troquet.dir / "other-pass.key"
    if not other.exists():
        fed.passerelle("key", "generate", other)
    good = troquet.conf.read_text()

    wrong_key = troquet.dir / "wrong-key.conf"
    wrong_key.write_text(good.replace("key = pass.key", f"key = {other}"))
    rc, out, err = fed.passerelle("-c", wrong_key, "config", "check", check=False)
    assert rc == 1, (rc, out, err)
    assert len(err.splitlines()) == 1, err
    assert f"{other} does not match the key directory serial" in err, err
    assert f"under {troquet.kid}" in err, err

    for kid in ("troquet-9", fed["cordee"].kid):
        wrong_kid = troquet.dir / "wrong-kid.conf"
        wrong_kid.write_text(good.replace(f"kid = {troquet.kid}", f"kid = {kid}"))
        rc, out, err = fed.passerelle("-c", wrong_kid, "config", "check", check=False)
        assert rc == 1, (rc, out, err)
        assert len(err.splitlines()) == 1, err
        assert f"pass key kid {kid} is not in directory serial" in err, err
        assert "for space troquet" in err, err


@pytest.mark.parametrize("args", [
    ("house", "close", "2026-02-30"),
    ("house", "close", "2026-02-30", "--reason", "x"),
    ("house", "reopen", "2026-13-01"),
    ("house", "hours", "mon", "25:00-26:00"),
    ("house", "hours", "mon", "19:00-09:00"),
    ("house", "hours", "mon", "09:60-10:00"),
])
def test_house_bad_dates_and_hours_are_one_line(fed, args):
    """No "query failed" log line before the command's error, and nothing
    changed."""
    troquet = fed["troquet"]
    before = troquet.cli_ok("house", "show", "--json")
    rc, out, err = troquet.cli(*args)
    assert rc == 1, (args, rc, out, err)
    assert len(err.splitlines()) == 1 and err.startswith("passerelle: "), err
    assert troquet.cli_ok("house", "show", "--json") == before


def test_db_status_of_a_newer_database(federation):
    """A database newer than the binary is not "up to date": exit 1."""
    f = federation(spaces=("troquet",))
    troquet = f["troquet"]
    troquet.stop()
    latest = json.loads(troquet.cli_ok("db", "status", "--json"))["latest"]
    troquet.db().execute("insert into schema_migrations (version, name) values (%s, 'future')",
                         (latest + 1,))
    rc, out, err = troquet.cli("db", "status")
    assert rc == 1, (rc, out, err)
    assert "up to date" not in out, out
    assert f"schema version {latest + 1} of {latest}" in out, out
    assert "newer than this passerelle" in out, out
    rc, out, err = troquet.cli("db", "status", "--json")
    assert rc == 1, (rc, out, err)
    assert json.loads(out)["current"] == latest + 1
    troquet.db().execute("delete from schema_migrations where version = %s", (latest + 1,))


def test_outbox_retry_of_an_unknown_or_delivered_message(fed):
    troquet, cordee = fed["troquet"], fed["cordee"]
    rc, out, err = troquet.cli("outbox", "retry", "999999999")
    assert rc == 1, (rc, out, err)
    assert err == "passerelle: no message 999999999 in the outbox\n", err

    member, token = cordee.member_with_pass(tickets=2)
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert troquet.checkout(a["visit_id"]).status == 200
    wait_until(lambda: troquet.query_one(
        "select count(*) from outbox where visit_id = %s and delivered_at is null",
        a["visit_id"]) == (0,), timeout=10, what="the outbox to deliver")
    (mid,) = troquet.query_one("select max(id) from outbox where visit_id = %s",
                               a["visit_id"])
    assert mid is not None
    rc, out, err = troquet.cli("outbox", "retry", str(mid))
    assert rc == 1, (rc, out, err)
    assert err == f"passerelle: message {mid} was delivered already\n", err
    troquet.cli_ok("outbox", "retry")
