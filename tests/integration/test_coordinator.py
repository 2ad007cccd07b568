"""The coordinator's and a new space's commands, on their files.

`federation init/admit/remove/add-key/renew/roll-key/sign`, `init`, `join`
and `pass new-key`: what each writes (keys and their modes, certificates,
the signed directory, bundles), what each refuses and why.  No node runs
here: every check reads the files with tools independent of passerelle
(openssl, python3-jwcrypto, python3-cryptography).

Self-contained on purpose: no fixture of conftest.py is used.  The binary
is $PASSERELLE_BIN, or build/passerelle.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("PASSERELLE_BIN") or str(ROOT / "build" / "passerelle")
PKI = str(ROOT / "certs" / "pki.sh")


# ---------------------------------------------------------------- helpers

def run(*args, cwd=None, env=None):
    full = dict(os.environ)
    full.pop("PASSERELLE_FEDERATION", None)
    full.pop("PASSERELLE_CONFIG", None)
    full.update(env or {})
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=120)


def ok(*args, **kw):
    r = run(*args, **kw)
    assert r.returncode == 0, f"{args}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def refused(*args, rc=1, **kw):
    """Runs a command that must fail with one line on stderr; returns it."""
    r = run(*args, **kw)
    assert r.returncode == rc, f"{args}: rc {r.returncode}, wanted {rc}\n{r.stdout}\n{r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"{args}: not one line:\n{r.stderr}"
    return lines[0]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def pin_of(cert_pem):
    cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str)
                                          else cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(spki).digest())


def raw_public(pem_path):
    key = serialization.load_pem_public_key(Path(pem_path).read_bytes())
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify(token, pub_path):
    """The directory's payload and header, verified with a standard JOSE library."""
    key = jwk.JWK.from_pem(Path(pub_path).read_bytes())
    o = jws.JWS()
    o.deserialize(token.strip())
    o.verify(key, alg="EdDSA")
    return json.loads(o.payload), o.jose_header


def does_not_verify(token, pub_path):
    try:
        verify(token, pub_path)
    except Exception:
        return True
    return False


def openssl(*args, input=None):
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True,
                       input=input, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def state(coord):
    return json.loads((coord / "federation.json").read_text())


def directory(coord):
    return verify((coord / "directory.jws").read_text(), coord / "signing" / "directory.pub")


def new_space(tmp, sid, port, *extra):
    d = tmp / sid
    ok("init", d, "--id", sid, "--name", f"Space {sid}", "--url",
       f"https://127.0.0.1:{port}", "--dns", f"{sid}.localhost", "--ip", "127.0.0.1", *extra)
    return d


def admit(coord, space, *extra):
    ok("federation", "admit", space / "join-request.json", "--federation", coord, *extra)
    return coord / "bundles" / f"{space.name}.json"


def join(space, bundle, *extra):
    return ok("-c", space / "passerelle.conf", "join", bundle, *extra)


@pytest.fixture
def coord(tmp_path):
    c = tmp_path / "coord"
    ok("federation", "init", c, "--name", "passerelle-test")
    return c


@pytest.fixture
def alpha(tmp_path, coord):
    """Space alpha, admitted and joined."""
    s = new_space(tmp_path, "alpha", 7443, "--city", "Lyon", "--lat", "45.76", "--lon",
                  "4.83", "--hours", '{"mon": "09:00-19:00", "sat": "10:00-13:00"}',
                  "--capacity", "25", "--services", "wifi,coffee", "--contact",
                  "hello@alpha.example.org", "--address", "1 rue de la Paix")
    join(s, admit(coord, s))
    return s


# ---------------------------------------------------------------- federation init

def test_federation_init_writes_the_ca_and_the_signing_key_apart(coord):
    ca, signing = coord / "ca", coord / "signing"
    for f in ("ca.key", "ca.crt", "crl.pem", "index.txt"):
        assert (ca / f).is_file(), f
    assert (signing / "directory.key").is_file() and (signing / "directory.pub").is_file()
    assert mode(ca / "ca.key") == 0o600
    assert mode(signing / "directory.key") == 0o600
    assert mode(signing) == 0o700
    # Kept apart: neither folder holds the other's key.
    assert not list(ca.rglob("directory*.key"))
    assert not list(signing.rglob("ca.key"))
    assert "CA:TRUE" in openssl("x509", "-in", ca / "ca.crt", "-noout", "-text")

    payload, header = directory(coord)
    assert payload["serial"] == 1 and payload["spaces"] == []
    assert payload["federation"] == "passerelle-test"
    assert header["kid"] == "coordinator-1" and header["typ"] == "directory"
    assert (coord / "published" / "directory-1.jws").read_text() == \
        (coord / "directory.jws").read_text()
    s = state(coord)
    assert s["serial"] == 1 and s["signing"]["key"] == "signing/directory.key"
    assert s["signing"]["x"] == b64url(raw_public(signing / "directory.pub"))


