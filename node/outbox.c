/*
 * outbox.c - store-and-forward of messages to peers.
 *
 * Each delivery runs in a short transaction that holds the message's row
 * lock while the peer is called, so that another worker or process skips it
 * (SKIP LOCKED) instead of sending it again.  The peer's answer is what
 * decides: 2xx delivered, 4xx failed for good (kept with the error for the
 * manager), anything else or no answer retried later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "outbox.h"
#include "util.h"
#include "visit.h"

static const char *
outbox_path(const char *kind)
{
	if (strcmp(kind, OUTBOX_COMPLETE) == 0)
		return "/federation/v1/complete";
	if (strcmp(kind, OUTBOX_AUTHORIZE) == 0)
		return "/federation/v1/authorize";
	return NULL;
}

int
outbox_add(PGconn *conn, const char *peer, const char *kind,
    const char *visit_id, const char *member, const char *payload)
{
	const char *params[5] = { peer, kind, visit_id, payload, member };

	return db_exec(conn, "insert into outbox (peer, kind, visit_id, payload,"
	    " member) values ($1, $2, $3, $4, $5)", 5, params);
}

/* The claimed rows: id, peer, kind, visit_id, payload, attempts. */
#define OUTBOX_CLAIM_COLUMNS "select id, peer, kind, visit_id, payload, attempts" \
    " from outbox o where delivered_at is null and failed_at is null" \
    /* In order per member: an earlier message about them goes first. */ \
    " and not exists (select 1 from outbox e where e.peer = o.peer" \
    "  and e.member = o.member and e.id < o.id and e.delivered_at is null" \
    "  and e.failed_at is null)"

/* Completions sent to a peer in one request: at most so many, so large. */
#define OUTBOX_BATCH_MAX 64
#define OUTBOX_BATCH_BYTES 48000

/* The ids of rows, as a PostgreSQL array literal. */
static char *
outbox_ids(PGresult *res, const int *rows, int n)
{
	size_t cap = 3 + (size_t)n * 21, len = 0;
	char *s = malloc(cap);

	if (s == NULL)
		return NULL;
	s[len++] = '{';
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%s", i > 0 ? "," : "",
		    PQgetvalue(res, rows[i], 0));
	snprintf(s + len, cap - len, "}");
	return s;
}

/*
 * What came of sending rows: delivered, refused for good (a peer's 4xx,
 * error says why) or to be tried again later (exponential backoff with
 * full jitter, at most five minutes), in the open transaction.
 */
enum outbox_outcome { OUTBOX_DELIVERED, OUTBOX_REFUSED, OUTBOX_RETRY };

/*
 * A peer's answer that is not a success: refused for good (a 4xx), or
 * "not yet".  A peer whose directory lags ours refuses us (403
 * unknown_space or key_mismatch: we were admitted, or got our new
 * certificate, after its last poll) and fetches a newer one as it does:
 * the message is sent again.  A 429 is "later" too.  answer is the
 * peer's JSON answer, or NULL.
 */
static enum outbox_outcome
outbox_failure(long status, const cJSON *answer)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(answer, "error");
	const char *error = cJSON_IsString(e) ? e->valuestring : "";

	if (status < 400 || status >= 500 || status == 429)
		return OUTBOX_RETRY;
	if (status == 403 && (strcmp(error, "unknown_space") == 0 ||
	    strcmp(error, "key_mismatch") == 0))
		return OUTBOX_RETRY;
	return OUTBOX_REFUSED;
}

static int
outbox_mark(PGconn *conn, PGresult *res, const int *rows, int n,
    enum outbox_outcome outcome, const char *error, bool commit)
{
	static const char *const set[] = {
		[OUTBOX_DELIVERED] = "update outbox set delivered_at = now(),"
		    " attempts = attempts + 1, last_error = null",
		[OUTBOX_REFUSED] = "update outbox set failed_at = now(),"
		    " attempts = attempts + 1, last_error = $2",
		[OUTBOX_RETRY] = "update outbox set attempts = attempts + 1,"
		    " last_error = $2, next_attempt_at = now() + make_interval(secs =>"
		    "  1 + random() * least(300, power(2, least(attempts, 8) + 1)))",
	};
	/*
	 * One row by its key, or an array of them.  (PostgreSQL plans the
	 * array form anew at every execution; a check-out marks one row.)
	 */
	char *ids = n == 1 ? strdup(PQgetvalue(res, rows[0], 0)) : outbox_ids(res, rows, n);
	const char *params[2] = { ids, error };
	char sql[512];
	/*
	 * The transaction commits without waiting for its WAL flush: a mark
	 * lost in a crash only sends the message again, and the peer answers
	 * a repeat from its store (an authorization's confirmation, in the
	 * same transaction, comes again with it).
	 */
	const struct db_call calls[3] = {
		{ "set local synchronous_commit = off", 0, NULL },
		{ sql, outcome == OUTBOX_DELIVERED ? 1 : 2, params },
		{ "COMMIT", 0, NULL },
	};
	PGresult *out[3];
	int r;

