/*
 * ledger.c - the ledgers two nodes exchange to reconcile a month: this
 * node's records of the visits it shares with one peer, page by page, and
 * the peer's, fetched over mutual TLS and checked page by page.
 *
 * A record is one side's view of one visit: its id, this node's role in it
 * (host or home), the member's pseudonym, the times, the units, the rate
 * frozen on the visit and the evidence tokens (the home's receipt, the
 * host's completion).  GET /federation/v1/ledger answers for the space that
 * the caller's certificate names, never for another; each page is signed
 * whole (JWS typ "ledger") with the caller, the month and the page it
 * answers.  Comparing two ledgers is reconcile.c's business.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "ledger.h"
#include "log.h"
#include "reconcile.h"
#include "server.h"
#include "util.h"
#include "visit.h"

#define LEDGER_TYP "ledger"
/* A page from a peer may hold more than ours do, but not without bound. */
#define LEDGER_MAX_PEER_PAGE 1000
#define LEDGER_MAX_PAGES 10000
#define LEDGER_PEER_TIMEOUT_MS 30000
#define LEDGER_TIME_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

bool
ledger_marker_valid(const char *s)
{
	char id[37];

	/* "VISIT_ID.ROLE", the key of the last record of a page. */
	if (s == NULL || strlen(s) != 41 || s[36] != '.')
		return false;
	memcpy(id, s, 36);
	id[36] = '\0';
	return visit_id_valid(id) && (strcmp(s + 37, "host") == 0 ||
	    strcmp(s + 37, "home") == 0);
}

/*
 * Our records of the visits shared with $1 in the UTC month $2, after the
 * key ($3, $4).  As host: every visit of its members that was not refused
 * (a pending or provisional one too: the peer should hear of it).  As home:
 * every admission of ours there, except those the host voided (units 0).
 * A provisional admission is provisional until the home confirms it, and
 * disputed if the home refuses it.
 */
static const char ledger_sql[] =
    "with b as (select ($2 || '-01')::timestamp at time zone 'UTC' as lo,"
    "  (($2 || '-01')::timestamp + interval '1 month') at time zone 'UTC' as hi),"
    " r as ("
    "  select h.visit_id, 'host'::text as role, h.pseudonym as sub,"
    "   h.checked_in_at as cin, h.checked_out_at as cout, h.units, h.rate_cents,"
    "   h.currency::text as currency,"
    "   case when h.status = 'pending' then 'pending'"
    "    when h.reason_code = 'provisional' and h.disputed_at is not null"
    "     then 'disputed'"
    "    when h.reason_code = 'provisional' and h.confirmed_at is null"
    "     then 'provisional'"
    "    else h.status end as state,"
    "   h.receipt as evidence, h.completion"
    "  from host_visits h cross join b"
    "  where h.home = $1 and h.status <> 'refused'"
    "   and h.checked_in_at >= b.lo and h.checked_in_at < b.hi"
    "  union all"
    "  select v.visit_id, 'home', m.pseudonym, coalesce(v.checked_in_at, v.authorized_at),"
    "   v.checked_out_at, v.units, v.rate_cents, v.currency::text,"
    "   case when v.checked_out_at is null then 'open' else 'closed' end,"
    "   v.response, v.completion"
    "  from home_visits v join members m on m.id = v.member_id cross join b"
    "  where v.host = $1 and v.decision = 'admit' and coalesce(v.units, -1) <> 0"
    "   and coalesce(v.checked_in_at, v.authorized_at) >= b.lo"
    "   and coalesce(v.checked_in_at, v.authorized_at) < b.hi"
    /*
     * Kept out of the branches, the page's key is not an index range:
     * pushed down, it made the planner AND each month's rows with a range
     * of the visits' primary keys, every visit ever from the key on.
     */
    "  offset 0)"
    " select r.visit_id::text, r.role, r.sub,"
    "  to_char(r.cin at time zone 'UTC', " LEDGER_TIME_FMT "),"
    "  to_char(r.cout at time zone 'UTC', " LEDGER_TIME_FMT "),"
    "  r.units, r.rate_cents, r.currency, r.state, r.evidence, r.completion, d.note"
    " from r left join reconcile_disputes d on d.peer = $1 and d.visit_id = r.visit_id"
    " where (r.visit_id, r.role) > ($3::uuid, $4::text)"
    " order by r.visit_id, r.role limit $5";

