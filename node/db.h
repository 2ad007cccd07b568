/*
 * db.h - PostgreSQL through libpq: connections, migrations, small helpers.
 *
 * Every statement goes through parameters (PQexecParams), never through
 * pasted strings.  Each thread owns its own connection; nothing here is
 * shared between threads.  Schema changes are the numbered files of schema/,
 * compiled into the binary (scripts/embed-schema.py), applied forward only,
 * each once in its own transaction, recorded in schema_migrations, and
 * serialised between processes by an advisory lock.
 */
#ifndef PASSERELLE_DB_H
#define PASSERELLE_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

struct db_migration {
	int version;
	const char *name;
	const char *sql;
};

/* Terminated by an entry whose name is NULL (generated from schema/). */
extern const struct db_migration db_migrations[];

/* Connects, checks the connection and sets the session's time zone to UTC. */
int db_connect(const char *conninfo, PGconn **ret, char *err, size_t errlen);

/* Applies every pending migration; *ret_applied counts them. */
int db_migrate(PGconn *conn, int *ret_applied, char *err, size_t errlen);

/*
 * The version the database is at (0 for an empty one) and the newest this
 * binary knows.
 */
int db_schema_version(PGconn *conn, int *ret_current, int *ret_latest);

/*
 * Runs a statement with text parameters.  Returns the result when its status
 * is PGRES_COMMAND_OK or PGRES_TUPLES_OK, otherwise logs the server's message
 * once, clears it and returns NULL.  The caller PQclear()s the result.
 */
PGresult *db_query(PGconn *conn, const char *sql, int nparams,
    const char *const *params);

/*
 * db_query prepares each statement once per thread and connection and then
 * only executes it.  db_forget() drops this thread's prepared statements
 * (call it before PQfinish on a thread that ends).
 */
void db_forget(PGconn *conn);
/*
 * db_forget() and PQfinish(): how a connection that ran statements closes
 * (NULL: nothing).  Like db_forget(), it drops all this thread's prepared
 * statements: a thread holds one connection at a time.
 */
void db_close(PGconn *conn);

/*
 * db_query for a statement that is costly to plan and whose generic plan is
 * right for every parameter: it runs with plan_cache_mode set to
 * force_generic_plan, in the caller's transaction or in one of its own, in
 * the same round trip.  PostgreSQL otherwise makes five custom plans again
 * each time autovacuum invalidates the cached one (docs/benchmarks.md).
 * DB_GENERIC_PLANS and DB_AUTO_PLANS are the statements that switch, for
 * callers that build their own pipeline inside a transaction.
 */
#define DB_GENERIC_PLANS "set local plan_cache_mode = force_generic_plan"
#define DB_AUTO_PLANS "set local plan_cache_mode = auto"
PGresult *db_query_generic(PGconn *conn, const char *sql, int nparams,
    const char *const *params);

/* db_query for statements whose rows are not needed: 0 or -EIO. */
int db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params);

/*
 * Transactions.  db_begin() sends nothing: BEGIN goes with the first
 * statement of the transaction, in the same round trip.
 */
int db_begin(PGconn *conn);
int db_commit(PGconn *conn);
void db_rollback(PGconn *conn);

/*
 * Whether a COMMIT's result (from db_pipeline; NULL for none) says it
 * committed: a failed transaction's says ROLLBACK.  0 or -EIO; clears res.
 */
int db_committed(PGresult *res);

/* Runs a statement and commits, in one round trip: 0 or -EIO. */
int db_exec_commit(PGconn *conn, const char *sql, int nparams,
    const char *const *params);

/*
 * Several statements in one round trip (a libpq pipeline), in order, with
 * a pending BEGIN first.  0 with every result in ret (the caller clears
 * them), or -EIO with none: the first failure is logged, the statements
 * after it were not run (inside a transaction, it is aborted).
 */
#define DB_PIPELINE_MAX 8
struct db_call {
	const char *sql;
	int nparams;
	const char *const *params;
};
int db_pipeline(PGconn *conn, const struct db_call *calls, int n, PGresult **ret);

/*
 * Adds column col of row i to o as name: null when it is NULL, a number
 * when number is true, a string otherwise.
 */
void db_json_column(cJSON *o, const char *name, const PGresult *res, int i,
    int col, bool number);

/* The SQLSTATE of the last failed db_query on this thread ("" if none). */
const char *db_last_sqlstate(void);

/*
 * Until the next call, a failure of this thread's statements with one of
 * these SQLSTATEs (separated by spaces) is the caller's to handle (a race
 * it resolves by trying again, a value it turns into its own one-line
 * error): logged at debug level, not as a warning.  NULL: none.
 */
void db_expect(const char *sqlstates);

/* The SQLSTATEs of a date or time PostgreSQL cannot read or place. */
#define SQLSTATE_BAD_DATETIME "22007 22008"
#define SQLSTATE_UNIQUE_VIOLATION "23505"
#define SQLSTATE_CHECK_VIOLATION "23514"

/* True when the connection is broken (the caller reconnects). */
bool db_is_broken(PGconn *conn);

/*
 * Makes a broken connection again (a server that restarted), trying every
 * 100 ms for up to ms: true when it is usable.
 */
bool db_reconnect(PGconn *conn, int ms);

#endif
