/*
 * web_api.c - the JSON routes of the local face that the web page needs
 * beyond the scripts' API (api.c): the session, plans and status of
 * members, passes and the members' links, terms with each peer, visits by
 * month, and the month's statement from this node's records, with CSV.
 *
 * They take a bearer token as well as a session cookie (api.c decides which
 * and checks the CSRF token); each checks its role.  Every change goes
 * through the module that owns its subject (member.c, terms.c), which
 * audits it.
 *
 * Not here: reconciliation with the peers' records (reconcile.c); the
 * statement here is what this node alone recorded.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db.h"
#include "log.h"
#include "member.h"
#include "qr.h"
#include "reconcile.h"
#include "terms.h"
#include "util.h"
#include "web.h"

#define WEB_CSV_MAX (8 * 1024 * 1024)
#define WEB_TIME(col) "to_char(" col " at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static void
web_api_db_error(struct web_ctx *c)
{
	http_reply_error(c->job, 503, "unavailable", "database error");
}

/* The name of a space in the current directory, or its id. */
static void
web_api_space_name(struct web_ctx *c, const char *id, char *out, size_t len)
{
	struct node_directory *nd = node_directory_get(c->w->node);
	const struct directory_space *sp = nd != NULL ? directory_find_space(nd->dir, id) : NULL;

	util_strlcpy(out, sp != NULL ? sp->name : id, len);
	node_directory_put(c->w->node, nd);
}

/* ------------------------------------------------------------- session */

static void
web_api_session(struct web_ctx *c)
{
	const char *space = node_space_id(c->w->node);
	char name[160];
	cJSON *o = cJSON_CreateObject();

	web_api_space_name(c, space, name, sizeof(name));
	cJSON_AddStringToObject(o, "name", c->name);
	cJSON_AddStringToObject(o, "role", staff_role_name(c->role));
	cJSON_AddStringToObject(o, "space", space);
	cJSON_AddStringToObject(o, "space_name", name);
	if (c->csrf != NULL)
		cJSON_AddStringToObject(o, "csrf", c->csrf);
	http_reply_json(c->job, 200, o);
}

/* ------------------------------------------------------------- members */


/* A member's passes, newest first, with what the web page kept of them. */
static void
web_api_member_passes(struct web_ctx *c, const char *ref)
{
	char err[256], id[32];
	const char *params[1] = { id };
	cJSON *m = NULL, *a;
	PGresult *res;
	int r;

	r = member_show(c->conn, ref, &m, err, sizeof(err));
	if (r < 0) {
		api_member_reply(c->job, r, NULL, err, 200);
		return;
	}
	snprintf(id, sizeof(id), "%d", cJSON_GetObjectItem(m, "id")->valueint);
	cJSON_Delete(m);
	res = db_query(c->conn, "select p.jti, " WEB_TIME("p.issued_at") ", "
	    WEB_TIME("p.expires_at") ", coalesce(" WEB_TIME("p.revoked_at") ", ''),"
	    "  case when p.revoked_at is not null then 'revoked'"
	    "   when p.expires_at <= now() then 'expired' else 'valid' end,"
	    "  l.jti is not null, l.link_hash is not null and l.link_revoked_at is null"
	    "   and l.link_expires_at > now()"
	    " from passes p left join web_pass_links l on l.jti = p.jti"
	    " where p.member_id = $1::bigint order by p.issued_at desc, p.jti", 1, params);
	if (res == NULL) {
		web_api_db_error(c);
		return;
	}
	a = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "jti", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(o, "issued_at", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(o, "expires_at", PQgetvalue(res, i, 2));
		if (PQgetvalue(res, i, 3)[0] != '\0')
			cJSON_AddStringToObject(o, "revoked_at", PQgetvalue(res, i, 3));
		cJSON_AddStringToObject(o, "status", PQgetvalue(res, i, 4));
		cJSON_AddBoolToObject(o, "kept", strcmp(PQgetvalue(res, i, 5), "t") == 0);
		cJSON_AddBoolToObject(o, "link_active", strcmp(PQgetvalue(res, i, 6), "t") == 0);
		cJSON_AddItemToArray(a, o);
	}
	PQclear(res);
	http_reply_json(c->job, 200, a);
}

static void
web_api_member_plan(struct web_ctx *c, const char *ref)
{
	char err[256] = "";
	cJSON *req, *m = NULL;
	const char *plan;
	int r, roam_cap = -1;

	if ((req = http_job_json(c->job)) == NULL)
		return;
	plan = util_json_string(req, "plan");
	if (plan == NULL || util_json_int(req, "roam_cap", 0, 1000, true, &roam_cap) < 0) {
		cJSON_Delete(req);
		http_reply_error(c->job, 400, "bad_request", "expected {\"plan\": \"tickets\" |"
		    " \"monthly\", \"valid_from\", \"valid_until\", \"roam_cap\": 0..1000 | null}");
		return;
	}
	r = member_set_plan(c->conn, ref, plan, util_json_string(req, "valid_from"),
	    util_json_string(req, "valid_until"), roam_cap, c->actor, &m, err, sizeof(err));
	cJSON_Delete(req);
	api_member_reply(c->job, r, m, err, 200);
}

