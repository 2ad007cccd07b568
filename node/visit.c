/*
 * visit.c - the host's side of a visit: check-in, check-out, who is here.
 *
 * A check-in verifies the pass offline, applies the terms with the member's
 * home and the house rules (hours, seats, the visitor's monthly cap), records
 * a pending visit that holds a seat, then asks the home (home.c decides
 * about its own members in the same transaction, with no peer call).  The
 * pending row is written before the home is asked, so that a crash in
 * between leaves a trace to resolve rather than a debit nobody knows of.
 *
 * The home's decisions are in home.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "db.h"
#include "home.h"
#include "house.h"
#include "jws.h"
#include "log.h"
#include "outbox.h"
#include "pass.h"
#include "terms.h"
#include "util.h"
#include "visit.h"


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
	cJSON *rp = NULL;
	int r;

	if (o == NULL || !cJSON_IsObject(o)) {
		visit_refuse(d, "home_error", "The home space sent an unreadable answer.");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "decision");
	decision = cJSON_IsString(v) ? v->valuestring : "";
	d->home_admitted = strcmp(decision, "admit") == 0;
	v = cJSON_GetObjectItemCaseSensitive(o, "reason_code");
	if (cJSON_IsString(v)) {
		/* Shown at the desk and exported to CSV: a code, never a text. */
		size_t n = strlen(v->valuestring);

		if (n < 1 || n > 32 || strspn(v->valuestring,
		    "abcdefghijklmnopqrstuvwxyz_") != n) {
			visit_refuse(d, "home_error", "The home space sent an unreadable answer.");
			goto out;
		}
		util_strlcpy(d->reason_code, v->valuestring, sizeof(d->reason_code));
	}
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
	r = node_verify_signed(node, d->receipt, "receipt", home, &rp);
	if (r == -ENOENT) {
		/* The home's new key, in a directory we have yet to fetch. */
		node_directory_hint(node, home, node_directory_serial(node) + 1);
		d->receipt_key_unknown = true;
		visit_refuse(d, "bad_receipt", "The home space signed its answer with a"
		    " key this node does not know yet; it is fetching the newer"
		    " directory: scan the pass again in a moment.");
		goto out;
	}
	if (r < 0) {
		visit_refuse(d, "bad_receipt", "The home space's receipt does not verify.");
		goto out;
	}
	{
		const cJSON *rv = cJSON_GetObjectItemCaseSensitive(rp, "visit_id");
		const cJSON *rd = cJSON_GetObjectItemCaseSensitive(rp, "decision");
		const cJSON *rh = cJSON_GetObjectItemCaseSensitive(rp, "host");

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
	/* An admission we do not honour: its tickets are no answer to show. */
	if (d->home_admitted && !d->admitted)
		d->tickets_left = -1;
	cJSON_Delete(rp);
	cJSON_Delete(o);
}

/* Writes the visit's row (and commits the transaction when commit is set). */
static int
visit_store_host(PGconn *conn, const char *sql, const struct visit_decision *d,
    const struct pass_claims *c, const char *status, bool commit)
{
	char tickets[16], rate[16];
	const char *params[14];

	snprintf(tickets, sizeof(tickets), "%d", d->tickets_left);
	snprintf(rate, sizeof(rate), "%d", d->rate_cents);
	params[0] = d->visit_id;
	params[1] = c->iss;
	params[2] = c->sub;
	params[3] = d->admitted ? c->name : NULL;
	params[4] = c->plan;
	params[5] = c->jti;
	params[6] = status != NULL ? status : d->admitted ? "open" : "refused";
	params[7] = d->reason_code[0] != '\0' ? d->reason_code : NULL;
	params[8] = d->reason_code[0] != '\0' ? d->reason : NULL;
	params[9] = d->receipt;
	params[10] = d->tickets_left >= 0 ? tickets : NULL;
	params[11] = d->rate_cents >= 0 ? rate : NULL;
	params[12] = d->rate_cents >= 0 ? d->currency : NULL;
	/*
	 * Under way: pending or open, as every statement that sets a visit's
	 * status keeps it (schema/015_visits_under_way.sql).
	 */
	params[13] = strcmp(params[6], "pending") == 0 ||
	    strcmp(params[6], "open") == 0 ? "t" : "f";
	return commit ? db_exec_commit(conn, sql, 14, params) :
	    db_exec(conn, sql, 14, params);
}

/*
 * A visit's row with the decision, new or over its pending row.  The
 * update keeps the pending row's time and leaves every indexed column as
 * it was for an admission (`under_way` stays true): a HOT update
 * (schema/015_visits_under_way.sql).  It writes only over a pending row:
 * one the round for interrupted check-ins refused meanwhile (and voided at
 * the home) gets a status outside visit_status, and the statement fails
 * (23514) at no cost to the others; visit_final_row_read then says what
 * happened.
 */
static const char visit_insert_sql[] =
    "insert into host_visits (visit_id, home, pseudonym, display_name, plan,"
    " jti, status, reason_code, reason, receipt, tickets_left, rate_cents, currency,"
    " under_way)"
    " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
