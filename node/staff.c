/*
 * staff.c - staff accounts, their bearer tokens and their passwords.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "db.h"
#include "staff.h"
#include "util.h"

#define STAFF_TOKEN_PREFIX "pst_"
/* The prefix, 43 base64url characters and room to spare. */
#define STAFF_TOKEN_SIZE 80

static const char *const staff_roles[] = { "", "concierge", "manager", "admin" };

int
staff_role_parse(const char *s, enum staff_role *ret)
{
	for (size_t i = 1; i < UTIL_ARRAY_SIZE(staff_roles); i++)
		if (strcmp(s, staff_roles[i]) == 0) {
			*ret = (enum staff_role)i;
			return 0;
		}
	return -EINVAL;
}

const char *
staff_role_name(enum staff_role role)
{
	return (size_t)role < UTIL_ARRAY_SIZE(staff_roles) ? staff_roles[role] : "";
}

static void
staff_hash(const char *token, char out[65])
{
	util_sha256_hex(token, strlen(token), out);
}

/* A new bearer token (256 random bits after the prefix) and its hash. */
static void
staff_new_token(char token[STAFF_TOKEN_SIZE], char hash[65])
{
	memcpy(token, STAFF_TOKEN_PREFIX, sizeof(STAFF_TOKEN_PREFIX) - 1);
	util_random_token(token + sizeof(STAFF_TOKEN_PREFIX) - 1, 32);
	staff_hash(token, hash);
}

int
staff_add(PGconn *conn, const char *name, enum staff_role role,
    char *ret_token, size_t tokenlen, char *err, size_t errlen)
{
	char token[STAFF_TOKEN_SIZE], hash[65];
	const char *params[3];
	int r;

	if (name == NULL || name[0] == '\0' || strlen(name) > 100) {
		snprintf(err, errlen, "a staff account needs a name (1 to 100 bytes)");
		return -EINVAL;
	}
	staff_new_token(token, hash);
	params[0] = name;
	params[1] = staff_role_name(role);
	params[2] = hash;
	db_expect(SQLSTATE_UNIQUE_VIOLATION);
	r = db_exec(conn, "insert into staff (name, role, token_hash)"
	    " values ($1, $2, $3)", 3, params);
	db_expect(NULL);
	if (r < 0) {
		if (strcmp(db_last_sqlstate(), SQLSTATE_UNIQUE_VIOLATION) == 0)
			snprintf(err, errlen, "a staff account named '%s' exists already", name);
		else
			snprintf(err, errlen, "database error while adding '%s'", name);
		return -EIO;
	}
	util_strlcpy(ret_token, token, tokenlen);
	return 0;
}

int
staff_list(PGconn *conn, cJSON **ret)
{
	PGresult *res;
	cJSON *a, *o;

	res = db_query(conn, "select name, role, to_char(created_at"
	    " at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    " password_hash is not null from staff order by name", 0, NULL);
	if (res == NULL)
		return -EIO;
	a = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(res); i++) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(o, "role", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(o, "created_at", PQgetvalue(res, i, 2));
		cJSON_AddBoolToObject(o, "password_set",
		    PQgetvalue(res, i, 3)[0] == 't');
		cJSON_AddItemToArray(a, o);
	}
	PQclear(res);
	*ret = a;
	return 0;
}

/*
 * Runs an account change whose statement also writes its audit row, so
 * that neither happens without the other, and returns that row's detail:
 * the account's role.  No row comes back when the name is unknown.
 */
static int
staff_change(PGconn *conn, const char *sql, int nparams, const char *const *params,
    const char *name, const char *doing, enum staff_role *ret_role, char *err,
    size_t errlen)
{
	PGresult *res = db_query(conn, sql, nparams, params);
	int r;

	if (res == NULL) {
		snprintf(err, errlen, "database error while %s '%s'", doing, name);
		return -EIO;
	}
	r = PQntuples(res) == 1 ? 0 : -ENOENT;
	if (r == 0)
		(void)staff_role_parse(PQgetvalue(res, 0, 0), ret_role);
	else
		snprintf(err, errlen, "no staff account named '%s'", name);
	PQclear(res);
	return r;
}

int
staff_remove(PGconn *conn, const char *name, const char *actor,
    enum staff_role *ret_role, char *err, size_t errlen)
{
	const char *params[2] = { name, actor };

	return staff_change(conn, "with gone as (delete from staff where name = $1"
	    " returning name, role) insert into audit (actor, action, subject,"
	    " detail) select $2, 'staff.remove', name, role from gone"
	    " returning detail", 2, params, name, "removing", ret_role, err, errlen);
}