def test_federation_init_refuses_an_existing_federation(coord):
    key = (coord / "signing" / "directory.key").read_bytes()
    line = refused("federation", "init", coord, "--name", "other")
    assert "exists" in line
    assert (coord / "signing" / "directory.key").read_bytes() == key
    assert state(coord)["federation"] == "passerelle-test"


@pytest.mark.parametrize("args", [
    [],                                   # no --name
    ["--name", "bad name"],
    ["--name", "ok", "--valid-days", "0"],
    ["--name", "ok", "--valid-days", "many"],
])
def test_federation_init_usage_errors(tmp_path, args):
    refused("federation", "init", tmp_path / "c", *args, rc=2)
    assert not (tmp_path / "c").exists()


def test_commands_need_the_federation_folder(tmp_path):
    line = refused("federation", "sign", rc=2)
    assert "--federation" in line
    line = refused("federation", "sign", "--federation", tmp_path)
    assert "federation.json" in line
    # The environment names it too.
    ok("federation", "init", tmp_path / "c", "--name", "envtest")
    ok("federation", "sign", env={"PASSERELLE_FEDERATION": str(tmp_path / "c")})
    assert state(tmp_path / "c")["serial"] == 2


# ---------------------------------------------------------------- init (new space)

def test_init_makes_keys_csr_config_and_join_request(tmp_path):
    s = new_space(tmp_path, "troquet", 7450, "--city", "Bourgoin-Jallieu", "--lat",
                  "45.586", "--lon", "5.274", "--hours", '{"mon": "09:00-19:00"}',
                  "--capacity", "25", "--services", "wifi, coffee,printer",
                  "--contact", "contact@troquet.example", "--ip", "192.0.2.10,2001:db8::1")
    assert mode(s / "node.key") == 0o600
    assert mode(s / "pass.key") == 0o600
    assert "verify OK" in subprocess.run(
        ["openssl", "req", "-in", s / "node.csr", "-noout", "-verify"],
        capture_output=True, text=True).stderr + \
        subprocess.run(["openssl", "req", "-in", s / "node.csr", "-noout", "-verify"],
                       capture_output=True, text=True).stdout
    csr_text = openssl("req", "-in", s / "node.csr", "-noout", "-text")
    assert "URI:urn:passerelle:space:troquet" in csr_text
    assert "DNS:troquet.localhost" in csr_text

    req = json.loads((s / "join-request.json").read_text())
    assert req["v"] == 1 and req["id"] == "troquet" and req["name"] == "Space troquet"
    assert req["city"] == "Bourgoin-Jallieu"
    assert req["lat"] == pytest.approx(45.586) and req["lon"] == pytest.approx(5.274)
    assert req["url"] == "https://127.0.0.1:7450" and req["dns"] == "troquet.localhost"
    assert req["ips"] == ["127.0.0.1", "192.0.2.10", "2001:db8::1"]
    assert req["hours"] == {"mon": "09:00-19:00"}
    assert req["capacity"] == 25
    assert req["services"] == ["wifi", "coffee", "printer"]
    assert req["contact"] == "contact@troquet.example"
    assert req["csr"] == (s / "node.csr").read_text()
    assert req["pass_key"] == {"kid": "troquet-1",
                               "x": b64url(raw_public(s / "pass.pub"))}
    # Only public material leaves the machine.
    text = (s / "join-request.json").read_text()
    assert "PRIVATE" not in text and '"d"' not in text

    conf = (s / "passerelle.conf").read_text()
    assert re.search(r"^space_id = troquet$", conf, re.M)
    assert re.search(r"^listen = 0\.0\.0\.0:7450$", conf, re.M)
    assert re.search(r"^kid = troquet-1$", conf, re.M)
    for line in ("cert = node.crt", "key = node.key", "ca = ca.crt",
                 "directory = directory.jws", "directory_key = coordinator.pub"):
        assert line in conf


