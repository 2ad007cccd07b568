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

#include <sodium.h>

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
    const char *visit_id, const char *member, const char *payload, char *ret_id,
    size_t idlen)
{
	const char *params[5] = { peer, kind, visit_id, payload, member };
	PGresult *res;

	res = db_query(conn, "insert into outbox (peer, kind, visit_id, payload, member)"
	    " values ($1, $2, $3, $4, $5) returning id", 5, params);
	if (res == NULL)
		return -EIO;
	if (ret_id != NULL)
		util_strlcpy(ret_id, PQgetvalue(res, 0, 0), idlen);
	PQclear(res);
	return 0;
}

/* Sends one claimed row; updates it in the open transaction. */
static int
outbox_send(struct node *node, PGconn *conn, struct peer_client *pc,
    PGresult *res, int row)
{
	const char *id = PQgetvalue(res, row, 0);
	const char *peer = PQgetvalue(res, row, 1);
	const char *kind = PQgetvalue(res, row, 2);
	const char *visit_id = PQgetvalue(res, row, 3);
	const char *payload = PQgetvalue(res, row, 4);
	int attempts = atoi(PQgetvalue(res, row, 5));
	const char *path = outbox_path(kind);
	struct peer_response resp;
	char idem[80], err[300], delay[32];
	const char *hdrs[2] = { idem, NULL };
	int r, delivered = 0;

	if (path == NULL) {
		const char *p[2] = { id, "unknown message kind" };

		db_exec(conn, "update outbox set failed_at = now(), last_error = $2"
		    " where id = $1", 2, p);
		return 0;
	}
	/* The visit id is the key of an authorization (as when it was first sent). */
	if (strcmp(kind, OUTBOX_AUTHORIZE) == 0)
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s", visit_id);
	else
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s-%s", kind, visit_id);
	/* A dead peer is not hammered: it is probed first, when its time comes. */
	if (peer_is_down(peer) && !peer_probe(pc, peer, false)) {
		r = -EHOSTDOWN;
		memset(&resp, 0, sizeof(resp));
		snprintf(resp.error, sizeof(resp.error), "%s is down (waiting to probe it)",
		    peer);
	} else {
		r = peer_call(pc, peer, "POST", path, payload, hdrs,
		    (long)node_config(node)->peer_timeout_ms, &resp);
	}
	if (r == 0 && resp.status >= 200 && resp.status < 300) {
		const char *p[1] = { id };

		if (strcmp(kind, OUTBOX_AUTHORIZE) == 0)
			r = visit_authorization_arrived(node, conn, visit_id, peer, resp.body);
		if (r == 0)
			r = db_exec(conn, "update outbox set delivered_at = now(),"
			    " attempts = attempts + 1, last_error = null where id = $1", 1, p);
		delivered = r == 0;
	} else if (r == 0 && resp.status >= 400 && resp.status < 500) {
		const char *p[2] = { id, err };

		snprintf(err, sizeof(err), "HTTP %ld: %.200s", resp.status, resp.body);
		log_warnx("outbox %s to %s refused for good: %s", id, peer, err);
		r = db_exec(conn, "update outbox set failed_at = now(),"
		    " attempts = attempts + 1, last_error = $2 where id = $1", 2, p);
	} else {
		/* Exponential backoff with full jitter, at most five minutes. */
		int64_t cap = attempts >= 8 ? 300 : (int64_t)1 << (attempts + 1);
		const char *p[3] = { id, err, delay };

		if (cap > 300)
			cap = 300;
		snprintf(delay, sizeof(delay), "%u",
		    1000u + randombytes_uniform((uint32_t)cap * 1000u));
		if (r < 0)
			snprintf(err, sizeof(err), "%s", resp.error);
		else
			snprintf(err, sizeof(err), "HTTP %ld", resp.status);
		r = db_exec(conn, "update outbox set attempts = attempts + 1,"
		    " last_error = $2, next_attempt_at = now()"
		    "  + make_interval(secs => $3::int / 1000.0) where id = $1", 3, p);
	}
	peer_response_clear(&resp);
	return r < 0 ? r : delivered;
}

int
outbox_deliver_one(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *id)
{
	const char *params[1] = { id };
	PGresult *res;
	int r;

	if (db_begin(conn) < 0)
		return -EIO;
	res = db_query(conn, "select id, peer, kind, visit_id, payload, attempts"
	    " from outbox o where id = $1 and delivered_at is null and failed_at is null"
	    " and not exists (select 1 from outbox e where e.peer = o.peer"
	    "  and e.member = o.member and e.id < o.id and e.delivered_at is null"
	    "  and e.failed_at is null)"
	    " for update skip locked", 1, params);
	if (res == NULL) {
		db_rollback(conn);
		return -EIO;
	}
	r = PQntuples(res) == 1 ? outbox_send(node, conn, pc, res, 0) : 0;
	PQclear(res);
	if (r < 0 || db_commit(conn) < 0) {
		db_rollback(conn);
		return -EIO;
	}
	return r;
}

int
outbox_deliver_due(struct node *node, PGconn *conn, struct peer_client *pc,
    int limit, int *ret_delivered)
{
	char lim[16];
	const char *params[1] = { lim };
	PGresult *res;
	int delivered = 0, r = 0;

	snprintf(lim, sizeof(lim), "%d", limit);
	if (db_begin(conn) < 0)
		return -EIO;
	res = db_query(conn, "select id, peer, kind, visit_id, payload, attempts"
	    " from outbox o where delivered_at is null and failed_at is null"
	    " and next_attempt_at <= now()"
	    /* In order per member: an earlier message about them goes first. */
	    " and not exists (select 1 from outbox e where e.peer = o.peer"
	    "  and e.member = o.member and e.id < o.id and e.delivered_at is null"
	    "  and e.failed_at is null)"
	    " order by id limit $1 for update skip locked", 1, params);
	if (res == NULL) {
		db_rollback(conn);
		return -EIO;
	}
	for (int i = 0; i < PQntuples(res) && r >= 0; i++) {
		r = outbox_send(node, conn, pc, res, i);
		if (r > 0)
			delivered++;
	}
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
	return 0;
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
