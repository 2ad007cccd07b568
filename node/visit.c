/*
 * visit.c - check-in, check-out, and the home's authorization of a visit.
 *
 * The home's side is one transaction: the member row is locked, the standing
 * checked, a ticket debited together with its ledger row, the visit and the
 * exact response stored.  A retry of the same visit id (same host, same
 * pass) gets the stored response byte for byte; the same id with anything
 * else gets 409 and changes nothing.  A member holds at most one open visit
 * (a partial unique index backs the check).
 *
 * The host records a pending visit before it asks the home, so that a crash
 * in between leaves a trace to resolve rather than a debit nobody knows of.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "db.h"
#include "jws.h"
#include "log.h"
#include "outbox.h"
#include "pass.h"
#include "util.h"
#include "visit.h"

#define SQLSTATE_UNIQUE_VIOLATION "23505"

bool
visit_id_valid(const char *s)
{
	if (s == NULL || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

void
visit_decision_clear(struct visit_decision *d)
{
	free(d->receipt);
	memset(d, 0, sizeof(*d));
}

cJSON *
visit_decision_json(const struct visit_decision *d)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "visit_id", d->visit_id);
	cJSON_AddStringToObject(o, "decision", d->admitted ? "admit" : "refuse");
	if (d->reason_code[0] != '\0') {
		cJSON_AddStringToObject(o, "reason_code", d->reason_code);
		cJSON_AddStringToObject(o, "reason", d->reason);
	}
	if (d->home[0] != '\0')
		cJSON_AddStringToObject(o, "home", d->home);
	if (d->display_name[0] != '\0')
		cJSON_AddStringToObject(o, "display_name", d->display_name);
	if (d->plan[0] != '\0')
		cJSON_AddStringToObject(o, "plan", d->plan);
	if (d->tickets_left >= 0)
		cJSON_AddNumberToObject(o, "tickets_left", d->tickets_left);
	if (d->receipt != NULL)
		cJSON_AddStringToObject(o, "receipt", d->receipt);
	return o;
}

static void
visit_sha256_hex(const char *a, const char *b, const char *c, char out[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t h[32];
	unsigned int n = 0;

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, a, strlen(a));
	EVP_DigestUpdate(md, "\n", 1);
	EVP_DigestUpdate(md, b, strlen(b));
	EVP_DigestUpdate(md, "\n", 1);
	EVP_DigestUpdate(md, c, strlen(c));
	EVP_DigestFinal_ex(md, h, &n);
	EVP_MD_CTX_free(md);
	util_hex(h, 32, out);
}

static char *
visit_error_body(const char *error, const char *detail)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	cJSON_AddStringToObject(o, "error", error);
	cJSON_AddStringToObject(o, "detail", detail);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* ------------------------------------------------------------- the home */

struct home_answer {
	const char *visit_id;
	const char *host;
	const struct pass_claims *claims;
	bool admitted;
	const char *reason_code;
	char reason[320];
	const char *display_name;
	const char *plan;
	int tickets_left;
};

/*
 * The receipt: the home's signature over its decision, verifiable by the
 * host and by anyone holding the directory.
 */
static char *
visit_sign_receipt(struct node *node, const struct home_answer *a)
{
	cJSON *p = cJSON_CreateObject();
	char header[160], kid[64], *payload, *token = NULL;
	uint8_t sk[64];

	cJSON_AddStringToObject(p, "visit_id", a->visit_id);
	cJSON_AddStringToObject(p, "home", node_space_id(node));
	cJSON_AddStringToObject(p, "host", a->host);
	cJSON_AddStringToObject(p, "sub", a->claims->sub);
	cJSON_AddStringToObject(p, "jti", a->claims->jti);
	cJSON_AddStringToObject(p, "decision", a->admitted ? "admit" : "refuse");
	if (a->reason_code != NULL)
		cJSON_AddStringToObject(p, "reason_code", a->reason_code);
	if (a->tickets_left >= 0)
		cJSON_AddNumberToObject(p, "tickets_left", a->tickets_left);
	cJSON_AddNumberToObject(p, "iat", (double)util_now());
	payload = cJSON_PrintUnformatted(p);
	cJSON_Delete(p);
	if (payload != NULL && node_pass_key(node, sk, kid, sizeof(kid)) == 0) {
		snprintf(header, sizeof(header),
		    "{\"alg\":\"EdDSA\",\"typ\":\"receipt\",\"kid\":\"%s\"}", kid);
		(void)jws_sign(header, (const uint8_t *)payload, strlen(payload), sk,
		    &token);
		sodium_memzero(sk, sizeof(sk));
	}
	free(payload);
	return token;
}