/* An evidence token for the ledger, or NULL (none, or too large to send). */
static const char *
ledger_token(PGresult *res, int i, int col)
{
	const char *s;

	if (PQgetisnull(res, i, col))
		return NULL;
	s = PQgetvalue(res, i, col);
	return s[0] != '\0' && strlen(s) <= LEDGER_MAX_TOKEN ? s : NULL;
}

static cJSON *
ledger_record_json(PGresult *res, int i, size_t *ret_size)
{
	cJSON *o = cJSON_CreateObject(), *resp = NULL;
	const char *role = PQgetvalue(res, i, 1), *receipt, *completion;

	cJSON_AddStringToObject(o, "visit_id", PQgetvalue(res, i, 0));
	cJSON_AddStringToObject(o, "role", role);
	cJSON_AddStringToObject(o, "sub", PQgetvalue(res, i, 2));
	db_json_column(o, "checked_in_at", res, i, 3, false);
	db_json_column(o, "checked_out_at", res, i, 4, false);
	db_json_column(o, "units", res, i, 5, true);
	db_json_column(o, "rate_cents", res, i, 6, true);
	db_json_column(o, "currency", res, i, 7, false);
	cJSON_AddStringToObject(o, "state", PQgetvalue(res, i, 8));
	if (strcmp(role, "host") == 0) {
		receipt = ledger_token(res, i, 9);
	} else {
		/* At home the receipt is inside the stored response. */
		resp = PQgetisnull(res, i, 9) ? NULL : cJSON_Parse(PQgetvalue(res, i, 9));
		receipt = util_json_string(resp, "receipt");
		if (receipt != NULL && strlen(receipt) > LEDGER_MAX_TOKEN)
			receipt = NULL;
	}
	completion = ledger_token(res, i, 10);
	if (receipt != NULL)
		cJSON_AddStringToObject(o, "receipt", receipt);
	else
		cJSON_AddNullToObject(o, "receipt");
	if (completion != NULL)
		cJSON_AddStringToObject(o, "completion", completion);
	else
		cJSON_AddNullToObject(o, "completion");
	if (!PQgetisnull(res, i, 11)) {
		cJSON_AddBoolToObject(o, "disputed", 1);
		cJSON_AddStringToObject(o, "dispute_note", PQgetvalue(res, i, 11));
	}
	/* Roughly what it weighs in the page: the tokens and the rest. */
	*ret_size = 400 + (receipt != NULL ? strlen(receipt) : 0) +
	    (completion != NULL ? strlen(completion) : 0) +
	    (PQgetisnull(res, i, 11) ? 0 : strlen(PQgetvalue(res, i, 11)));
	cJSON_Delete(resp);
	return o;
}

int
ledger_page(PGconn *conn, const char *peer, const char *month,
    const char *after, cJSON **ret_records, char **ret_next)
{
	char id[37] = "00000000-0000-0000-0000-000000000000", role[8] = "", limit[16];
	const char *params[5] = { peer, month, id, role, limit };
	PGresult *res;
	cJSON *records;
	size_t bytes = 0;
	int n, i;

	if (!reconcile_month_valid(month))
		return -EINVAL;
	if (after != NULL && after[0] != '\0') {
		if (!ledger_marker_valid(after))
			return -EINVAL;
		memcpy(id, after, 36);
		util_strlcpy(role, after + 37, sizeof(role));
	}
	snprintf(limit, sizeof(limit), "%d", LEDGER_PAGE_RECORDS + 1);
	res = db_query(conn, ledger_sql, 5, params);
	if (res == NULL)
		return -EIO;
	records = cJSON_CreateArray();
	n = PQntuples(res);
	for (i = 0; i < n && i < LEDGER_PAGE_RECORDS; i++) {
		size_t size;
		cJSON *o;

		if (i > 0 && bytes >= LEDGER_PAGE_BYTES)
			break;
		o = ledger_record_json(res, i, &size);
		cJSON_AddItemToArray(records, o);
		bytes += size;
	}
	*ret_next = NULL;
	if (i < n)
		*ret_next = util_aprintf("%s.%s", PQgetvalue(res, i - 1, 0),
		    PQgetvalue(res, i - 1, 1));
	PQclear(res);
	*ret_records = records;
	return 0;
}

