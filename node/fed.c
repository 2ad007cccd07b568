/*
 * fed.c - the federation face: what peers may ask of this node.
 *
 * By the time a request gets here, TLS has verified the client certificate
 * against the federation CA.  The calling space is read from that
 * certificate (its SAN URI) and must be in the current directory with the
 * same key pin; nothing in the request body can claim another identity.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "http.h"
#include "log.h"
#include "reconcile.h"
#include "revocation.h"
#include "db.h"
#include "util.h"
#include "server.h"
#include "home.h"

/*
 * The directory in force has expired: every caller is refused (503).  One
 * that the expired directory lists and pins, holding a newer directory,
 * is where the refresher fetches it (peer_call allows that fetch).
 */
static void
fed_refuse_expired(struct http_job *job, struct node *node)
{
	struct node_directory *old = node_directory_current(node);
	const struct directory_space *sp = old != NULL ?
	    directory_find_space(old->dir, job->peer_space) : NULL;

	http_reply_error(job, 503, "directory_expired",
	    "this node's directory (serial %lld) has expired: it trusts no space"
	    " until it has a new one", (long long)node_directory_serial(node));
	if (sp != NULL && directory_space_pinned(sp, job->peer_spki_sha256))
		node_directory_hint(node, job->peer_space, job->peer_directory_serial);
	node_directory_put(node, old);
	job->close_connection = true;
}

/*
 * Answers 403 unless the caller is a space of the current directory (503
 * when it has expired); a refused caller keeps no connection.  Either way, a caller holding a newer
 * directory makes us fetch it.  Thread-safe: the loop threads call it too.
 */
static bool
fed_admit(struct http_job *job, struct node *node)
{
	struct node_directory *nd;
	const struct directory_space *space;
	bool ok = false;

	if (!job->has_peer_cert || job->peer_space[0] == '\0') {
		http_reply_error(job, 403, "forbidden",
		    "the client certificate names no space (SAN URI %s...)",
		    "urn:passerelle:space:");
		job->close_connection = true;
		return false;
	}
	nd = node_directory_get(node);
	if (nd == NULL) {
		fed_refuse_expired(job, node);
		return false;
	}
	space = directory_find_space(nd->dir, job->peer_space);
	if (space == NULL)
		http_reply_error(job, 403, "unknown_space",
		    "space '%s' is not in the directory (serial %lld)", job->peer_space,
		    (long long)directory_serial(nd->dir));
	else if (!directory_space_pinned(space, job->peer_spki_sha256))
		http_reply_error(job, 403, "key_mismatch",
		    "the certificate's key is not the one the directory lists for '%s'",
		    job->peer_space);
	else
		ok = true;
	node_directory_put(node, nd);
	if (ok) {
		/* The caller holds a newer directory: fetch it from there. */
		node_directory_hint(node, job->peer_space, job->peer_directory_serial);
	} else {
		/* A space that is not (or no longer) admitted keeps no connection. */
		job->close_connection = true;
		/*
		 * A space we do not know yet but that holds a newer directory
		 * may just have been admitted: poll the coordinator's URLs.
		 */
		node_directory_hint(node, "", job->peer_directory_serial);
	}
	return ok;
}

/*
 * Idempotency of the POSTs that have no key of their own in their body: a
 * repeat with the same key and body gets the stored answer byte for byte,
 * the same key with another body 409, and neither changes anything.
 * Returns true when the job was answered from the store.
 */
static bool
fed_idempotent_replay(struct http_job *job, PGconn *conn, char hash[65])
{
	const char *params[3] = { job->peer_space, job->idempotency_key, hash };
	PGresult *res;

	util_sha256_hex(job->body, job->body_len, hash);
	res = db_query(conn, "update idempotency_keys set repeats = repeats + 1"
	    " where caller = $1 and key = $2 returning request_hash, status, response",
	    2, params);
	if (res == NULL || PQntuples(res) == 0) {
		PQclear(res);
		return false;
	}
	if (strcmp(PQgetvalue(res, 0, 0), hash) == 0) {
		job->status = atoi(PQgetvalue(res, 0, 1));
		job->content_type = "application/json";
		job->resp_body = strdup(PQgetvalue(res, 0, 2));
	} else {
		http_reply_error(job, 409, "conflict", "idempotency key %s was used with"
		    " another request", job->idempotency_key);
	}
	PQclear(res);
	return true;
}

/*
 * The key is stored as text in PostgreSQL: bytes that are not UTF-8 would
 * fail there, answered 503, and the caller would retry them forever.
 * Nodes send UUIDs and hashes; printable ASCII is all a key needs.
 */
static bool
fed_idempotency_key_valid(const char *key)
{
	size_t n = key != NULL ? strlen(key) : 0;

	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (key[i] < 0x20 || key[i] > 0x7e)
			return false;
	return true;
}

/*
 * A federation POST.  A handler keyed by its body (an authorization: the
 * visit id is the key) runs on its own; the others run in one transaction
 * with the lookup and the record of their Idempotency-Key, so that the
 * answer and its record are committed together.
 */