static void
web_api_member_status(struct web_ctx *c, const char *ref)
{
	char err[256] = "";
	cJSON *req, *m = NULL;
	const char *status;
	int r;

	if ((req = http_job_json(c->job)) == NULL)
		return;
	status = util_json_string(req, "status");
	if (status == NULL || (strcmp(status, "active") != 0 &&
	    strcmp(status, "suspended") != 0)) {
		cJSON_Delete(req);
		http_reply_error(c->job, 400, "bad_request",
		    "expected {\"status\": \"active\" | \"suspended\"}");
		return;
	}
	r = member_set_status(c->conn, ref, status, c->actor, &m, err, sizeof(err));
	cJSON_Delete(req);
	api_member_reply(c->job, r, m, err, 200);
}

static void
web_api_member_revoke(struct web_ctx *c, const char *ref)
{
	char err[256] = "";
	cJSON *o;
	int n = 0, r;

	r = member_revoke(c->conn, ref, true, c->actor, &n, err, sizeof(err));
	if (r == -ENOTUNIQ) {
		api_member_reply(c->job, r, NULL, err, 200);
		return;
	}
	if (r < 0 && r != -ENOENT) {
		http_reply_error(c->job, 503, "unavailable", "%s", err);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "revoked", n);
	http_reply_json(c->job, 200, o);
}

/* -------------------------------------------------------------- passes */

/* A fresh link secret for jti (replacing any); *ret_path gets /p/SECRET. */
static int
web_api_new_link(PGconn *conn, const char *jti, char *ret_path, size_t pathlen,
    char ret_expires[32])
{
	char secret[48], hash[65];
	const char *params[2] = { jti, hash };
	PGresult *res;

	util_random_token(secret, 32);
	util_sha256_hex(secret, strlen(secret), hash);
	res = db_query(conn, "update web_pass_links l set link_hash = $2,"
	    "  link_expires_at = p.expires_at, link_revoked_at = null"
	    " from passes p where l.jti = $1 and p.jti = l.jti and p.revoked_at is null"
	    "  and p.expires_at > now()"
	    " returning " WEB_TIME("l.link_expires_at"), 2, params);
	if (res == NULL)
		return -EIO;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return -ENOENT;
	}
	snprintf(ret_path, pathlen, "/p/%s", secret);
	util_strlcpy(ret_expires, PQgetvalue(res, 0, 0), 32);
	PQclear(res);
	sodium_memzero(secret, sizeof(secret));
	return 0;
}

int
web_pass_keep(PGconn *conn, cJSON *pass, const char *token)
{
	const char *jti = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pass, "jti"));
	const char *params[2] = { jti, token };
	char path[64], expires[32];
	int r;

	if (jti == NULL)
		return -EINVAL;
	if (db_exec(conn, "insert into web_pass_links (jti, token) values ($1, $2)"
	    " on conflict (jti) do nothing", 2, params) < 0)
		return -EIO;
	r = web_api_new_link(conn, jti, path, sizeof(path), expires);
	if (r < 0)
		return r;
	cJSON_AddStringToObject(pass, "link", path);
	cJSON_AddStringToObject(pass, "link_expires_at", expires);
	return 0;
}

static void
web_api_pass_show(struct web_ctx *c, const char *jti)
{
	const char *params[1] = { jti };
	PGresult *res;
	cJSON *o;
	char home[160];

	res = db_query(c->conn, "select p.jti, m.pseudonym, m.display_name, m.full_name,"
	    "  m.plan, m.status, " WEB_TIME("p.issued_at") ", " WEB_TIME("p.expires_at") ","
	    "  coalesce(" WEB_TIME("p.revoked_at") ", ''),"
	    "  case when p.revoked_at is not null then 'revoked'"
	    "   when p.expires_at <= now() then 'expired' else 'valid' end,"
	    "  l.token is not null, coalesce(l.link_hash is not null and"
	    "   l.link_revoked_at is null and l.link_expires_at > now(), false)"
	    " from passes p join members m on m.id = p.member_id"
	    " left join web_pass_links l on l.jti = p.jti where p.jti = $1", 1, params);
	if (res == NULL) {
		web_api_db_error(c);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		http_reply_error(c->job, 404, "unknown_pass", "no pass '%s'", jti);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "jti", PQgetvalue(res, 0, 0));
	cJSON_AddStringToObject(o, "member", PQgetvalue(res, 0, 1));
	cJSON_AddStringToObject(o, "display_name", PQgetvalue(res, 0, 2));
	cJSON_AddStringToObject(o, "full_name", PQgetvalue(res, 0, 3));
	cJSON_AddStringToObject(o, "plan", PQgetvalue(res, 0, 4));
	cJSON_AddStringToObject(o, "member_status", PQgetvalue(res, 0, 5));
	cJSON_AddStringToObject(o, "issued_at", PQgetvalue(res, 0, 6));
	cJSON_AddStringToObject(o, "expires_at", PQgetvalue(res, 0, 7));
	if (PQgetvalue(res, 0, 8)[0] != '\0')
		cJSON_AddStringToObject(o, "revoked_at", PQgetvalue(res, 0, 8));
	cJSON_AddStringToObject(o, "status", PQgetvalue(res, 0, 9));
	cJSON_AddBoolToObject(o, "kept", strcmp(PQgetvalue(res, 0, 10), "t") == 0);
	cJSON_AddBoolToObject(o, "link_active", strcmp(PQgetvalue(res, 0, 11), "t") == 0);
	cJSON_AddStringToObject(o, "home", node_space_id(c->w->node));
	web_api_space_name(c, node_space_id(c->w->node), home, sizeof(home));
	cJSON_AddStringToObject(o, "home_name", home);
	PQclear(res);
	http_reply_json(c->job, 200, o);
}

