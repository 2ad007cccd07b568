"""Who runs the embedded PostgreSQL: `serve` claims it for its whole life
(one serve per data_dir) and stops it when it ends, whoever started it; a
command stops it only if it started it and no serve has claimed it since;
a serve starts it again when it dies; a stale postmaster.pid whose PID now
belongs to another program does not keep it from starting."""
import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import time

import pytest

from harness import pg_bin_dir, tail, wait_until

EMBEDDED = {"node": {"database": ""}}


def _pg_data(node):
    return node.dir / "data" / "pg" / "data"


def _postmaster_pid(node):
    with contextlib.suppress(OSError, ValueError):
        return int((_pg_data(node) / "postmaster.pid").read_text().split("\n")[0])
    return None


def _cluster_runs(node):
    pid = _postmaster_pid(node)
    if pid is None:
        return False
    try:
        return os.readlink(f"/proc/{pid}/cwd") == str(_pg_data(node))
    except OSError:
        return False


def _stop_cluster(node):
    """Whatever a test (or the code before the fix) left running."""
    if _cluster_runs(node):
        subprocess.run(["runuser", "-u", "postgres", "--",
                        os.path.join(pg_bin_dir(), "pg_ctl"), "-D", str(_pg_data(node)),
                        "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)


@pytest.fixture
def embedded(federation):
    made = []

    def make(spaces=("troquet",)):
        f = federation(spaces=spaces, config={"troquet": EMBEDDED}, start=False)
        f.env["PASSERELLE_PG_NOSYNC"] = "1"
        made.append(f)
        return f

    yield make
    for f in made:
        f["troquet"].stop()
        _stop_cluster(f["troquet"])


def _database(node):
    return node.get("/healthz").json()["database"]


def test_a_command_leaves_the_cluster_to_a_serve_started_meanwhile(embedded):
    """(a) A command starts the cluster while serve is down; serve starts
    while the command waits on a peer; when the command ends, the cluster
    is the serve's and keeps running."""
    f = embedded(spaces=("troquet", "cordee"))
    troquet, cordee = f["troquet"], f["cordee"]
    # cordee is a silent listener: the command waits on it as long as we like.
    silent = socket.create_server(("127.0.0.1", cordee.fed_port))
    silent.settimeout(60)
    cmd = subprocess.Popen([str(f.bin), "-c", str(troquet.conf), "reconcile",
                            "--peer", "cordee", "--month", "2026-12"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=f.env)
    try:
        conn, _ = silent.accept()   # the command has its database
        assert _cluster_runs(troquet)
        troquet.start()
        assert _database(troquet) == "ok"
        conn.close()
        silent.close()
        _, err = cmd.communicate(timeout=60)
    finally:
        if cmd.poll() is None:
            cmd.kill()
            cmd.wait()
        silent.close()
    assert "cannot reach cordee" in err, err
    assert _cluster_runs(troquet), "the command stopped the serve's cluster"
    assert _database(troquet) == "ok"
    assert troquet.stop() == 0
    assert not _cluster_runs(troquet), "serve left the cluster running"


def test_b_a_second_serve_on_the_same_data_dir_is_refused(embedded):
    """(b) One serve per data_dir: the second says who holds it and exits 1,
    and the first keeps its database."""
    f = embedded()
    troquet = f["troquet"]
    troquet.start()
    second = troquet.dir / "second.conf"
    second.write_text(troquet.conf.read_text()
                      .replace(f"127.0.0.1:{troquet.fed_port}", "127.0.0.1:0")
                      .replace(f"127.0.0.1:{troquet.local_port}", "127.0.0.1:0"))
    proc = subprocess.Popen([str(f.bin), "-c", str(second), "serve"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=f.env)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"a second serve on the same data_dir was accepted:\n{out}")
    assert proc.returncode == 1, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert f"another passerelle serve (pid {troquet.proc.pid}) is using" in lines[0], out
    assert _database(troquet) == "ok"
    assert troquet.stop() == 0
    assert not _cluster_runs(troquet)


def test_c_serve_stops_a_cluster_it_adopted(embedded):
    """(c) After a serve is killed its cluster keeps running; the next serve
    adopts it and stops it on SIGTERM, as it would one it started."""
    f = embedded()
    troquet = f["troquet"]
    troquet.start()
    troquet.proc.kill()
    troquet.proc.wait()
    troquet.proc = None
    assert _cluster_runs(troquet)
    troquet.start()
    assert _database(troquet) == "ok"
    assert troquet.stop() == 0
    assert not _cluster_runs(troquet), "SIGTERM left the adopted cluster running"
    assert "stopped the embedded PostgreSQL" in troquet.log.read_text().split(
        "signal 15: stopping")[-1]


def test_serve_starts_its_cluster_again_when_it_dies(embedded):
    f = embedded()
    troquet = f["troquet"]
    troquet.start()
    killed = _postmaster_pid(troquet)
    os.kill(killed, signal.SIGKILL)
    # A new postmaster, not the killed one still dying (or its backends,
    # which answer until they notice).
    wait_until(lambda: _postmaster_pid(troquet) not in (None, killed)
               and _cluster_runs(troquet) and _database(troquet) == "ok",
               timeout=30, interval=0.5, what="the cluster to be started again")
    assert "started it again" in troquet.log.read_text(), tail(troquet.log)
    assert troquet.stop() == 0
    assert not _cluster_runs(troquet)


def test_a_stale_postmaster_pid_of_another_program_is_removed(embedded):
    """M4: after a reboot postmaster.pid (and the socket's lock) may name a
    PID that another program of the postgres user now has."""
    f = embedded()
    troquet = f["troquet"]
    troquet.start()
    assert troquet.stop() == 0
    assert not _cluster_runs(troquet)
    pg = pwd.getpwnam("postgres")

    def as_postgres():
        os.setgid(pg.pw_gid)
        os.setuid(pg.pw_uid)

    sleeper = subprocess.Popen(["sleep", "300"], preexec_fn=as_postgres)
    try:
        run = troquet.dir / "data" / "pg" / "run"
        for path, lines in (
                (_pg_data(troquet) / "postmaster.pid",
                 [str(sleeper.pid), str(_pg_data(troquet)), "1700000000", "5432",
                  str(run), "", "  5432001         0", "ready   "]),
                (run / ".s.PGSQL.5432.lock",
                 [str(sleeper.pid), str(_pg_data(troquet)), "1700000000", "5432",
                  str(run)])):
            path.write_text("\n".join(lines) + "\n")
            os.chown(path, pg.pw_uid, pg.pw_gid)
        rc, out, err = troquet.cli("member", "list", "--json")
        assert rc == 0, err
        assert json.loads(out) == []
        assert "removing the stale file" in err, err
        troquet.start()
        assert _database(troquet) == "ok"
        assert sleeper.poll() is None, "the other program was harmed"
    finally:
        sleeper.kill()
        sleeper.wait()