static const char visit_update_sql[] =
    "update host_visits set home = $2, pseudonym = $3, display_name = $4,"
    " plan = $5, jti = $6,"
    " status = case when status = 'pending' then $7 else 'answered late' end,"
    " reason_code = $8, reason = $9, receipt = $10, tickets_left = $11,"
    " rate_cents = $12, currency = $13, under_way = $14 where visit_id = $1";
#define VISIT_INTERRUPTED "The check-in was interrupted; please scan the pass again."

/* Serialises the seat count between concurrent check-ins of this space. */
#define VISIT_SEATS_LOCK "select pg_advisory_xact_lock(7405637113)"

/*
 * What a check-in reads before it writes, in one statement (with a
 * visitor's pending row: visit_precheck): the terms with the member's
 * home, whether the home revoked the pass, the seats, the visitor's units
 * this month (when the terms cap them), whether messages about the member
 * still wait for the home, and the opening hours.  $1 time zone, $2 home,
 * $3 jti, $4 pseudonym, $5 the default monthly cap, $6 whether the member
 * is a visitor.
 */
enum {
	VP_TERMS = 0, VP_REVOKED = TERMS_NCOLUMNS, VP_CAPACITY, VP_USED, VP_WAITING,
	VP_OPEN
};
static const char visit_precheck_sql[] =
    "with l as (select (now() at time zone $1) as t)"
    " select " TERMS_COLUMNS ","
    "  exists (select 1 from peer_revocations r where r.home = $2 and r.jti = $3),"
    "  " HOUSE_CAPACITY_COLUMN ","
    "  case when $6::boolean and coalesce(t.host_monthly_cap, $5::int) >= 0 then"
    "   (select coalesce(sum(case when v.status = 'closed' then v.units else 1 end), 0)"
    "    from host_visits v where v.home = $2 and v.pseudonym = $4"
    "    and v.status in ('open', 'closed')"
    "    and v.checked_in_at >= date_trunc('month', l.t) at time zone $1) end,"
    "  $6::boolean and exists (select 1 from outbox o where o.peer = $2"
    "   and o.member = $4 and o.delivered_at is null and o.failed_at is null),"
    "  " HOUSE_OPEN_COLUMNS
    " from " HOUSE_OPEN_FROM
    " left join peer_terms t on t.peer = $2";

/*
 * The pending row of an admission, written with the precheck before the
 * rules are read, in the same round trip, when the space counts no seats
 * (the row holds none, and a refusal then just updates it); with seats it
 * is written after the count, under the seats lock (visit_house_rules).
 */
static const char visit_pending_sql[] =
    "insert into host_visits (visit_id, home, pseudonym, plan, jti, status,"
    " under_way)"
    " select $1::uuid, $2, $3, $4, $5, 'pending', true"
    " where " HOUSE_CAPACITY_COLUMN " is null";

/*
 * The precheck row, in a transaction of its own.  With d set (a visitor),
 * the same transaction writes the visit's pending row unless the space
 * counts seats; *ret_held says whether it did.
 */
static PGresult *
visit_precheck(struct node *node, PGconn *conn, const struct pass_claims *c,
    const struct visit_decision *d, bool *ret_held)
{
	const struct config *cfg = node_config(node);
	char cap[16];
	const char *params[6] = { cfg->timezone, c->iss, c->jti, c->sub, cap,
		d != NULL ? "t" : "f" };
	const char *pending[5] = { d != NULL ? d->visit_id : NULL, c->iss, c->sub,
		c->plan, c->jti };
	const struct db_call calls[4] = {
		{ DB_GENERIC_PLANS, 0, NULL },
		{ visit_precheck_sql, 6, params },
		{ visit_pending_sql, 5, pending },
		{ "COMMIT", 0, NULL },
	};
	PGresult *res[4];

	snprintf(cap, sizeof(cap), "%lld", (long long)cfg->terms_monthly_cap);
	if (ret_held != NULL)
		*ret_held = false;
	if (d == NULL)
		return db_query_generic(conn, visit_precheck_sql, 6, params);
	if (db_begin(conn) < 0 || db_pipeline(conn, calls, 4, res) < 0) {
		db_rollback(conn);
		return NULL;
	}
	*ret_held = strcmp(PQcmdTuples(res[2]), "1") == 0;
	PQclear(res[0]);
	PQclear(res[2]);
	if (db_committed(res[3]) < 0 || PQntuples(res[1]) != 1) {
		PQclear(res[1]);
		return NULL;
	}
	return res[1];
}

/*
 * The house rules, inside the caller's transaction, from the precheck row:
 * hours, seats (open and pending visits both hold one: only a space with a
 * number of seats serialises its check-ins, for the count and the pending
 * row that holds the seat), and for a visitor the monthly cap of units the
 * terms grant.  0 allowed, 1 refused (d says why), <0 a database error.
 */
