/*
 * db.c - PostgreSQL through libpq: connections, migrations, small helpers.
 *
 * This file owns the conversation with the server at its lowest level: it
 * opens a session in the shape the rest of the node expects (UTC, UTF-8,
 * application_name), applies the migrations compiled into the binary, and
 * runs parameterised statements, logging a failure once.  It knows nothing
 * of members, passes or visits; those modules write their own SQL.  It does
 * not start servers either: the embedded cluster is pgembed.c's business.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"
#include "log.h"
#include "util.h"

/*
 * The key of the session advisory lock that serialises migrators, in every
 * database the node uses: the ASCII bytes of "Passerel" read as a big-endian
 * 64-bit integer.  Any fixed value would do; this one is easy to recognise
 * in pg_locks.
 */
#define DB_MIGRATE_LOCK_KEY "5792037535235597676"

/* Without a connect_timeout in the conninfo, libpq may wait forever. */
#define DB_CONNECT_TIMEOUT "10"

static _Thread_local char db_sqlstate[6];
/* The SQLSTATEs a caller handles itself (db_expect), or NULL. */
static _Thread_local const char *db_expected;

/* Copies libpq's message into err on one line, without its final newline. */
static void
db_format_error(char *err, size_t errlen, const char *prefix, const char *msg)
{
	size_t n;

	if (err == NULL || errlen == 0)
		return;
	if (msg == NULL || *msg == '\0')
		msg = "unknown error";
	snprintf(err, errlen, "%s%s", prefix, msg);
	n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *p = err; *p != '\0'; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
}

/*
 * Notes why res (possibly NULL) failed: remembers its SQLSTATE for
 * db_last_sqlstate() and describes it in err as "SQLSTATE: message".
 */
static void
db_note_failure(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *state = NULL, *msg = NULL;
	char prefix[16];

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		if (msg == NULL)
			msg = PQresultErrorMessage(res);
	}
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(conn);
	util_strlcpy(db_sqlstate, state != NULL ? state : "", sizeof(db_sqlstate));
	if (state != NULL)
		snprintf(prefix, sizeof(prefix), "%s: ", state);
	else
		prefix[0] = '\0';
	db_format_error(err, errlen, prefix, msg);
}

static bool
db_result_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

/*
 * Server notices go to the node's log instead of libpq's default, stderr:
 * warnings as warnings, the chatter ("relation already exists, skipping")
 * at debug level.
 */
static void
db_notice(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	(void)arg;
	if (msg == NULL)
		return;
	if (severity != NULL && strcmp(severity, "WARNING") == 0)
		log_warnx("postgres: %s", msg);
	else
		log_debug("postgres: %s", msg);
}

int
db_connect(const char *conninfo, PGconn **ret, char *err, size_t errlen)
{
	/*
	 * Keywords before "dbname" are defaults that the expanded conninfo may
	 * override; fallback_application_name also yields to $PGAPPNAME.
	 */
	/*
	 * The time zone also as a startup option, so that a session made again
	 * by PQreset (a server that restarted) is in UTC too.
	 */
	const char *keys[] = { "connect_timeout", "client_encoding",
		"fallback_application_name", "options", "dbname", NULL };
	const char *values[] = { DB_CONNECT_TIMEOUT, "UTF8", "passerelle",
		"-c TimeZone=UTC", conninfo != NULL ? conninfo : "", NULL };
	PGconn *conn;
	PGresult *res;
	int r;

	if (getenv("PGCONNECT_TIMEOUT") != NULL)
		values[0] = NULL;	/* NULL values are skipped */
	conn = PQconnectdbParams(keys, values, 1);
	if (conn == NULL) {
		snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
		return -ENOMEM;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		db_format_error(err, errlen, "cannot connect to PostgreSQL: ",
		    PQerrorMessage(conn));
		r = -ECONNREFUSED;
		goto fail;
	}
	PQsetNoticeReceiver(conn, db_notice, NULL);
	/* Every timestamp the node reads or writes is in UTC. */
	res = PQexec(conn, "SET TIME ZONE 'UTC'");
	if (!db_result_ok(res)) {
		db_format_error(err, errlen, "cannot set the time zone: ",
		    res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		PQclear(res);
		r = -EIO;
		goto fail;
	}
	PQclear(res);
	*ret = conn;
	return 0;
fail:
	PQfinish(conn);
	return r;
}

/* ---- Migrations ------------------------------------------------------- */

static int
db_latest_version(void)
{
	int latest = 0;

	for (const struct db_migration *m = db_migrations; m->name != NULL; m++)
		if (m->version > latest)
			latest = m->version;
	return latest;
}

/* The newest recorded version, or 0 when schema_migrations is missing. */
static int
db_current_version(PGconn *conn, int *ret, char *err, size_t errlen)
{
	PGresult *res;
	int r = -EIO;

	/*
	 * Two steps, because a statement naming a missing table fails as a
	 * whole (and would abort the caller's transaction).
	 */
	res = PQexecParams(conn,
	    "SELECT to_regclass('schema_migrations') IS NOT NULL",
	    0, NULL, NULL, NULL, NULL, 0);
	if (!db_result_ok(res) || PQntuples(res) != 1)
		goto fail;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		*ret = 0;
		PQclear(res);
		return 0;
	}
	PQclear(res);
	res = PQexecParams(conn,
	    "SELECT coalesce(max(version), 0) FROM schema_migrations",
	    0, NULL, NULL, NULL, NULL, 0);
	if (!db_result_ok(res) || PQntuples(res) != 1)
		goto fail;
	*ret = atoi(PQgetvalue(res, 0, 0));
	r = 0;
fail:
	if (r < 0)
		db_note_failure(conn, res, err, errlen);
	PQclear(res);
	return r;
}

