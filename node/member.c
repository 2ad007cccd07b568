/*
 * member.c - members, balances and passes at home.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db.h"
#include "log.h"
#include "member.h"
#include "pass.h"
#include "util.h"

/* The member's columns, with their ledger's sum as the expression sum. */
#define MEMBER_COLUMNS_SUM(sum) \
	"m.id, m.pseudonym, m.full_name, m.display_name, coalesce(m.email, ''),"  \
	" m.plan, m.tickets, coalesce(m.valid_until::text, ''), m.status,"       \
	" " sum ", coalesce(m.valid_from::text, ''), m.roam_cap"
/* One member's sum, along ticket_movements_member. */
#define MEMBER_COLUMNS MEMBER_COLUMNS_SUM(					\
	"(select coalesce(sum(delta), 0) from ticket_movements t"		\
	"   where t.member_id = m.id)")

static cJSON *
member_json(PGresult *res, int row)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", atof(PQgetvalue(res, row, 0)));
	cJSON_AddStringToObject(o, "pseudonym", PQgetvalue(res, row, 1));
	cJSON_AddStringToObject(o, "full_name", PQgetvalue(res, row, 2));
	cJSON_AddStringToObject(o, "display_name", PQgetvalue(res, row, 3));
	cJSON_AddStringToObject(o, "email", PQgetvalue(res, row, 4));
	cJSON_AddStringToObject(o, "plan", PQgetvalue(res, row, 5));
	if (strcmp(PQgetvalue(res, row, 5), "tickets") == 0) {
		cJSON_AddNumberToObject(o, "tickets", atoi(PQgetvalue(res, row, 6)));
		cJSON_AddNumberToObject(o, "ledger_sum", atoi(PQgetvalue(res, row, 9)));
	}
	if (PQgetvalue(res, row, 10)[0] != '\0')
		cJSON_AddStringToObject(o, "valid_from", PQgetvalue(res, row, 10));
	if (PQgetvalue(res, row, 7)[0] != '\0')
		cJSON_AddStringToObject(o, "valid_until", PQgetvalue(res, row, 7));
	if (!PQgetisnull(res, row, 11))
		cJSON_AddNumberToObject(o, "roam_cap", atoi(PQgetvalue(res, row, 11)));
	cJSON_AddStringToObject(o, "status", PQgetvalue(res, row, 8));
	return o;
}

/*
 * Each branch along its index (members_pkey, the pseudonym's, members_email),
 * in a generic plan too: the id is compared with a value (NULL when ref is
 * not a number), not inside a CASE, which only a sequential scan evaluates.
 * In parentheses, so that a condition the caller appends ("and m.plan =
 * 'tickets'") holds whichever way the member is named.
 */
/* The first key of the advisory locks on members' e-mails (member_add). */
#define MEMBER_EMAIL_LOCK_CLASS "7301"

static const char member_where_ref[] =
    " where (m.id = (case when $1 ~ '^[0-9]{1,18}$' then $1::bigint end)"
    " or m.pseudonym = $1 or lower(m.email) = lower($1))";

/*
 * Whether ref named exactly one member (res: the members it matched, their
 * ids in column 0): 0; -ENOENT when none ("no WHAT 'REF'HINT"); -ENOTUNIQ
 * when several, which an e-mail that members share gives (member_add
 * refuses it now, but an older database may hold one): said, with the ids
 * to name them by instead.
 */
static int
member_ref_one(const PGresult *res, const char *ref, const char *what,
    const char *hint, char *err, size_t errlen)
{
	int rows = PQntuples(res), n;
	size_t len;

	if (rows == 1)
		return 0;
	if (rows == 0) {
		snprintf(err, errlen, "no %s '%s'%s", what, ref, hint);
		return -ENOENT;
	}
	n = snprintf(err, errlen, "'%s' names %d members (ids", ref, rows);
	len = n < 0 ? 0 : (size_t)n;
	for (int i = 0; i < rows && i < 8 && len < errlen; i++) {
		n = snprintf(err + len, errlen - len, "%s %s", i > 0 ? "," : "",
		    PQgetvalue(res, i, 0));
		len += n < 0 ? 0 : (size_t)n;
	}
	if (len < errlen)
		snprintf(err + len, errlen - len, "%s): give the id or the pseudonym",
		    rows > 8 ? ", ..." : "");
	return -ENOTUNIQ;
}