	if (ids == NULL)
		return -ENOMEM;
	snprintf(sql, sizeof(sql), "%s where id = %s", set[outcome],
	    n == 1 ? "$1::bigint" : "any($1::bigint[])");
	r = db_pipeline(conn, calls, commit ? 3 : 2, out);
	free(ids);
	if (r < 0)
		return r;
	PQclear(out[0]);
	PQclear(out[1]);
	return commit ? db_committed(out[2]) : 0;
}

/* Calls peer, unless it is down and not due for a probe. */
static int
outbox_call(struct node *node, struct peer_client *pc, const char *peer,
    const char *path, const char *body, const char *idem, struct peer_response *resp)
{
	const char *hdrs[2] = { idem, NULL };

	/* A dead peer is not hammered: it is probed first, when its time comes. */
	if (peer_is_down(peer) && !peer_probe(pc, peer, false)) {
		memset(resp, 0, sizeof(*resp));
		snprintf(resp->error, sizeof(resp->error), "%s is down (waiting to probe it)",
		    peer);
		return -EHOSTDOWN;
	}
	return peer_call(pc, peer, "POST", path, body, hdrs,
	    (long)node_config(node)->peer_timeout_ms, resp);
}

/*
 * Sends one claimed row and records the outcome in the open transaction
 * (committing it when commit is set).  1 delivered, 0 not, <0 error.
 */
static int
outbox_send(struct node *node, PGconn *conn, struct peer_client *pc,
    PGresult *res, int row, bool commit)
{
	const char *peer = PQgetvalue(res, row, 1);
	const char *kind = PQgetvalue(res, row, 2);
	const char *visit_id = PQgetvalue(res, row, 3);
	const char *path = outbox_path(kind);
	struct peer_response resp;
	enum outbox_outcome outcome;
	char idem[80], err[300];
	int r;

	if (path == NULL)
		return outbox_mark(conn, res, &row, 1, OUTBOX_REFUSED,
		    "unknown message kind", commit);
	/* The visit id is the key of an authorization (as when it was first sent). */
	if (strcmp(kind, OUTBOX_AUTHORIZE) == 0)
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s", visit_id);
	else
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s-%s", kind, visit_id);
	r = outbox_call(node, pc, peer, path, PQgetvalue(res, row, 4), idem, &resp);
	if (r == 0 && resp.status >= 200 && resp.status < 300) {
		outcome = OUTBOX_DELIVERED;
		if (strcmp(kind, OUTBOX_AUTHORIZE) == 0) {
			r = visit_authorization_arrived(node, conn, visit_id, peer, resp.body);
			if (r < 0) {
				peer_response_clear(&resp);
				return -EIO;
			}
			if (r > 0) {
				outcome = OUTBOX_RETRY;
				snprintf(err, sizeof(err), "the receipt's key is not in"
				    " this node's directory yet");
			}
		}
	} else if (r == 0) {
		cJSON *answer = cJSON_Parse(resp.body);

		outcome = outbox_failure(resp.status, answer);
		cJSON_Delete(answer);
		snprintf(err, sizeof(err), "HTTP %ld: %.200s", resp.status, resp.body);
		if (outcome == OUTBOX_REFUSED)
			log_warnx("outbox %s to %s refused for good: %s",
			    PQgetvalue(res, row, 0), peer, err);
	} else {
		outcome = OUTBOX_RETRY;
		snprintf(err, sizeof(err), "%s", resp.error);
	}
	peer_response_clear(&resp);
	r = outbox_mark(conn, res, &row, 1, outcome, outcome == OUTBOX_DELIVERED ?
	    NULL : err, commit);
	return r < 0 ? r : outcome == OUTBOX_DELIVERED;
}

/*
 * Sends claimed completions for one peer in one request (POST
 * /federation/v1/completions), each answered on its own; a peer that does
 * not know the batch endpoint gets them one by one.  Returns how many were
 * delivered, <0 on a database error.
 */