static int
visit_house_rules(PGconn *conn, PGresult *pre, const struct pass_claims *c,
    const struct terms *t, struct visit_decision *d)
{
	char why[320];
	int r, cap, used;
	PGresult *res;

	r = house_open_from_row(conn, pre, 0, VP_OPEN, why, sizeof(why));
	if (r != 0) {
		if (r == 1)
			visit_refuse(d, "closed", "%s", why);
		return r;
	}
	cap = PQgetisnull(pre, 0, VP_CAPACITY) ? -1 :
	    atoi(PQgetvalue(pre, 0, VP_CAPACITY));
	if (cap >= 0) {
		int present;

		if (db_exec(conn, VISIT_SEATS_LOCK, 0, NULL) < 0)
			return -EIO;
		res = db_query(conn, "select count(*) from host_visits"
		    " where under_way", 0, NULL);
		if (res == NULL)
			return -EIO;
		present = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		if (present >= cap) {
			visit_refuse(d, "full", "The space is full: %d of %d seats are"
			    " taken.", present, cap);
			return 1;
		}
	}
	if (t != NULL && t->host_monthly_cap >= 0) {
		used = atoi(PQgetvalue(pre, 0, VP_USED));
		if (used >= t->host_monthly_cap) {
			visit_refuse(d, "host_cap", "This visitor has used the %d half-days"
			    " a month this space grants to members of %s.",
			    t->host_monthly_cap, c->iss);
			return 1;
		}
	}
	return 0;
}

/*
 * Our own member: the home's decision and the host's record in one
 * transaction, taken again when a concurrent one won (-EAGAIN).
 */
static int
visit_check_in_local(struct node *node, PGconn *conn, const char *token,
    const struct pass_claims *c, struct visit_decision *d)
{
	struct home_request hr = { .host = node_space_id(node), .visit_id = d->visit_id,
		.token = token, .rate_cents = -1, .currency = NULL };
	PGresult *pre;
	char *body = NULL;
	int status = 0, r = -EIO;

	pre = visit_precheck(node, conn, c, NULL, NULL);
	if (pre == NULL)
		return -EIO;
	for (int attempt = 0; attempt < HOME_DECIDE_ATTEMPTS; attempt++) {
		if (db_begin(conn) < 0)
			break;
		r = visit_house_rules(conn, pre, c, NULL, d);
		if (r == 0) {
			r = home_decide(node, conn, &hr, true, &status, &body);
			if (r == 0 && status != 200)
				r = -EIO;
			if (r == 0) {
				visit_read_answer(node, body, c->iss, d);
				free(body);
				body = NULL;
			}
		}
		if (r >= 0 && visit_store_host(conn, visit_insert_sql, d, c, NULL,
		    true) == 0) {
			r = 0;
			break;
		}
		free(body);
		body = NULL;
		db_rollback(conn);
		if (r != -EAGAIN) {
			r = -EIO;
			break;
		}
		r = -EIO;
		if (attempt == HOME_DECIDE_ATTEMPTS - 1)
			log_warnx("visit %s: the decision lost to concurrent ones %d"
			    " times", d->visit_id, HOME_DECIDE_ATTEMPTS);
	}
	PQclear(pre);
	return r;
}

/* The authorization request for a visit (sent now, or later by the outbox). */
static char *
visit_authorize_body(const char *token, const struct visit_decision *d)
{
	cJSON *o = cJSON_CreateObject();
	char *req;

	cJSON_AddStringToObject(o, "visit_id", d->visit_id);
	cJSON_AddStringToObject(o, "pass", token);
	cJSON_AddNumberToObject(o, "rate_cents", d->rate_cents);
	cJSON_AddStringToObject(o, "currency", d->currency);
	req = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return req;
}

/*
 * Asks the home over the federation face and reads its signed answer.
 * Returns 1 when the home could not give an answer (unreachable, down, or
 * failing: the offline terms decide), 0 otherwise (d holds the decision).
 */
static int
visit_ask_home(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *req, const struct pass_claims *c, bool waiting,
    struct visit_decision *d)
{
	const struct config *cfg = node_config(node);
	struct peer_response resp;
	char idem[64];
	const char *hdrs[2] = { idem, NULL };
	int r, unreachable = 0;

