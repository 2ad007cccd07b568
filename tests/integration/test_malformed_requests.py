"""Malformed requests on every route of both faces, sent over raw sockets.

Bad input gets a clear error and never a crash, and never loses or
duplicates a visit: every answer here is below 500 (an HTTP-level garbage
may instead have the connection closed), every error of the JSON API is
{"error": ..., "detail": ...}, the node still answers a valid request
afterwards, and the databases hold exactly the visits that answers named.

One federation (troquet and cordee, with a 2 s request timeout so that a
stalled client costs little) serves the whole module.  The last test checks
the ledgers and the logs, after the others: run the module whole.  A seeded
loop mutates valid check-ins, authorizations and check-outs byte by byte.
"""
import collections
import json
import os
import random
import socket
import ssl
import time
import uuid

import pytest

from harness import Response, b64url_decode

REQUEST_TIMEOUT = 2         # [limits] request_timeout of both nodes
CLIENT_TIMEOUT = 8          # what this module waits for any answer
MAX_BODY = 65536            # [limits] max_body (default)
MAX_HEADERS = 8192          # [limits] max_headers (default)
MUTATIONS = 300             # requests of the seeded mutation loop
SEED = 20261130

# evhttp's own answers, in HTML, to what it cannot read as HTTP (a request
# line of garbage, a bad Content-Length) or what passes twice a limit (it
# stops reading), and 501 to a method token it does not know (RFC 9110).
EVHTTP_PAGE = b"<HTML><HEAD>\n<TITLE>"

# What answers named, to compare with the databases at the end: the visit
# ids of check-ins at troquet and of authorizations at cordee.
ANSWERED = {"checkin": set(), "authorize": set(), "admitted": set()}
STATS = {"requests": 0, "closed": 0}


# --------------------------------------------------------------------------
# Raw requests

def build(method, path, body=b"", headers=(), host=b"127.0.0.1"):
    """An HTTP/1.1 request as bytes, with its Content-Length."""
    if isinstance(body, str):
        body = body.encode()
    head = [method + b" " + path + b" HTTP/1.1", b"Host: " + host]
    head += [k + b": " + v for k, v in headers]
    head.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def read_response(f, method=b"GET"):
    """One response from a file on the socket (pipelining: several)."""
    line = f.readline(65537)
    if not line:
        raise ConnectionError("closed without an answer")
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise AssertionError(f"not an HTTP status line: {line[:200]!r}")
    status = int(parts[1])
    headers = []
    while True:
        h = f.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    length = dict((k.lower(), v) for k, v in headers).get("content-length")
    if method == b"HEAD" or status in (204, 304):
        body = b""
    elif length is not None:
        body = f.read(int(length))
    else:
        body = f.read()
    return Response(status, headers, body)


def connect(node, tls, timeout=CLIENT_TIMEOUT):
    """A socket to the local face, or to the federation face as `tls` (an
    ssl.SSLContext: whose certificate it presents)."""
    port = node.fed_port if tls is not None else node.local_port
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname="127.0.0.1")
    return s


def send(node, data, tls=None, method=None, timeout=CLIENT_TIMEOUT):
    """Sends raw bytes as one request; its Response, or None when the
    node closed the connection without an answer."""
    STATS["requests"] += 1
    if method is None:
        method = data.split(b" ", 1)[0]
    t0 = time.monotonic()
    s = connect(node, tls, timeout)
    try:
        s.sendall(data)
        return read_response(s.makefile("rb"), method)
    except (ConnectionError, ssl.SSLError):
        STATS["closed"] += 1
        return None
    except socket.timeout:
        raise AssertionError(f"no answer within {time.monotonic() - t0:.1f}s"
                             f" to {data[:200]!r}") from None
    finally:
        s.close()


def is_evhttp_page(r):
    return (r.status in (400, 413, 501)
            and r.headers.get("content-type", "").startswith("text/html")
            and r.body.startswith(EVHTTP_PAGE))


