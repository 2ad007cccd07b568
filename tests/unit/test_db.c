/*
 * test_db.c - node/db.c and node/pgembed.c against a real PostgreSQL.
 *
 * Creates an embedded cluster in a temporary directory, migrates it twice,
 * runs a few statements, checks that a second pgembed_ensure finds the
 * server running, stops it and removes the directory.  Works as root (the
 * cluster then belongs to the "postgres" user) and as anyone else.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "db.h"
#include "pgembed.h"
#include "util.h"

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
count_migrations(void)
{
	int n = 0;

	while (db_migrations[n].name != NULL)
		n++;
	return n;
}

/* As root: the failures that must be explained, not just reported. */
static void
check_root_errors(const char *tmp)
{
	char dir[600], hidden[512], conninfo[256], err[2048] = "";
	bool started;
	int r;

	snprintf(dir, sizeof(dir), "%s/nouser", tmp);
	r = pgembed_ensure(dir, NULL, "passerelle-no-such-user", conninfo,
	    sizeof(conninfo), &started, err, sizeof(err));
	CHECK(r < 0 && strstr(err, "refuses to run as root") != NULL &&
	    strstr(err, "adduser") != NULL, "missing user explained: %s", err);

	/* A directory the server's user cannot traverse, as under /root. */
	snprintf(hidden, sizeof(hidden), "%s/hidden", tmp);
	mkdir(hidden, 0700);
	snprintf(dir, sizeof(dir), "%s/pg", hidden);
	err[0] = '\0';
	r = pgembed_ensure(dir, NULL, NULL, conninfo, sizeof(conninfo),
	    &started, err, sizeof(err));
	CHECK(r < 0 && strstr(err, hidden) != NULL &&
	    strstr(err, "cannot reach") != NULL, "unreachable dir named: %s",
	    err);
}

/*
 * Two nodes starting on the same new directory at once: both succeed, one
 * creates and starts the cluster, the other finds it running.
 */
/*
 * A serve's claim (held here by a child): a second claim is refused with
 * the holder's PID, and a command's stop leaves the server running.
 */