	/* A peer known to be down is not waited for: the desk gets its answer. */
	if (peer_is_down(c->iss) && !peer_probe(pc, c->iss, true)) {
		log_info("visit %s: home %s is down; offline terms apply", d->visit_id,
		    c->iss);
		return 1;
	}
	/*
	 * What the home has yet to hear about this member (the last visit's
	 * check-out) goes first; if it cannot, this visit waits its turn too.
	 */
	if (waiting && outbox_flush_member(node, conn, pc, c->iss, c->sub) != 0) {
		log_info("visit %s: messages about this member still wait for %s;"
		    " offline terms apply", d->visit_id, c->iss);
		return 1;
	}
	snprintf(idem, sizeof(idem), "Idempotency-Key: %s", d->visit_id);
	r = peer_call(pc, c->iss, "POST", "/federation/v1/authorize", req, hdrs,
	    (long)cfg->peer_timeout_ms, &resp);
	if (r < 0) {
		log_warnx("visit %s: home %s unreachable: %s", d->visit_id, c->iss,
		    resp.error);
		unreachable = 1;
	} else if (resp.status == 200) {
		visit_read_answer(node, resp.body, c->iss, d);
	} else if (resp.status >= 500) {
		log_warnx("visit %s: home %s failing (HTTP %ld)", d->visit_id, c->iss,
		    resp.status);
		unreachable = 1;
	} else {
		cJSON *e = cJSON_Parse(resp.body);
		const cJSON *detail = cJSON_GetObjectItemCaseSensitive(e, "detail");

		log_warnx("visit %s: home %s answered %ld: %.200s", d->visit_id, c->iss,
		    resp.status, resp.body);
		visit_refuse(d, "home_error", "The home space (%s) refused the request:"
		    " %s", c->iss, cJSON_IsString(detail) ? detail->valuestring : "error");
		cJSON_Delete(e);
	}
	peer_response_clear(&resp);
	return unreachable;
}

char *
visit_completion_payload(const char *visit_id, const char *checked_in_at,
    const char *checked_out_at, int units, const char *completion)
{
	cJSON *o = cJSON_CreateObject();
	char *payload;

	cJSON_AddStringToObject(o, "visit_id", visit_id);
	cJSON_AddStringToObject(o, "checked_in_at", checked_in_at);
	cJSON_AddStringToObject(o, "checked_out_at", checked_out_at);
	cJSON_AddNumberToObject(o, "units", units);
	cJSON_AddStringToObject(o, "completion", completion);
	payload = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return payload;
}

int
visit_void(struct node *node, PGconn *conn, const char *visit_id, const char *home,
    const char *sub)
{
	cJSON *p = cJSON_CreateObject();
	char now[32], *token = NULL, *payload;
	int r;

	util_format_time(util_now(), now);
	cJSON_AddStringToObject(p, "visit_id", visit_id);
	cJSON_AddStringToObject(p, "host", node_space_id(node));
	cJSON_AddStringToObject(p, "home", home);
	cJSON_AddStringToObject(p, "sub", sub);
	cJSON_AddStringToObject(p, "checked_in_at", now);
	cJSON_AddStringToObject(p, "checked_out_at", now);
	cJSON_AddNumberToObject(p, "units", 0);
	cJSON_AddBoolToObject(p, "void", true);
	cJSON_AddNumberToObject(p, "iat", (double)util_now());
	r = node_sign(node, "completion", p, &token);
	cJSON_Delete(p);
	if (r < 0)
		return r;
	payload = visit_completion_payload(visit_id, now, now, 0, token);
	free(token);
	r = payload != NULL ? outbox_add(conn, home, OUTBOX_COMPLETE, visit_id, sub,
	    payload) : -ENOMEM;
	free(payload);
	return r;
}

int
visit_authorization_arrived(struct node *node, PGconn *conn, const char *visit_id,
    const char *home, const char *body)
{
	struct visit_decision d;
	char tickets[16];
	const char *params[5];
	int r;

	memset(&d, 0, sizeof(d));
	d.tickets_left = -1;
	util_strlcpy(d.visit_id, visit_id, sizeof(d.visit_id));
	visit_read_answer(node, body, home, &d);
	if (d.receipt_key_unknown) {
		/*
		 * Not judged yet: asked again (the home replays the same
		 * answer) once our directory lists the home's new key.
		 */
		log_info("provisional visit %s: %s's receipt is signed with a key"
		    " this node does not know yet; asking again later", visit_id, home);
		visit_decision_clear(&d);
		return 1;
	}
	snprintf(tickets, sizeof(tickets), "%d", d.tickets_left);
	params[0] = visit_id;
	params[1] = d.admitted ? "t" : "f";
	params[2] = d.receipt;
	params[3] = d.tickets_left >= 0 ? tickets : NULL;
	params[4] = d.reason;
	/*
	 * Confirmed, or disputed: the visit keeps its place in the records
	 * either way; a disputed one is for the manager to settle.
	 */
	r = db_exec(conn, "update host_visits set receipt = coalesce($3, receipt),"
	    " tickets_left = coalesce($4::int, tickets_left),"
	    " confirmed_at = case when $2::boolean then now() end,"
	    " disputed_at = case when $2::boolean then null else now() end,"
	    " reason = case when $2::boolean then reason else $5 end"
	    " where visit_id = $1 and reason_code = 'provisional'", 5, params);
	/*
	 * The home refused the visit: it has nothing to complete, so a
	 * check-out already queued for it is dropped (kept, marked, for the
	 * manager's record).  An admission whose receipt does not verify is
	 * disputed too, but the home holds the visit open: its check-out
	 * still goes.
	 */
	if (r == 0 && !d.home_admitted) {
		const char *p1[1] = { visit_id };

		r = db_exec(conn, "update outbox set failed_at = now(),"
		    " last_error = 'not sent: the home disputed the visit'"
		    " where visit_id = $1 and kind = 'complete' and delivered_at is null"
		    " and failed_at is null", 1, p1);
	}
	if (r == 0)
		log_info("provisional visit %s %s by %s%s%s", visit_id,
		    d.admitted ? "confirmed" : "disputed", home, d.admitted ? "" : ": ",
		    d.admitted ? "" : d.reason);
	visit_decision_clear(&d);
	return r;
}