def check(r, what, garbage=False):
    """The rule for one answer; returns its JSON body (or None).

    garbage: the request may not be HTTP at all (mutated, or a raw
    abuse), and evhttp's own page or a closed connection is then fine."""
    if r is None:
        assert garbage, f"{what}: connection closed without an answer"
        return None
    assert r.status < 500 or (garbage and is_evhttp_page(r)), f"{what}: {r}"
    if is_evhttp_page(r):
        assert garbage, f"{what}: evhttp's own page for an HTTP request: {r}"
        return None
    ctype = r.headers.get("content-type", "")
    if r.status >= 400 and not ctype.startswith("text/html"):
        assert ctype.startswith("application/json"), f"{what}: {ctype}: {r}"
    if ctype.startswith("application/json") and r.body:
        try:
            o = json.loads(r.body)  # bytes: json checks that they are UTF-8
        except ValueError as e:
            raise AssertionError(f"{what}: body is not JSON ({e}): {r}") from None
        if r.status >= 400:
            assert isinstance(o, dict) and set(o) == {"error", "detail"}, f"{what}: {o}"
            assert isinstance(o["error"], str) and o["error"], f"{what}: {o}"
            assert isinstance(o["detail"], str) and o["detail"], f"{what}: {o}"
        return o
    return None


def note_visit(path, r, o):
    """Remembers the visit an answer named (it must then be recorded)."""
    if r is None or r.status != 200 or not isinstance(o, dict):
        return
    vid = o.get("visit_id")
    if not vid:
        return
    if path.endswith(b"/checkin"):
        ANSWERED["checkin"].add(vid)
    elif path.endswith(b"/authorize"):
        ANSWERED["authorize"].add(vid)
        if o.get("decision") == "admit":
            ANSWERED["admitted"].add(vid)


def call(node, method, path, body=b"", headers=(), tls=None, garbage=False, what=None):
    """Sends a request built from parts, checks the answer; (Response,
    JSON body or None)."""
    if isinstance(body, str):
        body = body.encode()
    r = send(node, build(method, path, body, headers), tls, method)
    o = check(r, what or f"{method!r} {path[:120]!r} {body[:80]!r}",
              garbage)
    note_visit(path, r, o)
    return r, o


# --------------------------------------------------------------------------
# The federation and what the routes need

class Site:
    """troquet (the host, whose local face is abused) and cordee (the home,
    whose federation face troquet's certificate abuses)."""

    def __init__(self, fed):
        self.fed = fed
        self.troquet, self.cordee = fed["troquet"], fed["cordee"]
        t = self.troquet
        self.tokens = {role: t.staff_token(role) for role in ("concierge", "manager", "admin")}
        self.tls = t.tls_context()
        # A member of cordee whose pass the valid requests carry.
        self.member, self.pass_token = self.cordee.member_with_pass(tickets=1000)
        # A member of troquet for the member routes (some of which revoke).
        self.victim = t.add_member(tickets=5)
        self.victim_pass = t.issue_pass(self.victim)
        self.victim_jti = json.loads(b64url_decode(self.victim_pass.split(".")[1]))["jti"]
        r, o = self.checkin(self.pass_token)
        assert r.status == 200 and o["decision"] == "admit", r
        self.open_visit = o["visit_id"]

    def auth(self, role="admin"):
        return (b"Authorization", b"Bearer " + self.tokens[role].encode())

    def checkin(self, token):
        return call(self.troquet, b"POST", b"/api/v1/checkin",
                    json.dumps({"pass": token}), [self.auth("concierge")])

    def authorize_body(self, visit_id=None, token=None):
        return json.dumps({"visit_id": visit_id or str(uuid.uuid4()),
                           "pass": token or self.pass_token,
                           "rate_cents": 900, "currency": "EUR"})


@pytest.fixture(scope="module")
def site(module_federation):
    limits = {"limits": {"request_timeout": f"{REQUEST_TIMEOUT}s"}}
    return Site(module_federation(config={"troquet": limits, "cordee": limits}))


