/*
 * home.c - the home node's decisions about its members' visits.
 *
 * Why one transaction with the member row locked: two hosts may present the
 * same pass at the same moment; the lock makes the second wait, so exactly
 * one is admitted and exactly one ticket is debited: the second reads the
 * member again when the first changed the row, and otherwise loses on the
 * partial unique index home_visits_one_open and decides again
 * (home_member_sql).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "db.h"
#include "home.h"
#include "jws.h"
#include "log.h"
#include "pass.h"
#include "terms.h"
#include "util.h"
#include "visit.h"

/*
 * The request hash of a visit id voided before it was authorized (no
 * request's SHA-256 in hex is this): home_void_first, home_decide.
 */
#define HOME_VOID_HASH "void"

static int home_void_first(struct node *node, PGconn *conn, const char *host,
    const char *visit_id, const char *sub, const char *checked_in_at,
    const char *checked_out_at, const char *completion, bool *ret_already);

char *
home_error_body(const char *error, const char *detail)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	cJSON_AddStringToObject(o, "error", error);
	cJSON_AddStringToObject(o, "detail", detail);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* What identifies a request: a retry must match it exactly. */
static void
home_request_hash(const struct home_request *req, char out[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char rate[48];
	const char *parts[4] = { req->host, req->visit_id, req->token, rate };
	uint8_t h[32];
	unsigned int n = 0;

	snprintf(rate, sizeof(rate), "%d %s", req->rate_cents,
	    req->currency != NULL ? req->currency : "-");
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(parts); i++) {
		EVP_DigestUpdate(md, parts[i], strlen(parts[i]));
		EVP_DigestUpdate(md, "\n", 1);
	}
	EVP_DigestFinal_ex(md, h, &n);
	EVP_MD_CTX_free(md);
	util_hex(h, 32, out);
}

struct home_answer {
	const struct home_request *req;
	const struct pass_claims *claims;
	bool admitted;
	const char *reason_code;
	char reason[320];
	const char *display_name;
	const char *plan;
	int tickets_left;
};