int
visit_resolve_stale(struct node *node, PGconn *conn, int *ret_voided)
{
	const struct config *cfg = node_config(node);
	char secs[32];
	const char *params[1] = { secs };
	PGresult *res;
	int voided = 0;

	/*
	 * A visit left pending (the process died while asking the home) was
	 * never announced to the desk: it is refused, and voided at the home
	 * in case the home had admitted it.
	 */
	snprintf(secs, sizeof(secs), "%lld", (long long)(cfg->peer_timeout_ms / 1000 + 10));
	if (db_begin(conn) < 0)
		return -EIO;
	res = db_query(conn, "update host_visits set status = 'refused',"
	    " under_way = false, reason_code = 'interrupted',"
	    " reason = '" VISIT_INTERRUPTED "'"
	    " where under_way and status = 'pending'"
	    " and checked_in_at < now() - make_interval(secs => $1::int)"
	    " returning visit_id, home, pseudonym", 1, params);
	if (res == NULL) {
		db_rollback(conn);
		return -EIO;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		if (visit_void(node, conn, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2)) < 0) {
			PQclear(res);
			db_rollback(conn);
			return -EIO;
		}
		voided++;
	}
	PQclear(res);
	if (db_commit(conn) < 0)
		return -EIO;
	if (voided > 0)
		log_warnx("%d interrupted check-in%s voided at the home", voided,
		    voided == 1 ? "" : "s");
	*ret_voided = voided;
	return 0;
}

/*
 * What the visit's row says when its final write failed (d is made to say
 * it): true when the desk can be answered.
 *
 * - The answer to its COMMIT was lost: a server that dies (or restarts)
 *   while it flushes the commit may have made it durable.  Telling the
 *   desk that the check-in failed would then leave a visit open that
 *   nobody knows of, so the row is read again on the connection made anew
 *   (for up to 2 s, and 2 s more for a commit still under way).
 * - The round for interrupted check-ins refused the visit while the home
 *   was asked (the check-in outlived peer_timeout + 10 s), and voided it
 *   there: the desk is told to scan again, whatever the home said.
 */
static bool
visit_final_row_read(PGconn *conn, struct visit_decision *d)
{
	const char *params[1] = { d->visit_id };
	/*
	 * Locked, so that a commit still under way in the old session (the
	 * link cut, the server alive) is waited for, up to lock_timeout.
	 */
	const struct db_call calls[2] = {
		{ "set local lock_timeout = '2s'", 0, NULL },
		{ "select status, coalesce(reason_code, '') from host_visits"
		  " where visit_id = $1 for update", 1, params },
	};
	PGresult *res[2];
	bool made, interrupted, stray;

	if (!db_reconnect(conn, 2000) || db_begin(conn) < 0)
		return false;
	if (db_pipeline(conn, calls, 2, res) < 0) {
		db_rollback(conn);
		return false;
	}
	interrupted = PQntuples(res[1]) == 1 &&
	    strcmp(PQgetvalue(res[1], 0, 1), "interrupted") == 0;
	made = !interrupted && PQntuples(res[1]) == 1 &&
	    strcmp(PQgetvalue(res[1], 0, 0), d->admitted ? "open" : "refused") == 0;
	/* Neither, nor the pending row of a write that did fail: by hand? */
	stray = !interrupted && !made && PQntuples(res[1]) == 1 &&
	    strcmp(PQgetvalue(res[1], 0, 0), "pending") != 0;
	PQclear(res[0]);
	PQclear(res[1]);
	db_rollback(conn);
	if (made)
		log_info("visit %s: its commit was made, though its answer was lost",
		    d->visit_id);
	if (stray)
		log_warnx("visit %s: its final write failed on a row that is neither"
		    " pending, nor its decision, nor interrupted", d->visit_id);
	if (interrupted) {
		log_warnx("visit %s: the home's answer came after the check-in was"
		    " taken for interrupted and voided there; the desk is told to scan"
		    " again", d->visit_id);
		visit_refuse(d, "interrupted", VISIT_INTERRUPTED);
		/* The home's receipt is for a decision the void undoes. */
		free(d->receipt);
		d->receipt = NULL;
		d->tickets_left = -1;
	}
	return made || interrupted;
}

/*
 * The decision over the visit's pending row, committed; when that fails,
 * what the row says (visit_final_row_read, which may change d).  0 when
 * the desk can be answered with d, or -EIO.
 */