def local_routes(s):
    """(method, path, valid body) of every route of troquet's local face."""
    ref = s.victim["pseudonym"].encode()
    jti = s.victim_jti.encode()
    link = b"A" * 43
    vid = s.open_visit.encode()
    return [
        (b"GET", b"/healthz", None), (b"GET", b"/metrics", None),
        (b"GET", b"/api/v1/spaces.geojson", None),
        (b"POST", b"/api/v1/signin", {"name": "nobody", "password": "wrong"}),
        (b"GET", b"/api/v1/session", None), (b"POST", b"/api/v1/signout", None),
        (b"POST", b"/api/v1/checkin", {"pass": "x.y.z"}),
        (b"GET", b"/api/v1/visits", None),
        (b"POST", b"/api/v1/visits/" + str(uuid.uuid4()).encode() + b"/checkout", None),
        (b"GET", b"/api/v1/members", None),
        (b"POST", b"/api/v1/members", {"full_name": "Ana Lima", "email": "not-an-address",
                                       "plan": "tickets", "tickets": 3}),
        (b"GET", b"/api/v1/members/" + ref, None),
        (b"POST", b"/api/v1/members/" + ref + b"/topup", {"tickets": 1}),
        (b"POST", b"/api/v1/members/" + ref + b"/passes", None),
        (b"GET", b"/api/v1/members/" + ref + b"/passes", None),
        (b"POST", b"/api/v1/members/" + ref + b"/plan", {"plan": "tickets", "roam_cap": None}),
        (b"POST", b"/api/v1/members/" + ref + b"/status", {"status": "active"}),
        (b"POST", b"/api/v1/members/" + ref + b"/revoke", None),
        (b"GET", b"/api/v1/passes/" + jti, None),
        (b"GET", b"/api/v1/passes/" + jti + b"/qr.svg", None),
        (b"POST", b"/api/v1/passes/nosuchpass00/revoke", None),
        (b"POST", b"/api/v1/passes/nosuchpass00/reissue", None),
        (b"POST", b"/api/v1/passes/" + jti + b"/link", None),
        (b"POST", b"/api/v1/passes/" + jti + b"/unlink", None),
        (b"GET", b"/api/v1/terms", None),
        (b"POST", b"/api/v1/terms/cordee", {"accept": True, "rate_cents": 900}),
        (b"GET", b"/api/v1/visit-history?month=2026-11&side=host", None),
        (b"GET", b"/api/v1/visit-history.csv", None),
        (b"GET", b"/api/v1/statement", None), (b"GET", b"/api/v1/statement.csv", None),
        (b"GET", b"/api/v1/statements/cordee.csv?month=2026-11", None),
        (b"GET", b"/", None), (b"GET", b"/manage", None), (b"GET", b"/signin", None),
        (b"GET", b"/desk", None), (b"GET", b"/manage/members", None),
        (b"GET", b"/manage/pass", None), (b"GET", b"/manage/terms", None),
        (b"GET", b"/manage/visits", None), (b"GET", b"/manage/statement", None),
        (b"GET", b"/manage/spaces", None), (b"GET", b"/static/app.js", None),
        (b"GET", b"/static/desk.html", None), (b"GET", b"/favicon.ico", None),
        (b"GET", b"/p/" + link, None), (b"GET", b"/p/" + link + b"/pass.json", None),
        (b"GET", b"/p/" + link + b"/qr.svg", None),
    ]


def fed_routes(s):
    """(method, path, valid body) of every route of cordee's federation face."""
    v = str(uuid.uuid4())
    return [
        (b"POST", b"/federation/v1/authorize", json.loads(s.authorize_body(token="x.y.z"))),
        (b"POST", b"/federation/v1/complete",
         {"visit_id": v, "checked_in_at": "2026-11-30T08:00:00Z",
          "checked_out_at": "2026-11-30T11:00:00Z", "units": 1, "completion": "x.y.z"}),
        (b"POST", b"/federation/v1/completions", {"completions": [{"visit_id": v}]}),
        (b"GET", b"/federation/v1/directory", None),
        (b"GET", b"/federation/v1/revocations", None),
        (b"GET", b"/federation/v1/ledger?month=2026-11", None),
        (b"GET", b"/federation/v1/balances?month=2026-11", None),
        (b"GET", b"/federation/v1/ping", None),
    ]


def face(s, fed):
    return (s.cordee, s.tls) if fed else (s.troquet, None)


def headers_for(s, fed, extra=()):
    h = [(b"Idempotency-Key", str(uuid.uuid4()).encode())] if fed else [s.auth()]
    return h + [(b"Content-Type", b"application/json")] + list(extra)


# --------------------------------------------------------------------------
# Bodies

WRONG_VALUES = [
    1, -1, 0.5, 1e308, -1e308, 123456789012345678901234567890, True, None,
    [], ["x"], {}, {"a": {"b": 1}}, "", "x" * 3000, "NaN", "Infinity", "-0",
    "\u202e\u0301é😀",
]