@pytest.mark.parametrize("args", [
    ["--id", "Bad_Id", "--name", "N", "--url", "https://h:1", "--dns", "h"],
    ["--id", "ok", "--name", "N", "--url", "http://h:1", "--dns", "h"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1/path", "--dns", "h"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1", "--dns", "bad..name"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1", "--dns", "h", "--lat", "91",
     "--lon", "0"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1", "--dns", "h", "--lat", "45"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1", "--dns", "h", "--hours", "[1]"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1", "--dns", "h", "--hours",
     '{"someday": "9-5"}'],
    ["--id", "ok", "--name", "N", "--url", "https://h:1", "--dns", "h", "--capacity", "-1"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1", "--dns", "h", "--ip", "1.2.3"],
    ["--id", "ok", "--name", "N", "--url", "https://h:1", "--dns", "h", "--services",
     "Wi Fi"],
])
def test_init_refuses_bad_details_and_writes_nothing(tmp_path, args):
    refused("init", tmp_path / "s", *args, rc=2)
    assert not (tmp_path / "s").exists()


def test_init_refuses_to_overwrite_keys(tmp_path):
    s = new_space(tmp_path, "alpha", 7443)
    before = {f: (s / f).read_bytes() for f in ("node.key", "pass.key", "join-request.json")}
    line = refused("init", s, "--id", "alpha", "--name", "A", "--url", "https://h:1",
                   "--dns", "h")
    assert "exists" in line
    for f, data in before.items():
        assert (s / f).read_bytes() == data, f


# ---------------------------------------------------------------- admit and join

def test_admit_issues_the_certificate_and_signs_the_directory(tmp_path, coord):
    s = new_space(tmp_path, "alpha", 7443, "--city", "Lyon", "--lat", "45.76", "--lon",
                  "4.83", "--hours", '{"mon": "09:00-19:00"}', "--capacity", "25",
                  "--services", "wifi,coffee", "--contact", "a@example.org")
    r = ok("federation", "admit", s / "join-request.json", "--federation", coord, "--json")
    out = json.loads(r.stdout)
    assert out["space"] == "alpha" and out["serial"] == 2

    crt = coord / "spaces" / "alpha.crt"
    text = openssl("x509", "-in", crt, "-noout", "-text")
    assert "URI:urn:passerelle:space:alpha" in text
    assert "DNS:alpha.localhost" in text and "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "CA:FALSE" in text
    openssl("verify", "-CAfile", coord / "ca" / "ca.crt", "-purpose", "sslclient", crt)

    payload, header = directory(coord)
    assert payload["serial"] == 2 and header["kid"] == "coordinator-1"
    (sp,) = payload["spaces"]
    assert sp["id"] == "alpha" and sp["name"] == "Space alpha" and sp["city"] == "Lyon"
    assert sp["url"] == "https://127.0.0.1:7443"
    assert sp["spki_sha256"] == pin_of(crt.read_text()) == out["spki_sha256"]
    # The pin is the key of the space's own node.key.
    assert sp["spki_sha256"] == pin_of(
        openssl("x509", "-in", crt)) and openssl(
        "pkey", "-in", s / "node.key", "-pubout") == openssl("x509", "-in", crt, "-noout",
                                                              "-pubkey")
    (key,) = sp["jwks"]["keys"]
    assert key == {"kty": "OKP", "crv": "Ed25519", "kid": "alpha-1",
                   "x": b64url(raw_public(s / "pass.pub"))}
    assert sp["lat"] == pytest.approx(45.76) and sp["capacity"] == 25
    assert sp["hours"] == {"mon": "09:00-19:00"} and sp["services"] == ["wifi", "coffee"]
    assert sp["contact"] == "a@example.org"
    assert "address" not in sp  # not given: not on the map
    assert "dns" not in sp and "admitted_at" not in sp  # the coordinator's records

    bundle = json.loads((coord / "bundles" / "alpha.json").read_text())
    assert bundle["v"] == 1 and bundle["space"] == "alpha"
    assert bundle["certificate"] == crt.read_text()
    assert bundle["ca"] == (coord / "ca" / "ca.crt").read_text()
    assert bundle["directory"] == (coord / "directory.jws").read_text().strip()
    assert bundle["coordinator_key"] == (coord / "signing" / "directory.pub").read_text()
    assert bundle["crl"] == (coord / "ca" / "crl.pem").read_text()
    assert "PRIVATE" not in json.dumps(bundle)
    assert state(coord)["spaces"][0]["dns"] == "alpha.localhost"


def test_admit_writes_the_bundle_where_asked(tmp_path, coord):
    s = new_space(tmp_path, "alpha", 7443)
    admit(coord, s, "--bundle", tmp_path / "out" / "b.json")
    assert json.loads((tmp_path / "out" / "b.json").read_text())["space"] == "alpha"
    assert not (coord / "bundles" / "alpha.json").exists()


def test_admit_accepts_an_ed25519_csr(tmp_path, coord):
    s = new_space(tmp_path, "gamma", 7445)
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    tmp_path / "ed.key"], check=True, capture_output=True)
    csr = openssl("req", "-new", "-key", tmp_path / "ed.key", "-subj",
                  "/O=gamma/CN=gamma.localhost")
    req = json.loads((s / "join-request.json").read_text())
    req["csr"] = csr
    (tmp_path / "ed.json").write_text(json.dumps(req))
    ok("federation", "admit", tmp_path / "ed.json", "--federation", coord)
    assert "ED25519" in openssl("x509", "-in", coord / "spaces" / "gamma.crt", "-noout",
                                "-text")


