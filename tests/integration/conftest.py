"""Fixtures of the integration tests (see README.md in this folder).

- `pg`: one throw-away PostgreSQL server for the whole session.
- `passerelle_bin`: the binary under test (built with scripts/build.sh, or
  $PASSERELLE_BIN).
- `federation`: a factory; `federation(spaces=..., config=...)` builds and
  starts a fresh federation for one test and stops it afterwards, checking
  that every node exits 0 on SIGTERM.
- `module_federation`: the same factory, for one module's tests.
- `fed` (and `shared`, which prints its logs when a test fails): one
  troquet + cordee federation shared by the tests that do not stop, freeze
  or reconfigure a node (each test makes its own members).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness import ROOT, Federation, PostgresServer  # noqa: E402


def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether their test failed (to print node logs).
    if call.when == "call":
        item.passerelle_failed = call.excinfo is not None


def _build():
    # Others may be editing the sources: a build that fails is retried a
    # few times before the session gives up.
    last = None
    for attempt in range(3):
        r = subprocess.run([str(ROOT / "scripts" / "build.sh")], capture_output=True,
                           text=True, timeout=600)
        if r.returncode == 0:
            return ROOT / os.environ.get("BUILD_DIR", "build") / "passerelle"
        last = r
        time.sleep(5)
    pytest.exit(f"scripts/build.sh failed:\n{last.stdout}{last.stderr}", returncode=3)


@pytest.fixture(scope="session")
def passerelle_bin():
    """The binary under test: $PASSERELLE_BIN, or a fresh scripts/build.sh.

    It is copied for the session, so that a rebuild while the tests run
    cannot swap the program under a node or a command.
    """
    explicit = os.environ.get("PASSERELLE_BIN")
    source = explicit if explicit else _build()
    workdir = tempfile.mkdtemp(prefix="passerelle-it-bin-", dir="/tmp")
    os.chmod(workdir, 0o755)
    copy = os.path.join(workdir, "passerelle")
    shutil.copy2(source, copy)
    yield copy
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg():
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _finish(federations, failed):
    """Stops the nodes; keeps the folder of a federation that misbehaved."""
    problems = []
    for f in federations:
        if failed:
            print(f"\nnode logs of federation {f.name}:\n{f.log_tails()}")
        these = f.close()
        if these:
            problems += these + [f"(its files are kept in {f.dir})"]
        else:
            f.remove()
    return problems


def _factory(request, pg, passerelle_bin):
    made = []

    def make(spaces=("troquet", "cordee"), config=None, start=True):
        f = Federation(pg, passerelle_bin, spaces=spaces, config=config)
        made.append(f)
        f.build()
        if start:
            f.start()
        return f

    yield make
    failed = getattr(request.node, "passerelle_failed", False)
    if request.scope == "module":
        failed = any(getattr(item, "passerelle_failed", False)
                     for item in request.session.items
                     if item.module is request.module)
    problems = _finish(made, failed)
    assert not problems, "\n".join(problems)


@pytest.fixture
def federation(request, pg, passerelle_bin):
    """Builds (and starts) a federation for one test: federation(spaces=
    ("troquet", "cordee"), config={"troquet": {"visit": {...}}})."""
    yield from _factory(request, pg, passerelle_bin)


@pytest.fixture(scope="module")
def module_federation(request, pg, passerelle_bin):
    """The same factory, for federations shared by one module's tests."""
    yield from _factory(request, pg, passerelle_bin)


@pytest.fixture(scope="session")
def fed(pg, passerelle_bin):
    """troquet and cordee, started once for the tests that leave them
    running as they found them."""
    f = Federation(pg, passerelle_bin)
    f.build().start()
    yield f
    problems = _finish([f], False)
    assert not problems, "\n".join(problems)


@pytest.fixture
def shared(request, fed):
    """The shared federation, with its logs printed if the test fails."""
    yield fed
    if getattr(request.node, "passerelle_failed", False):
        print(f"\nnode logs of the shared federation:\n{fed.log_tails()}")