RAW_BODIES = [
    b"", b"not json", b"{", b'{"pass": "', b"{'pass': 'x'}", b"[]", b"null",
    b"true", b"12", b'"a string"', b"{}", b'{"a":1,}', b"\xef\xbb\xbf{}",
    b"NaN", b'{"tickets": NaN}', b'{"tickets": Infinity}', b'{"n": -}',
    b'{"n": 1e999999}', b'{"n": 0x10}', b'{"n": 01}',
    b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"s": "\xff\xfe"}', b'{"s": "\xc3"}', b'{"s": "\xed\xa0\x80"}',
    b'{"s": "\\ud800"}', b'{"s": "a\\u0000b"}', b'{"s": "a\x00b"}', b"\x00" * 16,
    b'{"s": "\\x41"}', b'{"a": 1, "a": "dup"}', b"{}" * 50,
]


def mutated_bodies(valid):
    """The valid body with each field given each wrong type, each field
    missing, and an extra field."""
    if not isinstance(valid, dict):
        return []
    out = []
    for k in valid:
        for w in WRONG_VALUES:
            out.append(dict(valid, **{k: w}))
        out.append({x: y for x, y in valid.items() if x != k})
    out.append(dict(valid, extra_field={"nested": [1, 2, 3]}))
    return [json.dumps(b, ensure_ascii=False).encode() for b in out]


# --------------------------------------------------------------------------
# The tests

@pytest.mark.parametrize("fed", [False, True], ids=["local", "federation"])
def test_bodies_that_are_not_what_the_route_takes(site, fed):
    node, tls = face(site, fed)
    routes = fed_routes(site) if fed else local_routes(site)
    for method, path, valid in routes:
        if method != b"POST":
            continue
        for body in RAW_BODIES + mutated_bodies(valid):
            r, o = call(node, method, path, body, headers_for(site, fed), tls)
            # Only the check-in and an authorization name a visit; a body
            # that is not their JSON object may not make one.
            if path.endswith((b"/checkin", b"/authorize")) and o and o.get("visit_id"):
                assert isinstance(valid, dict)
                good = json.loads(body)
                assert isinstance(good, dict) and isinstance(good.get("pass"), str), (body, o)


def test_a_nul_in_a_json_string_is_refused(site):
    """{"pass": "TOKEN\\u0000garbage"} was read as TOKEN and admitted."""
    fresh, token = site.cordee.member_with_pass(tickets=5)
    for body in (b'{"pass": "' + token.encode() + b'\\u0000garbage"}',
                 b'{"pass": "' + token.encode() + b'\x00garbage"}'):
        r, o = call(site.troquet, b"POST", b"/api/v1/checkin", body,
                    [site.auth("concierge"), (b"Content-Type", b"application/json")])
        assert r.status == 400 and "NUL" in o["detail"], r
    for tail in (b"\\u0000x", b"\x00x"):
        body = site.authorize_body(token=token).encode().replace(
            token.encode(), token.encode() + tail)
        r, o = call(site.cordee, b"POST", b"/federation/v1/authorize", body,
                    headers_for(site, True), site.tls)
        assert r.status == 400 and "NUL" in o["detail"], r
    assert site.cordee.balance(fresh) == (5, 5)


def test_bodies_that_are_not_utf8_are_400_not_503(site):
    """A sign-in whose name was not UTF-8 failed in PostgreSQL: 503."""
    r, o = call(site.troquet, b"POST", b"/api/v1/signin", b'{"name": "\xff", "password": "x"}',
                [(b"Content-Type", b"application/json")])
    assert r.status == 400 and o["error"] == "bad_request", r
    r, o = call(site.troquet, b"POST", b"/api/v1/members", b'{"full_name": "\xff\xfe X"}',
                headers_for(site, False))
    assert r.status == 400, r


@pytest.mark.parametrize("fed", [False, True], ids=["local", "federation"])
def test_paths_and_query_strings(site, fed):
    node, tls = face(site, fed)
    routes = fed_routes(site) if fed else local_routes(site)
    suffixes = [b"/", b"/..", b"/../../../../etc/passwd", b"%00", b"/%00", b"%2e%2e%2f",
                b"?", b"?&&&", b"?a=%zz&b=%", b"?month=%00", b"?month=2026-13", b"?month=0000-01",
                b"?month=%ff%fe", b"?%00=%00", b"?a=" + b"%41" * 500,
                b"#frag", b";x=1", b"\\..\\", b"//", b"/./"]
    for method, path, valid in routes:
        base = path.split(b"?")[0]
        for suffix in suffixes:
            body = json.dumps(valid).encode() if valid is not None else b""
            call(node, method, base + suffix, body, headers_for(site, fed), tls)
    for path in (b"//healthz", b"/./healthz", b"/%2e/healthz", b"/api/v1/../../healthz",
                 b"/api/v1/%2e%2e/members", b"/static/../../etc/passwd",
                 b"/static/%2e%2e%2fapp.js", b"/p/" + b"A" * 43 + b"/../../etc/passwd",
                 b"http://evil.example/healthz", b"*", b"/federation/v1/../v1/ping"):
        call(node, b"GET", path, b"", headers_for(site, fed), tls)