def test_join_installs_the_bundle_and_the_config_checks(tmp_path, coord):
    s = new_space(tmp_path, "alpha", 7443, "--directory-url",
                  f"file://{coord}/directory.jws")
    assert f"directory_urls = file://{coord}/directory.jws" in \
        (s / "passerelle.conf").read_text()
    bundle = admit(coord, s)
    r = join(s, bundle, "--json")
    out = json.loads(r.stdout)
    assert out["space"] == "alpha" and out["serial"] == 2
    assert (s / "node.crt").read_text() == (coord / "spaces" / "alpha.crt").read_text()
    assert (s / "ca.crt").read_text() == (coord / "ca" / "ca.crt").read_text()
    assert (s / "directory.jws").read_text().strip() == \
        (coord / "directory.jws").read_text().strip()
    assert raw_public(s / "coordinator.pub") == \
        raw_public(coord / "signing" / "directory.pub")
    assert mode(s / "node.key") == 0o600
    r = ok("-c", s / "passerelle.conf", "config", "check")
    assert "OK (space alpha, directory serial 2)" in r.stdout


def test_join_again_is_harmless_and_an_older_bundle_is_refused(tmp_path, coord, alpha):
    join(alpha, coord / "bundles" / "alpha.json")
    beta = new_space(tmp_path, "beta", 7444)
    admit(coord, beta)
    # alpha now holds serial 3; the bundle of serial 2 would go back.
    shutil.copy(coord / "directory.jws", alpha / "directory.jws")
    line = refused("-c", alpha / "passerelle.conf", "join", coord / "bundles" / "alpha.json")
    assert "newer" in line


# ---------------------------------------------------------------- refusals

def tamper_csr(pem, where):
    lines = pem.strip().splitlines()
    der = bytearray(base64.b64decode("".join(lines[1:-1])))
    i = der.find(b"localhost") if where == "name" else len(der) // 2
    der[i] ^= 0x01
    body = base64.b64encode(bytes(der)).decode()
    return "\n".join([lines[0], *[body[k:k + 64] for k in range(0, len(body), 64)],
                      lines[-1]]) + "\n"


def rsa_csr(tmp_path):
    return openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
                   tmp_path / "rsa.key", "-subj", "/O=gamma/CN=gamma.localhost")


@pytest.mark.parametrize("change, reason", [
    (lambda r, t: r.update(csr=tamper_csr(r["csr"], "name")), "signature"),
    (lambda r, t: r.update(csr=tamper_csr(r["csr"], "middle")), "CSR"),
    (lambda r, t: r.update(csr=rsa_csr(t)), "P-256 or Ed25519"),
    (lambda r, t: r.update(csr="not a CSR"), "CSR"),
    (lambda r, t: r.pop("url"), "'url' is missing"),
    (lambda r, t: r.pop("csr"), "'csr'"),
    (lambda r, t: r.pop("pass_key"), "'pass_key'"),
    (lambda r, t: r.update(v=2), "'v'"),
    (lambda r, t: r.update(id="Gamma!"), "'id'"),
    (lambda r, t: r.update(url="http://127.0.0.1:7445"), "'url'"),
    (lambda r, t: r.update(lat=123), "'lat'"),
    (lambda r, t: r.update(capacity="many"), "'capacity'"),
    (lambda r, t: r.update(hours=["mon"]), "'hours'"),
    (lambda r, t: r.update(services="wifi"), "'services'"),
    (lambda r, t: r.update(name=""), "'name'"),
    (lambda r, t: r.update(surprise=1), "unknown field 'surprise'"),
    (lambda r, t: r["pass_key"].update(x="AAAA"), "32 bytes"),
    (lambda r, t: r["pass_key"].update(d="secret"), "unknown field 'd'"),
    (lambda r, t: r["pass_key"].update(kid="bad kid"), "kid"),
])
def test_admit_refuses_bad_requests_and_changes_nothing(tmp_path, coord, change, reason):
    s = new_space(tmp_path, "gamma", 7445)
    req = json.loads((s / "join-request.json").read_text())
    change(req, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(req))
    before = (coord / "federation.json").read_text()
    line = refused("federation", "admit", bad, "--federation", coord)
    assert reason in line, line
    assert (coord / "federation.json").read_text() == before
    assert not (coord / "spaces" / "gamma.crt").exists()
    assert directory(coord)[0]["serial"] == 1