static int
outbox_send_batch(struct node *node, PGconn *conn, struct peer_client *pc,
    PGresult *res, const int *rows, int n)
{
	const char *peer = PQgetvalue(res, rows[0], 1);
	int ok[OUTBOX_BATCH_MAX], nok = 0, delivered = 0, r;
	struct peer_response resp;
	char *body, idem[96], hash[65], err[300];
	size_t cap = 32, len = 0;
	cJSON *answer = NULL;
	const cJSON *results;

	if (n == 1)
		return outbox_send(node, conn, pc, res, rows[0], false);
	for (int i = 0; i < n; i++)
		cap += (size_t)PQgetlength(res, rows[i], 4) + 1;
	body = malloc(cap);
	if (body == NULL)
		return -ENOMEM;
	len = (size_t)snprintf(body, cap, "{\"completions\":[");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(body + len, cap - len, "%s%s", i > 0 ? "," : "",
		    PQgetvalue(res, rows[i], 4));
	snprintf(body + len, cap - len, "]}");
	/*
	 * The key is the request's own digest: the same messages make the
	 * same request under the same key, and no other request can meet it
	 * (outbox ids start again in a database made anew).
	 */
	util_sha256_hex(body, strlen(body), hash);
	snprintf(idem, sizeof(idem), "Idempotency-Key: completions-%.40s", hash);
	r = outbox_call(node, pc, peer, "/federation/v1/completions", body, idem, &resp);
	free(body);
	if (r == 0 && resp.status >= 400 && resp.status < 500) {
		/*
		 * The batch as a whole refused (an older peer without the
		 * endpoint, a smaller body limit): one by one, each message
		 * getting its own answer.
		 */
		peer_response_clear(&resp);
		for (int i = 0; i < n; i++) {
			r = outbox_send(node, conn, pc, res, rows[i], false);
			if (r < 0)
				return r;
			delivered += r;
		}
		return delivered;
	}
	if (r == 0 && resp.status == 200)
		answer = cJSON_Parse(resp.body);
	results = cJSON_GetObjectItemCaseSensitive(answer, "results");
	if (answer == NULL || cJSON_GetArraySize(results) != n) {
		if (r < 0)
			snprintf(err, sizeof(err), "%s", resp.error);
		else
			snprintf(err, sizeof(err), "HTTP %ld%s", resp.status,
			    resp.status == 200 ? ": not one answer per completion" : "");
		cJSON_Delete(answer);
		peer_response_clear(&resp);
		r = outbox_mark(conn, res, rows, n, OUTBOX_RETRY, err, false);
		return r < 0 ? r : 0;
	}
	peer_response_clear(&resp);
	for (int i = 0; i < n && r == 0; i++) {
		const cJSON *item = cJSON_GetArrayItem(results, i);
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "status");
		const cJSON *ans = cJSON_GetObjectItemCaseSensitive(item, "answer");
		int status = cJSON_IsNumber(st) ? st->valueint : 0;
		enum outbox_outcome outcome;
		char *a;

		if (status >= 200 && status < 300) {
			ok[nok++] = rows[i];
			continue;
		}
		a = cJSON_PrintUnformatted(ans);
		snprintf(err, sizeof(err), "HTTP %d: %.200s", status, a != NULL ? a : "");
		free(a);
		outcome = outbox_failure(status, ans);
		if (outcome == OUTBOX_REFUSED)
			log_warnx("outbox %s to %s refused for good: %s",
			    PQgetvalue(res, rows[i], 0), peer, err);
		r = outbox_mark(conn, res, &rows[i], 1, outcome, err, false);
	}
	cJSON_Delete(answer);
	if (r == 0 && nok > 0)
		r = outbox_mark(conn, res, ok, nok, OUTBOX_DELIVERED, NULL, false);
	return r < 0 ? r : nok;
}

/* Delivers message id now if it is still due: 1 delivered, 0 not, <0 error. */
static int
outbox_deliver_one(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *id)
{
	const char *params[1] = { id };
	PGresult *res;
	int r;

	if (db_begin(conn) < 0)
		return -EIO;
	res = db_query(conn, OUTBOX_CLAIM_COLUMNS " and id = $1 for update skip locked",
	    1, params);
	if (res == NULL) {
		db_rollback(conn);
		return -EIO;
	}
	if (PQntuples(res) == 1) {
		r = outbox_send(node, conn, pc, res, 0, true);
	} else {
		r = db_commit(conn);
	}
	PQclear(res);
	if (r < 0) {
		db_rollback(conn);
		return -EIO;
	}
	return r;
}

/* Claimed rows in the order they are sent: by peer, then as claimed. */
struct outbox_claimed {
	const char *peer;
	int row;
};