static void
web_api_pass_qr(struct web_ctx *c, const char *jti)
{
	const char *params[1] = { jti };
	PGresult *res;
	char *svg = NULL;

	res = db_query(c->conn, "select token from web_pass_links where jti = $1", 1,
	    params);
	if (res == NULL) {
		web_api_db_error(c);
		return;
	}
	if (PQntuples(res) != 1)
		http_reply_error(c->job, 404, "not_kept",
		    "pass '%s' was not issued here: its QR code is not kept", jti);
	else if (qr_svg(PQgetvalue(res, 0, 0), &svg) < 0)
		http_reply_error(c->job, 500, "internal", "cannot draw the QR code");
	else {
		web_page_headers(c->job);
		http_reply_text(c->job, 200, "image/svg+xml", svg);
	}
	free(svg);
	PQclear(res);
}

/* The member a pass belongs to (pseudonym): 0, -ENOENT, -EIO. */
static int
web_api_pass_member(PGconn *conn, const char *jti, char *out, size_t len)
{
	const char *params[1] = { jti };
	PGresult *res;
	int r;

	res = db_query(conn, "select m.pseudonym from passes p join members m"
	    " on m.id = p.member_id where p.jti = $1", 1, params);
	if (res == NULL)
		return -EIO;
	r = PQntuples(res) == 1 ? 0 : -ENOENT;
	if (r == 0)
		util_strlcpy(out, PQgetvalue(res, 0, 0), len);
	PQclear(res);
	return r;
}

static void
web_api_pass_revoke(struct web_ctx *c, const char *jti, bool reissue)
{
	char member[64], err[256] = "";
	char *token = NULL;
	cJSON *o = NULL;
	int n = 0, r;

	r = web_api_pass_member(c->conn, jti, member, sizeof(member));
	if (r == -ENOENT) {
		http_reply_error(c->job, 404, "unknown_pass", "no pass '%s'", jti);
		return;
	} else if (r < 0) {
		web_api_db_error(c);
		return;
	}
	r = member_revoke(c->conn, jti, false, c->actor, &n, err, sizeof(err));
	if (r < 0 && r != -ENOENT) {
		http_reply_error(c->job, 503, "unavailable", "%s", err);
		return;
	}
	if (!reissue) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "jti", jti);
		cJSON_AddNumberToObject(o, "revoked", n);
		http_reply_json(c->job, 200, o);
		return;
	}
	r = member_issue_pass(c->w->node, c->conn, member, &token, &o, err, sizeof(err));
	if (r < 0) {
		api_member_reply(c->job, r, NULL, err, 200);
		return;
	}
	if (web_pass_keep(c->conn, o, token) < 0)
		log_warnx("pass %s: cannot keep it for the web page", jti);
	cJSON_AddStringToObject(o, "replaces", jti);
	free(token);
	http_reply_json(c->job, 201, o);
}

static void
web_api_pass_link(struct web_ctx *c, const char *jti, bool make)
{
	const char *params[1] = { jti };
	char path[64], expires[32];
	cJSON *o;
	int r;

	if (!make) {
		if (db_exec(c->conn, "update web_pass_links set link_revoked_at = now()"
		    " where jti = $1 and link_revoked_at is null", 1, params) < 0) {
			web_api_db_error(c);
			return;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "jti", jti);
		cJSON_AddBoolToObject(o, "link_active", false);
		http_reply_json(c->job, 200, o);
		return;
	}
	r = web_api_new_link(c->conn, jti, path, sizeof(path), expires);
	if (r == -ENOENT) {
		http_reply_error(c->job, 409, "no_link", "pass '%s' was not issued here, or"
		    " is revoked or expired: issue a new one", jti);
		return;
	} else if (r < 0) {
		web_api_db_error(c);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "jti", jti);
	cJSON_AddStringToObject(o, "link", path);
	cJSON_AddStringToObject(o, "link_expires_at", expires);
	http_reply_json(c->job, 201, o);
}

/* passes/JTI[/ACTION] */
static void
web_api_passes(struct web_ctx *c, const char *rest)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	const char *action = slash != NULL ? slash + 1 : "";
	enum http_method m = c->job->method;
	char jti[64];

	if (n == 0 || n >= sizeof(jti)) {
		http_reply_error(c->job, 404, "unknown_pass", "no such pass");
		return;
	}
	memcpy(jti, rest, n);
	jti[n] = '\0';
	if (action[0] == '\0' && m == HTTP_GET)
		web_api_pass_show(c, jti);
	else if (strcmp(action, "qr.svg") == 0 && m == HTTP_GET)
		web_api_pass_qr(c, jti);
	else if (strcmp(action, "revoke") == 0 && m == HTTP_POST)
		web_api_pass_revoke(c, jti, false);
	else if (strcmp(action, "reissue") == 0 && m == HTTP_POST)
		web_api_pass_revoke(c, jti, true);
	else if (strcmp(action, "link") == 0 && m == HTTP_POST)
		web_api_pass_link(c, jti, true);
	else if (strcmp(action, "unlink") == 0 && m == HTTP_POST)
		web_api_pass_link(c, jti, false);
	else
		http_reply_error(c->job, 404, "not_found", "no endpoint %s", c->job->path);
}

