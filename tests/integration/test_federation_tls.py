"""The federation face: mutual TLS with the federation CA, the directory as
the list of who may call, and limits on what a peer may send."""
import http.client
import json
import socket
import ssl
import time
import uuid

import pytest

from harness import HTTP_TIMEOUT, client_tls_context, http_request

# What a refused TLS client sees: an alert, a reset, or a closed connection
# (with TLS 1.3 the client's handshake ends before the server has judged
# its certificate, so the refusal may only show when reading).
REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected,
           http.client.BadStatusLine)


def ping(node, ctx):
    return http_request(node.fed_conn(ctx), "GET", "/federation/v1/ping")


def test_peer_in_the_directory_gets_in(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    r = ping(cordee, troquet.tls_context())
    assert r.status == 200, r
    assert r.json() == {"space": "cordee", "caller": "troquet"}
    assert r.headers["passerelle-directory-serial"] == "1"


def test_no_client_certificate_is_refused(shared):
    cordee = shared["cordee"]
    ctx = client_tls_context(shared.ca_dir / "ca.crt")
    with pytest.raises(REFUSED):
        ping(cordee, ctx)


@pytest.mark.parametrize("tls_version", ["TLSv1_2", "TLSv1_3"])
def test_certificate_from_another_ca_is_refused(shared, tls_version):
    cordee = shared["cordee"]
    other = shared.other_ca()
    # Same space id as a real member, but signed by a CA nobody trusts.
    cert = shared.extra_cert("troquet", ca_dir=other)
    ctx = shared.context_for(cert)
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, tls_version)
    with pytest.raises(REFUSED):
        ping(cordee, ctx)


def test_space_not_in_the_directory_is_forbidden(shared):
    cordee = shared["cordee"]
    ctx = shared.context_for(shared.extra_cert("intruder"))
    for method, path, body in (("GET", "/federation/v1/ping", None),
                               ("POST", "/federation/v1/authorize",
                                {"visit_id": str(uuid.uuid4()), "pass": "x.y.z"})):
        r = cordee.fed_request(ctx, method, path, body)
        assert r.status == 403, r
        assert r.json()["error"] == "unknown_space"
        assert "intruder" in r.json()["detail"]


def test_member_space_with_another_key_is_forbidden(shared):
    """A certificate from the federation CA naming troquet, but not the key
    the directory pins for troquet."""
    cordee = shared["cordee"]
    ctx = shared.context_for(shared.extra_cert("troquet"))
    r = cordee.fed_request(ctx, "GET", "/federation/v1/ping")
    assert r.status == 403, r
    assert r.json()["error"] == "key_mismatch"