static void
check_claim(const char *pg_dir, const char *conninfo)
{
	char err[512], pidstr[32];
	int fds[2], status, fd = -1, r;
	PGconn *conn = NULL;
	pid_t pid;
	char c = 0;

	if (pipe(fds) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		r = pgembed_claim(pg_dir, NULL, NULL, &fd, err, sizeof(err));
		c = r == 0 ? 'y' : 'n';
		if (write(fds[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(fds[1]);
	CHECK(pid > 0 && read(fds[0], &c, 1) == 1 && c == 'y',
	    "the child claims the cluster");
	close(fds[0]);
	r = pgembed_claim(pg_dir, NULL, NULL, &fd, err, sizeof(err));
	snprintf(pidstr, sizeof(pidstr), "(pid %ld)", (long)pid);
	CHECK(r == -EBUSY && strstr(err, pidstr) != NULL,
	    "a second claim is refused naming the holder: %s",
	    r == 0 ? "accepted" : err);
	if (r == 0)
		close(fd);
	CHECK(pgembed_stop(pg_dir, NULL, NULL, true) == 0,
	    "a command's stop under a claim");
	r = db_connect(conninfo, &conn, err, sizeof(err));
	CHECK(r == 0, "the server still runs under the claim: %s",
	    r == 0 ? "ok" : err);
	if (conn != NULL)
		PQfinish(conn);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	/* The kernel let go of the dead child's claim. */
	r = pgembed_claim(pg_dir, NULL, NULL, &fd, err, sizeof(err));
	CHECK(r == 0, "claimed after the holder died: %s", r == 0 ? "ok" : err);
	if (r == 0)
		close(fd);
}

static void
check_race(const char *tmp)
{
	char dir[512], conninfo[1024], err[2048] = "";
	bool started = false;
	int r, status = 0, both;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/race", tmp);
	pid = fork();
	if (pid == 0) {
		r = pgembed_ensure(dir, NULL, NULL, conninfo, sizeof(conninfo),
		    &started, err, sizeof(err));
		if (r < 0)
			fprintf(stderr, "child: %s\n", err);
		_exit(r < 0 ? 2 : started ? 1 : 0);
	}
	r = pgembed_ensure(dir, NULL, NULL, conninfo, sizeof(conninfo),
	    &started, err, sizeof(err));
	CHECK(r == 0, "racing pgembed_ensure (parent): %s", r == 0 ? "ok" : err);
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) < 2, "racing pgembed_ensure (child)");
	both = (started ? 1 : 0) + (WIFEXITED(status) &&
	    WEXITSTATUS(status) == 1 ? 1 : 0);
	CHECK(both == 1, "exactly one of them started the server (%d)", both);
	CHECK(pgembed_stop(dir, NULL, NULL, false) == 0, "stop the raced cluster");
}

/*
 * Transactions whose BEGIN travels with their first statement, and several
 * statements in one round trip.
 */
static void
check_pipeline(PGconn *conn)
{
	const struct db_call calls[3] = {
		{ "insert into pipe values (1)", 0, NULL },
		{ "select count(*) from pipe", 0, NULL },
		{ "select 2", 0, NULL },
	};
	const struct db_call failing[3] = {
		{ "insert into pipe values (2)", 0, NULL },
		{ "select 1/0", 0, NULL },
		{ "insert into pipe values (3)", 0, NULL },
	};
	PGresult *res[3], *one;

	CHECK(db_exec(conn, "create table pipe (n int)", 0, NULL) == 0, "table");
	/* A transaction with no statement sends nothing and commits nothing. */
	CHECK(db_begin(conn) == 0 && PQtransactionStatus(conn) == PQTRANS_IDLE,
	    "BEGIN waits for the first statement");
	CHECK(db_commit(conn) == 0, "an empty transaction commits");
	CHECK(db_begin(conn) == 0, "begin");
	db_rollback(conn);
	CHECK(PQtransactionStatus(conn) == PQTRANS_IDLE, "an empty one rolls back");

	/* BEGIN goes with the first statement: the transaction is open after it. */
	CHECK(db_begin(conn) == 0 && db_exec(conn, "insert into pipe values (1)",
	    0, NULL) == 0 && PQtransactionStatus(conn) == PQTRANS_INTRANS,
	    "the first statement opens the transaction");
	db_rollback(conn);
	one = db_query(conn, "select count(*) from pipe", 0, NULL);
	CHECK(one != NULL && strcmp(PQgetvalue(one, 0, 0), "0") == 0,
	    "its rollback undid it");
	PQclear(one);

	/* Several statements, in order, with BEGIN first. */
	CHECK(db_begin(conn) == 0 && db_pipeline(conn, calls, 3, res) == 0,
	    "a pipeline of three");
	CHECK(res[1] != NULL && strcmp(PQgetvalue(res[1], 0, 0), "1") == 0 &&
	    res[2] != NULL && strcmp(PQgetvalue(res[2], 0, 0), "2") == 0,
	    "each statement's result, in order");
	for (int i = 0; i < 3; i++)
		PQclear(res[i]);
	CHECK(PQtransactionStatus(conn) == PQTRANS_INTRANS, "still in the transaction");
	CHECK(db_exec_commit(conn, "insert into pipe values (2)", 0, NULL) == 0 &&
	    PQtransactionStatus(conn) == PQTRANS_IDLE, "a write and its commit");

	/* A failure: reported, the statements after it not run, nothing kept. */
	CHECK(db_begin(conn) == 0 && db_pipeline(conn, failing, 3, res) == -EIO &&
	    res[0] == NULL && res[2] == NULL, "a failing pipeline returns no result");
	CHECK_STR(db_last_sqlstate(), "22012", "its first failure's SQLSTATE");
	CHECK(db_commit(conn) < 0, "its transaction does not commit");
	db_rollback(conn);
	CHECK(db_begin(conn) == 0 && db_exec_commit(conn, "select 1/0", 0, NULL) < 0,
	    "a failing write is not committed");
	db_rollback(conn);
	one = db_query(conn, "select count(*) from pipe", 0, NULL);
	CHECK(one != NULL && strcmp(PQgetvalue(one, 0, 0), "2") == 0,
	    "two rows committed, none of the failed ones (%s)",
	    one != NULL ? PQgetvalue(one, 0, 0) : "?");
	PQclear(one);
	CHECK(db_exec(conn, "drop table pipe", 0, NULL) == 0, "drop");
}

/* A session ended by the server is made again by db_reconnect. */
static void
check_reconnect(PGconn *conn, const char *conninfo)
{
	PGconn *other = NULL;
	char pid[16], err[512];
	const char *params[1] = { pid };
	PGresult *res;

	CHECK(db_reconnect(conn, 0), "a healthy connection needs nothing");
	snprintf(pid, sizeof(pid), "%d", PQbackendPID(conn));
	if (db_connect(conninfo, &other, err, sizeof(err)) < 0) {
		CHECK(false, "second connection: %s", err);
		return;
	}
	/* A database whose sessions would not be in UTC by themselves. */
	CHECK(db_exec(other, "alter database passerelle set timezone = 'Europe/Paris'",
	    0, NULL) == 0, "a time zone for the database");
	CHECK(db_exec(other, "select pg_terminate_backend($1::int)", 1, params) == 0,
	    "terminate the first session");
	PQfinish(other);
	res = db_query(conn, "select 1", 0, NULL);
	CHECK(res == NULL && db_is_broken(conn), "the ended session fails");
	PQclear(res);
	CHECK(db_reconnect(conn, 2000), "made again");
	res = db_query(conn, "select 1", 0, NULL);
	CHECK(res != NULL && strcmp(PQgetvalue(res, 0, 0), "1") == 0,
	    "and usable (statements prepared again)");
	PQclear(res);
	CHECK(PQbackendPID(conn) != atoi(pid), "in a new session");
	res = db_query(conn, "show timezone", 0, NULL);
	CHECK(res != NULL && strcmp(PQgetvalue(res, 0, 0), "UTC") == 0,
	    "the new session is in UTC (%s)", res != NULL ? PQgetvalue(res, 0, 0) : "?");
	PQclear(res);
	CHECK(db_exec(conn, "alter database passerelle reset timezone", 0, NULL) == 0,
	    "the database's time zone reset");
	/* Not past its deadline when the server does not come back. */
	{
		PGconn *dead = PQconnectdb("host=/nonexistent-passerelle dbname=x");
		int64_t t0 = util_monotonic_us();

		CHECK(db_is_broken(dead) && !db_reconnect(dead, 300) &&
		    util_monotonic_us() - t0 < 2000000, "a server that is gone: false in time");
		PQfinish(dead);
	}
}

/*
 * A statement prepared before another session changed the type of a column
 * it returns ("cached plan must not change result type") is prepared again:
 * at once outside a transaction, at the next use inside one.
 */
static void
check_plan_changed(PGconn *conn, const char *conninfo)
{
	PGconn *other = NULL;
	char err[512];
	PGresult *res;

	CHECK(db_exec(conn, "create table shape (v text)", 0, NULL) == 0 &&
	    db_exec(conn, "insert into shape values ('a')", 0, NULL) == 0, "a table");
	res = db_query(conn, "select v from shape", 0, NULL);
	CHECK(res != NULL && PQntuples(res) == 1, "prepared and run");
	PQclear(res);
	if (db_connect(conninfo, &other, err, sizeof(err)) < 0) {
		CHECK(false, "second connection: %s", err);
		return;
	}
	CHECK(db_exec(other, "create domain shape_v as text check (value <> '')", 0,
	    NULL) == 0 && db_exec(other, "alter table shape alter column v type shape_v",
	    0, NULL) == 0, "its column changed type elsewhere");
	res = db_query(conn, "select v from shape", 0, NULL);
	CHECK(res != NULL && strcmp(PQgetvalue(res, 0, 0), "a") == 0,
	    "outside a transaction: prepared again at once");
	PQclear(res);
	res = db_query(conn, "select v from shape", 0, NULL);
	CHECK(res != NULL, "prepared with the new type");
	PQclear(res);
	CHECK(db_exec(other, "alter table shape alter column v type text", 0, NULL) == 0,
	    "and back");
	CHECK(db_begin(conn) == 0, "begin");
	res = db_query(conn, "select v from shape", 0, NULL);
	CHECK(res == NULL && strcmp(db_last_sqlstate(), "0A000") == 0,
	    "inside a transaction: it fails (%s)", db_last_sqlstate());
	db_rollback(conn);
	res = db_query(conn, "select v from shape", 0, NULL);
	CHECK(res != NULL && strcmp(PQgetvalue(res, 0, 0), "a") == 0,
	    "and is prepared again at the next use");
	PQclear(res);
	CHECK(db_exec(other, "drop table shape", 0, NULL) == 0 &&
	    db_exec(other, "drop domain shape_v", 0, NULL) == 0, "dropped");
	PQfinish(other);
}

int
main(void)
{
	char tmp[] = "/tmp/passerelle-test-db-XXXXXX";
	char pg_dir[512], conninfo[1024], err[2048] = "";
	const char *quoted = "l'espace \"Le Troquet\"; --";
	const char *params[1];
	bool started = true;
	PGconn *conn = NULL;
	PGresult *res;
	int r, applied = -1, current = -1, latest = -1;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (mkdtemp(tmp) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	/* As root, the server's user must be able to traverse it. */
	chmod(tmp, 0755);
	snprintf(pg_dir, sizeof(pg_dir), "%s/pg", tmp);

	r = pgembed_ensure(pg_dir, NULL, NULL, conninfo, sizeof(conninfo),
	    &started, err, sizeof(err));
	CHECK(r == 0, "pgembed_ensure: %d %s", r, err);
	if (r < 0)
		goto out;
	CHECK(started, "the first pgembed_ensure started the server");
	CHECK(strstr(conninfo, "dbname=passerelle") != NULL &&
	    strstr(conninfo, "/run ") != NULL, "conninfo: %s", conninfo);

	{
		char run[600];
		struct stat st;

		snprintf(run, sizeof(run), "%s/run", pg_dir);
		CHECK(stat(run, &st) == 0 && (st.st_mode & 0777) == 0700 &&
		    st.st_uid == (geteuid() == 0 ? st.st_uid : geteuid()) &&
		    (geteuid() != 0 || st.st_uid != 0),
		    "socket directory is private to the server's user");
	}

	r = db_connect(conninfo, &conn, err, sizeof(err));
	CHECK(r == 0, "db_connect: %d %s", r, err);
	if (r < 0)
		goto stop;
	CHECK(!db_is_broken(conn), "connection is healthy");

	res = db_query(conn, "SHOW TimeZone", 0, NULL);
	CHECK(res != NULL && strcmp(PQgetvalue(res, 0, 0), "UTC") == 0,
	    "session time zone is UTC");
	PQclear(res);
	res = db_query(conn, "SHOW application_name", 0, NULL);
	CHECK_STR(res != NULL ? PQgetvalue(res, 0, 0) : NULL, "passerelle",
	    "application_name");
	PQclear(res);

	r = db_schema_version(conn, &current, &latest);
	CHECK(r == 0 && current == 0, "empty database at version 0 (%d)",
	    current);

	r = db_migrate(conn, &applied, err, sizeof(err));
	CHECK(r == 0, "db_migrate: %d %s", r, err);
	CHECK(applied == count_migrations(), "applied %d of %d migrations",
	    applied, count_migrations());
	r = db_migrate(conn, &applied, err, sizeof(err));
	CHECK(r == 0 && applied == 0, "second db_migrate applies nothing (%d)",
	    applied);
	r = db_schema_version(conn, &current, &latest);
	CHECK(r == 0 && latest > 0 && current == latest,
	    "schema version %d == latest %d", current, latest);

	/* A value with quotes goes through a parameter and comes back intact. */
	params[0] = quoted;
	res = db_query(conn, "SELECT $1::text || '!'", 1, params);
	CHECK(res != NULL && PQntuples(res) == 1, "parameterised query");
	if (res != NULL) {
		char expect[128];

		snprintf(expect, sizeof(expect), "%s!", quoted);
		CHECK_STR(PQgetvalue(res, 0, 0), expect, "round-trip");
	}
	PQclear(res);

	CHECK_STR(db_last_sqlstate(), "", "no SQLSTATE before a failure");
	res = db_query(conn, "SELECT * FROM no_such_table", 0, NULL);
	CHECK(res == NULL, "failing statement returns NULL");
	CHECK_STR(db_last_sqlstate(), "42P01", "undefined_table SQLSTATE");
	CHECK(db_exec(conn, "SELECT 1/0", 0, NULL) == -EIO, "db_exec fails");
	CHECK_STR(db_last_sqlstate(), "22012", "division_by_zero SQLSTATE");

	/* A failed transaction does not commit, and says so. */
	CHECK(db_begin(conn) == 0, "db_begin");
	CHECK(db_exec(conn, "SELECT 1/0", 0, NULL) < 0, "error in transaction");
	CHECK(db_commit(conn) < 0, "commit of a failed transaction fails");
	CHECK(db_begin(conn) == 0 && db_exec(conn, "SELECT 1", 0, NULL) == 0 &&
	    db_commit(conn) == 0, "a good transaction commits");
	CHECK(db_begin(conn) == 0, "db_begin for rollback");
	db_rollback(conn);
	CHECK(PQtransactionStatus(conn) == PQTRANS_IDLE, "rolled back");

	check_pipeline(conn);
	check_plan_changed(conn, conninfo);
	check_reconnect(conn, conninfo);

	/* An older binary must refuse a newer database. */
	params[0] = "99999";
	r = db_exec(conn, "INSERT INTO schema_migrations (version, name) "
	    "VALUES ($1, 'future')", 1, params);
	CHECK(r == 0, "pretend a newer binary migrated");
	r = db_migrate(conn, &applied, err, sizeof(err));
	CHECK(r < 0 && strstr(err, "99999") != NULL, "downgrade refused: %s",
	    err);
	CHECK(db_exec(conn, "DELETE FROM schema_migrations WHERE version = $1",
	    1, params) == 0, "forget the future");
	r = db_migrate(conn, &applied, err, sizeof(err));
	CHECK(r == 0 && applied == 0, "migration lock was released");

	started = true;
	r = pgembed_ensure(pg_dir, NULL, NULL, conninfo, sizeof(conninfo),
	    &started, err, sizeof(err));
	CHECK(r == 0 && !started, "second pgembed_ensure finds it running: %s",
	    r == 0 ? "ok" : err);

	PQfinish(conn);
	conn = NULL;
	check_claim(pg_dir, conninfo);
stop:
	r = pgembed_stop(pg_dir, NULL, NULL, false);
	CHECK(r == 0, "pgembed_stop");
	r = db_connect(conninfo, &conn, err, sizeof(err));
	CHECK(r < 0, "no server after pgembed_stop");
	if (conn != NULL)
		PQfinish(conn);
	CHECK(pgembed_stop(pg_dir, NULL, NULL, false) == 0,
	    "pgembed_stop of a stopped server");

	check_race(tmp);
	if (geteuid() == 0)
		check_root_errors(tmp);
out:
	if (nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		printf("# cannot remove %s: %s\n", tmp, strerror(errno));
	return check_done();
}