/* The length of the UTF-8 character at s (1 for a stray byte). */
static size_t
member_utf8_len(const char *s)
{
	unsigned char c = (unsigned char)s[0];
	size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;

	for (size_t i = 1; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

/*
 * Default display name: the first name and the last name's initial
 * ("Chloé É."), at most 24 bytes, never cut inside a UTF-8 character.
 */
static void
member_short_name(const char *full, char *out, size_t outlen)
{
	const char *first_space = strchr(full, ' ');
	const char *last_space = strrchr(full, ' ');
	size_t max = outlen - 1 < 24 ? outlen - 1 : 24, n = 0, first_len;

	first_len = first_space != NULL ? (size_t)(first_space - full) : strlen(full);
	for (size_t i = 0; i < first_len; ) {
		size_t c = member_utf8_len(full + i);

		/* Room for the initial: " X." takes up to 6 bytes. */
		if (n + c > max - (last_space != NULL ? 6 : 0))
			break;
		memcpy(out + n, full + i, c);
		n += c;
		i += c;
	}
	if (last_space != NULL && last_space[1] != '\0' && first_space != NULL) {
		size_t c = member_utf8_len(last_space + 1);

		out[n++] = ' ';
		memcpy(out + n, last_space + 1, c);
		n += c;
		out[n++] = '.';
	}
	out[n] = '\0';
}

/*
 * A statement that took a date failed: the date's fault (22007, not a
 * date; 22008, out of range) is said as what, anything else is a database
 * error.
 */
static int
member_date_error(char *err, size_t errlen, const char *what)
{
	if (strcmp(db_last_sqlstate(), "22007") == 0 ||
	    strcmp(db_last_sqlstate(), "22008") == 0) {
		snprintf(err, errlen, "%s", what);
		return -EINVAL;
	}
	snprintf(err, errlen, "database error");
	return -EIO;
}

/*
 * The e-mail names a member, so no two members may have it (in any case):
 * 0 when no member has it; -EEXIST, saying whose it is.  In the caller's
 * transaction, under a lock on the e-mail that two adds of it take in turn.
 * Not a unique index: a database from before may hold duplicates, which
 * member_ref_one names.
 */
static int
member_email_free(PGconn *conn, const char *email, char *err, size_t errlen)
{
	const char *params[1] = { email };
	PGresult *res;
	int r = 0;

	if (db_exec(conn, "select pg_advisory_xact_lock(" MEMBER_EMAIL_LOCK_CLASS ","
	    " hashtext(lower($1)))", 1, params) < 0)
		goto db_error;
	res = db_query(conn, "select id from members where lower(email) = lower($1)"
	    " order by id limit 1", 1, params);
	if (res == NULL)
		goto db_error;
	if (PQntuples(res) == 1) {
		snprintf(err, errlen, "e-mail %s is member %s's already", email,
		    PQgetvalue(res, 0, 0));
		r = -EEXIST;
	}
	PQclear(res);
	return r;
db_error:
	snprintf(err, errlen, "database error while adding the member");
	return -EIO;
}

int
member_add(PGconn *conn, const struct member_new *m, cJSON **ret, char *err,
    size_t errlen)
{
	char pseudonym[32], display[64], tickets[16];
	const char *params[7];
	PGresult *res;
	int r = -EIO;

	if (m->full_name == NULL || m->full_name[0] == '\0' || strlen(m->full_name) > 200) {
		snprintf(err, errlen, "a member needs a name (at most 200 characters)");
		return -EINVAL;
	}
	/* The command line's words are bytes: the HTTP bodies were checked. */
	if (!util_utf8_valid(m->full_name, strlen(m->full_name)) ||
	    (m->display_name != NULL &&
	    !util_utf8_valid(m->display_name, strlen(m->display_name))) ||
	    (m->email != NULL && !util_utf8_valid(m->email, strlen(m->email)))) {
		snprintf(err, errlen, "names and e-mail addresses must be UTF-8 text");
		return -EINVAL;
	}
	if (strcmp(m->plan, "tickets") != 0 && strcmp(m->plan, "monthly") != 0) {
		snprintf(err, errlen, "plan must be 'tickets' or 'monthly', not '%s'", m->plan);
		return -EINVAL;
	}
	if (strcmp(m->plan, "tickets") == 0 && (m->tickets < 0 || m->tickets > 10000)) {
		snprintf(err, errlen, "tickets must be between 0 and 10000");
		return -EINVAL;
	}
	if (strcmp(m->plan, "monthly") == 0 && m->valid_until == NULL) {
		snprintf(err, errlen, "a monthly plan needs the day it ends (YYYY-MM-DD)");
		return -EINVAL;
	}
	if (m->email != NULL && (strchr(m->email, '@') == NULL || strlen(m->email) > 254)) {
		snprintf(err, errlen, "'%s' is not an e-mail address", m->email);
		return -EINVAL;
	}
	if (m->display_name != NULL) {
		if (strlen(m->display_name) == 0 || strlen(m->display_name) > 24) {
			snprintf(err, errlen, "the display name takes 1 to 24 bytes");
			return -EINVAL;
		}
		util_strlcpy(display, m->display_name, sizeof(display));
	} else {
		member_short_name(m->full_name, display, sizeof(display));
	}
	util_random_id(pseudonym, 9);
	snprintf(tickets, sizeof(tickets), "%d",
	    strcmp(m->plan, "tickets") == 0 ? m->tickets : 0);

	if (db_begin(conn) < 0)
		goto out;
	if (m->email != NULL) {
		r = member_email_free(conn, m->email, err, errlen);
		if (r < 0) {
			db_rollback(conn);
			return r;
		}
		r = -EIO;
	}
	params[0] = pseudonym;
	params[1] = display;
	params[2] = m->full_name;
	params[3] = m->email;
	params[4] = m->plan;
	params[5] = strcmp(m->plan, "monthly") == 0 ? m->valid_until : NULL;
	params[6] = tickets;
	db_expect(SQLSTATE_BAD_DATETIME);
	res = db_query(conn, "insert into members (pseudonym, display_name, full_name,"
	    " email, plan, valid_until, tickets) values ($1, $2, $3, $4, $5, $6::date, $7)"
	    " returning id", 7, params);
	db_expect(NULL);
	if (res == NULL) {
		r = member_date_error(err, errlen, "the day the plan ends must be YYYY-MM-DD");
		db_rollback(conn);
		return r;
	}
	if (atoi(tickets) > 0) {
		const char *p3[3] = { PQgetvalue(res, 0, 0), tickets, m->actor };

		if (db_exec(conn, "insert into ticket_movements (member_id, delta, reason,"
		    " actor) values ($1, $2, 'initial', $3)", 3, p3) < 0) {
			PQclear(res);
			db_rollback(conn);
			goto out;
		}
	}
	{
		const char *p3[3] = { m->actor, PQgetvalue(res, 0, 0), m->plan };

		db_exec(conn, "insert into audit (actor, action, subject, detail)"
		    " values ($1, 'member.add', $2, $3)", 3, p3);
	}
	PQclear(res);
	if (db_commit(conn) < 0)
		goto out;
	r = member_show(conn, pseudonym, ret, err, errlen);
out:
	if (r == -EIO)
		snprintf(err, errlen, "database error while adding the member");
	return r;
}

int
member_show(PGconn *conn, const char *ref, cJSON **ret, char *err, size_t errlen)
{
	const char *params[1] = { ref };
	PGresult *res;
	char sql[1024];

	snprintf(sql, sizeof(sql), "select " MEMBER_COLUMNS " from members m%s",
	    member_where_ref);
	res = db_query(conn, sql, 1, params);
	if (res == NULL) {
		snprintf(err, errlen, "database error");
		return -EIO;
	}
	if (PQntuples(res) != 1) {
		int r = member_ref_one(res, ref, "member",
		    " (give the id, pseudonym or e-mail)", err, errlen);

		PQclear(res);
		return r;
	}
	*ret = member_json(res, 0);
	PQclear(res);
	return 0;
}

int
member_list(PGconn *conn, cJSON **ret)
{
	PGresult *res;
	cJSON *a;

	/*
	 * Every member's sum in one pass over the movements, not one lookup
	 * per member.
	 */
	res = db_query(conn, "select " MEMBER_COLUMNS_SUM("coalesce(t.sum, 0)")
	    " from members m left join (select member_id, sum(delta) as sum"
	    "  from ticket_movements group by member_id) t on t.member_id = m.id"
	    " order by m.id", 0, NULL);
	if (res == NULL)
		return -EIO;
	a = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(a, member_json(res, i));
	PQclear(res);
	*ret = a;
	return 0;
}

int
member_topup(PGconn *conn, const char *ref, int tickets, const char *actor,
    cJSON **ret, char *err, size_t errlen)
{
	char n[16], sql[1024];
	const char *params[3] = { ref, n, actor };
	PGresult *res;

	if (tickets <= 0 || tickets > 10000) {
		snprintf(err, errlen, "a top-up adds 1 to 10000 tickets");
		return -EINVAL;
	}
	snprintf(n, sizeof(n), "%d", tickets);
	if (db_begin(conn) < 0)
		goto db_error;
	snprintf(sql, sizeof(sql),
	    "update members m set tickets = tickets + $2::int%s and m.plan = 'tickets'"
	    " returning id", member_where_ref);
	/* $1 appears in the shared WHERE; $2, $3 are ours. */
	res = db_query(conn, sql, 2, params);
	if (res == NULL) {
		db_rollback(conn);
		goto db_error;
	}
	if (PQntuples(res) != 1) {
		int r = member_ref_one(res, ref, "ticket-book member", "", err, errlen);

		PQclear(res);
		db_rollback(conn);
		return r;
	}
	{
		const char *p3[3] = { PQgetvalue(res, 0, 0), n, actor };

		if (db_exec(conn, "insert into ticket_movements (member_id, delta, reason,"
		    " actor) values ($1, $2, 'topup', $3)", 3, p3) < 0 ||
		    db_exec(conn, "insert into audit (actor, action, subject, detail)"
		    " values ($3, 'member.topup', $1, $2)", 3, p3) < 0) {
			PQclear(res);
			db_rollback(conn);
			goto db_error;
		}
	}
	PQclear(res);
	if (db_commit(conn) < 0)
		goto db_error;
	return member_show(conn, ref, ret, err, errlen);
db_error:
	snprintf(err, errlen, "database error during the top-up");
	return -EIO;
}

int
member_issue_pass(struct node *node, PGconn *conn, const char *ref,
    char **ret_token, cJSON **ret, char *err, size_t errlen)
{
	const struct config *cfg = node_config(node);
	struct pass_claims c;
	uint8_t sk[64];
	cJSON *m = NULL;
	char iat[32], exp[32];
	const cJSON *status;
	int r;

	r = member_show(conn, ref, &m, err, errlen);
	if (r < 0)
		return r;
	status = cJSON_GetObjectItemCaseSensitive(m, "status");
	if (strcmp(status->valuestring, "active") != 0) {
		snprintf(err, errlen, "member '%s' is %s: no pass", ref, status->valuestring);
		r = -EPERM;
		goto out;
	}
	memset(&c, 0, sizeof(c));
	util_strlcpy(c.iss, node_space_id(node), sizeof(c.iss));
	util_strlcpy(c.sub, cJSON_GetObjectItemCaseSensitive(m, "pseudonym")->valuestring,
	    sizeof(c.sub));
	util_strlcpy(c.name, cJSON_GetObjectItemCaseSensitive(m, "display_name")->valuestring,
	    sizeof(c.name));
	util_strlcpy(c.plan, cJSON_GetObjectItemCaseSensitive(m, "plan")->valuestring,
	    sizeof(c.plan));
	if (node_pass_key(node, sk, c.kid, sizeof(c.kid)) < 0) {
		snprintf(err, errlen, "no pass-signing key is loaded");
		r = -ENOKEY;
		goto out;
	}
	util_random_id(c.jti, 9);
	c.iat = util_now();
	c.nbf = c.iat;
	c.exp = c.iat + cfg->pass_lifetime;
	r = pass_sign(&c, sk, ret_token);
	sodium_memzero(sk, sizeof(sk));
	if (r < 0) {
		snprintf(err, errlen, "cannot sign the pass");
		r = -EIO;
		goto out;
	}
	snprintf(iat, sizeof(iat), "%lld", (long long)c.iat);
	snprintf(exp, sizeof(exp), "%lld", (long long)c.exp);
	{
		char digest[65];
		const char *params[6] = { c.jti, ref, c.kid, iat, exp, digest };
		char sql[1024];

		pass_digest(*ret_token, digest);
		snprintf(sql, sizeof(sql), "insert into passes (jti, member_id, kid,"
		    " issued_at, expires_at, digest) select $2 || '', m.id, $3,"
		    " to_timestamp($4), to_timestamp($5), decode($6, 'hex')"
		    " from members m%s", member_where_ref);
		/*
		 * The shared WHERE names the member as $1, so the jti goes
		 * second here; swap them for this statement.
		 */
		params[0] = ref;
		params[1] = c.jti;
		if (db_exec(conn, sql, 6, params) < 0) {
			snprintf(err, errlen, "cannot record the pass");
			free(*ret_token);
			*ret_token = NULL;
			r = -EIO;
			goto out;
		}
	}
	*ret = cJSON_CreateObject();
	cJSON_AddStringToObject(*ret, "jti", c.jti);
	cJSON_AddStringToObject(*ret, "member", c.sub);
	cJSON_AddStringToObject(*ret, "display_name", c.name);
	cJSON_AddStringToObject(*ret, "kid", c.kid);
	util_format_time(c.exp, exp);
	cJSON_AddStringToObject(*ret, "expires_at", exp);
	cJSON_AddStringToObject(*ret, "token", *ret_token);
	cJSON_AddNumberToObject(*ret, "bytes", (double)strlen(*ret_token));
	r = 0;
out:
	cJSON_Delete(m);
	return r;
}

static int
member_audit(PGconn *conn, const char *actor, const char *action, const char *id,
    const char *detail)
{
	const char *params[4] = { actor, action, id, detail };

	return db_exec(conn, "insert into audit (actor, action, subject, detail)"
	    " values ($1, $2, $3, $4)", 4, params);
}

/*
 * Begins a transaction holding the lock on the member ref names; *id gets
 * its id.  On failure the transaction is rolled back and err says why:
 * -ENOENT (no such member), -ENOTUNIQ (ref names several) or -EIO.
 */
static int
member_begin_locked(PGconn *conn, const char *ref, char *id, size_t idlen,
    char *err, size_t errlen)
{
	const char *params[1] = { ref };
	char sql[512];
	PGresult *res;
	int r;

	if (db_begin(conn) < 0) {
		snprintf(err, errlen, "database error");
		return -EIO;
	}
	snprintf(sql, sizeof(sql), "select m.id from members m%s for update",
	    member_where_ref);
	res = db_query(conn, sql, 1, params);
	if (res == NULL) {
		db_rollback(conn);
		snprintf(err, errlen, "database error");
		return -EIO;
	}
	r = member_ref_one(res, ref, "member", "", err, errlen);
	if (r == 0)
		util_strlcpy(id, PQgetvalue(res, 0, 0), idlen);
	PQclear(res);
	if (r < 0)
		db_rollback(conn);
	return r;
}

/*
 * The end of a change to one member (in the transaction that
 * member_begin_locked began): audited, committed, and the member as it is
 * now in *ret; rolled back on a failure.
 */
static int
member_commit_show(PGconn *conn, const char *actor, const char *action,
    const char *id, const char *detail, cJSON **ret, char *err, size_t errlen)
{
	if (member_audit(conn, actor, action, id, detail) < 0 ||
	    db_commit(conn) < 0) {
		db_rollback(conn);
		snprintf(err, errlen, "database error");
		return -EIO;
	}
	return member_show(conn, id, ret, err, errlen);
}

int
member_set_plan(PGconn *conn, const char *ref, const char *plan,
    const char *valid_from, const char *valid_until, int roam_cap,
    const char *actor, cJSON **ret, char *err, size_t errlen)
{
	char id[32], cap[16], detail[160];
	int r;

	if (strcmp(plan, "tickets") != 0 && strcmp(plan, "monthly") != 0) {
		snprintf(err, errlen, "plan must be 'tickets' or 'monthly', not '%s'", plan);
		return -EINVAL;
	}
	if (strcmp(plan, "monthly") == 0 && valid_until == NULL) {
		snprintf(err, errlen, "a monthly plan needs the day it ends (YYYY-MM-DD)");
		return -EINVAL;
	}
	/* Said, not dropped: the manager would believe the cap was set. */
	if (strcmp(plan, "tickets") == 0 && roam_cap >= 0) {
		snprintf(err, errlen, "a ticket book has no monthly cap: give roam_cap"
		    " (--cap) only with a monthly plan");
		return -EINVAL;
	}
	r = member_begin_locked(conn, ref, id, sizeof(id), err, errlen);
	if (r < 0)
		return r;
	snprintf(cap, sizeof(cap), "%d", roam_cap);
	{
		bool monthly = strcmp(plan, "monthly") == 0;
		const char *params[5] = { id, plan,
		    monthly ? (valid_from != NULL ? valid_from : "today") : NULL,
		    monthly ? valid_until : NULL, monthly && roam_cap >= 0 ? cap : NULL };

		PGresult *res;

		db_expect(SQLSTATE_BAD_DATETIME);
		res = db_query(conn, "update members set plan = $2,"
		    " valid_from = $3::date, valid_until = $4::date, roam_cap = $5::int"
		    " where id = $1 and ($3::date is null or $3::date <= $4::date)"
		    " returning coalesce(valid_from::text, ''), coalesce(valid_until::text, ''),"
		    "  coalesce(roam_cap::text, 'none')", 5, params);
		db_expect(NULL);
		if (res == NULL) {
			r = member_date_error(err, errlen, "dates must be YYYY-MM-DD (or today)");
		} else if (PQntuples(res) != 1) {
			snprintf(err, errlen, "the plan must start on or before the day it ends");
			r = -EINVAL;
		} else if (monthly) {
			/* The audit says what was stored ("today" as a date). */
			snprintf(detail, sizeof(detail), "monthly %s..%s cap %s",
			    PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		} else {
			/* A ticket book keeps no dates and no cap. */
			snprintf(detail, sizeof(detail), "tickets");
		}
		PQclear(res);
		if (r < 0) {
			db_rollback(conn);
			return r;
		}
	}
	return member_commit_show(conn, actor, "member.plan", id, detail, ret, err,
	    errlen);
}

int
member_set_status(PGconn *conn, const char *ref, const char *status,
    const char *actor, cJSON **ret, char *err, size_t errlen)
{
	char id[32];
	int r;

	r = member_begin_locked(conn, ref, id, sizeof(id), err, errlen);
	if (r < 0)
		return r;
	{
		const char *params[2] = { id, status };

		if (db_exec(conn, "update members set status = $2 where id = $1", 2,
		    params) < 0) {
			db_rollback(conn);
			snprintf(err, errlen, "database error");
			return -EIO;
		}
	}
	return member_commit_show(conn, actor, "member.status", id, status, ret, err,
	    errlen);
}

int
member_history(PGconn *conn, const char *ref, cJSON **ret, char *err, size_t errlen)
{
	cJSON *m = NULL, *events;
	char id[32];
	const char *params[1] = { id };
	PGresult *res;
	int r;

	r = member_show(conn, ref, &m, err, errlen);
	if (r < 0)
		return r;
	snprintf(id, sizeof(id), "%d", cJSON_GetObjectItem(m, "id")->valueint);
	res = db_query(conn,
	    "select to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') as t,"
	    "  actor, action, coalesce(detail, ''), null::int, 1 as k, id"
	    " from audit where subject = $1 and action like 'member.%'"
	    " union all"
	    " select to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    "  actor, 'tickets.' || reason, coalesce(visit_id::text, ''), delta, 2, id"
	    " from ticket_movements where member_id = $1::bigint"
	    " order by 1, 6, 7", 1, params);
	if (res == NULL) {
		cJSON_Delete(m);
		snprintf(err, errlen, "database error");
		return -EIO;
	}
	events = cJSON_AddArrayToObject(m, "history");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *e = cJSON_CreateObject();

		cJSON_AddStringToObject(e, "at", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(e, "by", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(e, "what", PQgetvalue(res, i, 2));
		if (PQgetvalue(res, i, 3)[0] != '\0')
			cJSON_AddStringToObject(e, "detail", PQgetvalue(res, i, 3));
		if (!PQgetisnull(res, i, 4))
			cJSON_AddNumberToObject(e, "tickets", atoi(PQgetvalue(res, i, 4)));
		cJSON_AddItemToArray(events, e);
	}
	PQclear(res);
	*ret = m;
	return 0;
}

int
member_revoke(PGconn *conn, const char *ref, bool all, const char *actor,
    int *ret_count, char *err, size_t errlen)
{
	const char *params[1] = { ref };
	char id[32];
	PGresult *res;
	int r;

	if (all) {
		/* The member first: an e-mail members share names none of them. */
		r = member_begin_locked(conn, ref, id, sizeof(id), err, errlen);
		if (r < 0)
			return r;
		params[0] = id;
		res = db_query(conn, "update passes set revoked_at = now()"
		    " where revoked_at is null and member_id = $1::bigint"
		    " returning jti", 1, params);
	} else {
		if (db_begin(conn) < 0)
			goto db_error;
		res = db_query(conn, "update passes set revoked_at = now()"
		    " where jti = $1 and revoked_at is null returning jti", 1, params);
	}
	if (res == NULL) {
		db_rollback(conn);
		goto db_error;
	}
	*ret_count = PQntuples(res);
	for (int i = 0; i < PQntuples(res); i++)
		if (member_audit(conn, actor, "pass.revoke", PQgetvalue(res, i, 0), NULL) < 0) {
			PQclear(res);
			db_rollback(conn);
			goto db_error;
		}
	PQclear(res);
	if (db_commit(conn) < 0)
		goto db_error;
	if (*ret_count == 0) {
		snprintf(err, errlen, all ? "member '%s' has no pass to revoke" :
		    "no pass '%s' to revoke (unknown, or revoked already)", ref);
		return -ENOENT;
	}
	return 0;
db_error:
	snprintf(err, errlen, "database error");
	return -EIO;
}