/* --------------------------------------------------------------- terms */

static void
web_api_terms_list(struct web_ctx *c)
{
	const struct config *cfg = node_config(c->w->node);
	const char *self = node_space_id(c->w->node);
	struct node_directory *nd = node_directory_get(c->w->node);
	cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "peers");

	for (size_t i = 0; nd != NULL && i < directory_count(nd->dir); i++) {
		const struct directory_space *sp = directory_space_at(nd->dir, i);
		struct terms t;
		cJSON *e;

		if (strcmp(sp->id, self) == 0)
			continue;
		if (terms_get(cfg, c->conn, sp->id, &t) < 0) {
			node_directory_put(c->w->node, nd);
			cJSON_Delete(o);
			web_api_db_error(c);
			return;
		}
		e = terms_json(sp->id, &t);
		cJSON_AddStringToObject(e, "name", sp->name);
		cJSON_AddStringToObject(e, "city", sp->city);
		cJSON_AddItemToArray(a, e);
	}
	node_directory_put(c->w->node, nd);
	http_reply_json(c->job, 200, o);
}

static int
web_api_bool(const cJSON *req, const char *name, bool *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);

	if (v == NULL)
		return 0;
	if (!cJSON_IsBool(v))
		return -EINVAL;
	*ret = cJSON_IsTrue(v);
	return 0;
}

static void
web_api_terms_set(struct web_ctx *c, const char *peer)
{
	const struct config *cfg = node_config(c->w->node);
	struct node_directory *nd;
	struct terms t;
	const char *currency;
	cJSON *req;
	bool known;

	nd = node_directory_get(c->w->node);
	known = nd != NULL && directory_find_space(nd->dir, peer) != NULL &&
	    strcmp(peer, node_space_id(c->w->node)) != 0;
	node_directory_put(c->w->node, nd);
	if (!known) {
		http_reply_error(c->job, 404, "unknown_peer",
		    "'%s' is not a peer space of the directory", peer);
		return;
	}
	if ((req = http_job_json(c->job)) == NULL)
		return;
	if (terms_get(cfg, c->conn, peer, &t) < 0) {
		cJSON_Delete(req);
		web_api_db_error(c);
		return;
	}
	currency = util_json_string(req, "currency");
	if (web_api_bool(req, "accept", &t.host_accept) < 0 ||
	    util_json_int(req, "rate_cents", 0, 10000000, false, &t.rate_cents) < 0 ||
	    util_json_int(req, "monthly_cap", 0, 1000, true, &t.host_monthly_cap) < 0 ||
	    util_json_int(req, "offline_allowance", 0, 1000, false, &t.offline_allowance) < 0 ||
	    web_api_bool(req, "allow_roaming", &t.allow_roaming) < 0 ||
	    web_api_bool(req, "ticket_per_unit", &t.ticket_per_unit) < 0 ||
	    (currency != NULL && (strlen(currency) != 3 || !isupper((unsigned char)currency[0]) ||
	    !isupper((unsigned char)currency[1]) || !isupper((unsigned char)currency[2])))) {
		cJSON_Delete(req);
		http_reply_error(c->job, 400, "bad_request", "expected {\"accept\": bool,"
		    " \"rate_cents\": 0.., \"currency\": \"EUR\", \"monthly_cap\": N | null,"
		    " \"offline_allowance\": N, \"allow_roaming\": bool, \"ticket_per_unit\": bool}");
		return;
	}
	if (currency != NULL)
		util_strlcpy(t.currency, currency, sizeof(t.currency));
	cJSON_Delete(req);
	if (terms_set(c->conn, peer, &t, c->actor) < 0 ||
	    terms_get(cfg, c->conn, peer, &t) < 0) {
		web_api_db_error(c);
		return;
	}
	http_reply_json(c->job, 200, terms_json(peer, &t));
}

/* ------------------------------------------------------ visits by month */

/* The month of the query ("YYYY-MM"), or this month (UTC). */
static int
web_api_month(struct web_ctx *c, char out[8])
{
	char *q = http_job_query(c->job, "month");
	int r = 0;

	if (q != NULL) {
		if (!reconcile_month_valid(q)) {
			http_reply_error(c->job, 400, "bad_request", "month must be YYYY-MM");
			r = -EINVAL;
		} else {
			memcpy(out, q, 8);
		}
		free(q);
		return r;
	}
	{
		PGresult *res = db_query(c->conn, "select to_char(now() at time zone 'UTC',"
		    " 'YYYY-MM')", 0, NULL);

		if (res == NULL) {
			web_api_db_error(c);
			return -EIO;
		}
		util_strlcpy(out, PQgetvalue(res, 0, 0), 8);
		PQclear(res);
	}
	return 0;
}

