"""The local face as staff and members use it through the web page: member
links, sign-in behind a proxy, the CSV exports, the plan form."""
import time

import pytest

from harness import unique


def log_text(node):
    return node.log.read_text(errors="replace")


def new_link(node):
    """A member with a pass and its link: (member, "/p/SECRET")."""
    token = node.staff_token("manager")
    m = node.add_member(tickets=2)
    r = node.api("POST", f"/api/v1/members/{m['pseudonym']}/passes", token=token)
    assert r.status in (200, 201), r
    return m, r.json()["link"]


def test_member_link_secret_is_never_logged(shared):
    """Whatever suffix follows a well-formed secret, the log shows the
    link redacted; with a trailing slash the link opens the card."""
    cordee = shared["cordee"]
    _, link = new_link(cordee)
    secret = link.split("/")[2]
    assert len(secret) == 43, link

    r = cordee.get(link + "/")
    assert r.status == 200 and b"<html" in r.body.lower(), r
    assert r.headers.get("x-robots-tag") == "noindex"
    assert cordee.get(link + "/pass.json").json()["status"] == "valid"
    for suffix in ("/pass.json/", "/qr.svg/", "/nothing", "//"):
        r = cordee.get(link + suffix)
        assert r.status == 404, (suffix, r)
        assert secret not in r.body.decode(), (suffix, r)
    r = cordee.api("POST", link, {"x": 1})
    assert r.status == 404 and secret not in r.body.decode(), r
    marker = unique("/after-link-")
    cordee.get(marker)
    # Lines are written as the answers go: wait for the last one.
    deadline = time.monotonic() + 5
    while marker not in log_text(cordee) and time.monotonic() < deadline:
        time.sleep(0.05)
    text = log_text(cordee)
    assert marker in text
    assert secret not in text, [l for l in text.splitlines() if secret in l]
    assert "/p/(link)/(other)" in text
