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


def test_the_demo_runs_once_in_a_terminal_and_stops_its_nodes(passerelle_bin, demo_dir):
    if shutil.which("script") is None:
        pytest.fail("util-linux's script(1) is missing (Debian's bsdutils)")
    env = dict(os.environ, PASSERELLE_BIN=str(passerelle_bin), PASSERELLE_DEMO_DIR=demo_dir,
               DEMO_PORT_BASE=str(free_port_base(DEMO_PORT_OFFSETS)))
    r = subprocess.run(["script", "-qec", "bash scripts/demo.sh --once", "/dev/null"],
                       cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=180)
    out = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout.decode("utf-8", "replace"))
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