@pytest.mark.parametrize("fed", [False, True], ids=["local", "federation"])
def test_uris_that_are_not_utf8_are_400(site, fed):
    """/api/v1/members/\\xff was 503 (the bytes reached PostgreSQL), and
    /api/v1/terms/\\xff echoed them in a detail that was not JSON."""
    node, tls = face(site, fed)
    paths = ([b"/federation/v1/ping/\xff", b"/federation/v1/ledger?month=\xff"] if fed else
             [b"/api/v1/members/\xff", b"/api/v1/passes/\xff\xfe", b"/api/v1/terms/\xff",
              b"/api/v1/statements/\xc3.csv", b"/p/\xff", b"/\xed\xa0\x80"])
    for path in paths:
        method = b"POST" if b"terms" in path else b"GET"
        r, o = call(node, method, path, b"{}", headers_for(site, fed), tls)
        assert r.status == 400 and o["error"] == "bad_request", (path, r)


def test_error_details_stay_json_when_cut(site):
    """A detail cut at 511 bytes ended inside a character: not JSON."""
    for n in (200, 201, 400):
        r, o = call(site.troquet, b"GET", b"/api/v1/nothing/" + "é".encode() * n,
                    b"", [site.auth()])
        assert r.status == 404 and o["error"] == "not_found", r


def test_month_zero_is_400_on_the_local_face(site):
    for path in (b"/api/v1/visit-history?month=0000-01",
                 b"/api/v1/visit-history.csv?month=0000-12",
                 b"/api/v1/statement?month=0000-01", b"/api/v1/statement.csv?month=0000-01"):
        r, o = call(site.troquet, b"GET", path, b"", [site.auth()])
        assert r.status == 400, (path, r)


def test_month_zero_is_400_on_the_federation_face(site):
    r, o = call(site.cordee, b"GET", b"/federation/v1/ledger?month=0000-01", b"", [],
                site.tls)
    assert r.status == 400, r


def test_idempotency_keys(site):
    """A key that is not UTF-8 failed in PostgreSQL: 503, retried forever."""
    body = json.dumps({"visit_id": str(uuid.uuid4()), "units": 1}).encode()
    for key in (b"\xff\xfe", b"k\x01ey", b"a" * 129, b"", b" "):
        hdrs = [(b"Idempotency-Key", key), (b"Content-Type", b"application/json")]
        for path in (b"/federation/v1/complete", b"/federation/v1/completions"):
            r, o = call(site.cordee, b"POST", path, body, hdrs, site.tls)
            if key != b"":  # an empty header value may read as no header
                assert r.status == 400 and o["error"] == "idempotency_key_required", (key, r)
            else:
                assert r.status == 400, r


@pytest.mark.parametrize("fed", [False, True], ids=["local", "federation"])
def test_methods_and_content_types(site, fed):
    node, tls = face(site, fed)
    routes = fed_routes(site) if fed else local_routes(site)
    for method, path, valid in routes:
        body = json.dumps(valid).encode() if valid is not None else b""
        for m in (b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"HEAD",
                  b"GET" if method == b"POST" else b"POST"):
            call(node, m, path, body, headers_for(site, fed), tls)
        if method == b"POST":
            for ctype in (None, b"text/plain", b"application/x-www-form-urlencoded",
                          b"multipart/form-data; boundary=x", b"application/json; charset=latin1",
                          b"\xff", b"a" * 4000):
                hdrs = [h for h in headers_for(site, fed) if h[0] != b"Content-Type"]
                if ctype is not None:
                    hdrs.append((b"Content-Type", ctype))
                call(node, method, path, body, hdrs, tls)
    # A method token evhttp does not know: RFC 9110's 501, its own page.
    for m in (b"FOO", b"get", b"P\x00ST", b"\xff"):
        r = send(node, build(m, b"/healthz"), tls)
        assert r is None or is_evhttp_page(r) or r.status < 500, r