static char *
visit_answer_body(struct node *node, const struct home_answer *a)
{
	cJSON *o = cJSON_CreateObject();
	char *receipt = visit_sign_receipt(node, a), *s;

	cJSON_AddStringToObject(o, "visit_id", a->visit_id);
	cJSON_AddStringToObject(o, "home", node_space_id(node));
	cJSON_AddStringToObject(o, "host", a->host);
	cJSON_AddStringToObject(o, "decision", a->admitted ? "admit" : "refuse");
	if (a->reason_code != NULL) {
		cJSON_AddStringToObject(o, "reason_code", a->reason_code);
		cJSON_AddStringToObject(o, "reason", a->reason);
	}
	if (a->display_name != NULL)
		cJSON_AddStringToObject(o, "display_name", a->display_name);
	if (a->plan != NULL)
		cJSON_AddStringToObject(o, "plan", a->plan);
	if (a->tickets_left >= 0)
		cJSON_AddNumberToObject(o, "tickets_left", a->tickets_left);
	if (receipt != NULL)
		cJSON_AddStringToObject(o, "receipt", receipt);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	free(receipt);
	return s;
}

/* Looks up a stored answer for visit_id: 1 found, 0 none, <0 error. */
static int
visit_stored_answer(PGconn *conn, const char *visit_id, const char *hash,
    int *ret_status, char **ret_body)
{
	const char *params[] = { visit_id };
	PGresult *res;
	int r = 0;

	res = db_query(conn, "select request_hash, response from home_visits"
	    " where visit_id = $1", 1, params);
	if (res == NULL)
		return -EIO;
	if (PQntuples(res) == 1) {
		if (strcmp(PQgetvalue(res, 0, 0), hash) == 0) {
			*ret_status = 200;
			*ret_body = strdup(PQgetvalue(res, 0, 1));
		} else {
			*ret_status = 409;
			*ret_body = visit_error_body("conflict",
			    "this visit id was already used with a different request");
		}
		r = 1;
	}
	PQclear(res);
	return r;
}

/*
 * Decides on one authorization inside the caller's transaction.  Returns 0
 * with the status and body set, -EAGAIN when a concurrent request for the
 * same visit won (the caller rolls back and asks again), or <0 on a database
 * error.
 */