int
staff_replace_token(PGconn *conn, const char *name, const char *actor,
    enum staff_role *ret_role, char *ret_token, size_t tokenlen, char *err,
    size_t errlen)
{
	char token[STAFF_TOKEN_SIZE], hash[65];
	const char *params[3] = { name, hash, actor };
	int r;

	staff_new_token(token, hash);
	r = staff_change(conn, "with changed as (update staff"
	    " set token_hash = $2 where name = $1 returning name, role)"
	    " insert into audit (actor, action, subject, detail)"
	    " select $3, 'staff.token', name, role from changed"
	    " returning detail", 3, params, name, "replacing the token of", ret_role,
	    err, errlen);
	if (r == 0)
		util_strlcpy(ret_token, token, tokenlen);
	return r;
}

/*
 * The tokens a thread has found, for its connection: a front desk's token
 * is checked at every request, and its lookup was one of a check-in's
 * round trips to the database.  The connection LISTENs on STAFF_CHANNEL,
 * which a trigger on the staff table notifies at every change
 * (schema/008_staff_notify.sql); before each use the thread reads what has
 * arrived on its idle connection, without waiting, and any notification
 * empties the cache.  A removed or replaced token thus stops working as
 * soon as the node's database session hears of the commit.  Another
 * session (a reconnection: a new backend pid) starts an empty cache, which
 * listens again.  Only tokens that name an account are kept, each for
 * STAFF_CACHE_SECONDS at most: the bound on a revocation's delay should
 * notifications not arrive (a connection pooler in transaction mode drops
 * LISTEN).  Allocated on a thread's first check, freed when it ends.
 */
#define STAFF_CHANNEL "passerelle_staff"
#define STAFF_CACHE_SIZE 16
#define STAFF_CACHE_SECONDS 60

struct staff_cache {
	PGconn *conn;
	int pid;		/* the backend that listens; 0: nobody yet */
	int n, next;
	struct {
		char hash[65];
		enum staff_role role;
		char name[104];
		int64_t until;
	} e[STAFF_CACHE_SIZE];
};

/* Each thread's, freed when the thread ends. */
static pthread_key_t staff_cache_key;
static pthread_once_t staff_cache_once = PTHREAD_ONCE_INIT;
static bool staff_cache_keyed;

static void
staff_cache_init(void)
{
	staff_cache_keyed = pthread_key_create(&staff_cache_key, free) == 0;
}

/* This thread's cache for conn, brought up to date; NULL without memory. */
static struct staff_cache *
staff_cache_get(PGconn *conn)
{
	struct staff_cache *c;
	PGnotify *note;

	pthread_once(&staff_cache_once, staff_cache_init);
	if (!staff_cache_keyed)
		return NULL;
	if ((c = pthread_getspecific(staff_cache_key)) == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return NULL;
		if (pthread_setspecific(staff_cache_key, c) != 0) {
			free(c);
			return NULL;
		}
	}
	if (c->conn != conn || c->pid == 0 || c->pid != PQbackendPID(conn) ||
	    PQconsumeInput(conn) != 1) {
		c->conn = conn;
		c->pid = 0;
		c->n = 0;
	}
	while ((note = PQnotifies(conn)) != NULL) {
		if (strcmp(note->relname, STAFF_CHANNEL) == 0)
			c->n = 0;
		PQfreemem(note);
	}
	return c;
}

