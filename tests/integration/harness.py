"""The integration tests' harness: a throw-away PostgreSQL server and real
federations of real `passerelle` nodes, built the way scripts/demo.sh and the
operators build them (certs/pki.sh, `passerelle key generate`, `passerelle
directory sign`).

Nothing here knows the node's internals: the tests talk to a node as a front
desk (the local face's JSON API), as a peer (the federation face, mutual TLS
with a certificate from certs/pki.sh), as an operator (the command line), and
read its PostgreSQL database to check what it recorded.

Only the standard library, psycopg 3, jwcrypto and cryptography are used.
"""
import base64
import contextlib
import glob
import http.client
import http.server
import itertools
import json
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
PKI = ROOT / "certs" / "pki.sh"

# Bounds for everything that waits, so that no test can hang.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
CLI_TIMEOUT = 30.0
HTTP_TIMEOUT = 15.0

_counter = itertools.count(1)


def unique(prefix):
    """A short name no other test of this run uses."""
    return f"{prefix}{next(_counter)}x{uuid.uuid4().hex[:6]}"


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def rows_read(node, table, before=None, counter="n_tup_ins"):
    """The rows scans of the table have read so far (vacuum and analyze
    aside), and a write counter of the table (counter: the rows inserted,
    or n_tup_upd).  A node's session reports its statistics when it goes
    idle, or up to 10 s later when it reported less than a second before:
    with `before`, waits for that counter to move, which comes with
    whatever the same session read before the write in its transaction.
    Name the write that comes last: a write earlier in the request (a
    pending row, in its own transaction) may be reported while what is
    read after it is still held back."""
    q = ("select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0), " + counter +
         " from pg_stat_user_tables where relname = %s")
    node.db().execute("select pg_stat_force_next_flush()")
    if before is not None:
        wait_until(lambda: node.query_one(q, table)[1] != before[1], 20,
                   interval=0.2, what=f"{table}'s statistics")
    return node.query_one(q, table)


_PORTS_GIVEN = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_base(offsets=(0,)):
    """A TCP port `base` on 127.0.0.1 such that base + each offset is a
    port that nothing uses right now, below the kernel's range of ephemeral
    ports, and not given before.  A port from that range (what bind to port
    0 gives) may become the source port of any outgoing connection once its
    node stops, and a node restarted on it then fails with "Address already
    in use"."""
    low = _ephemeral_low()
    rnd = random.Random()
    for _ in range(1000):
        base = rnd.randrange(10000 - min(0, *offsets), low - max(0, *offsets))
        ports = [base + o for o in offsets]
        if any(p in _PORTS_GIVEN for p in ports):
            continue
        try:
            for port in ports:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _PORTS_GIVEN.update(ports)
        return base
    raise RuntimeError("no free TCP port below the ephemeral range")


def free_port():
    """A free TCP port on 127.0.0.1 (free_port_base)."""
    return free_port_base()


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


# --------------------------------------------------------------------------
# JOSE helpers, independent of the node's own code.

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jws_parts(token):
    """(header dict, payload bytes, signature bytes) of a compact JWS."""
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), b64url_decode(p), b64url_decode(s)


def compact_json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def make_jws(header, payload, private_key=None, signature=None):
    """A compact JWS; signed with an Ed25519 private key (cryptography)
    when one is given, else carrying `signature` (bytes) or none at all."""
    if not isinstance(header, (str, bytes)):
        header = compact_json(header)
    if not isinstance(payload, (str, bytes)):
        payload = compact_json(payload)
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    if private_key is not None:
        signature = private_key.sign(signing_input.encode())
    return f"{signing_input}.{b64url(signature) if signature else ''}"


def load_ed25519_private(path):
    from cryptography.hazmat.primitives import serialization

    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def sign_as(node, typ, payload, kid=None):
    """payload signed as the node signs its documents (receipts,
    completions, ledgers): with its pass key, JWS typ `typ`."""
    key = load_ed25519_private(node.dir / "pass.key")
    return make_jws({"alg": "EdDSA", "typ": typ, "kid": kid or node.kid}, payload, key)


# --------------------------------------------------------------------------
# HTTP

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"HTTP {self.status}: body is not JSON "
                                 f"({e}): {self.body[:300]!r}") from None

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:300]!r}>"