static int
visit_home_decide_txn(struct node *node, PGconn *conn, const char *host,
    const char *visit_id, const char *token, const char *hash,
    const struct pass_claims *claims, int *ret_status, char **ret_body)
{
	const struct config *cfg = node_config(node);
	struct home_answer a;
	PGresult *res = NULL, *res2 = NULL;
	char member_id[32], tickets_s[16];
	const char *params[6];
	bool refused = false;
	int r;

	memset(&a, 0, sizeof(a));
	a.visit_id = visit_id;
	a.host = host;
	a.claims = claims;
	a.tickets_left = -1;

	params[0] = claims->jti;
	params[1] = claims->sub;
	params[2] = cfg->timezone;
	res = db_query(conn,
	    "select m.id, m.status, m.plan, m.display_name, m.tickets,"
	    "  m.valid_until is null or m.valid_until >= (now() at time zone $3)::date,"
	    "  p.revoked_at is not null"
	    " from passes p join members m on m.id = p.member_id"
	    " where p.jti = $1 and m.pseudonym = $2"
	    " for update of m", 3, params);
	if (res == NULL)
		return -EIO;
	if (PQntuples(res) != 1) {
		/* Nothing to record: no member of ours stands behind this pass. */
		PQclear(res);
		a.reason_code = "unknown_pass";
		snprintf(a.reason, sizeof(a.reason),
		    "This pass is not known at its home space: ask the member for a new pass.");
		*ret_status = 200;
		*ret_body = visit_answer_body(node, &a);
		return 0;
	}
	util_strlcpy(member_id, PQgetvalue(res, 0, 0), sizeof(member_id));
	a.display_name = PQgetvalue(res, 0, 3);
	a.plan = PQgetvalue(res, 0, 2);
	if (strcmp(a.plan, "tickets") == 0)
		a.tickets_left = atoi(PQgetvalue(res, 0, 4));

	/* Another request for this visit may have been stored while we waited. */
	r = visit_stored_answer(conn, visit_id, hash, ret_status, ret_body);
	if (r != 0) {
		PQclear(res);
		return r < 0 ? r : 0;
	}

	if (strcmp(PQgetvalue(res, 0, 6), "t") == 0) {
		a.reason_code = "revoked";
		snprintf(a.reason, sizeof(a.reason),
		    "This pass has been revoked by its home space.");
		refused = true;
	} else if (strcmp(PQgetvalue(res, 0, 1), "active") != 0) {
		a.reason_code = "suspended";
		snprintf(a.reason, sizeof(a.reason),
		    "This membership is suspended at its home space.");
		refused = true;
	} else if (strcmp(PQgetvalue(res, 0, 5), "t") != 0) {
		a.reason_code = "plan_expired";
		snprintf(a.reason, sizeof(a.reason),
		    "This member's subscription has ended at their home space.");
		refused = true;
	} else if (a.tickets_left == 0) {
		a.reason_code = "no_tickets";
		snprintf(a.reason, sizeof(a.reason),
		    "No half-day tickets left: the member can top up at their home space.");
		refused = true;
	}
	if (!refused) {
		params[0] = member_id;
		res2 = db_query(conn, "select host from home_visits where member_id = $1"
		    " and decision = 'admit' and checked_out_at is null", 1, params);
		if (res2 == NULL) {
			r = -EIO;
			goto out;
		}
		if (PQntuples(res2) > 0) {
			a.reason_code = "already_checked_in";
			snprintf(a.reason, sizeof(a.reason),
			    "Already checked in at another space (%s): check out there first.",
			    PQgetvalue(res2, 0, 0));
			refused = true;
		}
		PQclear(res2);
		res2 = NULL;
	}
	if (!refused && a.tickets_left > 0) {
		params[0] = member_id;
		params[1] = visit_id;
		params[2] = host;
		res2 = db_query(conn,
		    "with debit as (update members set tickets = tickets - 1"
		    "   where id = $1 returning tickets),"
		    " movement as (insert into ticket_movements"
		    "   (member_id, delta, reason, visit_id, actor)"
		    "   values ($1, -1, 'visit', $2, 'host:' || $3))"
		    " select tickets from debit", 3, params);
		if (res2 == NULL) {
			r = strcmp(db_last_sqlstate(), SQLSTATE_UNIQUE_VIOLATION) == 0 ?
			    -EAGAIN : -EIO;
			goto out;
		}
		a.tickets_left = atoi(PQgetvalue(res2, 0, 0));
		PQclear(res2);
		res2 = NULL;
	}
	a.admitted = !refused;
	*ret_body = visit_answer_body(node, &a);
	if (*ret_body == NULL) {
		r = -ENOMEM;
		goto out;
	}
	snprintf(tickets_s, sizeof(tickets_s), "%d", a.tickets_left);
	params[0] = visit_id;
	params[1] = host;
	params[2] = member_id;
	params[3] = claims->jti;
	params[4] = a.admitted ? "admit" : "refuse";
	params[5] = a.reason_code;
	{
		const char *p8[8] = { params[0], params[1], params[2], params[3],
		    params[4], params[5], hash, *ret_body };

		if (db_exec(conn, "insert into home_visits (visit_id, host, member_id,"
		    " jti, decision, reason_code, request_hash, response)"
		    " values ($1, $2, $3, $4, $5, $6, $7, $8)", 8, p8) < 0) {
			r = strcmp(db_last_sqlstate(), SQLSTATE_UNIQUE_VIOLATION) == 0 ?
			    -EAGAIN : -EIO;
			free(*ret_body);
			*ret_body = NULL;
			goto out;
		}
	}
	*ret_status = 200;
	r = 0;
out:
	PQclear(res);
	PQclear(res2);
	return r;
}