@pytest.mark.parametrize("text, reason", [
    ('{"v": 1, "id": "gamma",', "not valid JSON"),
    ('[1, 2]', "JSON object"),
    ('{"v": 1, "v": 1}', "duplicate"),
    ("", "not valid JSON"),
])
def test_admit_refuses_malformed_json(tmp_path, coord, text, reason):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    line = refused("federation", "admit", bad, "--federation", coord)
    assert reason in line, line
    assert state(coord)["serial"] == 1


def test_admit_refuses_a_huge_request(tmp_path, coord):
    bad = tmp_path / "huge.json"
    bad.write_text('{"v": 1, "name": "' + "x" * 100000 + '"}')
    assert "larger" in refused("federation", "admit", bad, "--federation", coord)


def test_admit_refuses_a_duplicate_id_and_a_reused_key(tmp_path, coord, alpha):
    line = refused("federation", "admit", alpha / "join-request.json", "--federation", coord)
    assert "already" in line and "alpha" in line
    # Another space sending alpha's pass key (or kid) is refused too.
    other = new_space(tmp_path, "other", 7446)
    req = json.loads((other / "join-request.json").read_text())
    req["pass_key"] = json.loads((alpha / "join-request.json").read_text())["pass_key"]
    (tmp_path / "reuse.json").write_text(json.dumps(req))
    assert "pass key" in refused("federation", "admit", tmp_path / "reuse.json",
                                 "--federation", coord)
    # alpha's CSR under another id: it asks for space alpha.
    req = json.loads((other / "join-request.json").read_text())
    req["csr"] = (alpha / "node.csr").read_text()
    (tmp_path / "reuse2.json").write_text(json.dumps(req))
    line = refused("federation", "admit", tmp_path / "reuse2.json", "--federation", coord)
    assert "asks for space 'alpha', not 'other'" in line
    # alpha's node key in a CSR that names nothing: its pin is alpha's.
    req["csr"] = openssl("req", "-new", "-key", alpha / "node.key", "-subj",
                         "/O=other/CN=other.localhost")
    (tmp_path / "reuse3.json").write_text(json.dumps(req))
    line = refused("federation", "admit", tmp_path / "reuse3.json", "--federation", coord)
    assert "space 'alpha''s node key" in line
    assert state(coord)["serial"] == 2


def test_join_refuses_a_bundle_for_another_space(tmp_path, coord, alpha):
    beta = new_space(tmp_path, "beta", 7444)
    bundle = admit(coord, beta)
    before = (alpha / "node.crt").read_bytes()
    line = refused("-c", alpha / "passerelle.conf", "join", bundle)
    assert "this bundle is for space 'beta'" in line and "node is space 'alpha'" in line
    assert (alpha / "node.crt").read_bytes() == before
    # The same bundle rewritten to name alpha: its certificate still does not.
    b = json.loads(bundle.read_text())
    b["space"] = "alpha"
    (tmp_path / "renamed.json").write_text(json.dumps(b))
    line = refused("-c", alpha / "passerelle.conf", "join", tmp_path / "renamed.json")
    assert "certificate is for space 'beta'" in line


def test_join_refuses_a_directory_signed_by_another_key(tmp_path, coord):
    s = new_space(tmp_path, "alpha", 7443)
    bundle = json.loads(admit(coord, s).read_text())
    other = tmp_path / "other"
    ok("federation", "init", other, "--name", "passerelle-test")
    bundle["directory"] = (other / "directory.jws").read_text().strip()
    (tmp_path / "forged.json").write_text(json.dumps(bundle))
    line = refused("-c", s / "passerelle.conf", "join", tmp_path / "forged.json")
    assert "signature does not verify" in line
    assert not (s / "node.crt").exists() and not (s / "directory.jws").exists()
    # A coordinator key that does not match the CA's federation: the
    # directory verifies with it but does not list us.
    bundle["coordinator_key"] = (other / "signing" / "directory.pub").read_text()
    (tmp_path / "forged2.json").write_text(json.dumps(bundle))
    line = refused("-c", s / "passerelle.conf", "join", tmp_path / "forged2.json")
    assert "does not list space 'alpha'" in line
    assert not (s / "node.crt").exists()