/* "host" (default) or "home"; -EINVAL after a 400. */
static int
web_api_side(struct web_ctx *c, bool *ret_home)
{
	char *q = http_job_query(c->job, "side");
	int r = 0;

	*ret_home = false;
	if (q != NULL && strcmp(q, "home") == 0)
		*ret_home = true;
	else if (q != NULL && strcmp(q, "host") != 0) {
		http_reply_error(c->job, 400, "bad_request", "side must be host or home");
		r = -EINVAL;
	}
	free(q);
	return r;
}

/*
 * The month's bounds as a CTE over $1 ("YYYY-MM").  Months are UTC calendar
 * months of the check-in times, as reconciliation counts them (reconcile.h),
 * so that this page and the reconciled statement agree.
 */
#define WEB_MONTH_CTE \
	"with b as (select ($1::text || '-01')::timestamp at time zone 'UTC' as s," \
	" (($1::text || '-01')::timestamp + interval '1 month') at time zone 'UTC' as e)"

static PGresult *
web_api_history_query(struct web_ctx *c, const char *month, bool home)
{
	const char *params[1] = { month };

	if (home)
		return db_query(c->conn, WEB_MONTH_CTE
		    " select h.visit_id, h.host, m.pseudonym, h.decision,"
		    "  coalesce(h.reason_code, ''),"
		    "  " WEB_TIME("coalesce(h.checked_in_at, h.authorized_at)") ","
		    "  coalesce(" WEB_TIME("h.checked_out_at") ", ''), h.units, h.rate_cents,"
		    "  coalesce(h.currency, ''), m.display_name, m.full_name, h.unpaid_units"
		    " from home_visits h join members m on m.id = h.member_id, b"
		    " where coalesce(h.checked_in_at, h.authorized_at) >= b.s"
		    "  and coalesce(h.checked_in_at, h.authorized_at) < b.e"
		    " order by 6, h.visit_id", 1, params);
	return db_query(c->conn, WEB_MONTH_CTE
	    " select v.visit_id, v.home, v.pseudonym, v.status,"
	    "  coalesce(v.reason_code, ''), " WEB_TIME("v.checked_in_at") ","
	    "  coalesce(" WEB_TIME("v.checked_out_at") ", ''), v.units, v.rate_cents,"
	    "  coalesce(v.currency, ''), coalesce(v.display_name, ''), '', 0"
	    " from host_visits v, b where v.checked_in_at >= b.s and v.checked_in_at < b.e"
	    " order by v.checked_in_at, v.visit_id", 1, params);
}

static void
web_api_add_int_or_null(cJSON *o, const char *name, PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddNumberToObject(o, name, atof(PQgetvalue(res, row, col)));
}

/* A growing text with a ceiling (for CSV). */
struct web_buf {
	char *p;
	size_t len, cap;
	bool full;
};

