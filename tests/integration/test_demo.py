"""The README's first command, `scripts/demo.sh --once`, end to end: the
coordinator's CA and directory, two nodes on their embedded PostgreSQL, a
pass issued, scanned, checked out, and both nodes stopped.  Run in a
terminal (a pty, through util-linux's `script`), as a new user runs it: a
command that would wait there (a pager) hangs the test instead of passing.
"""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from harness import ROOT, free_port_base

# DEMO_PORT_BASE's ports, as scripts/demo.sh derives them.
DEMO_PORT_OFFSETS = (3, 4, -360, -359)


def _left_running(demo_dir):
    r = subprocess.run(["pgrep", "-f", "--", demo_dir], capture_output=True, text=True)
    return r.stdout.split()


@pytest.fixture
def demo_dir():
    # The embedded PostgreSQL runs as postgres, which must reach it.
    d = tempfile.mkdtemp(prefix="passerelle-demo-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield d
    for pid in _left_running(d):
        subprocess.run(["kill", "-KILL", pid], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


# The demo's sections, in the order it shows them.
SECTIONS = ("The coordinator creates the federation", "gets its node certificate",
            "The coordinator signs the directory", "Both nodes start",
            "La Cordée's manager adds Camille", "and issues her pass",
            "Le Troquet's front desk scans it", "What each side recorded",
            "The pass verifies with a standard JOSE library",
            "At the end of the day Camille checks out", "Done (--once)")


def _demo_env(passerelle_bin, demo_dir):
    return dict(os.environ, PASSERELLE_BIN=str(passerelle_bin), PASSERELLE_DEMO_DIR=demo_dir,
                DEMO_PORT_BASE=str(free_port_base(DEMO_PORT_OFFSETS)))


def _plain(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_the_demo_runs_once_in_a_terminal_and_stops_its_nodes(passerelle_bin, demo_dir):
    if shutil.which("script") is None:
        pytest.fail("util-linux's script(1) is missing (Debian's bsdutils)")
    r = subprocess.run(["script", "-qec", "bash scripts/demo.sh --once", "/dev/null"],
                       cwd=ROOT, env=_demo_env(passerelle_bin, demo_dir),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=180)
    out = _plain(r.stdout.decode("utf-8", "replace"))
    assert r.returncode == 0, out[-3000:]
    # The check-in, as the desk's API answered it.
    assert '"decision": "admit"' in out, out[-3000:]
    assert '"home": "cordee"' in out
    # What each side recorded: present at the host, a ticket less at home.
    assert re.search(r"\n1 present\r?\n", out), out[-3000:]
    assert "9 half-day tickets left" in out
    # The pass verified by a standard JOSE library against the directory.
    assert "pass verified with cordee's key" in out
    # The check-out, and the home told of it.
    assert re.search(r"checked out visit [0-9a-f-]{36}: 1 half-day unit, reported to the home",
                     out), out[-3000:]
    assert re.search(r"at troquet: admit, 1 unit\(s\), checked out \d{4}-", out), out[-3000:]
    assert "== Done (--once)" in out
    # Nothing of the demo keeps running: both nodes and their PostgreSQL.
    assert _left_running(demo_dir) == []


def test_the_demo_written_to_a_file_keeps_every_section_in_order(passerelle_bin, demo_dir,
                                                                tmp_path):
    """As in a CI log: its output and errors to one file.  (The pass's QR
    code, copied to /dev/stderr, once overwrote the log's beginning.)"""
    log = tmp_path / "demo.log"  # not in the demo's folder, which it makes anew
    with open(log, "wb") as f:
        r = subprocess.run(["bash", "scripts/demo.sh", "--once"], cwd=ROOT,
                           env=_demo_env(passerelle_bin, demo_dir), stdin=subprocess.DEVNULL,
                           stdout=f, stderr=subprocess.STDOUT, timeout=180)
    with open(log, encoding="utf-8", errors="replace") as f:
        out = _plain(f.read())
    assert r.returncode == 0, out[-3000:]
    found = [re.search(r"^== .*" + re.escape(s), out, re.M) for s in SECTIONS]
    at = [m.start() if m else -1 for m in found]
    assert -1 not in at and at == sorted(at), list(zip(SECTIONS, at))
    # The QR code whole, between the pass's issue and the scan.
    assert at[5] < out.find("\u2588") < out.rfind("\u2588") < at[6], out[:2000]
    assert _left_running(demo_dir) == []