static int
db_migrate_lock(PGconn *conn, const char *fn, char *err, size_t errlen)
{
	const char *params[] = { DB_MIGRATE_LOCK_KEY };
	char sql[64];
	PGresult *res;

	snprintf(sql, sizeof(sql), "SELECT %s($1::bigint)", fn);
	res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	if (!db_result_ok(res)) {
		db_note_failure(conn, res, err, errlen);
		PQclear(res);
		return -EIO;
	}
	PQclear(res);
	return 0;
}

/* Applies one migration and records it, in a single transaction. */
static int
db_migrate_one(PGconn *conn, const struct db_migration *m, char *err,
    size_t errlen)
{
	char version[16], reason[512];
	const char *params[2] = { version, m->name };
	PGresult *res;

	snprintf(version, sizeof(version), "%d", m->version);
	res = PQexec(conn, "BEGIN");
	if (!db_result_ok(res))
		goto fail;
	PQclear(res);
	/*
	 * A migration file holds several statements, which only the simple
	 * query protocol accepts; its text is part of the binary, never input.
	 * Files must not contain BEGIN or COMMIT of their own.
	 */
	res = PQexec(conn, m->sql);
	if (!db_result_ok(res))
		goto fail;
	PQclear(res);
	res = PQexecParams(conn,
	    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
	    2, NULL, params, NULL, NULL, 0);
	if (!db_result_ok(res))
		goto fail;
	PQclear(res);
	if (db_commit(conn) < 0) {
		snprintf(err, errlen, "migration %s failed: it could not be "
		    "committed (SQLSTATE %s)", m->name, db_sqlstate);
		db_rollback(conn);
		return -EIO;
	}
	return 0;
fail:
	db_note_failure(conn, res, reason, sizeof(reason));
	snprintf(err, errlen, "migration %s failed: %s", m->name, reason);
	PQclear(res);
	db_rollback(conn);
	return -EIO;
}

