"""Growing the federation with nobody stopping: a space is admitted with the
coordinator's commands while the others run, then removed; older and forged
directories are refused; a pass-signing key rotates; the map exports.

The federation here is made as a coordinator and new spaces make it:
`federation init`, `init`, `federation admit`, `join` (docs/coordinating.md).
Nodes poll the coordinator's published directory (file://) every 5 s and
learn from their peers' Passerelle-Directory-Serial; no node is restarted.
"""
import http.client
import json
import shutil
import signal
import ssl
import time

import pytest

from harness import Federation, Node, jws_parts, tail, wait_until

COORDS = {"troquet": (45.5866, 5.2794), "cordee": (45.7640, 4.8357),
          "grenoble": (45.1885, 5.7245)}


class Coordinated:
    """A Federation whose coordinator folder comes from `federation init`."""

    def __init__(self, pg, binary):
        self.f = Federation(pg, binary, spaces=())
        self.coord = self.f.dir / "coordinator"
        self.f.passerelle("federation", "init", self.coord, "--name", "live-test")
        self.f.coordinator_pub = self.coord / "signing" / "directory.pub"
        self.f.directory_jws = self.coord / "directory.jws"

    def __getitem__(self, space):
        return self.f.nodes[space]

    def serial(self):
        return self.f.directory()["serial"]

    def admit(self, space, start=True):
        f = self.f
        node = Node(f, space)
        f.nodes[space] = node
        lat, lon = COORDS.get(space, (45.0, 5.0))
        f.passerelle("init", node.dir, "--id", space, "--name", node.name,
                     "--city", node.city, "--url", f"https://127.0.0.1:{node.fed_port}",
                     "--dns", f"{space}.localhost", "--ip", "127.0.0.1",
                     "--listen", f"127.0.0.1:{node.fed_port}",
                     "--local-listen", f"127.0.0.1:{node.local_port}",
                     "--lat", str(lat), "--lon", str(lon), "--capacity", "25",
                     "--directory-url", f"file://{self.f.directory_jws}")
        f.passerelle("federation", "admit", node.dir / "join-request.json",
                     "--federation", self.coord, "--bundle", node.dir / "bundle.json")
        f.passerelle("-c", node.conf, "join", node.dir / "bundle.json")
        with open(node.conf, "a") as conf:
            conf.write(f"\n[node]\ndatabase = {f.pg.url(node.dbname)}\n"
                       "timezone = Europe/Paris\n"
                       "[federation]\ndirectory_refresh = 5s\n"
                       "[visit]\npeer_timeout = 2s\n"
                       "[limits]\nworkers = 4\n")
        f.pg.create_database(node.dbname)
        if start:
            node.start()
        return node

    def wait_serial(self, node, serial, timeout=20):
        wait_until(lambda: node.get("/healthz").json()["directory_serial"] >= serial,
                   timeout=timeout, interval=0.2,
                   what=f"{node.id} to hold directory serial {serial}")


@pytest.fixture
def coordinated(request, pg, passerelle_bin):
    made = []

    def make(spaces=("troquet", "cordee")):
        c = Coordinated(pg, passerelle_bin)
        made.append(c)
        for s in spaces:
            c.admit(s)
        # Every node holds the last directory before the test begins.
        for s in spaces:
            c.wait_serial(c[s], c.serial())
        return c

    yield make
    for c in made:
        if getattr(request.node, "passerelle_failed", False):
            print(c.f.log_tails())
        problems = c.f.close()
        assert not problems, "\n".join(problems)
        c.f.remove()


def test_admit_a_third_space_while_the_others_run(coordinated):
    c = coordinated()
    troquet, cordee = c["troquet"], c["cordee"]
    pids = (troquet.proc.pid, cordee.proc.pid)
    _, t_token = troquet.member_with_pass(tickets=5)
    _, c_token = cordee.member_with_pass(tickets=5)

    grenoble = c.admit("grenoble")
    serial = c.serial()
    _, g_token = grenoble.member_with_pass(tickets=5)
    for node in (troquet, cordee):
        c.wait_serial(node, serial)
    # Its member is admitted at both others, and theirs at it.
    for host in (troquet, cordee):
        a = host.checkin(g_token).json()
        assert a["decision"] == "admit", (host.id, a)
        assert host.checkout(a["visit_id"]).status == 200
    for token in (t_token, c_token):
        a = grenoble.checkin(token).json()
        assert a["decision"] == "admit", a
        assert grenoble.checkout(a["visit_id"]).status == 200
    assert (troquet.proc.pid, cordee.proc.pid) == pids, "a node was restarted"
    assert troquet.query_one("select max(serial) from directories") == (serial,)


