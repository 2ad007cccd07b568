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
#include "revocation.h"
#include "server.h"
#include "home.h"

/* Answers 403 unless the caller is a space of the current directory. */
static bool
fed_caller_ok(struct http_job *job, struct worker *w)
{
	struct node_directory *nd;
	const struct directory_space *space = NULL;
	bool ok = false;

	if (!job->has_peer_cert || job->peer_space[0] == '\0') {
		http_reply_error(job, 403, "forbidden",
		    "the client certificate names no space (SAN URI %s...)",
		    "urn:passerelle:space:");
		return false;
	}
	nd = node_directory_get(w->node);
	if (nd != NULL)
		space = directory_find_space(nd->dir, job->peer_space);
	if (space == NULL)
		http_reply_error(job, 403, "unknown_space",
		    "space '%s' is not in the directory (serial %lld)", job->peer_space,
		    (long long)(nd != NULL ? directory_serial(nd->dir) : 0));
	else if (!directory_space_pinned(space, job->peer_spki_sha256))
		http_reply_error(job, 403, "key_mismatch",
		    "the certificate's key is not the one the directory lists for '%s'",
		    job->peer_space);
	else
		ok = true;
	node_directory_put(w->node, nd);
	return ok;
}

static void
fed_post(struct http_job *job, struct worker *w,
    void (*fn)(struct node *, PGconn *, const char *, const cJSON *, int *, char **))
{
	PGconn *conn;
	cJSON *req;
	char *body = NULL;
	int status = 500;

	req = http_job_json(job);
	if (req == NULL)
		return;
	conn = server_worker_db(w);
	if (conn == NULL) {
		cJSON_Delete(req);
		http_reply_error(job, 503, "unavailable", "the node's database is down; retry");
		return;
	}
	fn(w->node, conn, job->peer_space, req, &status, &body);
	cJSON_Delete(req);
	if (body == NULL) {
		http_reply_error(job, 500, "internal", "no answer");
		return;
	}
	job->status = status;
	job->content_type = "application/json";
	job->resp_body = body;
}

void
fed_handle(struct http_job *job, void *worker, void *arg)
{
	struct worker *w = worker;

	if (!fed_caller_ok(job, w)) {
		/* A space that is not (or no longer) admitted keeps no connection. */
		job->close_connection = true;
		/*
		 * A space we do not know yet but that holds a newer directory
		 * may just have been admitted: poll the coordinator's URLs.
		 */
		if (job->has_peer_cert && job->peer_space[0] != '\0')
			node_directory_hint(w->node, "", job->peer_directory_serial);
		return;
	}
	/* The caller holds a newer directory: fetch it from there. */
	node_directory_hint(w->node, job->peer_space, job->peer_directory_serial);
	if (strcmp(job->path, "/federation/v1/authorize") == 0) {
		if (job->method != HTTP_POST)
			http_reply_error(job, 405, "method_not_allowed", "use POST");
		else
			fed_post(job, w, home_authorize);
	} else if (strcmp(job->path, "/federation/v1/complete") == 0) {
		if (job->method != HTTP_POST)
			http_reply_error(job, 405, "method_not_allowed", "use POST");
		else
			fed_post(job, w, home_complete);
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
	} else if (strcmp(job->path, "/federation/v1/ping") == 0) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "space", node_space_id(w->node));
		cJSON_AddStringToObject(o, "caller", job->peer_space);
		http_reply_json(job, 200, o);
	} else {
		http_reply_error(job, 404, "not_found", "no endpoint %s", job->path);
	}
}