int
db_migrate(PGconn *conn, int *ret_applied, char *err, size_t errlen)
{
	const struct db_migration *m;
	int applied = 0, current, latest, prev = 0, r;
	bool locked = false;
	PGresult *res;

	/* The generated table must be in order; a broken build is caught here. */
	for (m = db_migrations; m->name != NULL; m++) {
		if (m->version <= prev) {
			snprintf(err, errlen, "migration %s is out of order",
			    m->name);
			return -EINVAL;
		}
		prev = m->version;
	}
	latest = db_latest_version();
	if (db_is_broken(conn)) {
		snprintf(err, errlen, "cannot migrate: the connection is broken");
		return -EIO;
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		snprintf(err, errlen, "cannot migrate inside a transaction");
		return -EBUSY;
	}

	/*
	 * A session lock, not a transaction lock: it must outlive the one
	 * transaction per migration.  Two nodes starting at once on the same
	 * database wait here for each other, and the second finds nothing to do.
	 */
	r = db_migrate_lock(conn, "pg_advisory_lock", err, errlen);
	if (r < 0)
		goto out;
	locked = true;

	res = PQexec(conn,
	    "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    " version int PRIMARY KEY,"
	    " name text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now())");
	if (!db_result_ok(res)) {
		db_note_failure(conn, res, err, errlen);
		PQclear(res);
		r = -EIO;
		goto out;
	}
	PQclear(res);

	r = db_current_version(conn, &current, err, errlen);
	if (r < 0)
		goto out;
	if (current > latest) {
		snprintf(err, errlen, "the database is at schema version %d but "
		    "this passerelle knows only up to %d; refusing to run an "
		    "older binary against a newer database", current, latest);
		r = -EPROTO;
		goto out;
	}

	for (m = db_migrations; m->name != NULL; m++) {
		const char *params[1];
		char version[16];

		snprintf(version, sizeof(version), "%d", m->version);
		params[0] = version;
		/* Checked one by one: a gap left by a failed run is filled. */
		res = PQexecParams(conn,
		    "SELECT 1 FROM schema_migrations WHERE version = $1",
		    1, NULL, params, NULL, NULL, 0);
		if (!db_result_ok(res)) {
			db_note_failure(conn, res, err, errlen);
			PQclear(res);
			r = -EIO;
			goto out;
		}
		if (PQntuples(res) > 0) {
			PQclear(res);
			continue;
		}
		PQclear(res);
		r = db_migrate_one(conn, m, err, errlen);
		if (r < 0)
			goto out;
		log_info("applied schema migration %s", m->name);
		applied++;
	}
	r = 0;
out:
	if (locked) {
		char unlock_err[256];

		/* A broken connection has released the lock with the session. */
		if (db_migrate_lock(conn, "pg_advisory_unlock", unlock_err,
		    sizeof(unlock_err)) < 0 && r == 0) {
			snprintf(err, errlen, "cannot release the migration "
			    "lock: %s", unlock_err);
			r = -EIO;
		}
	}
	if (r == 0 && ret_applied != NULL)
		*ret_applied = applied;
	return r;
}

int
db_schema_version(PGconn *conn, int *ret_current, int *ret_latest)
{
	char err[256];
	int current, r;

	r = db_current_version(conn, &current, err, sizeof(err));
	if (r < 0) {
		log_warnx("cannot read the schema version: %s", err);
		return r;
	}
	if (ret_current != NULL)
		*ret_current = current;
	if (ret_latest != NULL)
		*ret_latest = db_latest_version();
	return 0;
}

/* ---- Statements ------------------------------------------------------- */

/*
 * Prepared statements, per thread and connection.  Parsing, analysing and
 * planning took a third of PostgreSQL's time on the check-in path
 * (docs/benchmarks.md); a statement run again on the same connection is
 * only executed.  The cache is keyed by the text (some statements are built
 * at run time); a connection that was reset, or a pointer reused by a new
 * connection, is noticed by PostgreSQL's "prepared statement does not
 * exist" and healed by preparing again.
 */
#define DB_STMT_CACHE 192
#define SQLSTATE_NO_SUCH_STATEMENT "26000"
/*
 * "cached plan must not change result type": a statement prepared before a
 * migration (by another process of the space) changed the type of a
 * column it returns.  Prepared again, it runs.
 */
#define SQLSTATE_PLAN_CHANGED "0A000"

/* Whether a prepared statement's failure is healed by preparing it again. */
static bool
db_stale_statement(const char *sqlstate)
{
	return sqlstate != NULL && (strcmp(sqlstate, SQLSTATE_NO_SUCH_STATEMENT) == 0 ||
	    strcmp(sqlstate, SQLSTATE_PLAN_CHANGED) == 0);
}

struct db_stmt {
	PGconn *conn;
	uint64_t hash;
	char *sql;
	char name[16];
};

/*
 * A transaction's BEGIN is not sent on its own: db_begin() notes it, and it
 * goes to the server in one round trip with the transaction's first
 * statement (a pipeline).  A transaction without statements costs nothing.
 */
static _Thread_local PGconn *db_begin_pending;