static void
home_refuse(struct home_answer *a, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
home_refuse(struct home_answer *a, const char *code, const char *fmt, ...)
{
	va_list ap;

	a->admitted = false;
	a->reason_code = code;
	va_start(ap, fmt);
	vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
	va_end(ap);
}

/*
 * The receipt: the home's signature over its decision (and the rate the
 * host announced), verifiable by the host and by anyone holding the
 * directory.
 */
static char *
home_sign_receipt(struct node *node, const struct home_answer *a)
{
	cJSON *p = cJSON_CreateObject();
	char *token = NULL;

	cJSON_AddStringToObject(p, "visit_id", a->req->visit_id);
	cJSON_AddStringToObject(p, "home", node_space_id(node));
	cJSON_AddStringToObject(p, "host", a->req->host);
	cJSON_AddStringToObject(p, "sub", a->claims->sub);
	cJSON_AddStringToObject(p, "jti", a->claims->jti);
	cJSON_AddStringToObject(p, "decision", a->admitted ? "admit" : "refuse");
	if (a->reason_code != NULL)
		cJSON_AddStringToObject(p, "reason_code", a->reason_code);
	if (a->tickets_left >= 0)
		cJSON_AddNumberToObject(p, "tickets_left", a->tickets_left);
	if (a->req->rate_cents >= 0 && a->req->currency != NULL) {
		cJSON_AddNumberToObject(p, "rate_cents", a->req->rate_cents);
		cJSON_AddStringToObject(p, "currency", a->req->currency);
	}
	cJSON_AddNumberToObject(p, "iat", (double)util_now());
	(void)node_sign(node, "receipt", p, &token);
	cJSON_Delete(p);
	return token;
}

static char *
home_answer_body(struct node *node, const struct home_answer *a)
{
	cJSON *o = cJSON_CreateObject();
	char *receipt = home_sign_receipt(node, a), *s;

	cJSON_AddStringToObject(o, "visit_id", a->req->visit_id);
	cJSON_AddStringToObject(o, "home", node_space_id(node));
	cJSON_AddStringToObject(o, "host", a->req->host);
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

/* A stored answer (hash and body) for the visit: 1 used, 0 none. */
static int
home_stored_answer(const char *stored_hash, const char *stored_body,
    const char *hash, int *ret_status, char **ret_body)
{
	if (stored_hash == NULL)
		return 0;
	if (strcmp(stored_hash, hash) == 0) {
		*ret_status = 200;
		*ret_body = strdup(stored_body);
	} else {
		*ret_status = 409;
		*ret_body = home_error_body("conflict",
		    "this visit id was already used with a different request");
	}
	return 1;
}

/*
 * Everything a decision reads, in one statement that locks the member's
 * row (FOR UPDATE): the member and their pass, an answer already stored
 * for this visit id, the place they are checked in at, their roaming this
 * month (when their plan caps it), and the terms with the host.  When the
 * lock had to wait for a transaction that changed the member's row (a
 * decision that debited a ticket, a completion's refund or extra units, a
 * manager), the row is read as that transaction left it but the visits as
 * they were before it: HM_MOVED says so (the row locked is not the one the
 * statement's snapshot sees), and the statement is run again, under the
 * lock.  A concurrent decision that only locked the row (a monthly plan's)
 * changed no visit unless it admitted one, and a second admission then
 * loses on home_visits_one_open (a second answer for the same visit id on
 * home_visits' key) and is taken again (-EAGAIN).  Only the token issued
 * under the pass's id (by its digest; or a pass issued before digests
 * were kept) finds the row, and so takes the lock: a forgery naming a real
 * pass is refused without waiting for, or holding up, that member's
 * check-ins.
 */
enum {
	HM_ID, HM_STATUS, HM_PLAN, HM_NAME, HM_TICKETS, HM_VALID, HM_REVOKED,
	HM_FROM, HM_UNTIL, HM_ROAM_CAP, HM_STORED_HASH, HM_STORED_BODY, HM_OPEN_AT,
	HM_ROAMED, HM_ISSUED, HM_MOVED, HM_TERMS
};
static const char home_member_sql[] =
    "select m.id, m.status, m.plan, m.display_name, m.tickets,"
    "  (m.valid_until is null or m.valid_until >= (now() at time zone $3)::date)"
    "  and (m.valid_from is null or m.valid_from <= (now() at time zone $3)::date),"
    "  p.revoked_at is not null, m.valid_from::text, m.valid_until::text,"
    "  m.roam_cap,"
    "  s.request_hash, s.response,"
    "  (select o.host from home_visits o where o.member_id = m.id"
    "   and o.decision = 'admit' and o.checked_out_at is null limit 1),"
    "  case when m.roam_cap is not null then"
    "   (select coalesce(sum(coalesce(r.units, 1)), 0) from home_visits r"
    "    where r.member_id = m.id and r.host <> $6 and r.decision = 'admit'"
    "    and r.authorized_at >= date_trunc('month', now() at time zone $3)"
    "     at time zone $3) end,"
    "  p.digest = decode($7, 'hex'),"
    "  m.ctid <> (select x.ctid from members x where x.id = m.id),"
    "  " TERMS_COLUMNS
    " from passes p join members m on m.id = p.member_id"
    " left join home_visits s on s.visit_id = $4::uuid"
    " left join peer_terms t on t.peer = $5"
    " where p.jti = $1 and m.pseudonym = $2"
    " and (p.digest is null or p.digest = decode($7, 'hex')) for update of m";

/* The member's standing and plan, the roaming terms and caps, one place at a time. */
static void
home_check_rules(struct node *node, PGresult *m, struct home_answer *a)
{
	bool roaming = strcmp(a->req->host, node_space_id(node)) != 0;
	struct terms t;

	terms_from_row(node_config(node), m, 0, HM_TERMS, &t);
	if (strcmp(PQgetvalue(m, 0, HM_REVOKED), "t") == 0) {
		home_refuse(a, "revoked", "This pass has been revoked by its home space.");
	} else if (strcmp(PQgetvalue(m, 0, HM_STATUS), "active") != 0) {
		home_refuse(a, "suspended", "This membership is suspended at its home space.");
	} else if (strcmp(PQgetvalue(m, 0, HM_VALID), "t") != 0) {
		home_refuse(a, "plan_expired", "This member's plan is not valid today"
		    " (valid %s to %s) at their home space.",
		    PQgetisnull(m, 0, HM_FROM) ? "from the start" : PQgetvalue(m, 0, HM_FROM),
		    PQgetisnull(m, 0, HM_UNTIL) ? "the end" : PQgetvalue(m, 0, HM_UNTIL));
	} else if (roaming && !t.allow_roaming) {
		home_refuse(a, "roaming_not_allowed", "This member's home space does"
		    " not let its members work at %s.", a->req->host);
	} else if (roaming && !PQgetisnull(m, 0, HM_ROAM_CAP) &&
	    atoi(PQgetvalue(m, 0, HM_ROAMED)) >= atoi(PQgetvalue(m, 0, HM_ROAM_CAP))) {
		/* The monthly plan's cap of half-days spent at other spaces. */
		home_refuse(a, "roaming_cap", "This member has used the %d half-days"
		    " a month their plan allows at other spaces.",
		    atoi(PQgetvalue(m, 0, HM_ROAM_CAP)));
	} else if (a->tickets_left == 0) {
		home_refuse(a, "no_tickets", "No half-day tickets left: the member can"
		    " top up at their home space.");
	} else if (!PQgetisnull(m, 0, HM_OPEN_AT)) {
		home_refuse(a, "already_checked_in", "Already checked in at %s:"
		    " check out there first.", PQgetvalue(m, 0, HM_OPEN_AT));
	}
}

/* The refusal of a pass that does not verify (not stored: nothing to record). */
static char *
home_bad_pass_body(struct node *node, const struct home_request *req, int pr)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	cJSON_AddStringToObject(o, "visit_id", req->visit_id);
	cJSON_AddStringToObject(o, "home", node_space_id(node));
	cJSON_AddStringToObject(o, "host", req->host);
	cJSON_AddStringToObject(o, "decision", "refuse");
	cJSON_AddStringToObject(o, "reason_code", pass_error_code(pr));
	cJSON_AddStringToObject(o, "reason", pass_error_message(pr));
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/*
 * The answer to a pass that does not verify: none is recorded, but a repeat
 * of a request answered while the pass was valid (an outbox delivering
 * late) gets that answer.  m is the member's row when it was read (with
 * the stored answer), NULL to look the answer up.
 */
static int
home_bad_pass(struct node *node, PGconn *conn, const struct home_request *req,
    const char *hash, int pr, PGresult *m, int *ret_status, char **ret_body)
{
	PGresult *res = NULL;
	const char *stored_hash = NULL, *stored_body = NULL;
	int r;

	if (m == NULL) {
		const char *params[1] = { req->visit_id };

		res = db_query(conn, "select request_hash, response"
		    " from home_visits where visit_id = $1", 1, params);
		if (res == NULL)
			return -EIO;
		if (PQntuples(res) == 1) {
			stored_hash = PQgetvalue(res, 0, 0);
			stored_body = PQgetvalue(res, 0, 1);
		}
	} else if (!PQgetisnull(m, 0, HM_STORED_HASH)) {
		stored_hash = PQgetvalue(m, 0, HM_STORED_HASH);
		stored_body = PQgetvalue(m, 0, HM_STORED_BODY);
	}
	r = home_stored_answer(stored_hash, stored_body, hash, ret_status, ret_body);
	PQclear(res);
	if (r == 0) {
		*ret_status = 200;
		*ret_body = home_bad_pass_body(node, req, pr);
	}
	return 0;
}

/*
 * The pass's checks against the directory (the key must be one the home
 * publishes), with its signature when signature is set.
 */
static int
home_check_pass(struct node *node, const struct home_request *req, bool signature,
    struct pass_claims *ret)
{
	const struct config *cfg = node_config(node);
	struct node_directory *nd = node_directory_get(node);
	int pr;

	pr = (signature ? pass_verify : pass_read)(req->token, util_now(),
	    cfg->pass_leeway, directory_pass_key_lookup, nd != NULL ? nd->dir : NULL, ret);
	node_directory_put(node, nd);
	if (pr == PASS_OK && strcmp(ret->iss, node_space_id(node)) != 0)
		pr = PASS_ERR_UNKNOWN_KEY;
	return pr;
}

/* The decision and the ticket it costs, recorded in one statement. */
static const char home_record_sql[] =
    "with debit as (update members set tickets = tickets - 1"
    "   where id = $3 and $11::boolean returning id),"
    " movement as (insert into ticket_movements"
    "   (member_id, delta, reason, visit_id, actor)"
    "   select id, -1, 'visit', $1, 'host:' || $2 from debit)"
    " insert into home_visits (visit_id, host, member_id, jti, decision,"
    " reason_code, request_hash, response, rate_cents, currency, ticket_per_unit)"
    " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12)";

/*
 * Decides in the transaction the caller began; commits it when commit is
 * set (the record and the COMMIT in one round trip).  0 with the status and
 * body set; -EAGAIN when a concurrent request won (the caller rolls back
 * and asks again); <0 on a database error.
 */
static int
home_decide_txn(struct node *node, PGconn *conn, const struct home_request *req,
    const char *hash, const struct pass_claims *claims, bool commit,
    int *ret_status, char **ret_body)
{
	const struct config *cfg = node_config(node);
	struct home_answer a;
	PGresult *m = NULL;
	char rate[16];
	char digest[65];
	const char *params[7] = { claims->jti, claims->sub, cfg->timezone, req->visit_id,
		req->host, node_space_id(node), digest };
	bool debit;
	int r;

	pass_digest(req->token, digest);
	memset(&a, 0, sizeof(a));
	a.req = req;
	a.claims = claims;
	a.tickets_left = -1;
	a.admitted = true;

	{
		/*
		 * It is costly to plan, and its generic plan is right (so
		 * is the record's, which ends the transaction when this function
		 * commits it; a caller's transaction gets the default back).
		 */
		const struct db_call calls[3] = { { DB_GENERIC_PLANS, 0, NULL },
			{ home_member_sql, 7, params }, { DB_AUTO_PLANS, 0, NULL } };
		PGresult *res[3] = { NULL, NULL, NULL };

		if (db_pipeline(conn, calls, commit ? 2 : 3, res) < 0)
			return -EIO;
		PQclear(res[0]);
		PQclear(res[2]);
		m = res[1];
	}
	if (PQntuples(m) == 1 && strcmp(PQgetvalue(m, 0, HM_MOVED), "t") == 0) {
		/* Read again under the lock (home_member_sql). */
		PQclear(m);
		m = db_query(conn, home_member_sql, 7, params);
		if (m == NULL)
			return -EIO;
	}
	if (PQntuples(m) != 1 || strcmp(PQgetvalue(m, 0, HM_ISSUED), "t") != 0) {
		/*
		 * Not a token issued here as it stands (or issued before its
		 * digest was kept): its signature decides.
		 */
		struct pass_claims verified;
		int pr = home_check_pass(node, req, true, &verified);

		if (pr != PASS_OK) {
			r = home_bad_pass(node, conn, req, hash, pr,
			    PQntuples(m) == 1 ? m : NULL, ret_status, ret_body);
			PQclear(m);
			if (r < 0)
				return r;
			goto done;
		}
	}
	if (PQntuples(m) != 1) {
		/*
		 * Nothing to record: no member of ours stands behind this pass, or
		 * the token is not the one issued under its id (signed with our
		 * key all the same: only a leaked key makes one).
		 */
		PQclear(m);
		home_refuse(&a, "unknown_pass", "This pass is not known at its home"
		    " space: ask the member for a new pass.");
		*ret_status = 200;
		*ret_body = home_answer_body(node, &a);
		goto done;
	}
	if (!PQgetisnull(m, 0, HM_STORED_HASH) &&
	    strcmp(PQgetvalue(m, 0, HM_STORED_HASH), HOME_VOID_HASH) == 0) {
		/* The host voided this visit before asking (home_complete_visit). */
		PQclear(m);
		home_refuse(&a, "voided", "The host space withdrew this check-in"
		    " before it was decided: scan the pass again.");
		*ret_status = 200;
		*ret_body = home_answer_body(node, &a);
		goto done;
	}
	if (home_stored_answer(PQgetisnull(m, 0, HM_STORED_HASH) ? NULL :
	    PQgetvalue(m, 0, HM_STORED_HASH), PQgetvalue(m, 0, HM_STORED_BODY), hash,
	    ret_status, ret_body)) {
		PQclear(m);
		goto done;
	}
	a.display_name = PQgetvalue(m, 0, HM_NAME);
	a.plan = PQgetvalue(m, 0, HM_PLAN);
	if (strcmp(a.plan, "tickets") == 0)
		a.tickets_left = atoi(PQgetvalue(m, 0, HM_TICKETS));
	home_check_rules(node, m, &a);
	/* The member row is locked: the debit leaves exactly one ticket less. */
	debit = a.admitted && a.tickets_left > 0;
	if (debit)
		a.tickets_left--;
	*ret_body = home_answer_body(node, &a);
	if (*ret_body == NULL) {
		r = -ENOMEM;
		goto out;
	}
	snprintf(rate, sizeof(rate), "%d", req->rate_cents);
	{
		struct terms t;
		const char *p12[12];

		/* The terms of the visit, frozen with it (schema/016). */
		terms_from_row(node_config(node), m, 0, HM_TERMS, &t);
		p12[0] = req->visit_id;
		p12[1] = req->host;
		p12[2] = PQgetvalue(m, 0, HM_ID);
		p12[3] = claims->jti;
		p12[4] = a.admitted ? "admit" : "refuse";
		p12[5] = a.reason_code;
		p12[6] = hash;
		p12[7] = *ret_body;
		p12[8] = req->rate_cents >= 0 ? rate : NULL;
		p12[9] = req->currency;
		p12[10] = debit ? "t" : "f";
		p12[11] = t.ticket_per_unit ? "t" : "f";
		/* A concurrent decision's record (above) is no failure of ours. */
		db_expect(SQLSTATE_UNIQUE_VIOLATION);
		r = commit ? db_exec_commit(conn, home_record_sql, 12, p12) :
		    db_exec(conn, home_record_sql, 12, p12);
		db_expect(NULL);
		if (r < 0) {
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
	PQclear(m);
	return r;
done:
	/* Answered without a record: the transaction only ends. */
	if (commit && db_commit(conn) < 0) {
		free(*ret_body);
		*ret_body = NULL;
		return -EIO;
	}
	return 0;
}

int
home_decide(struct node *node, PGconn *conn, const struct home_request *req,
    bool in_txn, int *ret_status, char **ret_body)
{
	struct pass_claims claims;
	char hash[65];
	int r, pr;

	*ret_body = NULL;
	if (!visit_id_valid(req->visit_id)) {
		*ret_status = 400;
		*ret_body = home_error_body("bad_request", "visit_id must be a lower-case UUID");
		return 0;
	}
	home_request_hash(req, hash);
	/*
	 * All but the signature now; the token is then looked for among those
	 * issued here, and its signature checked only when it is not found
	 * (home_decide_txn).  A token that fails these checks is verified in
	 * full, for the same answer as before.
	 */
	pr = home_check_pass(node, req, false, &claims);
	if (pr != PASS_OK)
		pr = home_check_pass(node, req, true, &claims);
	if (pr != PASS_OK)
		return home_bad_pass(node, conn, req, hash, pr, NULL, ret_status, ret_body) < 0 ?
		    -EIO : 0;
	for (int attempt = 0; attempt < HOME_DECIDE_ATTEMPTS; attempt++) {
		if (!in_txn && db_begin(conn) < 0)
			return -EIO;
		r = home_decide_txn(node, conn, req, hash, &claims, !in_txn, ret_status,
		    ret_body);
		if (r == 0 || in_txn)
			return r;
		db_rollback(conn);
		if (r != -EAGAIN)
			return r;
	}
	log_warnx("visit %s: the decision lost to concurrent ones %d times",
	    req->visit_id, HOME_DECIDE_ATTEMPTS);
	return -EIO;
}

void
home_authorize(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, int *ret_status, char **ret_body)
{
	const cJSON *vid = cJSON_GetObjectItemCaseSensitive(req, "visit_id");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(req, "pass");
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(req, "currency");
	struct home_request hr;

	hr.rate_cents = -1;
	if (!cJSON_IsString(vid) || !cJSON_IsString(tok) ||
	    util_json_int(req, "rate_cents", 0, 10000000, false, &hr.rate_cents) < 0 ||
	    (cur != NULL && (!cJSON_IsString(cur) || strlen(cur->valuestring) != 3))) {
		*ret_status = 400;
		*ret_body = home_error_body("bad_request", "expected {\"visit_id\": UUID,"
		    " \"pass\": TOKEN, \"rate_cents\": N, \"currency\": \"EUR\"}");
		return;
	}
	if (strlen(tok->valuestring) > PASS_MAX_TOKEN) {
		*ret_status = 400;
		*ret_body = home_error_body("bad_request", "the pass is too long");
		return;
	}
	hr.host = host;
	hr.visit_id = vid->valuestring;
	hr.token = tok->valuestring;
	hr.currency = cur != NULL ? cur->valuestring : NULL;
	if (home_decide(node, conn, &hr, false, ret_status, ret_body) < 0) {
		*ret_status = 503;
		*ret_body = home_error_body("unavailable",
		    "the home node cannot reach its database; retry");
	}
}

int
home_complete_visit(struct node *node, PGconn *conn, const char *host,
    const char *visit_id, const char *sub, const char *checked_in_at,
    const char *checked_out_at, int units, const char *completion, bool in_txn,
    bool *ret_already)
{
	const struct config *cfg = node_config(node);
	char units_s[16];
	const char *params[6] = { visit_id, host, checked_out_at, units_s, completion,
		checked_in_at };
	PGresult *res;
	int r = -EIO;

	*ret_already = false;
	snprintf(units_s, sizeof(units_s), "%d", units);
	if (!in_txn && db_begin(conn) < 0)
		return -EIO;
	/*
	 * The first report sets the times; a duplicate or a late repeat finds
	 * them set and changes nothing.  The visit is found and locked by its
	 * key first: "checked_out_at is null" in the update's own condition
	 * lets a generic plan scan the whole partial index of open visits
	 * (home_visits_one_open, which matches it), 2 ms instead of 30 us
	 * with thousands of visits open.
	 */
	res = db_query(conn,
	    "with cur as materialized (select visit_id, checked_out_at"
	    "   from home_visits where visit_id = $1 and host = $2"
	    "   and decision = 'admit' for update)"
	    " update home_visits v set checked_out_at = $3, units = $4, completion = $5,"
	    " checked_in_at = $6"
	    " from cur, members m where v.visit_id = cur.visit_id"
	    " and cur.checked_out_at is null and m.id = v.member_id"
	    " returning v.member_id, m.plan, v.ticket_per_unit", 6, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		PQclear(res);
		res = db_query(conn, "select 1 from home_visits where visit_id = $1"
		    " and host = $2 and decision = 'admit'", 2, params);
		if (res == NULL)
			goto out;
		r = PQntuples(res) == 1 ? 0 : -ENOENT;
		*ret_already = r == 0;
		PQclear(res);
		if (r == -ENOENT && units == 0 && sub != NULL)
			r = home_void_first(node, conn, host, visit_id, sub, checked_in_at,
			    checked_out_at, completion, ret_already);
		goto out;
	}
	if (units == 0) {
		/*
		 * A void completion: the host gave up on this visit (it never
		 * let the member in), so the ticket debited for it goes back.
		 */
		const char *p2[2] = { PQgetvalue(res, 0, 0), visit_id };
		PGresult *d = db_query(conn,
		    "with paid as (select 1 from ticket_movements where visit_id = $2"
		    "   and reason = 'visit'),"
		    " refund as (insert into ticket_movements (member_id, delta, reason,"
		    "   visit_id, actor) select $1, 1, 'refund', $2, 'void' from paid"
		    "   returning 1)"
		    " update members set tickets = tickets + (select count(*) from refund)"
		    " where id = $1", 2, p2);

		if (d == NULL) {
			PQclear(res);
			goto out;
		}
		PQclear(d);
	}
	if (units > 1 && strcmp(PQgetvalue(res, 0, 1), "tickets") == 0) {
		struct terms t;

		/* Frozen at the decision; read from the terms for older visits. */
		if (!PQgetisnull(res, 0, 2))
			t.ticket_per_unit = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
		else if (terms_get(cfg, conn, host, &t) < 0) {
			PQclear(res);
			goto out;
		}
		if (t.ticket_per_unit) {
			/*
			 * One ticket per unit: the check-in paid the first; the
			 * others are debited as far as the balance goes (never
			 * below zero), and what it cannot cover is kept on the
			 * visit for the manager.
			 */
			char extra[16];
			const char *p4[4] = { PQgetvalue(res, 0, 0), extra, visit_id, host };
			PGresult *d;

			snprintf(extra, sizeof(extra), "%d", units - 1);
			d = db_query(conn,
			    "with m as (select id, least(tickets, $2::int) as n from members"
			    "   where id = $1 for update),"
			    " debit as (update members set tickets = tickets - m.n from m"
			    "   where members.id = m.id returning m.n),"
			    " movement as (insert into ticket_movements (member_id, delta,"
			    "   reason, visit_id, actor) select $1, -n, 'visit_unit', $3,"
			    "   'host:' || $4 from debit where n > 0)"
			    " update home_visits set unpaid_units = $2::int - (select n from debit)"
			    " where visit_id = $3", 4, p4);
			if (d == NULL) {
				PQclear(res);
				goto out;
			}
			PQclear(d);
		}
	}
	PQclear(res);
	r = 0;
out:
	if (!in_txn) {
		/* -ENOENT may have kept a void (home_void_first). */
		if ((r == 0 || r == -ENOENT) && db_commit(conn) < 0)
			r = -EIO;
		else if (r != 0 && r != -ENOENT)
			db_rollback(conn);
	}
	return r;
}

/*
 * The host's completion must be its signature over this very report: same
 * visit, same host (the caller), this home, same times and units.  0 when
 * it is; -ENOENT when it is signed with a key our directory does not list
 * (the host's new key, in a directory we have yet to fetch: asked for
 * here); -EBADMSG otherwise.
 */
static int
home_completion_ok(struct node *node, const char *host, const char *token,
    const char *visit_id, const char *out, int units, char *ret_sub, size_t sublen)
{
	cJSON *p = NULL;
	const cJSON *v, *h, *m, *o, *u, *sub;
	bool ok;
	int r;

	r = node_verify_signed(node, token, "completion", host, &p);
	if (r == -ENOENT) {
		node_directory_hint(node, host, node_directory_serial(node) + 1);
		return -ENOENT;
	}
	if (r < 0)
		return -EBADMSG;
	v = cJSON_GetObjectItemCaseSensitive(p, "visit_id");
	h = cJSON_GetObjectItemCaseSensitive(p, "host");
	m = cJSON_GetObjectItemCaseSensitive(p, "home");
	o = cJSON_GetObjectItemCaseSensitive(p, "checked_out_at");
	u = cJSON_GetObjectItemCaseSensitive(p, "units");
	ok = cJSON_IsString(v) && strcmp(v->valuestring, visit_id) == 0 &&
	    cJSON_IsString(h) && strcmp(h->valuestring, host) == 0 &&
	    cJSON_IsString(m) && strcmp(m->valuestring, node_space_id(node)) == 0 &&
	    cJSON_IsString(o) && strcmp(o->valuestring, out) == 0 &&
	    cJSON_IsNumber(u) && u->valueint == units;
	sub = cJSON_GetObjectItemCaseSensitive(p, "sub");
	util_strlcpy(ret_sub, cJSON_IsString(sub) ? sub->valuestring : "", sublen);
	cJSON_Delete(p);
	return ok ? 0 : -EBADMSG;
}

/*
 * A void of a visit not admitted, or not yet: its id is kept as a refused
 * visit (request_hash HOME_VOID_HASH), so that an authorization still on
 * its way is refused (home_decide) instead of admitted behind the void
 * (docs/reliability.md).  An authorization recorded meanwhile takes the id
 * first: the void is then applied to it.  -ENOENT when there was nothing
 * to void (answered nothing_to_void).
 */
static int
home_void_first(struct node *node, PGconn *conn, const char *host,
    const char *visit_id, const char *sub, const char *checked_in_at,
    const char *checked_out_at, const char *completion, bool *ret_already)
{
	const char *params[4] = { visit_id, host, sub, HOME_VOID_HASH };
	PGresult *res;
	bool kept;

	/*
	 * The member's row is locked first, as an authorization locks it
	 * before it records the visit: the other order deadlocks with one in
	 * flight (this insert's key against its foreign-key check).
	 */
	res = db_query(conn, "with kept as (insert into home_visits (visit_id, host,"
	    "   member_id, jti, decision, reason_code, request_hash, response,"
	    "   checked_out_at, units)"
	    "  select $1, $2, m.id, '', 'refuse', 'voided', $4, '', now(), 0"
	    "  from members m where m.pseudonym = $3 for update"
	    "  on conflict (visit_id) do nothing returning 1)"
	    " select exists (select from kept)", 4, params);
	if (res == NULL)
		return -EIO;
	kept = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (kept)
		return -ENOENT;
	/*
	 * The id is taken (or the member unknown): the void again, in the
	 * transaction home_complete_visit began or was given, with statements
	 * that see an admission committed since its first look; without a sub,
	 * nothing is kept this time.
	 */
	return home_complete_visit(node, conn, host, visit_id, NULL, checked_in_at,
	    checked_out_at, 0, completion, true, ret_already);
}

/*
 * One completion of a host, in the caller's transaction: the HTTP status of
 * its answer (200, 400, 404, or 503 for a key we do not know yet: the host
 * sends it again) with the answer in *ret, or -EIO (database).
 */
static int
home_complete_item(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, cJSON **ret)
{
	const cJSON *vid = cJSON_GetObjectItemCaseSensitive(req, "visit_id");
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(req, "checked_in_at");
	const cJSON *out = cJSON_GetObjectItemCaseSensitive(req, "checked_out_at");
	const cJSON *units = cJSON_GetObjectItemCaseSensitive(req, "units");
	const cJSON *completion = cJSON_GetObjectItemCaseSensitive(req, "completion");
	cJSON *o = cJSON_CreateObject();
	bool already = false;
	char sub[64];
	int64_t t;
	int r;

	*ret = o;
	if (!cJSON_IsString(vid) || !visit_id_valid(vid->valuestring) ||
	    !cJSON_IsString(out) || util_parse_time(out->valuestring, &t) < 0 ||
	    !cJSON_IsString(in) || util_parse_time(in->valuestring, &t) < 0 ||
	    !cJSON_IsNumber(units) || units->valueint < 0 || units->valueint > 100 ||
	    !cJSON_IsString(completion)) {
		cJSON_AddStringToObject(o, "error", "bad_request");
		cJSON_AddStringToObject(o, "detail", "expected {\"visit_id\": UUID,"
		    " \"checked_in_at\": RFC3339, \"checked_out_at\": RFC3339,"
		    " \"units\": N, \"completion\": JWS}");
		return 400;
	}
	r = home_completion_ok(node, host, completion->valuestring, vid->valuestring,
	    out->valuestring, units->valueint, sub, sizeof(sub));
	if (r == -ENOENT) {
		cJSON_AddStringToObject(o, "error", "unknown_key");
		cJSON_AddStringToObject(o, "detail", "the completion is signed with a"
		    " key this node's directory does not list yet: it is fetching a"
		    " newer directory; send it again later");
		return 503;
	}
	if (r < 0) {
		cJSON_AddStringToObject(o, "error", "bad_completion");
		cJSON_AddStringToObject(o, "detail", "the completion is not the calling"
		    " space's signature over this visit's report");
		return 400;
	}
	r = home_complete_visit(node, conn, host, vid->valuestring,
	    sub[0] != '\0' ? sub : NULL, in->valuestring, out->valuestring,
	    units->valueint, completion->valuestring, true, &already);
	if (r == 0) {
		cJSON_AddStringToObject(o, "status", already ? "already_recorded" :
		    "recorded");
		return 200;
	}
	if (r == -ENOENT && units->valueint == 0) {
		/* A void of a visit we never admitted: nothing to undo. */
		cJSON_AddStringToObject(o, "status", "nothing_to_void");
		return 200;
	}
	if (r == -ENOENT) {
		cJSON_AddStringToObject(o, "error", "unknown_visit");
		cJSON_AddStringToObject(o, "detail",
		    "no admitted visit with this id from your space");
		return 404;
	}
	return -EIO;
}

void
home_complete(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, int *ret_status, char **ret_body)
{
	cJSON *o;
	int r = home_complete_item(node, conn, host, req, &o);

	if (r < 0) {
		*ret_status = 503;
		*ret_body = home_error_body("unavailable", "database unavailable; retry");
	} else {
		*ret_status = r;
		*ret_body = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(o);
}

void
home_complete_batch(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, int *ret_status, char **ret_body)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(req, "completions");
	const cJSON *item;
	cJSON *o, *results;
	int n = cJSON_GetArraySize(list);

	if (!cJSON_IsArray(list) || n < 1 || n > HOME_BATCH_MAX) {
		*ret_status = 400;
		*ret_body = home_error_body("bad_request", "expected {\"completions\":"
		    " [COMPLETION, ...]} with 1 to " UTIL_STR(HOME_BATCH_MAX) " items");
		return;
	}
	o = cJSON_CreateObject();
	results = cJSON_AddArrayToObject(o, "results");
	cJSON_ArrayForEach(item, list) {
		const cJSON *vid = cJSON_GetObjectItemCaseSensitive(item, "visit_id");
		cJSON *answer, *res = cJSON_CreateObject();
		int r = home_complete_item(node, conn, host, item, &answer);

		if (r < 0) {
			cJSON_Delete(answer);
			cJSON_Delete(res);
			cJSON_Delete(o);
			*ret_status = 503;
			*ret_body = home_error_body("unavailable", "database unavailable; retry");
			return;
		}
		cJSON_AddStringToObject(res, "visit_id", cJSON_IsString(vid) ?
		    vid->valuestring : "");
		cJSON_AddNumberToObject(res, "status", r);
		cJSON_AddItemToObject(res, "answer", answer);
		cJSON_AddItemToArray(results, res);
	}
	*ret_status = 200;
	*ret_body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}