/*
 * The home's whole decision: idempotency, pass verification, then the
 * transaction.  in_txn: the caller already opened a transaction (a local
 * check-in, which also records the host side).
 */
static int
visit_home_decide(struct node *node, PGconn *conn, const char *host,
    const char *visit_id, const char *token, bool in_txn, int *ret_status,
    char **ret_body)
{
	const struct config *cfg = node_config(node);
	struct node_directory *nd;
	struct pass_claims claims;
	char hash[65];
	int r, pr;

	*ret_body = NULL;
	if (!visit_id_valid(visit_id)) {
		*ret_status = 400;
		*ret_body = visit_error_body("bad_request", "visit_id must be a lower-case UUID");
		return 0;
	}
	visit_sha256_hex(host, visit_id, token, hash);
	for (int attempt = 0; attempt < 3; attempt++) {
		if (!in_txn && db_begin(conn) < 0)
			return -EIO;
		r = visit_stored_answer(conn, visit_id, hash, ret_status, ret_body);
		if (r != 0)
			goto done;

		nd = node_directory_get(node);
		pr = pass_verify(token, util_now(), cfg->pass_leeway,
		    directory_pass_key_lookup, nd != NULL ? nd->dir : NULL, &claims);
		node_directory_put(node, nd);
		if (pr == PASS_OK && strcmp(claims.iss, node_space_id(node)) != 0)
			pr = PASS_ERR_UNKNOWN_KEY;
		if (pr != PASS_OK) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddStringToObject(o, "visit_id", visit_id);
			cJSON_AddStringToObject(o, "home", node_space_id(node));
			cJSON_AddStringToObject(o, "host", host);
			cJSON_AddStringToObject(o, "decision", "refuse");
			cJSON_AddStringToObject(o, "reason_code", pass_error_code(pr));
			cJSON_AddStringToObject(o, "reason", pass_error_message(pr));
			*ret_body = cJSON_PrintUnformatted(o);
			cJSON_Delete(o);
			*ret_status = 200;
			r = 0;
			goto done;
		}
		r = visit_home_decide_txn(node, conn, host, visit_id, token, hash,
		    &claims, ret_status, ret_body);
done:
		if (in_txn)
			return r;
		if (r == 0) {
			if (db_commit(conn) < 0) {
				free(*ret_body);
				*ret_body = NULL;
				return -EIO;
			}
			return 0;
		}
		db_rollback(conn);
		if (r != -EAGAIN)
			return r;
	}
	return -EIO;
}

void
visit_authorize(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, int *ret_status, char **ret_body)
{
	const cJSON *vid = cJSON_GetObjectItemCaseSensitive(req, "visit_id");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(req, "pass");

	if (!cJSON_IsString(vid) || !cJSON_IsString(tok)) {
		*ret_status = 400;
		*ret_body = visit_error_body("bad_request",
		    "expected {\"visit_id\": UUID, \"pass\": TOKEN}");
		return;
	}
	if (strlen(tok->valuestring) > PASS_MAX_TOKEN) {
		*ret_status = 400;
		*ret_body = visit_error_body("bad_request", "the pass is too long");
		return;
	}
	if (visit_home_decide(node, conn, host, vid->valuestring, tok->valuestring,
	    false, ret_status, ret_body) < 0) {
		*ret_status = 503;
		*ret_body = visit_error_body("unavailable",
		    "the home node cannot reach its database; retry");
	}
}

