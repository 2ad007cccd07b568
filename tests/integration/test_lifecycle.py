"""The daemon's life: restarts lose nothing, SIGTERM lets requests in flight
finish, SIGHUP does not stop it, and with no database configured it runs
its own embedded PostgreSQL."""
import contextlib
import json
import signal
import threading
import time

import pytest

from harness import wait_until


def test_restart_keeps_open_visits(federation):
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=5)
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a

    assert troquet.stop() == 0
    assert cordee.stop() == 0
    troquet.start()
    cordee.start()

    r = troquet.get("/api/v1/visits", token=troquet.staff_token())
    assert a["visit_id"] in {v["visit_id"] for v in r.json()["visits"]}
    # Still checked in as far as the home knows, with the same balance.
    b = troquet.checkin(token).json()
    assert b["reason_code"] == "already_checked_in", b
    r = troquet.checkout(a["visit_id"])
    assert r.status == 200 and r.json()["units"] == 1, r
    wait_until(lambda: cordee.query_one(
        "select units from home_visits where visit_id = %s", a["visit_id"]) == (1,),
        timeout=10, what="the check-out at home")
    assert cordee.balance(member) == (4, 4)


def test_sigterm_lets_a_request_in_flight_finish(federation):
    f = federation(config={"troquet": {"visit": {"peer_timeout": "1500ms"}}})
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=5)
    answers = []

    def desk():
        with contextlib.suppress(OSError):
            answers.append(troquet.checkin(token, timeout=4))

    cordee.proc.send_signal(signal.SIGSTOP)
    try:
        t = threading.Thread(target=desk)
        t.start()
        # The check-in is waiting for the frozen home when the stop comes.
        wait_until(lambda: troquet.query_one(
            "select count(*) from host_visits where status = 'pending'") == (1,),
            timeout=5, what="the check-in to reach the home")
        troquet.proc.send_signal(signal.SIGTERM)
        t.join(timeout=10)
    finally:
        cordee.proc.send_signal(signal.SIGCONT)
    # Bounded: a node that hangs is killed here, not by the fixture.
    rc = troquet.stop(timeout=3)
    assert len(answers) == 1, "the front desk got no answer"
    assert answers[0].status == 200, answers[0]
    assert answers[0].json()["reason_code"] == "home_unreachable"
    assert rc == 0, f"exit status {rc} (None: did not stop within 3 s of the answer)"
    assert troquet.query_one("select count(*) from host_visits where status = 'pending'"
                             ) == (0,)


def test_sighup_does_not_stop_the_node(federation):
    f = federation(spaces=("troquet",))
    troquet = f["troquet"]
    try:
        troquet.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: b"SIGHUP" in troquet.log.read_bytes(), timeout=5,
                   what="the node to take the SIGHUP")
        assert troquet.proc.poll() is None
        assert troquet.get("/healthz").status == 200
        assert troquet.get("/nothing").status == 404  # a request that is logged
    finally:
        rc = troquet.stop()
    assert rc == 0
    log = troquet.log.read_bytes().decode(errors="replace")
    after = log.split("SIGHUP", 1)[1].splitlines()[1:]
    assert after, "nothing logged after the SIGHUP"
    for line in after:
        assert line.split(" ")[1] == "troquet", line


def test_start_fails_clearly_on_a_bad_listen_address(federation):
    f = federation(spaces=("troquet",))
    troquet = f["troquet"]
    bad = troquet.dir / "bad-listen.conf"
    bad.write_text(troquet.conf.read_text().replace(
        f"127.0.0.1:{troquet.fed_port}", "256.0.0.1:1"))
    rc, out, err = f.passerelle("-c", bad, "serve", check=False, timeout=20)
    assert rc != 0
    assert "256.0.0.1" in err, err


def test_embedded_postgresql_by_default(federation):
    """No [node] database: the node creates and runs its own PostgreSQL
    under data_dir (as an unprivileged user when run as root)."""
    f = federation(spaces=("troquet",), config={"troquet": {"node": {"database": ""}}},
                   start=False)
    troquet = f["troquet"]
    f.env["PASSERELLE_PG_NOSYNC"] = "1"
    troquet.start()
    r = troquet.get("/healthz")
    assert r.json()["database"] == "ok", r
    rc, out, err = troquet.cli("db", "status", "--json")
    assert rc == 0, err
    assert json.loads(out)["embedded"] is True
    assert (troquet.dir / "data" / "pg").is_dir()
    member = json.loads(troquet.cli_ok("member", "add", "Eden Roux", "--tickets", "2",
                                       "--json"))
    assert member["tickets"] == 2
    assert troquet.stop() == 0
    # It stopped its PostgreSQL with it, and finds its data again.
    troquet.start()
    rc, out, err = troquet.cli("member", "list", "--json")
    assert rc == 0, err
    assert [m["full_name"] for m in json.loads(out)] == ["Eden Roux"]


def test_unlisted_pass_key_is_warned_about_at_start_and_on_sighup(federation):
    """Not refused (the directory listing a rotated key may come a little
    later), but the log says that passes signed now will be refused."""
    f = federation(spaces=("troquet",))
    troquet = f["troquet"]
    f.passerelle("key", "generate", troquet.dir / "pass-2.key")
    good = troquet.conf.read_text()
    warning = b"passes signed now will be refused until the directory lists the key"
    assert warning not in troquet.log.read_bytes()

    troquet.conf.write_text(good.replace("kid = troquet-1", "kid = troquet-2").replace(
        "key = pass.key", "key = pass-2.key"))
    troquet.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b"pass-signing key troquet-2 loaded" in troquet.log.read_bytes(),
               timeout=5, what="the node to load the new key")
    wait_until(lambda: b"SIGHUP: pass key kid troquet-2 is not in directory serial 1"
               b" for space troquet: " + warning in troquet.log.read_bytes(),
               timeout=5, what="the warning on SIGHUP")
    assert troquet.proc.poll() is None

    # The listed kid with another key: warned at start, and the node runs.
    assert troquet.stop() == 0
    troquet.conf.write_text(good.replace("key = pass.key", "key = pass-2.key"))
    size = troquet.log.stat().st_size
    troquet.start()
    started = troquet.log.read_bytes()[size:]
    assert b"pass-2.key does not match the key directory serial 1 lists under troquet-1: " \
        + warning in started, started.decode(errors="replace")

    # The listed key: no warning.
    assert troquet.stop() == 0
    troquet.conf.write_text(good)
    size = troquet.log.stat().st_size
    troquet.start()
    troquet.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b"pass-signing key troquet-1 loaded" in troquet.log.read_bytes()[size:],
               timeout=5, what="the node to reload its key")
    assert warning not in troquet.log.read_bytes()[size:]