def http_request(conn, method, path, body=None, headers=None):
    """Sends one request on an http.client connection and reads the answer."""
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = compact_json(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def client_tls_context(ca_file, cert=None, key=None):
    """A TLS client context trusting only ca_file, optionally with a
    client certificate: what a peer node presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca_file))
    if cert is not None:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    return ctx


# --------------------------------------------------------------------------
# PostgreSQL

def pg_bin_dir():
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    dirs = [d for d in dirs if os.path.exists(os.path.join(d, "initdb"))]
    if not dirs:
        raise RuntimeError("no PostgreSQL server programs in /usr/lib/postgresql/*/bin")
    return max(dirs, key=lambda d: int(d.split("/")[-2].split(".")[0]))


class PostgresServer:
    """One throw-away cluster on a Unix socket, as pgbouncer's tests do.

    PostgreSQL refuses to run as root, so when the tests run as root the
    server programs run as the `postgres` user (runuser).
    """

    def __init__(self):
        self.bin = pg_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="passerelle-it-pg-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.sockdir = self.root / "run"
        self.log = self.root / "postgresql.log"
        self.as_root = os.geteuid() == 0
        self.started = False
        for d in (self.data, self.sockdir):
            d.mkdir()
        self.log.touch()
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            for p in (self.data, self.sockdir, self.log):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data, 0o700)
        os.chmod(self.sockdir, 0o755)

    def _run(self, *args, timeout=60):
        cmd = [os.path.join(self.bin, args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n"
                               f"{r.stdout}{r.stderr}\n{tail(self.log)}")
        return r

    def start(self):
        self._run("initdb", "--no-sync", "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C")
        opts = (f"-c listen_addresses='' -c unix_socket_directories={self.sockdir}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                " -c max_connections=300")
        self._run("pg_ctl", "-w", "-D", str(self.data), "-l", str(self.log),
                  "-o", opts, "start")
        self.started = True

    def stop(self):
        try:
            if self.started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            self.started = False
            shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, dbname="postgres"):
        return psycopg.connect(host=str(self.sockdir), user="postgres",
                               dbname=dbname, autocommit=True, connect_timeout=10)

    def create_database(self, name):
        with self.connect() as c:
            c.execute(sql.SQL("create database {}").format(sql.Identifier(name)))

    def url(self, dbname):
        """The libpq URL a node's [node] database option takes."""
        return f"postgresql:///{dbname}?host={self.sockdir}&user=postgres"


# --------------------------------------------------------------------------
# Nodes and federations

SPACES = {
    "troquet": ("Le Troquet numérique", "Bourgoin-Jallieu"),
    "cordee": ("La Cordée Lyon", "Lyon"),
    "grenoble": ("La Cordée Grenoble", "Grenoble"),
}


class Node:
    """One space: its files, its database, its `passerelle serve` process."""

    def __init__(self, fed, space_id, overrides=None):
        self.fed = fed
        self.id = space_id
        self.name, self.city = SPACES.get(space_id, (space_id.title(), "Lyon"))
        self.dir = fed.dir / space_id
        self.conf = self.dir / "passerelle.conf"
        self.log = self.dir / "node.log"
        self.fed_port = free_port()
        self.local_port = free_port()
        self.dbname = f"{fed.name}_{space_id}".replace("-", "_")
        self.kid = f"{space_id}-1"
        self.overrides = overrides or {}
        self.proc = None
        self._db = None
        self._staff = {}

    # ---- files

    def make_files(self):
        self.fed.pki("node", self.fed.ca_dir, self.dir, self.id,
                     f"{self.id}.localhost", "127.0.0.1")
        self.fed.passerelle("key", "generate", self.dir / "pass.key",
                            "--public", self.dir / "pass.pub")

    def config_sections(self):
        sections = {
            "node": {"space_id": self.id, "data_dir": "data",
                     "timezone": "Europe/Paris",
                     "database": self.fed.pg.url(self.dbname)},
            "federation": {"listen": f"127.0.0.1:{self.fed_port}",
                           "cert": "node.crt", "key": "node.key", "ca": "ca.crt",
                           "directory": "directory.jws",
                           "directory_key": "coordinator.pub"},
            "local": {"listen": f"127.0.0.1:{self.local_port}"},
            "pass": {"key": "pass.key", "kid": self.kid},
            "limits": {"workers": "4"},
        }
        for section, values in self.overrides.items():
            sections.setdefault(section, {}).update(values)
        return sections

    def write_config(self):
        lines = [f"# {self.name}: a Passerelle node made by the integration tests."]
        for section, values in self.config_sections().items():
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {v}" for k, v in values.items()]
        self.conf.write_text("\n".join(lines) + "\n")

    def description(self):
        return {"id": self.id, "name": self.name, "city": self.city,
                "url": f"https://127.0.0.1:{self.fed_port}",
                "cert": f"{self.id}/node.crt",
                "pass_keys": [{"kid": self.kid, "public_key": f"{self.id}/pass.pub"}]}

    # ---- process

    def start(self):
        assert self.proc is None, f"{self.id} is already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.fed.bin), "-c", str(self.conf), "serve"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.fed.env)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise AssertionError(f"node {self.id} exited with {rc} at start;"
                                     f" its log:\n{tail(self.log)}")
            try:
                r = self.get("/healthz", timeout=2)
                if r.status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"node {self.id} not healthy after "
                                     f"{START_TIMEOUT}s; its log:\n{tail(self.log)}")
            time.sleep(0.05)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then waits; returns the exit status (None if it had to
        be killed)."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # in case a test froze it
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            return None

    def close_db(self):
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None

    # ---- command line

    def cli(self, *args, timeout=CLI_TIMEOUT):
        """Runs `passerelle -c CONF ARGS...`: (exit status, stdout, stderr)."""
        return self.fed.passerelle("-c", self.conf, *args, check=False,
                                   timeout=timeout)

    def cli_ok(self, *args):
        rc, out, err = self.cli(*args)
        assert rc == 0, f"passerelle {' '.join(map(str, args))}: exit {rc}: {err}"
        return out

    def staff_token(self, role="concierge"):
        """A staff account's API token (one per role and node, made once)."""
        if role not in self._staff:
            self._staff[role] = self.cli_ok(
                "staff", "add", unique(f"{role} "), "--role", role).strip()
            assert self._staff[role].startswith("pst_"), self._staff[role]
        return self._staff[role]

    def add_member(self, full_name=None, tickets=10, plan="tickets", until=None,
                   display_name=None):
        """Adds a member with `member add --json`; returns its JSON, plus
        the e-mail used."""
        full_name = full_name or "Camille Durand"
        email = f"{unique('m')}@example.org"
        args = ["member", "add", full_name, "--email", email, "--plan", plan,
                "--json"]
        if plan == "tickets":
            args += ["--tickets", str(tickets)]
        if until:
            args += ["--until", until]
        if display_name:
            args += ["--display-name", display_name]
        m = json.loads(self.cli_ok(*args))
        m["email"] = email
        return m

    def issue_pass(self, member):
        ref = member["pseudonym"] if isinstance(member, dict) else member
        # "--": a pseudonym may start with "-".
        info = json.loads(self.cli_ok("pass", "issue", "--json", "--", ref))
        return info["token"]

    def member_with_pass(self, **kw):
        m = self.add_member(**kw)
        return m, self.issue_pass(m)

    # ---- local face

    def local_conn(self, timeout=HTTP_TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.local_port,
                                          timeout=timeout)

    def get(self, path, token=None, timeout=HTTP_TIMEOUT):
        return self.api("GET", path, token=token, timeout=timeout)

    def api(self, method, path, body=None, token=None, headers=None,
            timeout=HTTP_TIMEOUT):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        return http_request(self.local_conn(timeout), method, path, body, hdrs)

    def checkin(self, pass_token, staff=None, timeout=HTTP_TIMEOUT):
        staff = staff or self.staff_token("concierge")
        return self.api("POST", "/api/v1/checkin", {"pass": pass_token},
                        token=staff, timeout=timeout)

    def checkout(self, visit_id, staff=None):
        staff = staff or self.staff_token("concierge")
        return self.api("POST", f"/api/v1/visits/{visit_id}/checkout", token=staff)

    # ---- database

    def db(self):
        """An autocommit psycopg connection to this node's database."""
        if self._db is None or self._db.closed:
            self._db = self.fed.pg.connect(self.dbname)
        return self._db

    def query(self, q, *params):
        return self.db().execute(q, params).fetchall()

    def query_one(self, q, *params):
        rows = self.query(q, *params)
        assert len(rows) <= 1, f"{len(rows)} rows for {q}"
        return rows[0] if rows else None

    def balance(self, member):
        """(members.tickets, sum of the member's ticket_movements)."""
        return self.query_one(
            "select m.tickets, (select coalesce(sum(delta), 0)::int from"
            " ticket_movements t where t.member_id = m.id)"
            " from members m where m.pseudonym = %s", member["pseudonym"])

    def peer_calls(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        for line in r.body.decode().splitlines():
            if line.startswith("passerelle_peer_calls_total "):
                return int(line.split()[1])
        raise AssertionError(f"no passerelle_peer_calls_total in {r.body!r}")

    # ---- federation face

    def tls_context(self):
        """This node's client context: its certificate, the federation CA."""
        return client_tls_context(self.dir / "ca.crt", self.dir / "node.crt",
                                  self.dir / "node.key")

    def fed_conn(self, ctx, timeout=HTTP_TIMEOUT):
        return http.client.HTTPSConnection("127.0.0.1", self.fed_port, context=ctx,
                                           timeout=timeout)

    def fed_request(self, caller, method, path, body=None, headers=None):
        """A request to this node's federation face as `caller` (a Node,
        or an ssl.SSLContext)."""
        ctx = caller.tls_context() if isinstance(caller, Node) else caller
        headers = dict(headers or {})
        # A well-behaved peer keys every POST (docs/protocol.md); a test
        # that wants to misbehave passes its own headers, or None as the key.
        if method == "POST" and "Idempotency-Key" not in headers:
            key = body.get("visit_id") if isinstance(body, dict) else None
            headers["Idempotency-Key"] = (key if path.endswith("/authorize") and key
                                          else str(uuid.uuid4()))
        headers = {k: v for k, v in headers.items() if v is not None}
        return http_request(self.fed_conn(ctx), method, path, body, headers)


class FakeFace:
    """A stand-in for a node's federation face, on its port: a Python HTTPS
    server with mutual TLS, holding the node's certificate (or the one in
    cert_dir, trusting ca), answering with the test's own handler class."""

    def __init__(self, node, handler, cert_dir=None, ca=None):
        cert_dir = cert_dir or node.dir
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_dir / "node.crt", cert_dir / "node.key")
        ctx.load_verify_locations(ca or (node.dir / "ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", node.fed_port),
                                                      handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Federation:
    """A CA, a coordinator key, a signed directory and a few nodes, in one
    temporary folder, made like scripts/demo.sh makes the demo."""

    def __init__(self, pg, binary, spaces=("troquet", "cordee"), config=None,
                 serial=1, valid_days=30):
        self.pg = pg
        self.bin = Path(binary)
        self.name = unique("fed")
        self.dir = Path(tempfile.mkdtemp(prefix=f"passerelle-it-{self.name}-",
                                         dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.ca_dir = self.dir / "coordinator" / "ca"
        self.coordinator_key = self.dir / "coordinator" / "directory.key"
        self.coordinator_pub = self.dir / "coordinator" / "directory.pub"
        self.directory_jws = self.dir / "coordinator" / "directory.jws"
        self.serial = serial
        self.valid_days = valid_days
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PASSERELLE_", "PG"))}
        config = config or {}
        self.nodes = {s: Node(self, s, config.get(s)) for s in spaces}

    def __getitem__(self, space_id):
        return self.nodes[space_id]

    # ---- tools

    def pki(self, *args):
        r = subprocess.run(["sh", str(PKI), *map(str, args)], capture_output=True,
                           text=True, timeout=60, env=self.env)
        assert r.returncode == 0, f"pki.sh {' '.join(map(str, args))}: {r.stderr}"
        return r.stdout

    def passerelle(self, *args, check=True, timeout=CLI_TIMEOUT):
        r = subprocess.run([str(self.bin), *map(str, args)], capture_output=True,
                           text=True, timeout=timeout, env=self.env,
                           stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, \
                f"passerelle {' '.join(map(str, args))}: exit {r.returncode}: {r.stderr}"
            return r.stdout
        return r.returncode, r.stdout, r.stderr

    # ---- building

    def build(self):
        (self.dir / "coordinator").mkdir()
        self.pki("ca", self.ca_dir, "Passerelle test federation CA")
        self.passerelle("key", "generate", self.coordinator_key,
                        "--public", self.coordinator_pub)
        for node in self.nodes.values():
            node.make_files()
            self.pg.create_database(node.dbname)
        self.sign_directory()
        for node in self.nodes.values():
            node.write_config()
        return self

    def sign_directory(self):
        desc = {"federation": "passerelle-tests", "serial": self.serial,
                "valid_days": self.valid_days,
                "spaces": [n.description() for n in self.nodes.values()]}
        path = self.dir / "directory.json"
        path.write_text(json.dumps(desc, indent=1, ensure_ascii=False))
        self.passerelle("directory", "sign", path, "--key", self.coordinator_key,
                        "--output", self.directory_jws)
        for node in self.nodes.values():
            shutil.copy(self.directory_jws, node.dir / "directory.jws")
            shutil.copy(self.coordinator_pub, node.dir / "coordinator.pub")

    def start(self):
        for node in self.nodes.values():
            node.start()
        return self

    def close(self):
        """Stops every node; returns a list of problems (non-zero exits, a
        visit whose under_way disagrees with its status)."""
        problems = []
        for node in self.nodes.values():
            # under_way is kept by the statements that set a visit's status,
            # not by a CHECK (schema/015_visits_under_way.sql): every test's
            # visits are checked here.  A node whose database cannot be
            # reached, or is older than 015, has nothing to check.
            bad = None
            with contextlib.suppress(psycopg.OperationalError,
                                     psycopg.errors.UndefinedTable,
                                     psycopg.errors.UndefinedColumn):
                bad = node.query("select visit_id::text, status, under_way"
                                 " from host_visits where under_way is distinct"
                                 " from (status in ('pending', 'open'))")
            if bad:
                problems.append(f"node {node.id}: under_way disagrees with the"
                                f" status of {len(bad)} visits: {bad[:5]}")
            node.close_db()
            rc = node.stop()
            if rc != 0:
                problems.append(f"node {node.id} exited with {rc} on SIGTERM;"
                                f" its log:\n{tail(node.log)}")
        return problems

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tails(self, lines=30):
        return "\n".join(f"--- {n.id} ({n.log}):\n{tail(n.log, lines)}"
                         for n in self.nodes.values())

    # ---- the directory, read with jwcrypto

    def directory(self):
        """The signed directory's payload, verified with jwcrypto and the
        coordinator's public key."""
        from jwcrypto import jwk, jws

        coordinator = jwk.JWK.from_pem(self.coordinator_pub.read_bytes())
        d = jws.JWS()
        d.deserialize(self.directory_jws.read_text().strip())
        d.verify(coordinator, alg="EdDSA")
        return json.loads(d.payload)

    def jwks(self, space_id):
        from jwcrypto import jwk

        space = next(s for s in self.directory()["spaces"] if s["id"] == space_id)
        return jwk.JWKSet.from_json(json.dumps(space["jwks"]))

    # ---- certificates outside the directory

    def extra_cert(self, space_id, ca_dir=None):
        """A node certificate (node.crt, node.key) for space_id from this
        federation's CA, or from the CA in ca_dir."""
        out = self.dir / "extra" / unique(space_id)
        out.parent.mkdir(exist_ok=True)
        self.pki("node", ca_dir or self.ca_dir, out, space_id,
                 f"{space_id}.localhost", "127.0.0.1")
        return out

    def other_ca(self):
        ca = self.dir / "extra" / unique("other-ca")
        ca.parent.mkdir(exist_ok=True)
        self.pki("ca", ca, "Some other federation CA")
        return ca

    def context_for(self, cert_dir, ca=None):
        return client_tls_context(ca or (self.ca_dir / "ca.crt"),
                                  cert_dir / "node.crt", cert_dir / "node.key")