static int
visit_store_answer(PGconn *conn, struct visit_decision *d,
    const struct pass_claims *c)
{
	int r;

	db_expect(SQLSTATE_CHECK_VIOLATION);
	r = visit_store_host(conn, visit_update_sql, d, c, NULL, true);
	db_expect(NULL);
	if (r == 0)
		return 0;
	db_rollback(conn);
	return visit_final_row_read(conn, d) ? 0 : -EIO;
}

/*
 * The home gave no answer: our terms with it decide.  A provisional
 * admission (within the offline allowance) queues the authorization for the
 * outbox; a refusal queues a void completion, because the home may have
 * decided before it fell silent, and that decision must be undone.  Both in
 * the transaction that records the visit.
 */
static int
visit_offline(struct node *node, PGconn *conn, const char *req,
    const struct pass_claims *c, const struct terms *t, struct visit_decision *d)
{
	const char *params[3] = { c->iss, c->sub, d->visit_id };
	PGresult *res;
	bool here;
	int pending;

	/*
	 * Only the home keeps a member to one place at a time, and it cannot
	 * be asked: the allowance and "not twice here" are kept under a lock
	 * per home, held until this visit's answer commits.
	 */
	if (db_exec(conn, "select pg_advisory_xact_lock(74056,"
	    " hashtext($1))", 1, params) < 0)
		return -EIO;
	res = db_query(conn, "select (select count(*) from host_visits where home = $1"
	    "  and reason_code = 'provisional' and confirmed_at is null"
	    "  and disputed_at is null and status in ('open', 'closed')),"
	    " exists (select 1 from host_visits where under_way and home = $1"
	    "  and pseudonym = $2 and visit_id <> $3::uuid)", 3, params);
	if (res == NULL)
		return -EIO;
	pending = atoi(PQgetvalue(res, 0, 0));
	here = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (here) {
		visit_refuse(d, "already_checked_in", "Already checked in here: the"
		    " member's home space (%s) cannot be reached, and their visit"
		    " under way here must be checked out first.", c->iss);
		return visit_void(node, conn, d->visit_id, c->iss, c->sub);
	}
	if (pending < t->offline_allowance) {
		d->admitted = true;
		util_strlcpy(d->reason_code, "provisional", sizeof(d->reason_code));
		snprintf(d->reason, sizeof(d->reason), "Admitted provisionally: the"
		    " member's home space (%s) cannot be reached; it will be asked again"
		    " and the visit confirmed.", c->iss);
		return outbox_add(conn, c->iss, OUTBOX_AUTHORIZE, d->visit_id, c->sub, req);
	}
	visit_refuse(d, "home_unreachable", "The member's home space (%s) cannot be"
	    " reached right now; try again in a moment.", c->iss);
	return visit_void(node, conn, d->visit_id, c->iss, c->sub);
}

int
visit_check_in(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *token, struct visit_decision *ret)
{
	const struct config *cfg = node_config(node);
	struct node_directory *nd;
	struct pass_claims claims;
	struct terms t;
	PGresult *pre;
	bool waiting, held;
	int pr, r;

	memset(ret, 0, sizeof(*ret));
	ret->tickets_left = -1;
	ret->rate_cents = -1;
	util_uuid_v4(ret->visit_id);

	nd = node_directory_get(node);
	if (nd == NULL) {
		visit_refuse(ret, "directory_expired", "This node's federation directory"
		    " has expired: it cannot check passes until it has the coordinator's"
		    " new one (see its log).");
		ret->visit_id[0] = '\0'; /* nothing recorded */
		return 0;
	}
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
		r = visit_check_in_local(node, conn, token, &claims, ret);
		if (r < 0)
			goto db_error;
		return 0;
	}

	/* A visitor: our terms with the home, its revocations, the house rules. */
	pre = visit_precheck(node, conn, &claims, ret, &held);
	if (pre == NULL)
		goto db_error;
	terms_from_row(cfg, pre, 0, VP_TERMS, &t);
	waiting = strcmp(PQgetvalue(pre, 0, VP_WAITING), "t") == 0;
	ret->rate_cents = t.rate_cents;
	util_strlcpy(ret->currency, t.currency, sizeof(ret->currency));
	if (!t.host_accept)
		visit_refuse(ret, "not_accepted", "This space does not accept members of"
		    " %s (terms between the spaces).", claims.iss);
	else if (strcmp(PQgetvalue(pre, 0, VP_REVOKED), "t") == 0)
		visit_refuse(ret, "revoked", "This pass has been revoked by its home space.");
	if (db_begin(conn) < 0) {
		PQclear(pre);
		goto db_error;
	}
	r = ret->reason_code[0] == '\0' ?
	    visit_house_rules(conn, pre, &claims, &t, ret) : 0;
	PQclear(pre);
	/*
	 * A refusal of ours is recorded at once; an admission holds its seat
	 * as a pending visit, durably, before the home is asked (written by
	 * the precheck's transaction unless the space counts seats).
	 */
	if (r >= 0 && held && ret->reason_code[0] != '\0') {
		if (visit_store_answer(conn, ret, &claims) < 0)
			goto db_error;
		return 0;
	}
	if (r >= 0 && held)
		r = db_commit(conn);
	else if (r >= 0)
		r = visit_store_host(conn, visit_insert_sql, ret, &claims,
		    ret->reason_code[0] == '\0' ? "pending" : NULL, true);
	if (r < 0) {
		db_rollback(conn);
		goto db_error;
	}
	if (ret->reason_code[0] != '\0')
		return 0;
	{
		char *req = visit_authorize_body(token, ret);
		int unreachable;

		if (req == NULL)
			goto db_error;
		unreachable = visit_ask_home(node, conn, pc, req, &claims, waiting, ret);
		if (db_begin(conn) < 0) {
			free(req);
			goto db_error;
		}
		if (unreachable)
			r = visit_offline(node, conn, req, &claims, &t, ret);
		else if (ret->home_admitted && !ret->admitted)
			/*
			 * The home admitted (and debited) a visit whose answer
			 * we cannot honour (its receipt does not verify): undone
			 * there, as a refusal of ours would be.
			 */
			r = visit_void(node, conn, ret->visit_id, claims.iss, claims.sub);
		else
			r = 0;
		free(req);
		if (r < 0) {
			db_rollback(conn);
			goto db_error;
		}
		if (visit_store_answer(conn, ret, &claims) < 0)
			goto db_error;
		/*
		 * The home answered, so it is up: the void goes now, so that
		 * the member's next scan finds nothing waiting before it.
		 */
		if (!unreachable && ret->home_admitted && !ret->admitted)
			(void)outbox_flush_member(node, conn, pc, claims.iss, claims.sub);
	}
	return 0;

