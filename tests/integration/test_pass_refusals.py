"""Passes the host must refuse on its own, offline, before asking the home:
the front desk gets HTTP 200 with decision "refuse" and a reason_code (see
pass_error_code() in node/pass.c), and the home records nothing."""
import hashlib
import json
import time
import uuid

import pytest

from harness import b64url, compact_json, jws_parts, load_ed25519_private, make_jws


def forge_alg_none(ctx):
    header, payload, _ = jws_parts(ctx["token"])
    return make_jws(dict(header, alg="none"), payload)


def forge_changed_name(ctx):
    h, p, s = ctx["token"].split(".")
    header, payload, sig = jws_parts(ctx["token"])
    claims = json.loads(payload)
    assert claims["name"] == "Camille D."
    # One character of the name, everything else byte for byte.
    changed = payload.replace(b'"Camille D."', b'"Camilla D."')
    assert changed != payload
    return f"{h}.{b64url(changed)}.{s}"


def forge_unknown_kid(ctx):
    _, p, s = ctx["token"].split(".")
    header, _, _ = jws_parts(ctx["token"])
    return f"{b64url(compact_json(dict(header, kid='cordee-99')))}.{p}.{s}"


def claims_now(ctx, **changes):
    _, payload, _ = jws_parts(ctx["token"])
    return dict(json.loads(payload), **changes)


def sign_with(ctx, claims, key="cordee", kid="cordee-1", typ="pass"):
    sk = load_ed25519_private(ctx["fed"][key].dir / "pass.key")
    return make_jws({"alg": "EdDSA", "typ": typ, "kid": kid}, claims, sk)


def forge_expired(ctx):
    now = int(time.time())
    return sign_with(ctx, claims_now(ctx, iat=now - 90 * 86400, nbf=now - 90 * 86400,
                                     exp=now - 3600))


def forge_not_yet_valid(ctx):
    now = int(time.time())
    return sign_with(ctx, claims_now(ctx, iat=now, nbf=now + 86400,
                                     exp=now + 30 * 86400))


def forge_signed_by_another_space(ctx):
    # troquet's pass key, claiming to be cordee's.
    return sign_with(ctx, claims_now(ctx), key="troquet")


def forge_kid_of_another_space(ctx):
    # troquet's key and kid, but issued "by" cordee: the issuer's keys only.
    return sign_with(ctx, claims_now(ctx), key="troquet", kid="troquet-1")


def forge_receipt_as_pass(ctx):
    # A genuine document signed by cordee, but not a pass.
    return sign_with(ctx, claims_now(ctx), typ="receipt")


def forge_missing_claim(ctx):
    claims = claims_now(ctx)
    del claims["jti"]
    return sign_with(ctx, claims)


def forge_crit(ctx):
    sk = load_ed25519_private(ctx["fed"]["cordee"].dir / "pass.key")
    return make_jws({"alg": "EdDSA", "typ": "pass", "kid": "cordee-1",
                     "crit": ["exp"]}, claims_now(ctx), sk)


CASES = [
    ("alg_none", forge_alg_none, "bad_alg"),
    ("changed_payload", forge_changed_name, "bad_signature"),
    ("unknown_kid", forge_unknown_kid, "unknown_key"),
    ("expired", forge_expired, "expired"),
    ("garbage", lambda ctx: "this is not a pass at all", "malformed"),
    ("two_parts", lambda ctx: ctx["token"].rsplit(".", 1)[0], "malformed"),
    ("not_yet_valid", forge_not_yet_valid, "not_yet_valid"),
    ("signed_by_another_space", forge_signed_by_another_space, "bad_signature"),
    ("kid_of_another_space", forge_kid_of_another_space, "unknown_key"),
    ("receipt_as_pass", forge_receipt_as_pass, "bad_typ"),
    ("missing_claim", forge_missing_claim, "bad_claims"),
    ("crit_header", forge_crit, "crit"),
    ("too_long", lambda ctx: ctx["token"] + "A" * 2000, "malformed"),
]


@pytest.mark.parametrize("forge,reason_code", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_pass_is_refused_at_the_desk(shared, forge, reason_code):
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(full_name="Camille Durand", tickets=10)
    bad = forge({"fed": shared, "token": token, "member": member})
    assert bad != token
    calls = cordee.peer_calls(), troquet.peer_calls()

    r = troquet.checkin(bad)
    assert r.status == 200, r
    a = r.json()
    assert a["decision"] == "refuse", a
    assert a["reason_code"] == reason_code, a
    assert a["reason"], a
    assert not a.get("visit_id"), a
    assert "receipt" not in a

    # The home was not asked and recorded nothing.
    assert (cordee.peer_calls(), troquet.peer_calls()) == calls
    assert cordee.balance(member) == (10, 10)
    assert cordee.query_one("select count(*) from home_visits h join members m"
                            " on m.id = h.member_id where m.pseudonym = %s",
                            member["pseudonym"]) == (0,)
    assert troquet.query_one("select count(*) from host_visits where pseudonym = %s",
                             member["pseudonym"]) == (0,)

    # The genuine pass still works.
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    troquet.checkout(a["visit_id"])


def test_validly_signed_pass_unknown_at_home(shared):
    """A pass the home never issued (right key, unknown jti): the home
    refuses and keeps no visit."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    forged = sign_with({"fed": shared, "token": token},
                       claims_now({"token": token}, jti="AAAAAAAAAAAA"))
    a = troquet.checkin(forged).json()
    assert a["decision"] == "refuse", a
    assert a["reason_code"] == "unknown_pass", a
    assert cordee.balance(member) == (10, 10)
    assert cordee.query_one("select count(*) from home_visits where visit_id = %s",
                            a["visit_id"]) == (0,)
    assert troquet.query_one("select status, reason_code, display_name from"
                             " host_visits where visit_id = %s",
                             a["visit_id"]) == ("refused", "unknown_pass", None)


def test_home_checks_the_pass_again(shared):
    """A host cannot skip the pass check: the home verifies the pass it is
    sent, whatever the host decided."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    ctx = {"fed": shared, "token": token}
    for bad, code in ((forge_expired(ctx), "expired"),
                      (forge_changed_name(ctx), "bad_signature"),
                      (forge_alg_none(ctx), "bad_alg")):
        visit = str(uuid.uuid4())
        r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize",
                               {"visit_id": visit, "pass": bad})
        assert r.status == 200, r
        assert r.json()["decision"] == "refuse"
        assert r.json()["reason_code"] == code
    assert cordee.balance(member) == (10, 10)
    assert cordee.query_one("select count(*) from home_visits h join members m"
                            " on m.id = h.member_id where m.pseudonym = %s",
                            member["pseudonym"]) == (0,)