def test_body_over_max_body_is_413(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    body = json.dumps({"visit_id": str(uuid.uuid4()), "pass": "a" * 70000}).encode()
    conn = cordee.fed_conn(troquet.tls_context())
    try:
        conn.putrequest("POST", "/federation/v1/authorize")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        try:
            conn.send(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server may answer before it has read it all
        r = conn.getresponse()
        assert r.status == 413, (r.status, r.read()[:200])
    finally:
        conn.close()


@pytest.mark.parametrize("what", ["body", "headers"])
def test_over_limit_answer_is_json(shared, what):
    troquet, cordee = shared["troquet"], shared["cordee"]
    body = {"visit_id": str(uuid.uuid4()), "pass": "x"}
    headers = {}
    if what == "body":
        body["pass"] = "a" * 70000
    else:
        headers["X-Padding"] = "a" * 10000
    r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize", body,
                           headers=headers)
    assert r.status in (400, 413, 431), r
    assert r.headers["content-type"].startswith("application/json"), r.headers
    assert r.json()["error"]


def test_limits_follow_the_configuration(federation):
    f = federation(config={"cordee": {"limits": {"max_body": "2048",
                                                 "max_json_depth": "4",
                                                 "request_timeout": "1s"}}})
    troquet, cordee = f["troquet"], f["cordee"]

    def authorize(body):
        return cordee.fed_request(troquet, "POST", "/federation/v1/authorize", body,
                                  headers={"Content-Type": "application/json"})

    ok = json.dumps({"visit_id": "x", "pass": "a" * 1900})
    assert authorize(ok).status == 400  # read whole, then judged: bad visit id
    assert authorize(json.dumps({"visit_id": "x", "pass": "a" * 2100})).status == 413
    r = authorize('{"visit_id": "x", "pass": "y", "n": [[[{}]]]}')
    assert r.status == 400 and "deeper than 4" in r.json()["detail"], r
    assert "deeper" not in authorize('{"visit_id": "x", "n": [[{}]]}').json()["detail"]

    # A client that never finishes its request is cut off after 1 s.
    raw = socket.create_connection(("127.0.0.1", cordee.fed_port), timeout=HTTP_TIMEOUT)
    with troquet.tls_context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"POST /federation/v1/authorize HTTP/1.1\r\nHost: cordee\r\n")
        t0 = time.monotonic()
        try:
            data = s.recv(1000)
        except (ConnectionError, ssl.SSLError):
            data = b""
        elapsed = time.monotonic() - t0
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
    assert 0.5 < elapsed < 4, elapsed
    assert ping(cordee, troquet.tls_context()).status == 200


def test_malformed_json_is_400(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    for body in ('{"visit_id": "', "not json at all", "[1, 2, 3]", ""):
        r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize", body,
                               headers={"Content-Type": "application/json"})
        assert r.status == 400, (body, r)
        e = r.json()
        assert e["error"] == "bad_request" and e["detail"], e


def test_json_deeper_than_the_limit_is_400(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    deep = '{"visit_id": "x", "pass": "y", "n": ' + "[" * 40 + "]" * 40 + "}"
    r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize", deep,
                           headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert r.json()["error"] == "bad_request"
    assert "deeper" in r.json()["detail"]
    # Brackets inside strings are not nesting.
    shallow = json.dumps({"visit_id": "not-a-uuid", "pass": "[" * 40})
    r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize", shallow,
                           headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert "deeper" not in r.json()["detail"]


def test_authorize_request_checks(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=3)
    for body in ({"pass": token}, {"visit_id": str(uuid.uuid4())},
                 {"visit_id": "NOT-A-UUID", "pass": token},
                 {"visit_id": str(uuid.uuid4()).upper(), "pass": token},
                 {"visit_id": 12, "pass": token}):
        r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize", body)
        assert r.status == 400, (body, r)
        assert r.json()["error"] == "bad_request"
    assert cordee.balance(member) == (3, 3)


def test_unknown_path_is_404_json(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    r = cordee.fed_request(troquet, "GET", "/federation/v1/nothing-here")
    assert r.status == 404, r
    assert r.json()["error"] == "not_found"
    r = cordee.fed_request(troquet, "GET", "/federation/v1/authorize")
    assert r.status == 405, r
    assert r.json()["error"] == "method_not_allowed"


def test_directory_is_served_to_peers(shared):
    troquet, cordee = shared["troquet"], shared["cordee"]
    r = cordee.fed_request(troquet, "GET", "/federation/v1/directory")
    assert r.status == 200, r
    assert r.body.decode().strip() == shared.directory_jws.read_text().strip()


def test_daemon_survives_a_bad_handshake_storm(shared):
    """Clients that fail TLS do not take the face down."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    bad = client_tls_context(shared.ca_dir / "ca.crt")
    for _ in range(10):
        with pytest.raises(REFUSED):
            ping(cordee, bad)
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", cordee.fed_port),
                                      timeout=HTTP_TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # plain HTTP on a TLS port
            s.settimeout(HTTP_TIMEOUT)
            try:
                s.recv(100)
            except (ConnectionError, socket.timeout):
                pass
    assert ping(cordee, troquet.tls_context()).status == 200
