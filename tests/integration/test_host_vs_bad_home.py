"""The host does not take a home's word for it: an admission counts only with
a receipt signed by the home's key from the directory, for this very visit
and this host, from the node whose key the directory pins.

Here cordee's node is replaced by a small Python HTTPS server holding
cordee's certificate (or another one) that answers what each test wants.
"""
import http.server
import json
import time

import pytest

from harness import FakeFace, compact_json, jws_parts, load_ed25519_private, make_jws

FAST = {"troquet": {"visit": {"peer_timeout": "1s"}}}


class FakeHome:
    """A federation face on cordee's port answering with answer(request)."""

    def __init__(self, node, answer, cert_dir=None, ca=None):
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = json.loads(body)
                fake.requests.append((self.path, req))
                status, out = answer(self.path, req)
                if not isinstance(out, bytes):
                    out = compact_json(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.face = FakeFace(node, Handler, cert_dir, ca)

    def close(self):
        self.face.close()


class Rig:
    def __init__(self, f):
        self.f = f
        self.troquet, self.cordee = f["troquet"], f["cordee"]
        self.fake = None

    def serve(self, answer, **kw):
        self.stop_fake()
        self.fake = FakeHome(self.cordee, answer, **kw)
        return self.fake

    def stop_fake(self):
        if self.fake is not None:
            self.fake.close()
            self.fake = None


@pytest.fixture(scope="module")
def shared_rig(module_federation):
    f = module_federation(config=FAST)
    r = Rig(f)
    assert r.cordee.stop() == 0
    yield r
    r.stop_fake()


@pytest.fixture
def rig(shared_rig):
    """troquet, with cordee's node stopped (its database still there), and
    a fresh cordee member with a pass."""
    r = shared_rig
    member, token = r.cordee.member_with_pass(full_name="Camille Durand", tickets=10)
    yield r.f, r.troquet, r.cordee, member, token, r.serve
    r.stop_fake()


def receipt_for(f, req, key="cordee", kid="cordee-1", typ="receipt", **changes):
    _, payload, _ = jws_parts(req["pass"])
    claims = json.loads(payload)
    body = {"visit_id": req["visit_id"], "home": "cordee", "host": "troquet",
            "sub": claims["sub"], "jti": claims["jti"], "decision": "admit",
            "tickets_left": 9, "iat": int(time.time())}
    body.update(changes)
    sk = load_ed25519_private(f[key].dir / "pass.key")
    return make_jws({"alg": "EdDSA", "typ": typ, "kid": kid}, body, sk)


def admit(req, receipt):
    a = {"visit_id": req["visit_id"], "home": "cordee", "host": "troquet",
         "decision": "admit", "display_name": "Camille D.", "plan": "tickets",
         "tickets_left": 9}
    if receipt is not None:
        a["receipt"] = receipt
    return 200, a


def check_refused(troquet, token, code):
    a = troquet.checkin(token).json()
    assert a["decision"] == "refuse", a
    assert a["reason_code"] == code, a
    assert troquet.query_one("select status, reason_code from host_visits"
                             " where visit_id = %s", a["visit_id"]) == ("refused", code)
    jti = json.loads(jws_parts(token)[1])["jti"]
    assert troquet.query_one("select count(*) from host_visits where status = 'open'"
                             " and jti = %s", jti) == (0,)
    return a


def test_fake_home_with_a_good_receipt_is_believed(rig):
    """The control: the rig itself can get a visitor admitted."""
    f, troquet, cordee, member, token, serve = rig
    fake = serve(lambda path, req: admit(req, receipt_for(f, req)))
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert [p for p, _ in fake.requests] == ["/federation/v1/authorize"]
    assert fake.requests[0][1]["visit_id"] == a["visit_id"]
    assert fake.requests[0][1]["pass"] == token
    assert troquet.query_one("select status from host_visits where visit_id = %s",
                             a["visit_id"]) == ("open",)


BAD_RECEIPTS = {
    "none": lambda f, req: None,
    "signed_by_another_space": lambda f, req: receipt_for(f, req, key="troquet"),
    "for_another_visit": lambda f, req: receipt_for(
        f, req, visit_id="00000000-0000-4000-8000-000000000000"),
    "says_refuse": lambda f, req: receipt_for(f, req, decision="refuse"),
    "for_another_host": lambda f, req: receipt_for(f, req, host="grenoble"),
    "not_a_receipt": lambda f, req: receipt_for(f, req, typ="pass"),
    "unknown_kid": lambda f, req: receipt_for(f, req, kid="cordee-7"),
    "alg_none": lambda f, req: make_jws(
        {"alg": "none", "typ": "receipt", "kid": "cordee-1"},
        jws_parts(receipt_for(f, req))[1]),
    "garbage": lambda f, req: "garbage",
}


@pytest.mark.parametrize("kind", list(BAD_RECEIPTS))
def test_admission_without_a_valid_receipt_is_refused(rig, kind):
    f, troquet, cordee, member, token, serve = rig
    serve(lambda path, req: admit(req, BAD_RECEIPTS[kind](f, req)))
    check_refused(troquet, token, "bad_receipt")


@pytest.mark.parametrize("status,body", [
    (200, b"this is not JSON"),
    (409, {"error": "conflict", "detail": "this visit id was already used"}),
])
def test_home_errors(rig, status, body):
    f, troquet, cordee, member, token, serve = rig
    serve(lambda path, req: (status, body))
    check_refused(troquet, token, "home_error")


@pytest.mark.parametrize("status,body", [
    (500, {"error": "internal", "detail": "boom"}),
    (503, b"<html>busy</html>"),
])
def test_failing_home_is_treated_as_unreachable(rig, status, body):
    """A home that answers 5xx cannot decide now: the host's offline terms
    apply (here: no offline allowance, so refused), as when it is down."""
    f, troquet, cordee, member, token, serve = rig
    serve(lambda path, req: (status, body))
    check_refused(troquet, token, "home_unreachable")


def test_home_that_refuses_is_believed(rig):
    f, troquet, cordee, member, token, serve = rig

    def refuse(path, req):
        return 200, {"visit_id": req["visit_id"], "decision": "refuse",
                     "reason_code": "suspended", "reason": "Suspended at home.",
                     "receipt": receipt_for(f, req, decision="refuse",
                                            reason_code="suspended")}
    serve(refuse)
    check_refused(troquet, token, "suspended")


@pytest.mark.parametrize("code", ["=1+cmd|' /C calc'!A0", "-1", "Suspended",
                                  "no tickets", "x" * 33, ""])
def test_reason_code_that_is_not_a_code_is_a_malformed_answer(rig, code):
    """The reason code is shown at the desk and exported to CSV: a code
    that is not [a-z_]{1,32} is an unreadable answer, even signed."""
    f, troquet, cordee, member, token, serve = rig

    def refuse(path, req):
        return 200, {"visit_id": req["visit_id"], "decision": "refuse",
                     "reason_code": code, "reason": "Refused.",
                     "receipt": receipt_for(f, req, decision="refuse", reason_code=code)}
    serve(refuse)
    check_refused(troquet, token, "home_error")


def test_impostor_with_a_federation_certificate_is_not_asked(rig):
    """A node with a certificate from the federation CA that names cordee,
    but not the key the directory pins: troquet will not talk to it."""
    f, troquet, cordee, member, token, serve = rig
    impostor = f.extra_cert("cordee")
    fake = serve(lambda path, req: admit(req, receipt_for(f, req)), cert_dir=impostor)
    check_refused(troquet, token, "home_unreachable")
    assert fake.requests == []


def test_impostor_from_another_ca_is_not_asked(rig):
    f, troquet, cordee, member, token, serve = rig
    other = f.other_ca()
    impostor = f.extra_cert("cordee", ca_dir=other)
    fake = serve(lambda path, req: admit(req, receipt_for(f, req)),
                 cert_dir=impostor, ca=other / "ca.crt")
    check_refused(troquet, token, "home_unreachable")
    assert fake.requests == []


def test_slow_home_is_cut_off(rig):
    f, troquet, cordee, member, token, serve = rig

    def slow(path, req):
        time.sleep(2.5)
        return admit(req, receipt_for(f, req))
    serve(slow)
    t0 = time.monotonic()
    check_refused(troquet, token, "home_unreachable")
    assert time.monotonic() - t0 < 2.4