static _Thread_local struct db_stmt db_stmts[DB_STMT_CACHE];
static _Thread_local unsigned int db_stmt_serial;

static uint64_t
db_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct db_stmt *
db_stmt_find(PGconn *conn, const char *sql, uint64_t hash)
{
	for (size_t i = 0; i < DB_STMT_CACHE; i++) {
		struct db_stmt *st = &db_stmts[(hash + i) % DB_STMT_CACHE];

		if (st->sql == NULL)
			return NULL;
		if (st->conn == conn && st->hash == hash && strcmp(st->sql, sql) == 0)
			return st;
	}
	return NULL;
}

void
db_expect(const char *sqlstate)
{
	db_expected = sqlstate;
}

/* Whether state is one of the space-separated SQLSTATEs of list. */
static bool
db_sqlstate_in(const char *state, const char *list)
{
	size_t n = strlen(state);

	if (n == 0)
		return false;
	while (*list != '\0') {
		size_t len = strcspn(list, " ");

		if (len == n && strncmp(list, state, n) == 0)
			return true;
		list += len;
		list += strspn(list, " ");
	}
	return false;
}

/* A failure: a warning, unless the caller said it handles this one. */
static void
db_log_failure(const char *err)
{
	if (db_expected != NULL && db_sqlstate_in(db_sqlstate, db_expected))
		log_debug("an error the caller handles: %s", err);
	else
		log_warnx("query failed: %s", err);
}

/* The name of sql prepared on conn, preparing it first; NULL: not possible. */
static const char *
db_prepared(PGconn *conn, const char *sql, int nparams)
{
	uint64_t hash = db_hash(sql);
	struct db_stmt *st = db_stmt_find(conn, sql, hash), *slot = NULL;
	PGresult *res;
	char name[16];

	if (st != NULL)
		return st->name;
	for (size_t i = 0; i < DB_STMT_CACHE; i++) {
		struct db_stmt *c = &db_stmts[(hash + i) % DB_STMT_CACHE];

		if (c->sql == NULL) {
			slot = c;
			break;
		}
	}
	if (slot == NULL)
		return NULL; /* full: run unprepared */
	snprintf(name, sizeof(name), "p%u", ++db_stmt_serial);
	res = PQprepare(conn, name, sql, nparams, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		char err[512];

		/*
		 * Said here: inside a transaction the failure aborts it, and the
		 * statement then run unprepared only says 25P02.
		 */
		db_note_failure(conn, res, err, sizeof(err));
		log_warnx("cannot prepare \"%.60s\": %s", sql, err);
		PQclear(res);
		return NULL;
	}
	PQclear(res);
	slot->sql = strdup(sql);
	if (slot->sql == NULL)
		return NULL;
	slot->conn = conn;
	slot->hash = hash;
	util_strlcpy(slot->name, name, sizeof(slot->name));
	return slot->name;
}

/* Forgets the statements prepared on conn by this thread (it is closing). */
void
db_forget(PGconn *conn)
{
	/*
	 * The table is open-addressed: dropping entries would break probe
	 * chains, so a whole thread's table is cleared at once.
	 */
	if (db_begin_pending == conn)
		db_begin_pending = NULL;
	for (size_t i = 0; i < DB_STMT_CACHE; i++) {
		free(db_stmts[i].sql);
		db_stmts[i].sql = NULL;
		db_stmts[i].conn = NULL;
	}
}

void
db_close(PGconn *conn)
{
	if (conn == NULL)
		return;
	db_forget(conn);
	PQfinish(conn);
}


/* Sends BEGIN now if one is waiting for another connection of this thread. */
static int
db_flush_begin(PGconn *conn)
{
	PGconn *pending = db_begin_pending;
	PGresult *res;
	bool ok;

	if (pending == NULL || pending == conn)
		return 0;
	db_begin_pending = NULL;
	res = PQexec(pending, "BEGIN");
	ok = db_result_ok(res);
	PQclear(res);
	return ok ? 0 : -EIO;
}

/* Reads one statement's results in a pipeline: the last one, or NULL. */
static PGresult *
db_pipeline_result(PGconn *conn)
{
	PGresult *res, *last = NULL;

	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			/* Nothing more comes for this statement (a broken link). */
			PQclear(res);
			break;
		}
		PQclear(last);
		last = res;
	}
	return last;
}