void
visit_complete(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, int *ret_status, char **ret_body)
{
	const cJSON *vid = cJSON_GetObjectItemCaseSensitive(req, "visit_id");
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(req, "checked_in_at");
	const cJSON *out = cJSON_GetObjectItemCaseSensitive(req, "checked_out_at");
	const cJSON *units = cJSON_GetObjectItemCaseSensitive(req, "units");
	const char *params[4];
	char units_s[16];
	int64_t t;
	PGresult *res;

	if (!cJSON_IsString(vid) || !visit_id_valid(vid->valuestring) ||
	    !cJSON_IsString(out) || util_parse_time(out->valuestring, &t) < 0 ||
	    !cJSON_IsNumber(units) || units->valueint < 0 || units->valueint > 100 ||
	    (in != NULL && !cJSON_IsString(in))) {
		*ret_status = 400;
		*ret_body = visit_error_body("bad_request", "expected {\"visit_id\": UUID,"
		    " \"checked_out_at\": RFC3339, \"units\": N}");
		return;
	}
	snprintf(units_s, sizeof(units_s), "%d", units->valueint);
	params[0] = vid->valuestring;
	params[1] = host;
	params[2] = out->valuestring;
	params[3] = units_s;
	/*
	 * One statement, so a duplicate or a late repeat is harmless: the
	 * first report sets the times, every later one finds them set.
	 */
	res = db_query(conn,
	    "with done as (update home_visits set checked_out_at = $3, units = $4"
	    "   where visit_id = $1 and host = $2 and decision = 'admit'"
	    "   and checked_out_at is null returning 1)"
	    " select (select count(*) from done),"
	    "  (select checked_out_at is not null from home_visits"
	    "   where visit_id = $1 and host = $2 and decision = 'admit')",
	    4, params);
	if (res == NULL) {
		*ret_status = 503;
		*ret_body = visit_error_body("unavailable", "database unavailable; retry");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "1") == 0) {
		*ret_status = 200;
		*ret_body = strdup("{\"status\":\"recorded\"}");
	} else if (!PQgetisnull(res, 0, 1)) {
		*ret_status = 200;
		*ret_body = strdup("{\"status\":\"already_recorded\"}");
	} else {
		*ret_status = 404;
		*ret_body = visit_error_body("unknown_visit",
		    "no admitted visit with this id from your space");
	}
	PQclear(res);
}

/* ------------------------------------------------------------- the host */

