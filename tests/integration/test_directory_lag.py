"""Directories that change under running nodes: one that expires while a
node runs, a restart whose newest saved directory has expired, and a peer
that signs with a key the other side's directory does not list yet (a key
rotation seen before the new directory is fetched).  Whatever the lag, no
visit is left open at one side and closed at the other."""
import json
import shutil
import signal
import time

from harness import jws_parts, load_ed25519_private, make_jws, wait_until


def utc(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def resign(f, path, mutate):
    """The federation's directory, changed by mutate(payload) and signed
    by its coordinator, written to path."""
    header, payload, _ = jws_parts(f.directory_jws.read_text().strip())
    payload = json.loads(payload)
    mutate(payload)
    path.write_text(make_jws(header, payload, load_ed25519_private(f.coordinator_key))
                    + "\n")
    return path


def serial_of(node):
    return node.get("/healthz").json()["directory_serial"]


def wait_serial(node, serial):
    wait_until(lambda: serial_of(node) == serial, timeout=15, interval=0.2,
               what=f"{node.id} to hold directory serial {serial}")


def later_urls(f, path, *nodes):
    """Each node polls path (file:) for newer directories, on SIGHUP."""
    for node in nodes:
        node.overrides = {"federation": {"directory_urls": f"file://{path}",
                                         "directory_refresh": "3600"}}
        node.write_config()


def switch_key(node):
    conf = node.conf.read_text().replace("key = pass.key", "key = pass-2.key")
    node.conf.write_text(conf.replace(f"kid = {node.id}-1", f"kid = {node.id}-2"))
    node.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: f"pass-signing key {node.id}-2 loaded".encode()
               in node.log.read_bytes(), timeout=10, what=f"{node.id}'s new key")


def test_a_directory_that_expires_while_running_is_trusted_no_more(federation):
    f = federation(start=False)
    expires = int(time.time()) + 25
    resign(f, f.directory_jws, lambda p: p.update(expires_at=utc(expires)))
    for node in f.nodes.values():
        shutil.copy(f.directory_jws, node.dir / "directory.jws")
    later = f.dir / "later.jws"
    later_urls(f, later, f["cordee"])   # troquet hears of directories from peers only
    f.start()
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert troquet.checkout(a["visit_id"]).status == 200
    wait_until(lambda: time.time() > expires + 1, timeout=40, interval=0.5,
               what="the directory to expire")

    # The desk is told why, and nothing is recorded.
    visits = troquet.query_one("select count(*) from host_visits")
    a = troquet.checkin(token).json()
    assert (a["decision"], a["reason_code"]) == ("refuse", "directory_expired"), a
    assert troquet.query_one("select count(*) from host_visits") == visits
    # The home refuses every peer, and says why.
    r = cordee.fed_request(troquet, "GET", "/federation/v1/ping")
    assert r.status == 503 and r.json()["error"] == "directory_expired", r
    # Health and metrics show it.
    h = troquet.get("/healthz")
    assert h.status == 503 and h.json()["directory"] == "expired", h.json()
    metrics = troquet.get("/metrics").body.decode()
    assert "passerelle_directory_expires_seconds -" in metrics
    assert b"has expired: this node trusts no space" in troquet.log.read_bytes()

    # The coordinator's next directory restores trust at once: cordee polls
    # it, and troquet fetches it from cordee (whom its expired directory
    # pins) as soon as cordee calls it.
    resign(f, later, lambda p: p.update(serial=2, expires_at=utc(time.time() + 86400)))
    cordee.proc.send_signal(signal.SIGHUP)
    wait_serial(cordee, 2)
    wait_serial(troquet, 2)
    assert troquet.get("/healthz").json()["directory"] == "ok"
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert cordee.balance(member) == (8, 8)


def test_a_restart_does_not_roll_back_to_an_older_directory(federation):
    """The newest saved directory has expired, the configured file (an older
    serial) has not: the node refuses to start rather than trust the older
    one (which may list a space the newer one removed)."""
    f = federation(start=False)
    later = f.dir / "later.jws"
    later_urls(f, later, f["troquet"])
    f.start()
    troquet = f["troquet"]
    expires = int(time.time()) + 12
    resign(f, later, lambda p: p.update(
        serial=2, expires_at=utc(expires),
        spaces=[s for s in p["spaces"] if s["id"] != "cordee"]))
    troquet.proc.send_signal(signal.SIGHUP)
    wait_serial(troquet, 2)
    assert troquet.stop() == 0
    wait_until(lambda: time.time() > expires + 1, timeout=30, interval=0.5,
               what="serial 2 to expire")
    try:
        troquet.start()
        started = True
    except AssertionError as e:
        started = False
        assert "rollback" in str(e), str(e)[-800:]
    assert not started, "the node went back to directory serial 1"