int
db_pipeline(PGconn *conn, const struct db_call *calls, int n, PGresult **ret)
{
	const char *names[DB_PIPELINE_MAX], *begin_name;
	bool begin = db_begin_pending == conn, sent = true;
	int first = begin ? -1 : 0, r = 0;
	PGresult *res;
	char err[512];

	/* A failure here has no SQLSTATE: none left from an earlier one. */
	db_sqlstate[0] = '\0';
	if (n < 1 || n > DB_PIPELINE_MAX || db_flush_begin(conn) < 0)
		return -EIO;
	for (int i = 0; i < n; i++) {
		ret[i] = NULL;
		names[i] = db_prepared(conn, calls[i].sql, calls[i].nparams);
	}
	/* BEGIN too: parsed once per connection, not once per transaction. */
	begin_name = begin ? db_prepared(conn, "BEGIN", 0) : NULL;
	db_begin_pending = NULL;
	if (PQenterPipelineMode(conn) != 1)
		return -EIO;
	for (int i = first; i < n && sent; i++) {
		if (i < 0 && begin_name != NULL)
			sent = PQsendQueryPrepared(conn, begin_name, 0, NULL, NULL, NULL, 0);
		else if (i < 0)
			sent = PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
		else if (names[i] != NULL)
			sent = PQsendQueryPrepared(conn, names[i], calls[i].nparams,
			    calls[i].params, NULL, NULL, 0);
		else
			sent = PQsendQueryParams(conn, calls[i].sql, calls[i].nparams, NULL,
			    calls[i].params, NULL, NULL, 0);
	}
	if (!sent || PQpipelineSync(conn) != 1) {
		db_note_failure(conn, NULL, err, sizeof(err));
		db_log_failure(err);
		if (PQexitPipelineMode(conn) != 1) {
			/* Results still pending: start the session again. */
			db_forget(conn);
			PQreset(conn);
		}
		return -EIO;
	}
	for (int i = first; i < n; i++) {
		res = db_pipeline_result(conn);
		if (db_result_ok(res)) {
			if (i >= 0)
				ret[i] = res;
			else
				PQclear(res);
			continue;
		}
		/* The first failure is the one to report; the rest were skipped. */
		if (r == 0) {
			db_note_failure(conn, res, err, sizeof(err));
			db_log_failure(err);
			if (db_stale_statement(db_sqlstate))
				db_forget(conn); /* prepare again next time */
		}
		PQclear(res);
		r = -EIO;
	}
	/* Up to the sync, which ends the pipeline. */
	while ((res = PQgetResult(conn)) != NULL) {
		bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;

		PQclear(res);
		if (sync)
			break;
	}
	if (PQexitPipelineMode(conn) != 1) {
		db_forget(conn);
		PQreset(conn);
		r = -EIO;
	}
	if (r < 0)
		for (int i = 0; i < n; i++) {
			PQclear(ret[i]);
			ret[i] = NULL;
		}
	return r;
}

PGresult *
db_query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult *res;
	const char *name;
	char err[512];

	if (db_begin_pending == conn) {
		const struct db_call call = { sql, nparams, params };

		return db_pipeline(conn, &call, 1, &res) == 0 ? res : NULL;
	}
	if (db_flush_begin(conn) < 0)
		return NULL;
	name = db_prepared(conn, sql, nparams);
	if (name != NULL) {
		res = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
		if (db_result_ok(res))
			return res;
		if (!db_stale_statement(PQresultErrorField(res, PG_DIAG_SQLSTATE)))
			goto failed;
		/*
		 * A new or reset connection, or a column's type changed: prepare
		 * again from scratch.  In a transaction, which the failure has
		 * aborted, the caller fails and the next use prepares again.
		 */
		db_forget(conn);
		if (PQtransactionStatus(conn) == PQTRANS_INERROR)
			goto failed;
		PQclear(res);
	}
	res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
failed:
	if (db_result_ok(res))
		return res;
	db_note_failure(conn, res, err, sizeof(err));
	db_log_failure(err);
	PQclear(res);
	return NULL;
}