db_error:
	visit_refuse(ret, "unavailable",
	    "This node cannot reach its database; try again in a moment.");
	return -EIO;
}

/*
 * The host's signed completion: what it counted, at what rate, so that the
 * visit's record is evidence for both sides (with the home's receipt).
 */
char *
visit_sign_completion(struct node *node, const struct visit_completion *c)
{
	cJSON *p = cJSON_CreateObject();
	char *token = NULL;

	cJSON_AddStringToObject(p, "visit_id", c->visit_id);
	cJSON_AddStringToObject(p, "host", node_space_id(node));
	cJSON_AddStringToObject(p, "home", c->home);
	cJSON_AddStringToObject(p, "sub", c->sub);
	cJSON_AddStringToObject(p, "checked_in_at", c->checked_in_at);
	cJSON_AddStringToObject(p, "checked_out_at", c->checked_out_at);
	cJSON_AddNumberToObject(p, "units", c->units);
	if (c->currency != NULL) {
		cJSON_AddNumberToObject(p, "rate_cents", c->rate_cents);
		cJSON_AddStringToObject(p, "currency", c->currency);
	}
	cJSON_AddNumberToObject(p, "iat", (double)c->iat);
	(void)node_sign(node, "completion", p, &token);
	cJSON_Delete(p);
	return token;
}