static int
outbox_by_peer(const void *a, const void *b)
{
	const struct outbox_claimed *x = a, *y = b;
	int c = strcmp(x->peer, y->peer);

	return c != 0 ? c : (x->row > y->row) - (x->row < y->row);
}

int
outbox_deliver_due(struct node *node, PGconn *conn, struct peer_client *pc,
    int limit, int *ret_delivered)
{
	char lim[16];
	const char *params[1] = { lim };
	int batch[OUTBOX_BATCH_MAX], nbatch = 0, delivered = 0, r = 0, n;
	struct outbox_claimed *order;
	size_t bytes = 0;
	PGresult *res;

	snprintf(lim, sizeof(lim), "%d", limit);
	if (db_begin(conn) < 0)
		return -EIO;
	/*
	 * Oldest due first, along the outbox_due index (a backlog is not
	 * sorted as a whole for each claim).
	 */
	res = db_query(conn, OUTBOX_CLAIM_COLUMNS " and next_attempt_at <= now()"
	    " order by next_attempt_at, id limit $1 for update skip locked", 1, params);
	if (res == NULL) {
		db_rollback(conn);
		return -EIO;
	}
	/*
	 * Grouped by peer, so that completions for one peer travel together;
	 * a member has at most one message in a claim, so their order holds.
	 */
	n = PQntuples(res);
	order = calloc((size_t)n + 1, sizeof(*order));
	if (order == NULL) {
		PQclear(res);
		db_rollback(conn);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++)
		order[i] = (struct outbox_claimed){ PQgetvalue(res, i, 1), i };
	qsort(order, (size_t)n, sizeof(*order), outbox_by_peer);
	for (int k = 0; k <= n && r >= 0; k++) {
		int i = order[k].row;
		bool complete = k < n &&
		    strcmp(PQgetvalue(res, i, 2), OUTBOX_COMPLETE) == 0;
		size_t size = complete ? (size_t)PQgetlength(res, i, 4) : 0;

		/* The batch so far goes when this row cannot join it. */
		if (nbatch > 0 && (!complete || nbatch == OUTBOX_BATCH_MAX ||
		    bytes + size > OUTBOX_BATCH_BYTES ||
		    strcmp(PQgetvalue(res, i, 1), PQgetvalue(res, batch[0], 1)) != 0)) {
			r = outbox_send_batch(node, conn, pc, res, batch, nbatch);
			delivered += r > 0 ? r : 0;
			nbatch = 0;
			bytes = 0;
		}
		if (r < 0 || k == n)
			break;
		if (complete) {
			batch[nbatch++] = i;
			bytes += size;
		} else {
			r = outbox_send(node, conn, pc, res, i, false);
			delivered += r > 0 ? r : 0;
		}
	}
	free(order);
	PQclear(res);
	if (r < 0 || db_commit(conn) < 0) {
		db_rollback(conn);
		return -EIO;
	}
	*ret_delivered = delivered;
	return 0;
}