def test_remove_a_space(coordinated):
    c = coordinated(("troquet", "cordee", "grenoble"))
    troquet, grenoble = c["troquet"], c["grenoble"]
    _, g_token = grenoble.member_with_pass(tickets=5)
    assert troquet.checkin(g_token).json()["decision"] == "admit"

    # Grenoble keeps a connection open to Le Troquet's federation face.
    conn = troquet.fed_conn(grenoble.tls_context())
    conn.request("GET", "/federation/v1/ping")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["caller"] == "grenoble"

    c.f.passerelle("federation", "remove", "grenoble", "--federation", c.coord)
    c.wait_serial(troquet, c.serial())

    # Its open connection is closed...
    closed = False
    deadline = time.monotonic() + 10
    while not closed and time.monotonic() < deadline:
        try:
            conn.request("GET", "/federation/v1/ping")
            r = conn.getresponse()
            r.read()
            closed = r.status == 403  # answered once, then closed
        except (OSError, http.client.HTTPException):
            closed = True
        time.sleep(0.2)
    assert closed, "the removed space's connection stayed open"
    # ... its next federation call is refused (TLS, CRL, or 403)...
    try:
        r = troquet.fed_request(grenoble, "GET", "/federation/v1/ping")
        assert r.status == 403, r
    except (ssl.SSLError, ConnectionError):
        pass
    # ... and its next check-in too: its keys left with it.
    a = troquet.checkin(g_token).json()
    assert (a["decision"], a["reason_code"]) == ("refuse", "unknown_key"), a
    assert "grenoble" not in [s["id"] for s in json.loads(
        troquet.cli_ok("directory", "show", "--json"))["spaces"]]


def test_older_and_forged_directories_are_refused(coordinated):
    c = coordinated()
    troquet = c["troquet"]
    old = c.f.directory_jws.read_text()
    old_serial = c.serial()
    c.f.passerelle("federation", "sign", "--federation", c.coord)
    current = c.f.directory_jws.read_text()
    serial = c.serial()
    assert serial > old_serial
    c.wait_serial(troquet, serial)

    # The coordinator's URL now serves an older directory (a rollback).
    c.f.directory_jws.write_text(old)
    troquet.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b"rollback" in troquet.log.read_bytes(), timeout=10,
               what="the rollback to be refused")
    assert troquet.get("/healthz").json()["directory_serial"] == serial

    # A directory whose signature is broken.
    h, p, s = current.strip().split(".")
    forged_payload = json.loads(jws_parts(current.strip())[1])
    forged_payload["serial"] = serial + 10
    from harness import b64url, compact_json
    forged = ".".join([h, b64url(compact_json(forged_payload)), s])
    c.f.directory_jws.write_text(forged)
    troquet.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b"does not verify" in troquet.log.read_bytes(), timeout=10,
               what="the forged directory to be refused")
    assert troquet.get("/healthz").json()["directory_serial"] == serial
    assert troquet.query_one("select max(serial) from directories") == (serial,)
    c.f.directory_jws.write_text(current)


def test_pass_key_rotation(coordinated):
    c = coordinated()
    troquet, cordee = c["troquet"], c["cordee"]
    member, old_token = cordee.member_with_pass(tickets=10)

    req = cordee.dir / "key-request.json"
    cordee.cli_ok("pass", "new-key", "--output", req)
    c.f.passerelle("federation", "add-key", req, "--federation", c.coord,
                   "--retire-old-after", "20s")
    retire_at = time.monotonic() + 20
    serial = c.serial()
    for node in (troquet, cordee):
        c.wait_serial(node, serial)
    # Cordee signs new passes with the new key once its configuration says so.
    conf = cordee.conf.read_text()
    conf = conf.replace("key = pass.key", "key = pass-2.key").replace(
        "kid = cordee-1", "kid = cordee-2")
    cordee.conf.write_text(conf)
    cordee.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b"pass-signing key cordee-2 loaded" in cordee.log.read_bytes(),
               timeout=10, what="cordee to load its new key")
    new_token = cordee.issue_pass(member)
    assert jws_parts(new_token)[0]["kid"] == "cordee-2"

    # Both verify until the old key retires.
    for token in (old_token, new_token):
        a = troquet.checkin(token).json()
        assert a["decision"] == "admit", a
        assert troquet.checkout(a["visit_id"]).status == 200
    time.sleep(max(0, retire_at - time.monotonic()) + 1)
    a = troquet.checkin(old_token).json()
    assert (a["decision"], a["reason_code"]) == ("refuse", "unknown_key"), a
    a = troquet.checkin(new_token).json()
    assert a["decision"] == "admit", a


def test_the_map_of_spaces(coordinated):
    c = coordinated()
    troquet = c["troquet"]
    r = troquet.get("/api/v1/spaces.geojson")
    assert r.status == 200 and r.headers["content-type"] == "application/geo+json"
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    by_id = {f["id"]: f for f in fc["features"]}
    assert set(by_id) == {"troquet", "cordee"}
    for space, (lat, lon) in (("troquet", COORDS["troquet"]), ("cordee", COORDS["cordee"])):
        g = by_id[space]["geometry"]
        assert g["type"] == "Point"
        assert g["coordinates"] == [lon, lat], "RFC 7946: longitude first"
        assert by_id[space]["properties"]["capacity"] == 25
    out = json.loads(troquet.cli_ok("directory", "export", "--geojson"))
    assert out == fc