@pytest.mark.parametrize("fed", [False, True], ids=["local", "federation"])
def test_sizes_over_the_limits(site, fed):
    node, tls = face(site, fed)
    post = b"/federation/v1/authorize" if fed else b"/api/v1/checkin"
    body = b'{"pass": "' + b"a" * (MAX_BODY + 10) + b'"}'
    r, o = call(node, b"POST", post, body, headers_for(site, fed), tls)
    assert r.status == 413 and o["error"] == "body_too_large", r
    # Past twice the limit evhttp stops reading and answers itself.
    r = send(node, build(b"POST", post, b"a" * (3 * MAX_BODY), headers_for(site, fed)), tls)
    assert r is None or r.status == 413, r
    r, o = call(node, b"GET", b"/healthz", b"", [(b"X-Pad", b"a" * (MAX_HEADERS + 10))], tls)
    assert r.status == 431 and o["error"] == "headers_too_large", r
    r, o = call(node, b"GET", b"/healthz", b"",
                [(b"X-Pad%d" % i, b"a" * 100) for i in range(90)], tls)
    assert r.status == 431, r
    for n in (3 * MAX_HEADERS, 200000):
        r = send(node, build(b"GET", b"/healthz", b"", [(b"X-Pad", b"a" * n)]), tls)
        assert r is None or (is_evhttp_page(r) and r.status == 400), r
    # Long URLs: answered while within twice the header limit.
    for n in (4000, MAX_HEADERS + 100, 3 * MAX_HEADERS):
        r = send(node, build(b"GET", b"/api/v1/members/" + b"a" * n, b"",
                             headers_for(site, fed)), tls)
        check(r, f"URL of {n} bytes", garbage=n > 2 * MAX_HEADERS)
    # Many small headers, and one header repeated.
    call(node, b"GET", b"/healthz", b"", [(b"A", b"b")] * 300, tls)
    call(node, b"POST", post, b"{}", headers_for(site, fed) + [(b"Content-Type", b"x")] * 20, tls)


def test_http_garbage_on_the_local_face(site):
    t = site.troquet
    for data in (b"GARBAGE\r\n\r\n", b"\r\n\r\n", b"GET\r\n\r\n", b"GET /healthz\r\n\r\n",
                 b"GET /healthz HTTP/9.9\r\n\r\n", b"GET /healthz HTTP/1.1\r\n\x00\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\n: empty name\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\n folded: header\r\n\r\n",
                 b"POST /api/v1/checkin HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /api/v1/checkin HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                 b"POST /api/v1/checkin HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                 b"POST /api/v1/checkin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
                 b"POST /api/v1/checkin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"ffffffffffffffff\r\n", b"\x16\x03\x01\x00\xff" + bytes(range(256)),
                 bytes(random.Random(SEED).randrange(256) for _ in range(3000))):
        check(send(t, data, method=b"GET"), f"garbage {data[:60]!r}", garbage=True)


def test_tls_abuse_on_the_federation_face(site):
    c = site.cordee
    rnd = random.Random(SEED)
    # Garbage after a good handshake: evhttp's 400, or a close.
    for data in (bytes(rnd.randrange(256) for _ in range(2000)), b"GARBAGE\r\n\r\n",
                 b"\x00" * 100 + b"\r\n\r\n", b"GET /federation/v1/ping HTTP/1.1\r\n"
                 b"Host: x\r\nContent-Length: 5\r\n\r\n"):
        check(send(c, data, site.tls, method=b"GET"), f"after TLS: {data[:40]!r}",
              garbage=True)
    # Garbage instead of a handshake, plain HTTP, a handshake cut short:
    # closed (at the latest after the request timeout).
    for data in (bytes(rnd.randrange(256) for _ in range(3000)),
                 b"GET /federation/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc" + bytes(200)):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", c.fed_port), timeout=CLIENT_TIMEOUT) as s:
            s.sendall(data)
            try:
                while s.recv(4096):
                    pass
            except ConnectionError:
                pass
        assert time.monotonic() - t0 < REQUEST_TIMEOUT + 3
    # A handshake without a client certificate, then a request.
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.load_verify_locations(cafile=str(c.dir / "ca.crt"))
    try:
        r = send(c, build(b"GET", b"/federation/v1/ping"), bare)
        assert r is None or r.status in (400, 403), r
    except ssl.SSLError:
        pass