int
outbox_list(PGconn *conn, bool all, cJSON **ret)
{
	PGresult *res;
	cJSON *a;

	res = db_query(conn, all ?
	    "select id, peer, kind, coalesce(visit_id::text, ''), attempts,"
	    " coalesce(last_error, ''), to_char(created_at at time zone 'UTC',"
	    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char(next_attempt_at at time zone"
	    " 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), case when delivered_at is not null"
	    " then 'delivered' when failed_at is not null then 'failed' else 'waiting' end"
	    " from outbox order by id desc limit 1000" :
	    "select id, peer, kind, coalesce(visit_id::text, ''), attempts,"
	    " coalesce(last_error, ''), to_char(created_at at time zone 'UTC',"
	    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char(next_attempt_at at time zone"
	    " 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), case when failed_at is not null"
	    " then 'failed' else 'waiting' end"
	    " from outbox where delivered_at is null order by id limit 10000", 0, NULL);
	if (res == NULL)
		return -EIO;
	a = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "id", atof(PQgetvalue(res, i, 0)));
		cJSON_AddStringToObject(o, "peer", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(o, "kind", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(o, "visit_id", PQgetvalue(res, i, 3));
		cJSON_AddNumberToObject(o, "attempts", atoi(PQgetvalue(res, i, 4)));
		cJSON_AddStringToObject(o, "last_error", PQgetvalue(res, i, 5));
		cJSON_AddStringToObject(o, "created_at", PQgetvalue(res, i, 6));
		cJSON_AddStringToObject(o, "next_attempt_at", PQgetvalue(res, i, 7));
		cJSON_AddStringToObject(o, "state", PQgetvalue(res, i, 8));
		cJSON_AddItemToArray(a, o);
	}
	PQclear(res);
	*ret = a;
	return 0;
}

int
outbox_retry(PGconn *conn, const char *id, int *ret_count)
{
	const char *params[1] = { id };
	PGresult *res;
	int r;

	/*
	 * Every waiting message, or one by id, failed ones included only when
	 * named: a peer's refusal is final unless a person says otherwise.
	 */
	res = db_query(conn, "update outbox set next_attempt_at = now(), failed_at = null"
	    " where delivered_at is null and (($1::bigint is null and failed_at is null)"
	    " or id = $1::bigint) returning id", 1, params);
	if (res == NULL)
		return -EIO;
	*ret_count = PQntuples(res);
	PQclear(res);
	if (id == NULL || *ret_count > 0)
		return 0;
	/* A named message that was not made due: unknown, or delivered. */
	res = db_query(conn, "select delivered_at is not null from outbox"
	    " where id = $1::bigint", 1, params);
	if (res == NULL)
		return -EIO;
	r = PQntuples(res) == 0 ? -ENOENT : -EALREADY;
	PQclear(res);
	return r;
}

int
outbox_flush_member(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *peer, const char *member)
{
	const char *params[2] = { peer, member };

	for (int round = 0; round < 8; round++) {
		PGresult *res = db_query(conn, "select id from outbox where peer = $1"
		    " and member = $2 and delivered_at is null and failed_at is null"
		    " order by id limit 1", 2, params);
		char id[32];
		int r;

		if (res == NULL)
			return -EIO;
		if (PQntuples(res) == 0) {
			PQclear(res);
			return 0;
		}
		util_strlcpy(id, PQgetvalue(res, 0, 0), sizeof(id));
		PQclear(res);
		r = outbox_deliver_one(node, conn, pc, id);
		if (r <= 0)
			return 1; /* it still waits (peer down, or another process has it) */
	}
	return 1;
}

int
outbox_add_deliver(struct node *node, PGconn *conn, struct peer_client *pc,
    const struct db_call *before, const char *peer, const char *kind,
    const char *visit_id, const char *member, const char *payload)
{
	const char *params[5] = { peer, kind, visit_id, payload, member };
	const char *lock[4] = { peer, member, visit_id, kind };
	/*
	 * The row as a claim returns it (OUTBOX_CLAIM_COLUMNS), and whether an
	 * earlier message about the member still waits; then, in a new
	 * transaction, the row locked while it is sent, as a courier's claim
	 * locks it: nobody else sends it meanwhile.  The couriers leave it
	 * alone for OUTBOX_HOLD besides, should this worker die before.
	 */
	struct db_call calls[5];
	PGresult *res[5], *row;
	bool waits;
	int n = 0, r;

	if (before != NULL)
		calls[n++] = *before;
	calls[n++] = (struct db_call){ "insert into outbox (peer, kind, visit_id,"
	    " payload, member, next_attempt_at) values ($1, $2, $3, $4, $5,"
	    " now() + interval '" OUTBOX_HOLD "')"
	    " returning id, peer, kind, visit_id, payload, attempts,"
	    " exists (select 1 from outbox e where e.peer = $1 and e.member = $5"
	    "  and e.id < outbox.id and e.delivered_at is null"
	    "  and e.failed_at is null)", 5, params };
	calls[n++] = (struct db_call){ "COMMIT", 0, NULL };
	calls[n++] = (struct db_call){ "BEGIN", 0, NULL };
	calls[n++] = (struct db_call){ "select 1 from outbox where peer = $1"
	    " and member = $2 and visit_id = $3 and kind = $4"
	    " and delivered_at is null and failed_at is null for update", 4, lock };
	if (db_pipeline(conn, calls, n, res) < 0) {
		db_rollback(conn);
		return -EIO;
	}
	if (before != NULL)
		PQclear(res[0]);
	row = res[n - 4];
	PQclear(res[n - 2]);
	PQclear(res[n - 1]);
	if (db_committed(res[n - 3]) < 0) {
		PQclear(row);
		db_rollback(conn);
		return -EIO;
	}
	waits = strcmp(PQgetvalue(row, 0, 6), "t") == 0;
	/* Committed: from here on, a failure leaves the message to the couriers. */
	if (!waits) {
		r = outbox_send(node, conn, pc, row, 0, true);
		if (r < 0)
			db_rollback(conn);
	} else {
		db_rollback(conn);
		r = outbox_flush_member(node, conn, pc, peer, member) == 0;
	}
	PQclear(row);
	return r > 0 ? 0 : 1;
}