void
ledger_fed_handle(struct http_job *job, struct worker *w)
{
	char *month = NULL, *after = NULL, *next = NULL, *token = NULL;
	cJSON *records = NULL, *p = NULL;
	PGconn *conn;

	if (job->method != HTTP_GET) {
		http_reply_error(job, 405, "method_not_allowed", "use GET");
		return;
	}
	month = http_job_query(job, "month");
	after = http_job_query(job, "after");
	if (!reconcile_month_valid(month)) {
		http_reply_error(job, 400, "bad_request", "expected ?month=YYYY-MM");
		goto out;
	}
	if (after != NULL && after[0] != '\0' && !ledger_marker_valid(after)) {
		http_reply_error(job, 400, "bad_request",
		    "after must be the next marker of the previous page");
		goto out;
	}
	conn = server_worker_db(w);
	if (conn == NULL || ledger_page(conn, job->peer_space, month, after,
	    &records, &next) < 0) {
		http_reply_error(job, 503, "unavailable", "cannot read the visits; retry");
		goto out;
	}
	/*
	 * The whole page is signed, with the caller and the page it answers,
	 * so that a page cannot be replayed to another space or another page.
	 */
	p = cJSON_CreateObject();
	cJSON_AddNumberToObject(p, "v", 1);
	cJSON_AddStringToObject(p, "space", node_space_id(w->node));
	cJSON_AddStringToObject(p, "caller", job->peer_space);
	cJSON_AddStringToObject(p, "month", month);
	cJSON_AddStringToObject(p, "after", after != NULL ? after : "");
	if (next != NULL)
		cJSON_AddStringToObject(p, "next", next);
	else
		cJSON_AddNullToObject(p, "next");
	cJSON_AddNumberToObject(p, "iat", (double)util_now());
	cJSON_AddItemToObject(p, "records", records);
	records = NULL;
	if (node_sign(w->node, LEDGER_TYP, p, &token) < 0) {
		http_reply_error(job, 503, "unavailable", "cannot sign the ledger");
		goto out;
	}
	log_debug("ledger %s page after '%s' for %s", month, after != NULL ? after : "",
	    job->peer_space);
	job->status = 200;
	job->content_type = "application/jose";
	job->resp_body = token;
out:
	cJSON_Delete(records);
	cJSON_Delete(p);
	free(month);
	free(after);
	free(next);
}

/* Our own ledger for peer and month, every page, as one JSON array. */
int
ledger_own(PGconn *conn, const char *peer, const char *month, cJSON **ret)
{
	cJSON *all = cJSON_CreateArray(), *page = NULL, *rec;
	char *after = NULL, *next = NULL;
	int r;

	for (;;) {
		r = ledger_page(conn, peer, month, after, &page, &next);
		if (r < 0)
			goto out;
		while ((rec = cJSON_DetachItemFromArray(page, 0)) != NULL)
			cJSON_AddItemToArray(all, rec);
		cJSON_Delete(page);
		page = NULL;
		free(after);
		after = next;
		next = NULL;
		if (after == NULL)
			break;
	}
	*ret = all;
	all = NULL;
	r = 0;
out:
	cJSON_Delete(all);
	free(after);
	return r;
}

/*
 * The peer's ledger, every page: each must verify with the peer's key and
 * answer this very request (us, this month, this page), and the records
 * must come in strictly increasing order, so that a peer cannot loop us.
 */