int
visit_check_out(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *visit_id, const char *at, struct visit_checkout *ret, char *err,
    size_t errlen)
{
	const struct config *cfg = node_config(node);
	char half[32], *completion, *payload;
	bool disputed;
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
	params[2] = at;
	/*
	 * The display name is dropped at check-out: the host keeps only what
	 * accounting needs once the visitor has left.  The unit rule is the
	 * host's: up to half_day_max one unit, more two.
	 */
	/*
	 * The visit is found and locked by its key first: "status = 'open'"
	 * in the update's own condition lets a generic plan scan the whole
	 * partial index of the visits under way (host_visits_under_way), 3 ms
	 * instead of 30 us with thousands of visits open (as
	 * home_complete_visit).
	 */
	res = db_query(conn,
	    "with cur as materialized (select visit_id, status from host_visits"
	    "   where visit_id = $1 for update)"
	    " update host_visits v set status = 'closed', under_way = false,"
	    "  checked_out_at = greatest(v.checked_in_at, coalesce($3::timestamptz, now())),"
	    "  display_name = null,"
	    "  units = case when greatest(v.checked_in_at, coalesce($3::timestamptz, now()))"
	    "    - v.checked_in_at <= make_interval(secs => $2) then 1 else 2 end"
	    " from cur where v.visit_id = cur.visit_id and cur.status = 'open'"
	    " returning v.home, v.units, to_char(v.checked_in_at at time zone 'UTC',"
	    "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char(v.checked_out_at at time zone 'UTC',"
	    "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), v.pseudonym, v.rate_cents, v.currency,"
	    " v.disputed_at is not null", 3, params);
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
	disputed = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
	{
		/* res holds RETURNING home, units, in, out, pseudonym, rate, currency. */
		const struct visit_completion c = { .visit_id = visit_id,
			.home = PQgetvalue(res, 0, 0), .sub = PQgetvalue(res, 0, 4),
			.checked_in_at = PQgetvalue(res, 0, 2),
			.checked_out_at = PQgetvalue(res, 0, 3), .units = ret->units,
			.rate_cents = atoi(PQgetvalue(res, 0, 5)),
			.currency = PQgetisnull(res, 0, 5) ? NULL : PQgetvalue(res, 0, 6),
			.iat = util_now() };

		completion = visit_sign_completion(node, &c);
	}
	if (completion == NULL) {
		PQclear(res);
		db_rollback(conn);
		snprintf(err, errlen, "cannot sign the visit's completion (is the"
		    " pass-signing key loaded?)");
		return -EIO;
	}
	{
		const char *p2[2] = { visit_id, completion };
		const struct db_call keep = { "update host_visits set completion = $2"
		    " where visit_id = $1", 2, p2 };
		bool local = strcmp(ret->home, node_space_id(node)) == 0;

		payload = disputed || local ? NULL :
		    visit_completion_payload(visit_id, PQgetvalue(res, 0, 2),
		    PQgetvalue(res, 0, 3), ret->units, completion);
		if (!disputed && !local && pc != NULL) {
			/*
			 * The completion, its message to the home and the commit
			 * in one round trip, then delivered at once if the home
			 * answers; the outbox keeps it otherwise.
			 */
			r = payload != NULL ? outbox_add_deliver(node, conn, pc, &keep,
			    ret->home, OUTBOX_COMPLETE, visit_id, PQgetvalue(res, 0, 4),
			    payload) : -ENOMEM;
			ret->reported = r == 0;
		} else {
			r = db_exec(conn, keep.sql, 2, p2);
			if (r == 0 && disputed) {
				/* The home refused this visit: nothing to report to it. */
				ret->reported = false;
			} else if (r == 0 && local) {
				bool already;

				r = home_complete_visit(node, conn, ret->home, visit_id,
				    NULL, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
				    ret->units, completion, true, &already);
				ret->reported = r == 0;
			} else if (r == 0) {
				/* No peer client (the command line): the couriers deliver it. */
				r = payload != NULL ? outbox_add(conn, ret->home, OUTBOX_COMPLETE,
				    visit_id, PQgetvalue(res, 0, 4), payload) : -ENOMEM;
			}
			if (r == 0)
				r = db_commit(conn);
		}
	}
	free(payload);
	free(completion);
	PQclear(res);
	if (r < 0)
		goto db_error_rollback;
	return 0;

db_error_rollback:
	db_rollback(conn);
db_error:
	snprintf(err, errlen, "this node cannot reach its database");
	return -EIO;
}

int
visit_close_overdue(struct node *node, PGconn *conn, struct peer_client *pc,
    int *ret_closed)
{
	cJSON *a = NULL, *v;
	int closed = 0;

	if (house_overdue_visits(node_config(node), conn, &a) < 0)
		return -EIO;
	cJSON_ArrayForEach(v, a) {
		struct visit_checkout out;
		char err[256];
		const char *id = cJSON_GetObjectItem(v, "visit_id")->valuestring;
		const char *at = cJSON_GetObjectItem(v, "at")->valuestring;

		if (visit_check_out(node, conn, pc, id, at, &out, err, sizeof(err)) == 0 &&
		    !out.already) {
			log_info("visit %s checked out automatically at closing time (%s)",
			    id, at);
			closed++;
		}
	}
	cJSON_Delete(a);
	*ret_closed = closed;
	return 0;
}

cJSON *
visit_list(PGconn *conn, bool disputed)
{
	/* Two statements: the open visits are read through their index. */
#define VISIT_LIST_SQL(where)						\
	"select visit_id, home, pseudonym, coalesce(display_name, ''),"	\
	"  coalesce(plan, ''), to_char(checked_in_at at time zone 'UTC',"	\
	"  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), tickets_left,"		\
	"  reason_code = 'provisional' and confirmed_at is null"	\
	"  and disputed_at is null,"					\
	"  disputed_at is not null, coalesce(reason, ''), status"	\
	" from host_visits where " where " order by checked_in_at"
	PGresult *res;
	cJSON *a;

	/*
	 * A disputed visit is a provisional one the home refused (its
	 * confirmation cleared): said so, it is read through
	 * host_visits_provisional, not by a scan of every visit.
	 */
	res = db_query(conn, disputed ? VISIT_LIST_SQL("disputed_at is not null"
	    " and reason_code = 'provisional' and confirmed_at is null") :
	    VISIT_LIST_SQL("under_way and status = 'open'"), 0, NULL);
#undef VISIT_LIST_SQL
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
		cJSON_AddBoolToObject(o, "provisional", strcmp(PQgetvalue(res, i, 7), "t") == 0);
		cJSON_AddBoolToObject(o, "disputed", strcmp(PQgetvalue(res, i, 8), "t") == 0);
		if (strcmp(PQgetvalue(res, i, 8), "t") == 0) {
			cJSON_AddStringToObject(o, "reason", PQgetvalue(res, i, 9));
			cJSON_AddStringToObject(o, "status", PQgetvalue(res, i, 10));
		}
		cJSON_AddItemToArray(a, o);
	}
	PQclear(res);
	return a;
}
