"""The home node is down or hangs: the front desk gets an answer within the
peer timeout, and nothing is lost once the home is back."""
import signal
import time

import pytest

from harness import wait_until

FAST = {"troquet": {"visit": {"peer_timeout": "1s"}}}


def assert_unreachable(troquet, cordee, member, token):
    t0 = time.monotonic()
    r = troquet.checkin(token, timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status == 200, r
    a = r.json()
    assert a["decision"] == "refuse", a
    assert a["reason_code"] == "home_unreachable", a
    assert "cordee" in a["reason"]
    assert elapsed < 3.0, f"the desk waited {elapsed:.2f}s with peer_timeout = 1s"
    assert troquet.query_one("select status, reason_code, display_name from"
                             " host_visits where visit_id = %s", a["visit_id"]) \
        == ("refused", "home_unreachable", None)
    return a, elapsed


def test_home_stopped(federation):
    f = federation(config=FAST)
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    assert cordee.stop() == 0, "cordee did not exit 0 on SIGTERM"

    assert_unreachable(troquet, cordee, member, token)
    # The home's database saw nothing.
    assert cordee.balance(member) == (10, 10)
    assert cordee.query_one("select count(*) from home_visits") == (0,)

    # Back up: the same pass is admitted.
    cordee.start()
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    assert cordee.balance(member) == (9, 9)


def test_home_hangs(federation):
    """A home that accepts connections but never answers (SIGSTOP): the
    timeout, not the kernel, ends the wait."""
    f = federation(config=FAST)
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    cordee.proc.send_signal(signal.SIGSTOP)
    try:
        a, elapsed = assert_unreachable(troquet, cordee, member, token)
        assert elapsed >= 0.9, f"answered in {elapsed:.2f}s: was the home asked?"
    finally:
        cordee.proc.send_signal(signal.SIGCONT)
    # Once it runs again, the abandoned request has debited nothing.
    assert cordee.fed_request(troquet, "GET", "/federation/v1/ping").status == 200
    assert cordee.balance(member) == (10, 10)
    # (The host's void may have come first and been kept, refused.)
    assert cordee.query_one("select count(*) from home_visits"
                            " where decision = 'admit'") == (0,)


def test_checkout_waits_in_the_outbox(federation):
    """A check-out while the home is down is delivered once it is back."""
    f = federation(config=FAST)
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    a = troquet.checkin(token).json()
    assert a["decision"] == "admit", a
    visit = a["visit_id"]
    assert cordee.stop() == 0

    r = troquet.checkout(visit)
    assert r.status == 200, r
    assert r.json()["units"] == 1
    assert r.json()["reported_to_home"] is False
    row = troquet.query_one("select peer, kind, delivered_at, attempts >= 1,"
                            " last_error is not null from outbox where visit_id = %s",
                            visit)
    assert row is not None and row[0] == "cordee" and row[2] is None, row
    assert row[3:] == (True, True), row

    cordee.start()
    wait_until(lambda: cordee.query_one(
        "select units, checked_out_at is not null from home_visits"
        " where visit_id = %s", visit) == (1, True),
        timeout=20, interval=0.2, what="the outbox to deliver the check-out")
    wait_until(lambda: troquet.query_one(
        "select delivered_at is not null from outbox where visit_id = %s", visit)
        == (True,), timeout=10, what="the outbox row to be marked delivered")
    assert cordee.balance(member) == (9, 9)


@pytest.mark.parametrize("timeout_value", ["500ms", "2s"])
def test_peer_timeout_is_honoured(federation, timeout_value):
    f = federation(config={"troquet": {"visit": {"peer_timeout": timeout_value}}})
    troquet, cordee = f["troquet"], f["cordee"]
    member, token = cordee.member_with_pass(tickets=10)
    limit = 0.5 if timeout_value == "500ms" else 2.0
    cordee.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        a = troquet.checkin(token, timeout=10).json()
        elapsed = time.monotonic() - t0
    finally:
        cordee.proc.send_signal(signal.SIGCONT)
    assert a["reason_code"] == "home_unreachable", a
    assert limit * 0.8 <= elapsed < limit + 1.5, elapsed