int
staff_authenticate(PGconn *conn, const char *authorization,
    enum staff_role *ret_role, char *ret_name, size_t namelen)
{
	const char *params[1];
	struct db_call calls[2];
	struct staff_cache *c;
	char hash[65];
	PGresult *res[2];
	int n = 0, r = -EACCES, i;

	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
		return -EACCES;
	authorization += 7;
	if (strncmp(authorization, STAFF_TOKEN_PREFIX, sizeof(STAFF_TOKEN_PREFIX) - 1) != 0 ||
	    strlen(authorization) > 100)
		return -EACCES;
	staff_hash(authorization, hash);
	c = staff_cache_get(conn);
	for (i = 0; c != NULL && i < c->n; i++)
		if (strcmp(c->e[i].hash, hash) == 0 &&
		    util_monotonic_us() < c->e[i].until) {
			*ret_role = c->e[i].role;
			util_strlcpy(ret_name, c->e[i].name, namelen);
			return 0;
		}
	/*
	 * A session that does not listen yet starts to, in the same round trip;
	 * but what that round trip reads is not kept: LISTEN takes effect when
	 * its transaction commits, after the lookup read the table, and a
	 * change committed in between would never be heard of.
	 */
	if (c != NULL && c->pid == 0)
		calls[n++] = (struct db_call){ "LISTEN " STAFF_CHANNEL, 0, NULL };
	params[0] = hash;
	calls[n++] = (struct db_call){ "select role, name from staff where token_hash = $1",
	    1, params };
	if (db_pipeline(conn, calls, n, res) < 0)
		return -EIO;
	if (PQntuples(res[n - 1]) == 1 &&
	    staff_role_parse(PQgetvalue(res[n - 1], 0, 0), ret_role) == 0) {
		util_strlcpy(ret_name, PQgetvalue(res[n - 1], 0, 1), namelen);
		r = 0;
		if (c != NULL && n == 1) {
			for (i = 0; i < c->n && strcmp(c->e[i].hash, hash) != 0; i++)
				;
			if (i == c->n && c->n < STAFF_CACHE_SIZE)
				c->n++;
			else if (i == c->n) {
				/* Full: the entries are replaced in turn. */
				i = c->next;
				c->next = (c->next + 1) % STAFF_CACHE_SIZE;
			}
			util_strlcpy(c->e[i].hash, hash, sizeof(c->e[i].hash));
			c->e[i].until = util_monotonic_us() +
			    STAFF_CACHE_SECONDS * INT64_C(1000000);
			c->e[i].role = *ret_role;
			util_strlcpy(c->e[i].name, PQgetvalue(res[n - 1], 0, 1),
			    sizeof(c->e[i].name));
		}
	}
	if (c != NULL && n == 2)
		c->pid = PQbackendPID(conn);
	for (i = 0; i < n; i++)
		PQclear(res[i]);
	return r;
}

int
staff_set_password(PGconn *conn, const char *name, const char *password,
    char *err, size_t errlen)
{
	char hash[crypto_pwhash_STRBYTES];
	const char *params[2] = { name, hash };
	PGresult *res;
	size_t len = strlen(password);
	int r;

	if (len < STAFF_PASSWORD_MIN || len > STAFF_PASSWORD_MAX) {
		snprintf(err, errlen, "a password takes %d to %d bytes",
		    STAFF_PASSWORD_MIN, STAFF_PASSWORD_MAX);
		return -EINVAL;
	}
	if (sodium_init() < 0 || crypto_pwhash_str(hash, password, len,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		snprintf(err, errlen, "cannot hash the password (out of memory?)");
		return -ENOMEM;
	}
	res = db_query(conn, "update staff set password_hash = $2 where name = $1"
	    " returning id", 2, params);
	sodium_memzero(hash, sizeof(hash));
	if (res == NULL) {
		snprintf(err, errlen, "database error");
		return -EIO;
	}
	r = PQntuples(res) == 1 ? 0 : -ENOENT;
	if (r == -ENOENT)
		snprintf(err, errlen, "no staff account named '%s'", name);
	PQclear(res);
	return r;
}

/*
 * A hash that no password matches, verified when the name is unknown so
 * that a wrong name costs the same time as a wrong password.
 */
static char staff_dummy_hash[crypto_pwhash_STRBYTES];

static void
staff_dummy_init(void)
{
	char pw[32];

	util_random_token(pw, 16);
	if (crypto_pwhash_str(staff_dummy_hash, pw, strlen(pw),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		staff_dummy_hash[0] = '\0';
}

int
staff_check_password(PGconn *conn, const char *name, const char *password,
    long long *ret_id, enum staff_role *ret_role, char *ret_name, size_t namelen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const char *params[1] = { name };
	const char *hash;
	PGresult *res;
	size_t len = strlen(password);
	bool known;
	int r = -EACCES;

	if (sodium_init() < 0)
		return -EIO;
	(void)pthread_once(&once, staff_dummy_init);
	if (strlen(name) > 100 || len > STAFF_PASSWORD_MAX)
		return -EACCES;
	res = db_query(conn, "select id, role, name, password_hash from staff"
	    " where name = $1", 1, params);
	if (res == NULL)
		return -EIO;
	known = PQntuples(res) == 1 && !PQgetisnull(res, 0, 3);
	hash = known ? PQgetvalue(res, 0, 3) : staff_dummy_hash;
	if (crypto_pwhash_str_verify(hash, password, len) == 0 && known &&
	    staff_role_parse(PQgetvalue(res, 0, 1), ret_role) == 0) {
		*ret_id = atoll(PQgetvalue(res, 0, 0));
		util_strlcpy(ret_name, PQgetvalue(res, 0, 2), namelen);
		r = 0;
	}
	PQclear(res);
	return r;
}