static void
visit_refuse(struct visit_decision *d, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
visit_refuse(struct visit_decision *d, const char *code, const char *fmt, ...)
{
	va_list ap;

	d->admitted = false;
	util_strlcpy(d->reason_code, code, sizeof(d->reason_code));
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
}

/* Reads the home's answer into d; checks the receipt it carries. */
static void
visit_read_answer(struct node *node, const char *body, const char *home,
    struct visit_decision *d)
{
	cJSON *o = cJSON_Parse(body);
	const cJSON *v;
	const char *decision;
	struct node_directory *nd = NULL;
	struct jws *jws = NULL;
	cJSON *rp = NULL;

	if (o == NULL || !cJSON_IsObject(o)) {
		visit_refuse(d, "home_error", "The home space sent an unreadable answer.");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "decision");
	decision = cJSON_IsString(v) ? v->valuestring : "";
	v = cJSON_GetObjectItemCaseSensitive(o, "reason_code");
	if (cJSON_IsString(v))
		util_strlcpy(d->reason_code, v->valuestring, sizeof(d->reason_code));
	v = cJSON_GetObjectItemCaseSensitive(o, "reason");
	if (cJSON_IsString(v))
		util_strlcpy(d->reason, v->valuestring, sizeof(d->reason));
	v = cJSON_GetObjectItemCaseSensitive(o, "tickets_left");
	if (cJSON_IsNumber(v))
		d->tickets_left = v->valueint;
	v = cJSON_GetObjectItemCaseSensitive(o, "receipt");
	if (!cJSON_IsString(v)) {
		if (strcmp(decision, "admit") == 0)
			visit_refuse(d, "bad_receipt",
			    "The home space admitted without a signed receipt.");
		else if (d->reason_code[0] == '\0')
			visit_refuse(d, "refused", "Refused by the home space.");
		goto out;
	}
	d->receipt = strdup(v->valuestring);

	/* The receipt must be the home's signature over this very decision. */
	nd = node_directory_get(node);
	if (jws_parse(d->receipt, JWS_MAX_TOKEN, &jws) < 0 ||
	    jws_header_string(jws, "typ") == NULL ||
	    strcmp(jws_header_string(jws, "typ"), "receipt") != 0 ||
	    jws_header_string(jws, "kid") == NULL) {
		visit_refuse(d, "bad_receipt", "The home space's receipt is malformed.");
		goto out;
	}
	{
		uint8_t pk[32];
		size_t plen;
		const char *payload;
		const cJSON *rv, *rd, *rh;

		if (nd == NULL || directory_find_key(nd->dir, home,
		    jws_header_string(jws, "kid"), pk) < 0 || jws_verify(jws, pk) < 0) {
			visit_refuse(d, "bad_receipt",
			    "The home space's receipt does not verify.");
			goto out;
		}
		payload = (const char *)jws_payload(jws, &plen);
		rp = cJSON_ParseWithLength(payload, plen);
		rv = cJSON_GetObjectItemCaseSensitive(rp, "visit_id");
		rd = cJSON_GetObjectItemCaseSensitive(rp, "decision");
		rh = cJSON_GetObjectItemCaseSensitive(rp, "host");
		if (!cJSON_IsString(rv) || strcmp(rv->valuestring, d->visit_id) != 0 ||
		    !cJSON_IsString(rd) || strcmp(rd->valuestring, decision) != 0 ||
		    !cJSON_IsString(rh) || strcmp(rh->valuestring, node_space_id(node)) != 0) {
			visit_refuse(d, "bad_receipt",
			    "The home space's receipt is for another visit.");
			goto out;
		}
	}
	d->admitted = strcmp(decision, "admit") == 0;
	if (!d->admitted && d->reason_code[0] == '\0')
		visit_refuse(d, "refused", "Refused by the home space.");
out:
	cJSON_Delete(rp);
	jws_free(jws);
	node_directory_put(node, nd);
	cJSON_Delete(o);
}

static int
visit_store_host(PGconn *conn, const char *sql, const struct visit_decision *d,
    const struct pass_claims *c)
{
	char tickets[16];
	const char *params[10];

	snprintf(tickets, sizeof(tickets), "%d", d->tickets_left);
	params[0] = d->visit_id;
	params[1] = c->iss;
	params[2] = c->sub;
	params[3] = d->admitted ? c->name : NULL;
	params[4] = c->plan;
	params[5] = c->jti;
	params[6] = d->admitted ? "open" : "refused";
	params[7] = d->reason_code[0] != '\0' ? d->reason_code : NULL;
	params[8] = d->reason_code[0] != '\0' ? d->reason : NULL;
	params[9] = d->receipt;
	{
		const char *p11[11] = { params[0], params[1], params[2], params[3],
		    params[4], params[5], params[6], params[7], params[8], params[9],
		    d->tickets_left >= 0 ? tickets : NULL };

		return db_exec(conn, sql, 11, p11);
	}
}

static const char visit_insert_sql[] =
    "insert into host_visits (visit_id, home, pseudonym, display_name, plan,"
    " jti, status, reason_code, reason, receipt, tickets_left)"
    " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
static const char visit_update_sql[] =
    "update host_visits set home = $2, pseudonym = $3, display_name = $4,"
    " plan = $5, jti = $6, status = $7, reason_code = $8, reason = $9,"
    " receipt = $10, tickets_left = $11, checked_in_at = now()"
    " where visit_id = $1";

int
visit_check_in(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *token, struct visit_decision *ret)
{
	const struct config *cfg = node_config(node);
	struct node_directory *nd;
	struct pass_claims claims;
	int pr, status = 0, r;
	char *body = NULL;

	memset(ret, 0, sizeof(*ret));
	ret->tickets_left = -1;
	util_uuid_v4(ret->visit_id);

	nd = node_directory_get(node);
	pr = pass_verify(token, util_now(), cfg->pass_leeway,
	    directory_pass_key_lookup, nd != NULL ? nd->dir : NULL, &claims);
	node_directory_put(node, nd);
	if (pr != PASS_OK) {
		visit_refuse(ret, pass_error_code(pr), "%s", pass_error_message(pr));
		if (pr != PASS_ERR_MALFORMED)
			util_strlcpy(ret->home, claims.iss, sizeof(ret->home));
		ret->visit_id[0] = '\0'; /* nothing recorded */
		return 0;
	}
	util_strlcpy(ret->home, claims.iss, sizeof(ret->home));
	util_strlcpy(ret->display_name, claims.name, sizeof(ret->display_name));
	util_strlcpy(ret->plan, claims.plan, sizeof(ret->plan));

	if (strcmp(claims.iss, node_space_id(node)) == 0) {
		/* Our own member: the home's decision and the host's record in one. */
		if (db_begin(conn) < 0)
			goto db_error;
		r = visit_home_decide(node, conn, node_space_id(node), ret->visit_id,
		    token, true, &status, &body);
		if (r < 0 || status != 200) {
			db_rollback(conn);
			goto db_error;
		}
		visit_read_answer(node, body, claims.iss, ret);
		if (visit_store_host(conn, visit_insert_sql, ret, &claims) < 0 ||
		    db_commit(conn) < 0) {
			db_rollback(conn);
			goto db_error;
		}
		free(body);
		return 0;
	}

	/* A visitor: a durable trace first, then the home's decision. */
	{
		const char *params[5] = { ret->visit_id, claims.iss, claims.sub,
		    claims.plan, claims.jti };

		if (db_exec(conn, "insert into host_visits (visit_id, home, pseudonym,"
		    " plan, jti, status) values ($1, $2, $3, $4, $5, 'pending')",
		    5, params) < 0)
			goto db_error;
	}
	{
		struct peer_response resp;
		cJSON *o = cJSON_CreateObject();
		char *req, idem[64];
		const char *hdrs[2] = { idem, NULL };

		cJSON_AddStringToObject(o, "visit_id", ret->visit_id);
		cJSON_AddStringToObject(o, "pass", token);
		req = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s", ret->visit_id);
		r = peer_call(pc, claims.iss, "POST", "/federation/v1/authorize", req,
		    hdrs, (long)cfg->peer_timeout_ms, &resp);
		free(req);
		if (r < 0) {
			log_warnx("visit %s: home %s unreachable: %s", ret->visit_id,
			    claims.iss, resp.error);
			visit_refuse(ret, "home_unreachable",
			    "The member's home space (%s) cannot be reached right now;"
			    " try again in a moment.", claims.iss);
		} else if (resp.status == 200) {
			visit_read_answer(node, resp.body, claims.iss, ret);
		} else {
			cJSON *e = cJSON_Parse(resp.body);
			const cJSON *detail = cJSON_GetObjectItemCaseSensitive(e, "detail");

			log_warnx("visit %s: home %s answered %ld: %.200s", ret->visit_id,
			    claims.iss, resp.status, resp.body);
			visit_refuse(ret, "home_error", "The home space (%s) refused the"
			    " request: %s", claims.iss, cJSON_IsString(detail) ?
			    detail->valuestring : "error");
			cJSON_Delete(e);
		}
		peer_response_clear(&resp);
	}
	if (visit_store_host(conn, visit_update_sql, ret, &claims) < 0)
		goto db_error;
	return 0;

db_error:
	free(body);
	visit_refuse(ret, "unavailable",
	    "This node cannot reach its database; try again in a moment.");
	return -EIO;
}

int
visit_check_out(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *visit_id, struct visit_checkout *ret, char *err, size_t errlen)
{
	const struct config *cfg = node_config(node);
	char half[32], outbox_id[32] = "";
	const char *params[3];
	PGresult *res;
	int r = -EIO;

	memset(ret, 0, sizeof(*ret));
	if (!visit_id_valid(visit_id)) {
		snprintf(err, errlen, "'%s' is not a visit id (a lower-case UUID)", visit_id);
		return -EINVAL;
	}
	util_strlcpy(ret->visit_id, visit_id, sizeof(ret->visit_id));
	snprintf(half, sizeof(half), "%lld", (long long)cfg->half_day_max);
	if (db_begin(conn) < 0)
		goto db_error;
	params[0] = visit_id;
	params[1] = half;
	/*
	 * The display name is dropped at check-out: the host keeps only what
	 * accounting needs once the visitor has left.
	 */
	res = db_query(conn,
	    "update host_visits set status = 'closed', checked_out_at = now(),"
	    "  display_name = null,"
	    "  units = case when now() - checked_in_at <= make_interval(secs => $2)"
	    "    then 1 else 2 end"
	    " where visit_id = $1 and status = 'open'"
	    " returning home, units, to_char(checked_in_at at time zone 'UTC',"
	    "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char(checked_out_at at time zone 'UTC',"
	    "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", 2, params);
	if (res == NULL)
		goto db_error_rollback;
	if (PQntuples(res) == 0) {
		PQclear(res);
		res = db_query(conn, "select status, home, units from host_visits"
		    " where visit_id = $1", 1, params);
		db_rollback(conn);
		if (res == NULL)
			goto db_error;
		if (PQntuples(res) == 0) {
			snprintf(err, errlen, "no visit %s here", visit_id);
			r = -ENOENT;
		} else if (strcmp(PQgetvalue(res, 0, 0), "closed") == 0) {
			ret->already = true;
			util_strlcpy(ret->home, PQgetvalue(res, 0, 1), sizeof(ret->home));
			ret->units = atoi(PQgetvalue(res, 0, 2));
			r = 0;
		} else {
			snprintf(err, errlen, "visit %s is %s, not open", visit_id,
			    PQgetvalue(res, 0, 0));
			r = -EINVAL;
		}
		PQclear(res);
		return r;
	}
	util_strlcpy(ret->home, PQgetvalue(res, 0, 0), sizeof(ret->home));
	ret->units = atoi(PQgetvalue(res, 0, 1));
	if (strcmp(ret->home, node_space_id(node)) == 0) {
		const char *p3[3] = { visit_id, PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 1) };

		r = db_exec(conn, "update home_visits set checked_out_at = $2, units = $3"
		    " where visit_id = $1 and checked_out_at is null", 3, p3);
		ret->reported = true;
	} else {
		cJSON *o = cJSON_CreateObject();
		char *payload;

		cJSON_AddStringToObject(o, "visit_id", visit_id);
		cJSON_AddStringToObject(o, "checked_in_at", PQgetvalue(res, 0, 2));
		cJSON_AddStringToObject(o, "checked_out_at", PQgetvalue(res, 0, 3));
		cJSON_AddNumberToObject(o, "units", ret->units);
		payload = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		r = payload != NULL ? outbox_add(conn, ret->home, OUTBOX_COMPLETE, visit_id,
		    payload, outbox_id, sizeof(outbox_id)) : -ENOMEM;
		free(payload);
	}
	PQclear(res);
	if (r < 0 || db_commit(conn) < 0)
		goto db_error_rollback;
	/* Deliver now if the home answers; the outbox keeps it otherwise. */
	if (outbox_id[0] != '\0' && pc != NULL)
		ret->reported = outbox_deliver_one(node, conn, pc, outbox_id) == 1;
	return 0;

db_error_rollback:
	db_rollback(conn);
db_error:
	snprintf(err, errlen, "this node cannot reach its database");
	return -EIO;
}

cJSON *
visit_list_present(PGconn *conn)
{
	PGresult *res;
	cJSON *a;

	res = db_query(conn,
	    "select visit_id, home, pseudonym, coalesce(display_name, ''),"
	    "  coalesce(plan, ''), to_char(checked_in_at at time zone 'UTC',"
	    "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), tickets_left"
	    " from host_visits where status = 'open' order by checked_in_at", 0, NULL);
	if (res == NULL)
		return NULL;
	a = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "visit_id", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(o, "home", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(o, "member", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(o, "display_name", PQgetvalue(res, i, 3));
		cJSON_AddStringToObject(o, "plan", PQgetvalue(res, i, 4));
		cJSON_AddStringToObject(o, "checked_in_at", PQgetvalue(res, i, 5));
		if (!PQgetisnull(res, i, 6))
			cJSON_AddNumberToObject(o, "tickets_left", atoi(PQgetvalue(res, i, 6)));
		cJSON_AddItemToArray(a, o);
	}
	PQclear(res);
	return a;
}
