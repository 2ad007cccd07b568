#!/usr/bin/env python3
"""Runs the web page's browser tests (tests/web/*.test.js).

Builds what the integration tests build (tests/integration/harness.py): a
throw-away PostgreSQL server and a federation of two real nodes, Le Troquet
(the host) and La Cordée (the home), with real certificates and a signed
directory; writes where they are to a fixture file; runs the JavaScript
tests with Node.js's test runner, which drive Debian's Chromium through
playwright-core; then stops everything.

    tests/web/run.py [--docs] [node --test options...]

--docs also copies the screenshots that docs/front-desk.md shows into
docs/img/.  The binary is $PASSERELLE_BIN, or build/passerelle after
scripts/build.sh.  Screenshots and the nodes' logs are kept in
tests/artifacts/web/.  The exit status is the test runner's.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import Federation, PostgresServer, tail  # noqa: E402

ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"

# The map's details, as the directory of a real federation carries them.
MAP = {
    "troquet": {"address": "12 rue de la Liberté, 38300 Bourgoin-Jallieu",
                "lat": 45.5866, "lon": 5.2737, "capacity": 25,
                "hours": {d: "09:00-19:00" for d in ("mon", "tue", "wed", "thu", "fri")},
                "services": ["coworking", "meeting room", "coffee"],
                "contact": "bonjour@troquet.example"},
    "cordee": {"address": "8 rue Sainte-Catherine, 69001 Lyon",
               "lat": 45.764, "lon": 4.8357, "capacity": 40,
               "hours": {d: "08:30-19:30" for d in ("mon", "tue", "wed", "thu", "fri")},
               "services": ["coworking", "kitchen"],
               "contact": "lyon@cordee.example"},
}


def binary():
    explicit = os.environ.get("PASSERELLE_BIN")
    if explicit:
        return Path(explicit).resolve()
    r = subprocess.run([str(ROOT / "scripts" / "build.sh")], capture_output=True,
                       text=True, timeout=900)
    if r.returncode != 0:
        sys.exit(f"web tests: scripts/build.sh failed:\n{r.stdout}{r.stderr}")
    return ROOT / os.environ.get("BUILD_DIR", "build") / "passerelle"


def check_tools():
    problems = []
    if not os.access(CHROMIUM, os.X_OK):
        problems.append(f"{CHROMIUM} is missing (Debian package chromium)")
    if shutil.which("zbarimg") is None:
        problems.append("zbarimg is missing (Debian package zbar-tools)")
    if shutil.which("node") is None:
        problems.append("node is missing (Node.js 20)")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        problems.append("tests/web/node_modules/playwright-core is missing"
                        " (tests/web/setup.sh installs it)")
    if problems:
        sys.exit("web tests cannot run: " + "; ".join(problems))


def main():
    args = sys.argv[1:]
    docs = "--docs" in args
    args = [a for a in args if a != "--docs"]
    check_tools()
    # A copy, so that a rebuild during the run cannot swap it under a node.
    workdir = Path(tempfile.mkdtemp(prefix="passerelle-web-bin-", dir="/tmp"))
    os.chmod(workdir, 0o755)
    bin_copy = workdir / "passerelle"
    shutil.copy2(binary(), bin_copy)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)

    pg = PostgresServer()
    fed = None
    rc = 1
    try:
        pg.start()
        fed = Federation(pg, bin_copy, spaces=("troquet", "cordee"))
        for node in fed.nodes.values():
            plain = node.description

            def described(plain=plain, extra=MAP[node.id]):
                return {**plain(), **extra}
            node.description = described
        fed.build().start()
        fed["troquet"].cli_ok("house", "capacity", "25")
        fixture = {
            "bin": str(bin_copy),
            "artifacts": str(ARTIFACTS),
            "docs_images": str(ROOT / "docs" / "img") if docs else None,
            "chromium": CHROMIUM,
            "nodes": {n.id: {"id": n.id, "name": n.name, "city": n.city,
                             "url": f"http://127.0.0.1:{n.local_port}",
                             "conf": str(n.conf), "log": str(n.log),
                             "pid": n.proc.pid}
                      for n in fed.nodes.values()},
        }
        fixture_path = ARTIFACTS / "fixture.json"
        fixture_path.write_text(json.dumps(fixture, indent=1))
        env = dict(os.environ, PASSERELLE_WEB_FIXTURE=str(fixture_path))
        tests = sorted(str(p) for p in HERE.glob("*.test.js"))
        cmd = ["node", "--test", "--test-concurrency=1", "--test-timeout=300000",
               "--test-reporter=spec", "--test-reporter-destination=stdout",
               *args, *tests]
        rc = subprocess.run(cmd, cwd=HERE, env=env, timeout=1500).returncode
    finally:
        if fed is not None:
            for n in fed.nodes.values():
                shutil.copy(n.log, ARTIFACTS / f"{n.id}.log")
            if rc != 0:
                print(fed.log_tails(40))
            problems = fed.close()
            if problems:
                print("\n".join(problems))
                rc = rc or 1
            else:
                fed.remove()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