int
ledger_fetch(struct node *node, struct peer_client *pc, const char *peer,
    const char *month, cJSON **ret, int *ret_pages, char *err, size_t errlen)
{
	cJSON *all = cJSON_CreateArray(), *p = NULL, *rec;
	char after[48] = "", last[48] = "", *path = NULL;
	struct peer_response resp;
	int r = -EBADMSG, pages;

	memset(&resp, 0, sizeof(resp));
	for (pages = 0; pages < LEDGER_MAX_PAGES; pages++) {
		const cJSON *records, *next;
		int count;

		path = util_aprintf("/federation/v1/ledger?month=%s%s%s", month,
		    after[0] != '\0' ? "&after=" : "", after);
		if (path == NULL) {
			r = -ENOMEM;
			goto out;
		}
		r = peer_call(pc, peer, "GET", path, NULL, NULL, LEDGER_PEER_TIMEOUT_MS,
		    &resp);
		free(path);
		path = NULL;
		if (r < 0) {
			snprintf(err, errlen, "cannot reach %s: %s", peer, resp.error);
			r = -EHOSTUNREACH;
			goto out;
		}
		if (resp.status != 200) {
			snprintf(err, errlen, "%s answered %ld to the ledger request: %.200s",
			    peer, resp.status, resp.body != NULL ? resp.body : "");
			r = -EPROTO;
			goto out;
		}
		r = node_verify_signed(node, resp.body, LEDGER_TYP, peer, &p);
		if (r < 0) {
			snprintf(err, errlen, "%s's ledger does not verify with its key in the"
			    " directory (%s)", peer, r == -EKEYREJECTED ? "bad signature" :
			    r == -ENOENT ? "unknown key" : "malformed");
			goto out;
		}
		r = -EBADMSG;
		records = cJSON_GetObjectItemCaseSensitive(p, "records");
		next = cJSON_GetObjectItemCaseSensitive(p, "next");
		if (!util_json_is(p, "space", peer) ||
		    !util_json_is(p, "caller", node_space_id(node)) ||
		    !util_json_is(p, "month", month) ||
		    !util_json_is(p, "after", after) || !cJSON_IsArray(records) ||
		    cJSON_GetArraySize(records) > LEDGER_MAX_PEER_PAGE ||
		    !(cJSON_IsNull(next) || (cJSON_IsString(next) &&
		    ledger_marker_valid(next->valuestring)))) {
			snprintf(err, errlen, "%s's ledger page does not answer our request"
			    " (space, caller, month, page or records)", peer);
			goto out;
		}
		count = cJSON_GetArraySize(records);
		while ((rec = cJSON_DetachItemFromArray((cJSON *)records, 0)) != NULL) {
			const char *id = util_json_string(rec, "visit_id");
			const char *role = util_json_string(rec, "role");
			char key[48];

			if (id == NULL || role == NULL || strlen(id) != 36 ||
			    (strcmp(role, "host") != 0 && strcmp(role, "home") != 0)) {
				cJSON_Delete(rec);
				snprintf(err, errlen, "%s's ledger holds a malformed record", peer);
				goto out;
			}
			snprintf(key, sizeof(key), "%s.%s", id, role);
			if (strcmp(key, last) <= 0) {
				cJSON_Delete(rec);
				snprintf(err, errlen, "%s's ledger is out of order at %s", peer, key);
				goto out;
			}
			util_strlcpy(last, key, sizeof(last));
			cJSON_AddItemToArray(all, rec);
		}
		if (cJSON_IsNull(next)) {
			*ret = all;
			*ret_pages = pages + 1;
			all = NULL;
			r = 0;
			goto out;
		}
		/* An empty page with a next one would have us ask forever. */
		if (count == 0 || strcmp(next->valuestring, last) != 0) {
			snprintf(err, errlen, "%s's ledger gives a next page that is not its"
			    " last record", peer);
			goto out;
		}
		util_strlcpy(after, next->valuestring, sizeof(after));
		cJSON_Delete(p);
		p = NULL;
		peer_response_clear(&resp);
	}
	snprintf(err, errlen, "%s's ledger has more than %d pages", peer,
	    LEDGER_MAX_PAGES);
out:
	peer_response_clear(&resp);
	cJSON_Delete(p);
	cJSON_Delete(all);
	return r;
}