def test_join_refuses_a_certificate_from_another_ca(tmp_path, coord):
    s = new_space(tmp_path, "alpha", 7443)
    bundle = json.loads(admit(coord, s).read_text())
    other = tmp_path / "other"
    ok("federation", "init", other, "--name", "x")
    bundle["ca"] = (other / "ca" / "ca.crt").read_text()
    bundle.pop("crl")
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    line = refused("-c", s / "passerelle.conf", "join", tmp_path / "b.json")
    assert "does not verify against the bundle's CA" in line


@pytest.mark.parametrize("change, reason", [
    (lambda b: b.update(v=2), "'v'"),
    (lambda b: b.pop("certificate"), "'certificate' is missing"),
    (lambda b: b.update(extra="x"), "unknown field 'extra'"),
    (lambda b: b.update(certificate="junk"), "not a PEM certificate"),
    (lambda b: b.update(coordinator_key="junk"), "coordinator_key"),
])
def test_join_refuses_malformed_bundles(tmp_path, coord, change, reason):
    s = new_space(tmp_path, "alpha", 7443)
    bundle = json.loads(admit(coord, s).read_text())
    change(bundle)
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    line = refused("-c", s / "passerelle.conf", "join", tmp_path / "b.json")
    assert reason in line, line
    assert not (s / "node.crt").exists()


# ---------------------------------------------------------------- remove

def test_remove_revokes_and_drops_the_space(tmp_path, coord, alpha):
    beta = new_space(tmp_path, "beta", 7444)
    admit(coord, beta)
    crt = coord / "spaces" / "beta.crt"
    serial = openssl("x509", "-in", crt, "-noout", "-serial").strip().split("=")[1]
    r = ok("federation", "remove", "beta", "--federation", coord, "--json")
    assert json.loads(r.stdout)["serial"] == 4

    payload, _ = directory(coord)
    assert payload["serial"] == 4
    assert [sp["id"] for sp in payload["spaces"]] == ["alpha"]
    crl_text = openssl("crl", "-in", coord / "ca" / "crl.pem", "-noout", "-text")
    assert serial.upper() in crl_text.replace(":", "").upper()
    assert "Cessation Of Operation" in crl_text
    # The directory carries the CRL, so that nodes load it too.
    assert payload["crl"] == (coord / "ca" / "crl.pem").read_text()
    assert state(coord)["crl"] == "ca/crl.pem"
    # The revoked certificate no longer verifies with the CRL.
    r = subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", coord / "ca" / "ca.crt",
                        "-CRLfile", coord / "ca" / "crl.pem", crt], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "revoked" in (r.stdout + r.stderr)

    assert "no space 'beta'" in refused("federation", "remove", "beta", "--federation", coord)
    assert "--reason" in refused("federation", "remove", "alpha", "--federation", coord,
                                 "--reason", "bored", rc=2)


# ---------------------------------------------------------------- pass key rotation

def test_add_key_lists_both_keys_and_retires_the_old(tmp_path, coord, alpha):
    req = tmp_path / "key-request.json"
    r = ok("-c", alpha / "passerelle.conf", "pass", "new-key", "--output", req)
    assert "alpha-2" in r.stdout
    assert mode(alpha / "pass-2.key") == 0o600
    kr = json.loads(req.read_text())
    assert kr == {"v": 1, "space": "alpha", "kid": "alpha-2",
                  "x": b64url(raw_public(alpha / "pass-2.pub"))}

    t0 = int(time.time())
    ok("federation", "add-key", req, "--federation", coord, "--retire-old-after", "10d")
    payload, _ = directory(coord)
    assert payload["serial"] == 3
    (sp,) = payload["spaces"]
    old, new = sp["jwks"]["keys"]
    assert old["kid"] == "alpha-1" and new["kid"] == "alpha-2"
    assert new["x"] == kr["x"] and "retires_at" not in new
    retires = time.mktime(time.strptime(old["retires_at"], "%Y-%m-%dT%H:%M:%SZ")) - \
        time.timezone
    assert abs(retires - (t0 + 10 * 86400)) < 120

    # The same key again, or a key for an unknown space, is refused.
    assert "already" in refused("federation", "add-key", req, "--federation", coord)
    kr["space"] = "nobody"
    kr["kid"] = "nobody-1"
    (tmp_path / "k2.json").write_text(json.dumps(kr))
    assert "no space 'nobody'" in refused("federation", "add-key", tmp_path / "k2.json",
                                          "--federation", coord)
    assert state(coord)["serial"] == 3


