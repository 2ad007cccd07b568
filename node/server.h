/*
 * server.h - `passerelle serve`: the daemon that runs both faces.
 */
#ifndef PASSERELLE_SERVER_H
#define PASSERELLE_SERVER_H

#include <libpq-fe.h>

#include "http.h"
#include "node.h"
#include "peer.h"
#include "staff.h"

/* What each worker thread owns: a database connection and a peer client. */
struct worker {
	struct node *node;
	PGconn *conn;
	struct peer_client *pc;
};

/* The worker's connection, reconnected first if it broke; NULL when down. */
PGconn *server_worker_db(struct worker *w);

/* Runs the daemon until SIGTERM or SIGINT; returns the exit status. */
int server_run(struct config *cfg);

/* Face handlers (fed.c, api.c). */
void fed_handle(struct http_job *job, void *worker, void *arg);
/* What the federation face answers on its loop threads (http_face_options.quick). */
bool fed_quick(struct http_job *job, void *arg);
void api_handle(struct http_job *job, void *worker, void *arg);
/*
 * A member operation's answer, for both faces' routes: ok_status with m, or
 * the error (-ENOENT 404, -EINVAL or -EPERM 400, else 503) with err.
 */
void api_member_reply(struct http_job *job, int r, cJSON *m, const char *err,
    int ok_status);
/* Whether role is at least min; if not, answers 403 (both faces' routes). */
bool api_require(struct http_job *job, enum staff_role role, enum staff_role min);

#endif