@pytest.mark.parametrize("fed", [False, True], ids=["local", "federation"])
def test_slow_and_partial_requests(site, fed):
    node, tls = face(site, fed)
    path = b"/federation/v1/ping" if fed else b"/healthz"
    # Sent a few bytes at a time, within the request timeout: answered.
    data = build(b"GET", path)
    s = connect(node, tls)
    try:
        for i in range(0, len(data), 7):
            s.sendall(data[i:i + 7])
            time.sleep(0.01)
        r = read_response(s.makefile("rb"))
        assert r.status == 200, r
    finally:
        s.close()
    # Stalled in the headers, or in the body: cut off by the timeout.
    for part in (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n",
                 b"POST " + path + b" HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pa"):
        s = connect(node, tls)
        t0 = time.monotonic()
        try:
            s.sendall(part)
            try:
                data = s.recv(1000)
            except (ConnectionError, ssl.SSLError):
                data = b""
        finally:
            s.close()
        elapsed = time.monotonic() - t0
        assert data == b"" or data.startswith(b"HTTP/1.1 408") or \
            data.startswith(b"HTTP/1.1 400"), data
        assert REQUEST_TIMEOUT - 0.5 < elapsed < REQUEST_TIMEOUT + 3, elapsed
    # Half a request, then gone.
    for _ in range(5):
        s = connect(node, tls)
        s.sendall(b"POST " + path + b" HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        s.close()


@pytest.mark.parametrize("fed", [False, True], ids=["local", "federation"])
def test_pipelined_requests(site, fed):
    node, tls = face(site, fed)
    path = b"/federation/v1/ping" if fed else b"/healthz"
    n = 60
    reqs = [build(b"GET", path)] * n
    reqs.insert(20, build(b"POST", b"/federation/v1/complete" if fed else b"/api/v1/checkin",
                          b"not json", headers_for(site, fed)))
    if not fed:
        # Check-ins in a row on one connection: each answered, each once.
        passes = [site.cordee.member_with_pass(tickets=3)[1] for _ in range(3)]
        reqs += [build(b"POST", b"/api/v1/checkin", json.dumps({"pass": p}),
                       [site.auth("concierge")]) for p in passes]
    s = connect(node, tls)
    got = []
    try:
        s.sendall(b"".join(reqs))
        f = s.makefile("rb")
        for data in reqs:
            got.append(read_response(f))
    finally:
        s.close()
    STATS["requests"] += len(reqs)
    assert len(got) == len(reqs)
    for i, (data, r) in enumerate(zip(reqs, got)):
        o = check(r, f"pipelined #{i}")
        path_i = data.split(b" ", 2)[1]
        note_visit(path_i, r, o)
        if path_i == path:
            assert r.status == 200, (i, r)
    if not fed:
        admitted = [o for o in (json.loads(r.body) for r in got[-3:])]
        assert [o["decision"] for o in admitted] == ["admit"] * 3, admitted
        assert len({o["visit_id"] for o in admitted}) == 3


def mutate(rnd, data):
    """data with one to four byte-wise changes."""
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(7)
        i = rnd.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] ^= 1 << rnd.randrange(8)
        elif op == 1:
            b.insert(i, rnd.randrange(256))
        elif op == 2 and b:
            del b[i]
        elif op == 3 and b:
            b[i] = rnd.choice(b'\x00\xff"{}[]\\:, \r\n0-.e%')
        elif op == 4 and b:
            j = min(len(b), i + rnd.randint(1, 16))
            b[i:i] = b[i:j]
        elif op == 5 and b:
            del b[i:i + rnd.randint(1, 16)]
        else:
            b[i:i] = rnd.choice([b"\\u0000", b"\xc3", b"\xed\xa0\x80", b"[[[[", b"1e999",
                                 b'","x":"', b"\r\n", b"%00", b"/../"])
    return bytes(b)