def test_new_key_prints_the_request_and_refuses_a_second_one(tmp_path, alpha):
    r = ok("-c", alpha / "passerelle.conf", "pass", "new-key")
    assert json.loads(r.stdout)["kid"] == "alpha-2"
    assert "pass-2.key" in r.stderr
    assert "exists" in refused("-c", alpha / "passerelle.conf", "pass", "new-key")
    r = ok("-c", alpha / "passerelle.conf", "pass", "new-key", "--kid", "alpha-7")
    assert json.loads(r.stdout)["kid"] == "alpha-7" and (alpha / "pass-7.key").exists()


# ---------------------------------------------------------------- certificate renewal

def test_renew_pins_both_certificates_then_drops_the_old(tmp_path, coord, alpha):
    subprocess.run([PKI, "csr", tmp_path / "renew", "alpha", "alpha.localhost"], check=True,
                   capture_output=True)
    old_crt = coord / "spaces" / "alpha.crt"
    r = ok("federation", "renew", "alpha", tmp_path / "renew" / "node.csr", "--federation",
           coord, "--overlap", "0", "--json")
    out = json.loads(r.stdout)
    new_crt = Path(out["certificate"])
    payload, _ = directory(coord)
    assert payload["serial"] == 3
    (sp,) = payload["spaces"]
    assert sp["spki_sha256"] == [pin_of(old_crt.read_text()), pin_of(new_crt.read_text())]
    assert "URI:urn:passerelle:space:alpha" in openssl("x509", "-in", new_crt, "-noout",
                                                       "-text")

    # The renewal bundle installs with the new key; the config checks.
    bundle = Path(out["bundle"])
    assert "--key" in refused("-c", alpha / "passerelle.conf", "join", bundle)
    join(alpha, bundle, "--key", tmp_path / "renew" / "node.key")
    assert (alpha / "node.key").read_bytes() == (tmp_path / "renew" / "node.key").read_bytes()
    assert mode(alpha / "node.key") == 0o600
    ok("-c", alpha / "passerelle.conf", "config", "check")

    # The overlap (0 here) has ended: the next signature drops and revokes the old.
    r = ok("federation", "sign", "--federation", coord, "--json")
    assert json.loads(r.stdout)["dropped_certificates"] == ["spaces/alpha.crt"]
    payload, _ = directory(coord)
    assert payload["spaces"][0]["spki_sha256"] == pin_of(new_crt.read_text())
    serial = openssl("x509", "-in", old_crt, "-noout", "-serial").strip().split("=")[1]
    crl_text = openssl("crl", "-in", coord / "ca" / "crl.pem", "-noout", "-text")
    assert serial.upper() in crl_text.upper() and "Superseded" in crl_text
    assert payload["crl"] == (coord / "ca" / "crl.pem").read_text()


def test_renew_keeps_the_old_pin_during_the_overlap(tmp_path, coord, alpha):
    subprocess.run([PKI, "csr", tmp_path / "renew", "alpha", "alpha.localhost"], check=True,
                   capture_output=True)
    ok("federation", "renew", "alpha", tmp_path / "renew" / "node.csr", "--federation", coord)
    ok("federation", "sign", "--federation", coord)
    payload, _ = directory(coord)
    assert payload["serial"] == 4 and len(payload["spaces"][0]["spki_sha256"]) == 2
    until = state(coord)["spaces"][0]["retiring_certs"][0]
    assert until["cert"] == "spaces/alpha.crt"


def test_renew_refuses_a_csr_for_another_space(tmp_path, coord, alpha):
    subprocess.run([PKI, "csr", tmp_path / "renew", "beta", "beta.localhost"], check=True,
                   capture_output=True)
    line = refused("federation", "renew", "alpha", tmp_path / "renew" / "node.csr",
                   "--federation", coord)
    assert "space 'beta'" in line
    assert state(coord)["serial"] == 2


# ---------------------------------------------------------------- directory key roll-over