static void
fed_post(struct http_job *job, struct worker *w, bool keyed_by_body,
    void (*fn)(struct node *, PGconn *, const char *, const cJSON *, int *, char **))
{
	PGconn *conn;
	cJSON *req;
	char *body = NULL, hash[65], st[16];
	int status = 500;

	if (!fed_idempotency_key_valid(job->idempotency_key)) {
		http_reply_error(job, 400, "idempotency_key_required",
		    "a federation POST carries an Idempotency-Key header"
		    " (1 to 128 printable ASCII characters)");
		return;
	}
	req = http_job_json(job);
	if (req == NULL)
		return;
	conn = server_worker_db(w);
	if (conn == NULL) {
		cJSON_Delete(req);
		http_reply_error(job, 503, "unavailable", "the node's database is down; retry");
		return;
	}
	if (keyed_by_body) {
		fn(w->node, conn, job->peer_space, req, &status, &body);
		goto answer;
	}
	if (db_begin(conn) < 0)
		goto unavailable;
	if (fed_idempotent_replay(job, conn, hash)) {
		cJSON_Delete(req);
		if (db_commit(conn) < 0)
			db_rollback(conn);
		return;
	}
	fn(w->node, conn, job->peer_space, req, &status, &body);
	if (body == NULL || status >= 500) {
		db_rollback(conn);
		goto answer;
	}
	snprintf(st, sizeof(st), "%d", status);
	{
		const char *params[5] = { job->peer_space, job->idempotency_key, hash, st,
			body };

		/* Two deliveries with the same key at once: the first is kept. */
		if (db_exec_commit(conn, "insert into idempotency_keys (caller, key,"
		    " request_hash, status, response) values ($1, $2, $3, $4, $5)"
		    " on conflict do nothing", 5, params) < 0) {
			db_rollback(conn);
			free(body);
			body = NULL;
			goto unavailable;
		}
	}
answer:
	cJSON_Delete(req);
	if (body == NULL) {
		http_reply_error(job, 500, "internal", "no answer");
		return;
	}
	job->status = status;
	job->content_type = "application/json";
	job->resp_body = body;
	return;
unavailable:
	cJSON_Delete(req);
	http_reply_error(job, 503, "unavailable", "database unavailable; retry");
}

/* GET /federation/v1/ping: who we are, and who the caller is to us. */
static void
fed_ping(struct http_job *job, struct node *node)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "space", node_space_id(node));
	cJSON_AddStringToObject(o, "caller", job->peer_space);
	http_reply_json(job, 200, o);
}

bool
fed_quick(struct http_job *job, void *arg)
{
	struct node *node = arg;

	/*
	 * A ping, unless it comes from a peer we saw failing: that one is
	 * back, and what waits for it is made due by a worker.
	 */
	if (strcmp(job->path, "/federation/v1/ping") != 0 ||
	    (job->peer_space[0] != '\0' && peer_is_failing(job->peer_space)))
		return false;
	if (fed_admit(job, node))
		fed_ping(job, node);
	return true;
}

void
fed_handle(struct http_job *job, void *worker, void *arg)
{
	struct worker *w = worker;

	if (!fed_admit(job, w->node))
		return;
	/*
	 * A peer that calls us is up: what waits for it in the outbox need not
	 * wait for its backoff (the courier sends it within a second).
	 */
	if (peer_mark_alive(job->peer_space)) {
		PGconn *conn = server_worker_db(w);
		const char *params[1] = { job->peer_space };

		if (conn != NULL)
			(void)db_exec(conn, "update outbox set next_attempt_at = now()"
			    " where peer = $1 and delivered_at is null and failed_at is null"
			    " and next_attempt_at > now()", 1, params);
		log_info("peer %s is back: its waiting messages are due now",
		    job->peer_space);
	}
	if (strcmp(job->path, "/federation/v1/authorize") == 0) {
		if (job->method != HTTP_POST)
			http_reply_error(job, 405, "method_not_allowed", "use POST");
		else
			fed_post(job, w, true, home_authorize);
	} else if (strcmp(job->path, "/federation/v1/complete") == 0) {
		if (job->method != HTTP_POST)
			http_reply_error(job, 405, "method_not_allowed", "use POST");
		else
			fed_post(job, w, false, home_complete);
	} else if (strcmp(job->path, "/federation/v1/completions") == 0) {
		if (job->method != HTTP_POST)
			http_reply_error(job, 405, "method_not_allowed", "use POST");
		else
			fed_post(job, w, false, home_complete_batch);
	} else if (strcmp(job->path, "/federation/v1/directory") == 0) {
		struct node_directory *nd = node_directory_get(w->node);

		if (nd == NULL)
			http_reply_error(job, 503, "unavailable", "no directory loaded");
		else
			http_reply_text(job, 200, "application/jose", nd->token);
		node_directory_put(w->node, nd);
	} else if (strcmp(job->path, "/federation/v1/revocations") == 0) {
		PGconn *conn = server_worker_db(w);
		char *token = NULL;

		if (conn == NULL || revocation_publish(w->node, conn, &token) < 0)
			http_reply_error(job, 503, "unavailable", "cannot list revocations");
		else
			http_reply_text(job, 200, "application/jose", token);
		free(token);
	/* Ledger exchange (reconcile.c) goes here. */
	} else if (strcmp(job->path, "/federation/v1/ledger") == 0 ||
	    strcmp(job->path, "/federation/v1/balances") == 0) {
		reconcile_fed_handle(job, w);
	} else if (strcmp(job->path, "/federation/v1/ping") == 0) {
		fed_ping(job, w->node);
	} else {
		http_reply_error(job, 404, "not_found", "no endpoint %s", job->path);
	}
}