def test_seeded_mutations_of_valid_requests(site):
    """Check-ins, authorizations and check-outs, mutated byte by byte: the
    head (request line and headers) and the body separately, so that the
    Content-Length stays true and no request waits for bytes never sent.
    The mutations and the visit ids come from the seed; the passes and
    tokens they land in are made afresh by each run."""
    rnd = random.Random(SEED)
    t, c = site.troquet, site.cordee
    kinds = ("checkin", "authorize", "checkout")
    seen = collections.Counter()
    for n in range(MUTATIONS):
        kind = kinds[n % 3]
        if kind == "checkin":
            node, tls = t, None
            head = [b"POST /api/v1/checkin HTTP/1.1", b"Host: 127.0.0.1",
                    b"Authorization: Bearer " + site.tokens["concierge"].encode(),
                    b"Content-Type: application/json"]
            body = json.dumps({"pass": site.pass_token}).encode()
        elif kind == "authorize":
            node, tls = c, site.tls
            vid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            head = [b"POST /federation/v1/authorize HTTP/1.1", b"Host: 127.0.0.1",
                    b"Idempotency-Key: " + vid.encode(), b"Content-Type: application/json"]
            body = site.authorize_body(vid).encode()
        else:
            node, tls = t, None
            vid = (site.open_visit if n % 2 else
                   str(uuid.UUID(int=rnd.getrandbits(128), version=4)))
            head = [b"POST /api/v1/visits/" + vid.encode() + b"/checkout HTTP/1.1",
                    b"Host: 127.0.0.1",
                    b"Authorization: Bearer " + site.tokens["concierge"].encode()]
            body = b""
        where = rnd.randrange(3)  # 0: head, 1: body, 2: both
        head_b = b"\r\n".join(head)
        if where in (0, 2):
            head_b = mutate(rnd, head_b)
        if where in (1, 2) or not body:
            body = mutate(rnd, body)
        data = (head_b + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                + body)
        r = send(node, data, tls, method=b"GET")
        o = check(r, f"mutation #{n} ({kind}): {data[:300]!r}", garbage=True)
        first = head_b.split(b"\r\n", 1)[0].split(b" ")
        if r is not None and len(first) > 1:
            note_visit(first[1], r, o)
        seen[(kind, r.status if r is not None else "closed")] += 1
    print(f"\nmutations: {sorted(seen.items(), key=str)}")


def test_ledgers_and_the_node_after_the_barrage(site):
    """Run last: the nodes are alive, every visit recorded is one that an
    answer named, exactly once, and a valid visit still goes through."""
    t, c = site.troquet, site.cordee
    for node in (t, c):
        assert node.proc is not None and node.proc.poll() is None, f"{node.id} died"
    assert t.get("/healthz").status == 200
    assert c.fed_request(t, "GET", "/federation/v1/ping").json() == \
        {"space": "cordee", "caller": "troquet"}

    host = {v for (v,) in t.query("select visit_id::text from host_visits")}
    assert host == ANSWERED["checkin"], (host ^ ANSWERED["checkin"])
    assert t.query_one("select count(*) from host_visits")[0] == len(host)
    assert t.query_one("select count(*) from home_visits")[0] == 0
    assert c.query_one("select count(*) from host_visits")[0] == 0
    home = {v for (v,) in c.query("select visit_id::text from home_visits")}
    assert home <= ANSWERED["checkin"] | ANSWERED["authorize"], \
        home - ANSWERED["checkin"] - ANSWERED["authorize"]
    assert ANSWERED["admitted"] <= home, ANSWERED["admitted"] - home
    for node in (t, c):
        bad = node.query("select m.pseudonym from members m where m.tickets <>"
                         " (select coalesce(sum(delta), 0) from ticket_movements x"
                         "  where x.member_id = m.id)")
        assert not bad, f"{node.id}: tickets and their movements disagree: {bad}"

    # A valid check-in now: admitted, recorded once on each side.
    member, token = c.member_with_pass(tickets=4)
    r = t.checkin(token)
    assert r.status == 200 and r.json()["decision"] == "admit", r
    vid = r.json()["visit_id"]
    assert t.query_one("select count(*) from host_visits where visit_id = %s", vid)[0] == 1
    assert c.query_one("select count(*) from home_visits where visit_id = %s", vid)[0] == 1
    assert c.balance(member) == (3, 3)
    r = t.checkout(vid)
    assert r.status == 200 and r.json()["units"] >= 1, r

    for node in (t, c):
        log = node.log.read_text(errors="replace")
        for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert marker not in log, f"{node.id}'s log has a sanitizer report"
    print(f"\n{STATS['requests']} raw requests, {STATS['closed']} closed without an"
          f" answer; {len(host)} visits at troquet, {len(home)} at cordee")