def test_a_receipt_signed_with_a_key_not_yet_known_is_undone_at_home(federation):
    """The home signs with a key the host's directory does not list (its
    new key, before the directory that lists it reaches the host; here a
    key no directory lists, so that the host cannot catch up meanwhile):
    the host cannot honour the admission, so it is voided at home and the
    ticket comes back."""
    f = federation()
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=5)
    f.passerelle("key", "generate", cordee.dir / "pass-2.key",
                 "--public", cordee.dir / "pass-2.pub")
    switch_key(cordee)

    a = troquet.checkin(token).json()
    assert (a["decision"], a["reason_code"]) == ("refuse", "bad_receipt"), a
    assert "does not know yet" in a["reason"]
    assert a.get("tickets_left", -1) == -1, a
    wait_until(lambda: cordee.query_one(
        "select checked_out_at is not null, units from home_visits"
        " where visit_id = %s", a["visit_id"]) == (True, 0),
        timeout=30, interval=0.3, what="the home's admission to be voided")
    assert cordee.balance(member) == (5, 5)
    assert troquet.query_one("select status from host_visits where visit_id = %s",
                             a["visit_id"]) == ("refused",)

    # Once the home signs with a key the host knows, the member is admitted.
    conf = cordee.conf.read_text().replace("key = pass-2.key", "key = pass.key")
    cordee.conf.write_text(conf.replace("kid = cordee-2", "kid = cordee-1"))
    cordee.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: cordee.log.read_bytes().count(b"pass-signing key cordee-1 loaded")
               >= 1, timeout=10, what="cordee's first key again")
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert cordee.balance(member) == (4, 4)


def test_a_completion_signed_with_a_key_not_yet_known_is_sent_again(federation):
    """The host signs its check-out with a key the home's directory does not
    list yet: the home answers "not yet" (503 unknown_key), and the host's
    outbox sends it again, instead of giving up, until the home holds the
    directory that lists the key."""
    f = federation(start=False)
    later = f.dir / "later.jws"
    later_urls(f, later, *f.nodes.values())
    f.start()
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=5)
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    f.passerelle("key", "generate", troquet.dir / "pass-2.key",
                 "--public", troquet.dir / "pass-2.pub")
    switch_key(troquet)

    assert troquet.checkout(a["visit_id"]).status == 200
    wait_until(lambda: "unknown_key" in (troquet.query_one(
        "select coalesce(last_error, '') from outbox where kind = 'complete'")[0]),
        timeout=20, interval=0.3, what="the home to answer unknown_key")
    assert troquet.query_one("select failed_at, delivered_at from outbox"
                             " where kind = 'complete'") == (None, None)
    assert cordee.query_one("select checked_out_at from home_visits where"
                            " visit_id = %s", a["visit_id"]) == (None,)

    # The coordinator's directory that lists the key reaches both nodes.
    desc = {"federation": "passerelle-tests", "serial": 2, "valid_days": 30,
            "spaces": [n.description() for n in f.nodes.values()]}
    for sp in desc["spaces"]:
        if sp["id"] == "troquet":
            sp["pass_keys"].append({"kid": "troquet-2", "public_key": "troquet/pass-2.pub"})
    (f.dir / "directory-2.json").write_text(json.dumps(desc))
    f.passerelle("directory", "sign", f.dir / "directory-2.json",
                 "--key", f.coordinator_key, "--output", later)
    for node in (troquet, cordee):
        node.proc.send_signal(signal.SIGHUP)
        wait_serial(node, 2)
    wait_until(lambda: cordee.query_one(
        "select checked_out_at is not null from home_visits where visit_id = %s",
        a["visit_id"]) == (True,), timeout=60, interval=0.3,
        what="the check-out to reach the home")
    assert troquet.query_one("select failed_at is null, delivered_at is not null"
                             " from outbox where kind = 'complete'") == (True, True)
    # The member is free again, at home too.
    assert cordee.checkin(token).json()["decision"] == "admit"