def test_roll_key_announces_then_switches(tmp_path, coord, alpha):
    old_pub = coord / "signing" / "directory.pub"
    old_raw = raw_public(old_pub)
    shutil.copy(old_pub, tmp_path / "old.pub")
    ok("federation", "roll-key", "--federation", coord)
    next_pub = coord / "signing" / "directory-next.pub"
    assert mode(coord / "signing" / "directory-next.key") == 0o600
    token = (coord / "directory.jws").read_text()
    payload, header = verify(token, tmp_path / "old.pub")   # signed by the OLD key
    assert does_not_verify(token, next_pub)
    assert payload["serial"] == 3 and header["kid"] == "coordinator-1"
    announced = {k["kid"]: k["x"] for k in payload["coordinator_keys"]}
    assert announced["coordinator-2"] == b64url(raw_public(next_pub))
    assert "a roll-over is in progress" in refused("federation", "roll-key",
                                                  "--federation", coord)

    shutil.copy(next_pub, tmp_path / "new.pub")
    r = ok("federation", "roll-key", "--finish", "--federation", coord, "--json")
    assert json.loads(r.stdout)["signed_by"] == "coordinator-2"
    token = (coord / "directory.jws").read_text()
    payload, header = verify(token, tmp_path / "new.pub")   # signed by the NEW key
    assert does_not_verify(token, tmp_path / "old.pub")
    assert payload["serial"] == 4 and header["kid"] == "coordinator-2"
    assert [k["kid"] for k in payload["coordinator_keys"]] == ["coordinator-2"]
    assert raw_public(coord / "signing" / "directory.pub") == raw_public(tmp_path / "new.pub")
    archived = coord / "signing" / "archive" / "coordinator-1.key"
    assert mode(archived) == 0o600 and not next_pub.exists()
    assert raw_public(coord / "signing" / "archive" / "coordinator-1.pub") == old_raw
    assert "no roll-over" in refused("federation", "roll-key", "--finish", "--federation",
                                     coord)

    # Later signatures use the new key; a space that trusts the old key
    # follows the announcement when it installs a new bundle.
    ok("federation", "sign", "--federation", coord)
    assert directory(coord)[1]["kid"] == "coordinator-2"
    subprocess.run([PKI, "csr", tmp_path / "renew", "alpha", "alpha.localhost"], check=True,
                   capture_output=True)
    out = json.loads(ok("federation", "renew", "alpha", tmp_path / "renew" / "node.csr",
                        "--federation", coord, "--json").stdout)
    assert raw_public(alpha / "coordinator.pub") == old_raw
    join(alpha, out["bundle"], "--key", tmp_path / "renew" / "node.key")
    assert raw_public(alpha / "coordinator.pub") == raw_public(tmp_path / "new.pub")
    ok("-c", alpha / "passerelle.conf", "config", "check")


def test_join_refuses_a_new_coordinator_key_nobody_announced(tmp_path, coord, alpha):
    # Another federation's bundle for a space also called alpha.
    other = tmp_path / "other"
    ok("federation", "init", other, "--name", "passerelle-test")
    b = json.loads((coord / "bundles" / "alpha.json").read_text())
    ok("federation", "sign", "--federation", other)
    token_other = (other / "directory.jws").read_text().strip()
    b["directory"] = token_other
    b["coordinator_key"] = (other / "signing" / "directory.pub").read_text()
    (tmp_path / "b.json").write_text(json.dumps(b))
    refused("-c", alpha / "passerelle.conf", "join", tmp_path / "b.json")
    assert raw_public(alpha / "coordinator.pub") == raw_public(
        coord / "signing" / "directory.pub")


# ---------------------------------------------------------------- sign, help

def test_sign_bumps_the_serial_and_refreshes_the_expiry(coord):
    ok("federation", "sign", "--federation", coord, "--valid-days", "3")
    payload, _ = directory(coord)
    assert payload["serial"] == 2
    issued = time.mktime(time.strptime(payload["issued_at"], "%Y-%m-%dT%H:%M:%SZ"))
    expires = time.mktime(time.strptime(payload["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert expires - issued == 3 * 86400
    assert state(coord)["valid_days"] == 3
    assert sorted(p.name for p in (coord / "published").iterdir()) == \
        ["directory-1.jws", "directory-2.jws"]
    assert "--valid-days" in refused("federation", "sign", "--federation", coord,
                                     "--valid-days", "99999", rc=2)


@pytest.mark.parametrize("cmd", [
    "init", "join", "pass new-key", "federation init", "federation admit",
    "federation remove", "federation add-key", "federation renew",
    "federation roll-key", "federation sign",
])
def test_each_command_has_help(cmd):
    r = ok(*cmd.split(), "--help")
    assert r.stdout.startswith(f"usage: passerelle [-c FILE] {cmd}")
    assert "--json" in r.stdout
    r = ok("--help")
    assert f"  {cmd} " in r.stdout