PGresult *
db_query_generic(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	bool in_txn = db_begin_pending == conn ||
	    PQtransactionStatus(conn) == PQTRANS_INTRANS;
	const struct db_call calls[3] = {
		{ DB_GENERIC_PLANS, 0, NULL },
		{ sql, nparams, params },
		{ in_txn ? DB_AUTO_PLANS : "COMMIT", 0, NULL },
	};
	PGresult *res[3];

	/* Outside a transaction, one of its own (SET LOCAL needs one). */
	if (!in_txn && db_begin(conn) < 0)
		return NULL;
	if (db_pipeline(conn, calls, 3, res) < 0) {
		if (!in_txn)
			db_rollback(conn);
		return NULL;
	}
	PQclear(res[0]);
	PQclear(res[2]);
	return res[1];
}

int
db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = db_query(conn, sql, nparams, params);

	if (res == NULL)
		return -EIO;
	PQclear(res);
	return 0;
}

int
db_begin(PGconn *conn)
{
	if (db_flush_begin(conn) < 0)
		return -EIO;
	if (db_begin_pending == conn)
		return 0;
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		/* Let the server say what is wrong (a transaction already open). */
		return db_exec(conn, "BEGIN", 0, NULL);
	}
	db_begin_pending = conn;
	return 0;
}

int
db_committed(PGresult *res)
{
	bool committed;

	if (res == NULL)
		return -EIO;
	committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
	PQclear(res);
	if (!committed) {
		util_strlcpy(db_sqlstate, "25P02", sizeof(db_sqlstate));
		log_warnx("commit failed: the transaction had been aborted");
		return -EIO;
	}
	return 0;
}

int
db_commit(PGconn *conn)
{
	if (db_begin_pending == conn) {
		/* Nothing was run in it: nothing to commit. */
		db_begin_pending = NULL;
		return 0;
	}
	return db_committed(db_query(conn, "COMMIT", 0, NULL));
}

int
db_exec_commit(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	const struct db_call calls[2] = { { sql, nparams, params }, { "COMMIT", 0, NULL } };
	PGresult *res[2];

	if (db_pipeline(conn, calls, 2, res) < 0)
		return -EIO;
	PQclear(res[0]);
	return db_committed(res[1]);
}

void
db_rollback(PGconn *conn)
{
	if (db_begin_pending == conn) {
		db_begin_pending = NULL;
		return;
	}
	/* A failed COMMIT has ended the transaction already. */
	if (PQtransactionStatus(conn) == PQTRANS_IDLE)
		return;
	/*
	 * Quietly: the failure that led here has been reported, and a rollback
	 * on a broken connection has nothing left to undo.
	 */
	PQclear(PQexec(conn, "ROLLBACK"));
}

void
db_json_column(cJSON *o, const char *name, const PGresult *res, int i, int col,
    bool number)
{
	if (PQgetisnull(res, i, col))
		cJSON_AddNullToObject(o, name);
	else if (number)
		cJSON_AddNumberToObject(o, name, (double)strtoll(PQgetvalue(res, i, col),
		    NULL, 10));
	else
		cJSON_AddStringToObject(o, name, PQgetvalue(res, i, col));
}

const char *
db_last_sqlstate(void)
{
	return db_sqlstate;
}

bool
db_is_broken(PGconn *conn)
{
	return conn == NULL || PQstatus(conn) != CONNECTION_OK;
}

bool
db_reconnect(PGconn *conn, int ms)
{
	int64_t deadline = util_monotonic_us() + (int64_t)ms * 1000, left;
	PostgresPollingStatusType st;
	struct pollfd p;

	while (conn != NULL && db_is_broken(conn)) {
		if ((left = (deadline - util_monotonic_us()) / 1000) <= 0)
			return false;
		db_forget(conn);
		/* Without blocking past the deadline (connect_timeout is 10 s). */
		st = PQresetStart(conn) == 1 ? PGRES_POLLING_WRITING : PGRES_POLLING_FAILED;
		while (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) {
			left = (deadline - util_monotonic_us()) / 1000;
			p.fd = PQsocket(conn);
			p.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
			if (left <= 0 || poll(&p, 1, (int)left) <= 0)
				return false;
			st = PQresetPoll(conn);
		}
		if (db_is_broken(conn)) {
			left = (deadline - util_monotonic_us()) / 1000;
			usleep((useconds_t)(left < 100 ? left : 100) * 1000);
		}
	}
	return conn != NULL;
}