static void __attribute__((format(printf, 2, 3)))
web_buf_printf(struct web_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->full)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p != NULL ? b->p + b->len : NULL,
		    b->p != NULL ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->full = true;
			return;
		}
		if (b->p != NULL && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap == 0 ? 4096 : b->cap * 2;
			char *p;

			while (cap <= b->len + (size_t)n)
				cap *= 2;
			if (cap > WEB_CSV_MAX || (p = realloc(b->p, cap)) == NULL) {
				b->full = true;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

/*
 * One CSV text field (RFC 4180), quoted when needed.  A text a spreadsheet
 * could take for a formula (its first character is = + - @, a tab or a
 * carriage return) gets a leading apostrophe: some of these texts come from
 * a peer (a pseudonym, a reason code), and "-1+cmd|..." is a formula too.
 * Numbers go through web_buf_csv_number, which is why no exception for a
 * leading minus is needed here.
 */
static void
web_buf_csv(struct web_buf *b, const char *s, bool last)
{
	bool quote = strpbrk(s, ",\"\r\n") != NULL;
	bool formula = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;

	if (quote || formula) {
		web_buf_printf(b, "\"%s", formula ? "'" : "");
		for (const char *p = s; *p != '\0'; p++)
			web_buf_printf(b, *p == '"' ? "\"\"" : "%c", *p);
		web_buf_printf(b, "\"");
	} else {
		web_buf_printf(b, "%s", s);
	}
	web_buf_printf(b, last ? "\r\n" : ",");
}

/*
 * One CSV number field: an integer column as PostgreSQL writes it (or
 * empty for NULL), as it is, so that a negative amount stays a number.
 * Anything else is not a number and goes through the text path.
 */
static void
web_buf_csv_number(struct web_buf *b, const char *s, bool last)
{
	const char *digits = s[0] == '-' ? s + 1 : s;

	if (s[0] != '\0' && (digits[0] == '\0' ||
	    strspn(digits, "0123456789") != strlen(digits))) {
		web_buf_csv(b, s, last);
		return;
	}
	web_buf_printf(b, "%s%s", s, last ? "\r\n" : ",");
}

static void
web_api_reply_csv(struct web_ctx *c, struct web_buf *b, const char *filename)
{
	char disposition[160];

	if (b->full || b->p == NULL) {
		free(b->p);
		http_reply_error(c->job, 500, "internal", "the CSV file is too large");
		return;
	}
	snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"", filename);
	http_reply_header(c->job, "Content-Disposition", disposition);
	http_reply_text(c->job, 200, "text/csv; charset=utf-8", b->p);
	free(b->p);
}

static void
web_api_history(struct web_ctx *c, bool csv)
{
	char month[8];
	bool home;
	PGresult *res;

	if (web_api_month(c, month) < 0 || web_api_side(c, &home) < 0)
		return;
	res = web_api_history_query(c, month, home);
	if (res == NULL) {
		web_api_db_error(c);
		return;
	}
	if (csv) {
		struct web_buf b = { NULL, 0, 0, false };
		char filename[128];

		web_buf_printf(&b, "visit_id,%s,member,%s,reason_code,checked_in_at,"
		    "checked_out_at,units,rate_cents,currency%s\r\n", home ? "host" : "home",
		    home ? "decision" : "status", home ? ",full_name,unpaid_units" : "");
		for (int i = 0; i < PQntuples(res); i++) {
			/* Columns 7 and 8 (units, rate_cents) are numbers. */
			for (int k = 0; k < 10; k++)
				if (k == 7 || k == 8)
					web_buf_csv_number(&b, PQgetvalue(res, i, k), false);
				else
					web_buf_csv(&b, PQgetvalue(res, i, k), !home && k == 9);
			if (home) {
				web_buf_csv(&b, PQgetvalue(res, i, 11), false);
				web_buf_csv_number(&b, PQgetvalue(res, i, 12), true);
			}
		}
		PQclear(res);
		snprintf(filename, sizeof(filename), "passerelle-%s-%s-visits-as-%s.csv",
		    node_space_id(c->w->node), month, home ? "home" : "host");
		web_api_reply_csv(c, &b, filename);
		return;
	}
	{
		cJSON *o = cJSON_CreateObject(), *a;

		cJSON_AddStringToObject(o, "month", month);
		cJSON_AddStringToObject(o, "side", home ? "home" : "host");
		a = cJSON_AddArrayToObject(o, "visits");
		for (int i = 0; i < PQntuples(res); i++) {
			cJSON *v = cJSON_CreateObject();

			cJSON_AddStringToObject(v, "visit_id", PQgetvalue(res, i, 0));
			cJSON_AddStringToObject(v, home ? "host" : "home", PQgetvalue(res, i, 1));
			cJSON_AddStringToObject(v, "member", PQgetvalue(res, i, 2));
			cJSON_AddStringToObject(v, home ? "decision" : "status",
			    PQgetvalue(res, i, 3));
			if (PQgetvalue(res, i, 4)[0] != '\0')
				cJSON_AddStringToObject(v, "reason_code", PQgetvalue(res, i, 4));
			cJSON_AddStringToObject(v, "checked_in_at", PQgetvalue(res, i, 5));
			if (PQgetvalue(res, i, 6)[0] != '\0')
				cJSON_AddStringToObject(v, "checked_out_at", PQgetvalue(res, i, 6));
			web_api_add_int_or_null(v, "units", res, i, 7);
			web_api_add_int_or_null(v, "rate_cents", res, i, 8);
			cJSON_AddStringToObject(v, "currency", PQgetvalue(res, i, 9));
			if (PQgetvalue(res, i, 10)[0] != '\0')
				cJSON_AddStringToObject(v, "display_name", PQgetvalue(res, i, 10));
			if (home) {
				cJSON_AddStringToObject(v, "full_name", PQgetvalue(res, i, 11));
				cJSON_AddNumberToObject(v, "unpaid_units",
				    atoi(PQgetvalue(res, i, 12)));
			}
			cJSON_AddItemToArray(a, v);
		}
		PQclear(res);
		http_reply_json(c->job, 200, o);
	}
}

/* ----------------------------------------------------------- statement */

/*
 * The statements `passerelle reconcile` stored for the month (reconcile.c
 * owns them): one per peer and currency, open, agreed or disputed.  Read
 * here as they are; nothing is reconciled by the web page.
 */
static void
web_api_reconciled(struct web_ctx *c, const char *month, cJSON *o)
{
	const char *params[1] = { month };
	cJSON *a = cJSON_AddArrayToObject(o, "reconciled");
	PGresult *res;

	res = db_query(c->conn, "select peer, currency, status, receivable_cents,"
	    "  payable_cents, receivable_visits, payable_visits, lines, held_lines,"
	    "  held_cents, " WEB_TIME("reconciled_at") ", status_by"
	    " from statements where month = $1 order by peer, currency", 1, params);
	for (int i = 0; res != NULL && i < PQntuples(res); i++) {
		cJSON *st = cJSON_CreateObject();
		char name[160];

		web_api_space_name(c, PQgetvalue(res, i, 0), name, sizeof(name));
		cJSON_AddStringToObject(st, "peer", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(st, "name", name);
		cJSON_AddStringToObject(st, "currency", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(st, "status", PQgetvalue(res, i, 2));
		cJSON_AddNumberToObject(st, "receivable_cents", atof(PQgetvalue(res, i, 3)));
		cJSON_AddNumberToObject(st, "payable_cents", atof(PQgetvalue(res, i, 4)));
		cJSON_AddNumberToObject(st, "net_cents",
		    atof(PQgetvalue(res, i, 3)) - atof(PQgetvalue(res, i, 4)));
		cJSON_AddNumberToObject(st, "receivable_visits", atof(PQgetvalue(res, i, 5)));
		cJSON_AddNumberToObject(st, "payable_visits", atof(PQgetvalue(res, i, 6)));
		cJSON_AddNumberToObject(st, "lines", atof(PQgetvalue(res, i, 7)));
		cJSON_AddNumberToObject(st, "held_lines", atof(PQgetvalue(res, i, 8)));
		cJSON_AddNumberToObject(st, "held_cents", atof(PQgetvalue(res, i, 9)));
		cJSON_AddStringToObject(st, "reconciled_at", PQgetvalue(res, i, 10));
		cJSON_AddStringToObject(st, "status_by", PQgetvalue(res, i, 11));
		cJSON_AddItemToArray(a, st);
	}
	PQclear(res);
}

/*
 * The month's cross-visits per peer and currency as this node recorded
 * them: as host (the peer's members here: the peer owes us) and as home
 * (our members there: we owe the peer), admitted visits only, at the rates
 * frozen on them.
 */
/*
 * GET /api/v1/statements/PEER.csv?month=YYYY-MM: the reconciled statement
 * with PEER, line by line, as `passerelle reconcile --csv` writes it.
 */
static void
web_api_reconciled_csv(struct web_ctx *c, const char *rest)
{
	char month[8], peer[64], filename[160];
	const char *dot = strstr(rest, ".csv");
	char *csv = NULL;
	size_t n = dot != NULL ? (size_t)(dot - rest) : 0;

	if (dot == NULL || strcmp(dot, ".csv") != 0 || n == 0 || n >= sizeof(peer)) {
		http_reply_error(c->job, 404, "not_found", "use /api/v1/statements/PEER.csv");
		return;
	}
	memcpy(peer, rest, n);
	peer[n] = '\0';
	if (web_api_month(c, month) < 0)
		return;
	if (reconcile_statement_csv(c->w->node, c->conn, peer, month, &csv) < 0) {
		http_reply_error(c->job, 404, "no_statement", "no statement with %s for %s:"
		    " run `passerelle reconcile --peer %s --month %s`", peer, month, peer,
		    month);
		return;
	}
	snprintf(filename, sizeof(filename), "attachment; filename=\"passerelle-%s-%s-%s"
	    "-reconciled.csv\"", node_space_id(c->w->node), peer, month);
	http_reply_header(c->job, "Content-Disposition", filename);
	http_reply_text(c->job, 200, "text/csv; charset=utf-8", csv);
	free(csv);
}

static void
web_api_statement(struct web_ctx *c, bool csv)
{
	char month[8];
	const char *params[2];
	PGresult *res;

	if (web_api_month(c, month) < 0)
		return;
	params[0] = month;
	params[1] = node_space_id(c->w->node);
	res = db_query(c->conn, WEB_MONTH_CTE ","
	    " hosted as (select v.home as peer, coalesce(v.currency, '') as currency,"
	    "   count(*) as visits, coalesce(sum(v.units), 0) as units,"
	    "   coalesce(sum(v.units * v.rate_cents), 0) as cents"
	    "  from host_visits v, b where v.checked_in_at >= b.s and v.checked_in_at < b.e"
	    "   and v.status in ('open', 'closed') and v.home <> $2"
	    "  group by 1, 2),"
	    " homed as (select h.host as peer, coalesce(h.currency, '') as currency,"
	    "   count(*) as visits, coalesce(sum(h.units), 0) as units,"
	    "   coalesce(sum(h.units * h.rate_cents), 0) as cents"
	    "  from home_visits h, b where coalesce(h.checked_in_at, h.authorized_at) >= b.s"
	    "   and coalesce(h.checked_in_at, h.authorized_at) < b.e"
	    "   and h.decision = 'admit' and coalesce(h.units, -1) <> 0 and h.host <> $2"
	    "  group by 1, 2)"
	    " select coalesce(a.peer, o.peer), coalesce(a.currency, o.currency),"
	    "  coalesce(a.visits, 0), coalesce(a.units, 0), coalesce(a.cents, 0),"
	    "  coalesce(o.visits, 0), coalesce(o.units, 0), coalesce(o.cents, 0)"
	    " from hosted a full join homed o on o.peer = a.peer and o.currency = a.currency"
	    " order by 1, 2", 2, params);
	if (res == NULL) {
		web_api_db_error(c);
		return;
	}
	if (csv) {
		struct web_buf b = { NULL, 0, 0, false };
		char filename[128];

		web_buf_printf(&b, "month,space,peer,currency,visits_as_host,units_as_host,"
		    "owed_to_us_cents,visits_as_home,units_as_home,owed_by_us_cents,"
		    "net_cents\r\n");
		for (int i = 0; i < PQntuples(res); i++) {
			web_buf_csv(&b, month, false);
			web_buf_csv(&b, node_space_id(c->w->node), false);
			/* peer and currency are text; the six counts are numbers. */
			for (int k = 0; k < 8; k++)
				if (k < 2)
					web_buf_csv(&b, PQgetvalue(res, i, k), false);
				else
					web_buf_csv_number(&b, PQgetvalue(res, i, k), false);
			web_buf_printf(&b, "%lld\r\n", atoll(PQgetvalue(res, i, 4)) -
			    atoll(PQgetvalue(res, i, 7)));
		}
		PQclear(res);
		snprintf(filename, sizeof(filename), "passerelle-%s-%s-statement.csv",
		    node_space_id(c->w->node), month);
		web_api_reply_csv(c, &b, filename);
		return;
	}
	{
		cJSON *o = cJSON_CreateObject(), *a;

		cJSON_AddStringToObject(o, "month", month);
		cJSON_AddStringToObject(o, "space", node_space_id(c->w->node));
		cJSON_AddStringToObject(o, "source", "local");
		a = cJSON_AddArrayToObject(o, "peers");
		for (int i = 0; i < PQntuples(res); i++) {
			cJSON *p = cJSON_CreateObject(), *s;
			char name[160];

			web_api_space_name(c, PQgetvalue(res, i, 0), name, sizeof(name));
			cJSON_AddStringToObject(p, "peer", PQgetvalue(res, i, 0));
			cJSON_AddStringToObject(p, "name", name);
			cJSON_AddStringToObject(p, "currency", PQgetvalue(res, i, 1));
			s = cJSON_AddObjectToObject(p, "as_host");
			cJSON_AddNumberToObject(s, "visits", atof(PQgetvalue(res, i, 2)));
			cJSON_AddNumberToObject(s, "units", atof(PQgetvalue(res, i, 3)));
			cJSON_AddNumberToObject(s, "owed_to_us_cents", atof(PQgetvalue(res, i, 4)));
			s = cJSON_AddObjectToObject(p, "as_home");
			cJSON_AddNumberToObject(s, "visits", atof(PQgetvalue(res, i, 5)));
			cJSON_AddNumberToObject(s, "units", atof(PQgetvalue(res, i, 6)));
			cJSON_AddNumberToObject(s, "owed_by_us_cents", atof(PQgetvalue(res, i, 7)));
			cJSON_AddNumberToObject(p, "net_cents", atof(PQgetvalue(res, i, 4)) -
			    atof(PQgetvalue(res, i, 7)));
			cJSON_AddItemToArray(a, p);
		}
		PQclear(res);
		web_api_reconciled(c, month, o);
		http_reply_json(c->job, 200, o);
	}
}

/* ------------------------------------------------------------- routing */

/* members/REF/ACTION for the actions the web page adds. */
static bool
web_api_members(struct web_ctx *c, const char *rest)
{
	const char *slash = strchr(rest, '/');
	enum http_method m = c->job->method;
	char ref[128];
	size_t n;

	if (slash == NULL)
		return false;
	n = (size_t)(slash - rest);
	if (!((strcmp(slash, "/passes") == 0 && m == HTTP_GET) ||
	    (strcmp(slash, "/plan") == 0 && m == HTTP_POST) ||
	    (strcmp(slash, "/status") == 0 && m == HTTP_POST) ||
	    (strcmp(slash, "/revoke") == 0 && m == HTTP_POST)))
		return false;
	if (!api_require(c->job, c->role, STAFF_MANAGER))
		return true;
	if (n == 0 || n >= sizeof(ref)) {
		http_reply_error(c->job, 404, "not_found", "no such member path");
		return true;
	}
	memcpy(ref, rest, n);
	ref[n] = '\0';
	if (strcmp(slash, "/passes") == 0)
		web_api_member_passes(c, ref);
	else if (strcmp(slash, "/plan") == 0)
		web_api_member_plan(c, ref);
	else if (strcmp(slash, "/status") == 0)
		web_api_member_status(c, ref);
	else
		web_api_member_revoke(c, ref);
	return true;
}

bool
web_api_handle(struct web_ctx *c, const char *rest)
{
	enum http_method m = c->job->method;

	if (strcmp(rest, "session") == 0 && m == HTTP_GET) {
		web_api_session(c);
	} else if (strcmp(rest, "signout") == 0 && m == HTTP_POST) {
		web_session_signout(c);
	} else if (strncmp(rest, "members/", 8) == 0) {
		return web_api_members(c, rest + 8);
	} else if (strncmp(rest, "passes/", 7) == 0) {
		if (api_require(c->job, c->role, STAFF_MANAGER))
			web_api_passes(c, rest + 7);
	} else if (strcmp(rest, "terms") == 0 && m == HTTP_GET) {
		if (api_require(c->job, c->role, STAFF_MANAGER))
			web_api_terms_list(c);
	} else if (strncmp(rest, "terms/", 6) == 0 && m == HTTP_POST) {
		if (api_require(c->job, c->role, STAFF_MANAGER))
			web_api_terms_set(c, rest + 6);
	} else if ((strcmp(rest, "visit-history") == 0 ||
	    strcmp(rest, "visit-history.csv") == 0) && m == HTTP_GET) {
		if (api_require(c->job, c->role, STAFF_MANAGER))
			web_api_history(c, rest[13] == '.');
	} else if (strncmp(rest, "statements/", 11) == 0 && m == HTTP_GET) {
		if (api_require(c->job, c->role, STAFF_MANAGER))
			web_api_reconciled_csv(c, rest + 11);
	} else if ((strcmp(rest, "statement") == 0 || strcmp(rest, "statement.csv") == 0) &&
	    m == HTTP_GET) {
		if (api_require(c->job, c->role, STAFF_MANAGER))
			web_api_statement(c, rest[9] == '.');
	} else {
		return false;
	}
	return true;
}