def test_pass_of_another_home_is_not_authorized_here(shared):
    """cordee's pass sent to troquet's authorize: troquet is not its home."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    r = troquet.fed_request(cordee, "POST", "/federation/v1/authorize",
                            {"visit_id": str(uuid.uuid4()), "pass": token})
    assert r.status == 200, r
    assert r.json()["decision"] == "refuse"
    assert r.json()["reason_code"] == "unknown_key"
    assert troquet.query_one("select count(*) from home_visits") == (0,)


@pytest.mark.parametrize("forge,reason_code",
                         [c[1:] for c in CASES if c[0] != "too_long"],
                         ids=[c[0] for c in CASES if c[0] != "too_long"])
def test_bad_pass_is_refused_by_the_home(shared, forge, reason_code):
    """The same refusals when a host skips its own check: the home, which
    knows its passes by their digest, checks the signature of any token
    it did not issue as such, and gives the same reason."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(full_name="Camille Durand", tickets=10)
    bad = forge({"fed": shared, "token": token, "member": member})
    r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize",
                           {"visit_id": str(uuid.uuid4()), "pass": bad})
    assert r.status == 200, r
    assert (r.json()["decision"], r.json()["reason_code"]) == ("refuse", reason_code)
    assert cordee.balance(member) == (10, 10)
    assert cordee.query_one("select count(*) from home_visits h join members m"
                            " on m.id = h.member_id where m.pseudonym = %s",
                            member["pseudonym"]) == (0,)


def test_a_forgery_does_not_wait_for_the_member(shared):
    """A token that is not the one issued under its id takes no lock on the
    member's row: refused at once while a check-in of that member holds
    the row.  One signed with the home's own key (a leaked key) is refused
    too: a pass is the token the home issued."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(full_name="Camille Durand", tickets=10)
    ctx = {"fed": shared, "token": token, "member": member}
    resigned = sign_with(ctx, claims_now(ctx, name="Camilla D."))
    holder = shared.pg.connect(cordee.dbname)
    try:
        holder.autocommit = False
        holder.execute("select 1 from members where pseudonym = %s for update",
                       (member["pseudonym"],))
        for bad, code in ((forge_changed_name(ctx), "bad_signature"),
                          (resigned, "unknown_pass")):
            started = time.monotonic()
            r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize",
                                   {"visit_id": str(uuid.uuid4()), "pass": bad})
            assert r.status == 200, r
            assert (r.json()["decision"], r.json()["reason_code"]) == ("refuse", code)
            assert time.monotonic() - started < 5
    finally:
        holder.rollback()
        holder.close()
    assert cordee.balance(member) == (10, 10)
    visit = str(uuid.uuid4())
    r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize",
                           {"visit_id": visit, "pass": token})
    assert r.json()["decision"] == "admit", r


def test_home_knows_its_passes_by_digest(shared):
    """A pass is recorded with the SHA-256 of its token; a pass recorded
    without one (issued by an older node) is checked by its signature."""
    troquet, cordee = shared["troquet"], shared["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    jti = json.loads(jws_parts(token)[1])["jti"]
    assert cordee.query_one("select digest from passes where jti = %s", jti) == \
        (hashlib.sha256(token.encode()).digest(),)

    def authorize(t):
        r = cordee.fed_request(troquet, "POST", "/federation/v1/authorize",
                               {"visit_id": str(uuid.uuid4()), "pass": t})
        assert r.status == 200, r
        return r.json()

    ctx = {"fed": shared, "token": token}
    cordee.db().execute("update passes set digest = null where jti = %s", (jti,))
    assert authorize(token)["decision"] == "admit"
    assert authorize(forge_changed_name(ctx))["reason_code"] == "bad_signature"
    # The record is what vouches for a token: one recorded as issued here
    # is not checked again, whatever its signature; and a token that is not
    # the one recorded under its id is not a pass of ours, whatever its
    # signature.
    other, other_token = cordee.member_with_pass(full_name="Camille Durand", tickets=10)
    altered = forge_changed_name({"fed": shared, "token": other_token})
    other_jti = json.loads(jws_parts(other_token)[1])["jti"]
    cordee.db().execute("update passes set digest = %s where jti = %s",
                        (hashlib.sha256(altered.encode()).digest(), other_jti))
    a = authorize(altered)
    assert a["decision"] == "admit", a
    assert authorize(other_token)["reason_code"] == "unknown_pass"
