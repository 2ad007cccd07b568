/*
 * server.c - the daemon: both faces, the worker pool, the outbox courier,
 * and the signals that stop it cleanly.
 *
 * Signals are blocked in every thread and taken by the main thread with
 * sigwait(), so no handler ever runs inside libevent or libpq.  SIGTERM and
 * SIGINT stop accepting, let requests in flight finish, stop the courier,
 * close the database connections and stop the embedded PostgreSQL.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "outbox.h"
#include "server.h"
#include "tls.h"
#include "util.h"

PGconn *
server_worker_db(struct worker *w)
{
	char err[256];

	if (w->conn != NULL && !db_is_broken(w->conn))
		return w->conn;
	if (w->conn != NULL) {
		/* PQreset keeps the conninfo; a server restart needs just this. */
		PQreset(w->conn);
		if (!db_is_broken(w->conn))
			return w->conn;
		PQfinish(w->conn);
		w->conn = NULL;
	}
	if (node_db_connect(w->node, &w->conn, err, sizeof(err)) < 0) {
		log_warnx("database: %s", err);
		w->conn = NULL;
	}
	return w->conn;
}

static int
server_worker_init(void *arg, void **ret_worker)
{
	struct worker *w = calloc(1, sizeof(*w));
	char err[256];

	if (w == NULL)
		return -ENOMEM;
	w->node = arg;
	if (node_db_connect(w->node, &w->conn, err, sizeof(err)) < 0) {
		log_warnx("worker: %s", err);
		free(w);
		return -EIO;
	}
	if (peer_client_new(&w->pc, w->node) < 0) {
		PQfinish(w->conn);
		free(w);
		return -ENOMEM;
	}
	*ret_worker = w;
	return 0;
}

static void
server_worker_fini(void *worker)
{
	struct worker *w = worker;

	if (w == NULL)
		return;
	peer_client_free(w->pc);
	if (w->conn != NULL)
		PQfinish(w->conn);
	free(w);
}

static int64_t
server_serial(void *arg)
{
	return node_directory_serial(arg);
}

/* ------------------------------------------------------------ courier */

struct courier {
	struct node *node;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
};

static void *
courier_main(void *arg)
{
	struct courier *c = arg;
	struct worker w = { .node = c->node };

	if (peer_client_new(&w.pc, c->node) < 0)
		return NULL;
	for (;;) {
		struct timespec ts;
		int delivered = 0;

		pthread_mutex_lock(&c->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		while (!c->stop && pthread_cond_timedwait(&c->cond, &c->lock, &ts) != ETIMEDOUT)
			;
		if (c->stop) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		pthread_mutex_unlock(&c->lock);
		if (server_worker_db(&w) == NULL)
			continue;
		/* Drain in batches while there is work, then wait a second. */
		while (outbox_deliver_due(c->node, w.conn, w.pc, 32, &delivered) == 0 &&
		    delivered > 0)
			log_debug("outbox: %d delivered", delivered);
	}
	peer_client_free(w.pc);
	if (w.conn != NULL)
		PQfinish(w.conn);
	return NULL;
}

/* ------------------------------------------------------------ the daemon */

int
server_run(struct config *cfg)
{
	struct node *node = NULL;
	struct http_pool *pool = NULL;
	struct http_face *fed = NULL, *local = NULL;
	struct courier courier;
	bool courier_started = false;
	SSL_CTX *ssl = NULL;
	PGconn *conn = NULL;
	sigset_t set;
	char err[512];
	int sig = 0, status = 1;

	/* Every thread created from here on inherits the blocked signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (node_open(&node, cfg, NODE_NEED_DIRECTORY | NODE_NEED_PASS_KEY |
	    NODE_NEED_DATABASE | NODE_MIGRATE, err, sizeof(err)) < 0) {
		log_warnx("cannot start: %s", err);
		return 1;
	}
	if (node_db_connect(node, &conn, err, sizeof(err)) < 0) {
		log_warnx("cannot start: %s", err);
		goto out;
	}
	{
		/* A misspelt time zone would fail every check-in: refuse it now. */
		const char *params[1] = { cfg->timezone };
		PGresult *res = db_query(conn, "select now() at time zone $1", 1, params);

		if (res == NULL) {
			log_warnx("cannot start: [node] timezone '%s' is not a time zone"
			    " PostgreSQL knows (e.g. Europe/Paris)", cfg->timezone);
			goto out;
		}
		PQclear(res);
	}
	PQfinish(conn);
	conn = NULL;

	ssl = tls_server_ctx_new(cfg->fed_cert, cfg->fed_key, cfg->fed_ca, err, sizeof(err));
	if (ssl == NULL) {
		log_warnx("cannot start: federation TLS: %s", err);
		goto out;
	}
	if (http_pool_new(&pool, (int)cfg->workers, server_worker_init,
	    server_worker_fini, node) < 0) {
		log_warnx("cannot start: workers cannot connect to the database");
		goto out;
	}
	{
		struct http_face_options o = {
			.name = "federation",
			.listen = cfg->fed_listen,
			.ssl_ctx = ssl,
			.threads = (int)cfg->threads,
			.max_body = (size_t)cfg->max_body,
			.max_headers = (size_t)cfg->max_headers,
			.max_json_depth = (int)cfg->max_json_depth,
			.timeout_seconds = (int)cfg->request_timeout,
			.handler = fed_handle,
			.serial_fn = server_serial,
			.serial_arg = node,
		};

		if (http_face_new(&fed, &o, pool, err, sizeof(err)) < 0) {
			log_warnx("cannot start: federation face: %s", err);
			goto out;
		}
		o.name = "local";
		o.listen = cfg->local_listen;
		o.ssl_ctx = NULL;
		o.threads = 1;
		o.handler = api_handle;
		o.serial_fn = NULL;
		if (http_face_new(&local, &o, pool, err, sizeof(err)) < 0) {
			log_warnx("cannot start: local face: %s", err);
			goto out;
		}
	}
	memset(&courier, 0, sizeof(courier));
	courier.node = node;
	pthread_mutex_init(&courier.lock, NULL);
	pthread_cond_init(&courier.cond, NULL);
	courier_started = pthread_create(&courier.thread, NULL, courier_main, &courier) == 0;

	log_info("space %s ready: federation https://%s, local http://%s, directory serial %lld",
	    cfg->space_id, cfg->fed_listen, cfg->local_listen,
	    (long long)node_directory_serial(node));
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: nothing to reload yet (restart to change settings)");
			continue;
		}
		break;
	}
	log_info("signal %d: stopping", sig);
	status = 0;
out:
	http_face_free(fed, 10000);
	http_face_free(local, 10000);
	if (courier_started) {
		pthread_mutex_lock(&courier.lock);
		courier.stop = true;
		pthread_cond_signal(&courier.cond);
		pthread_mutex_unlock(&courier.lock);
		pthread_join(courier.thread, NULL);
	}
	http_pool_free(pool);
	if (conn != NULL)
		PQfinish(conn);
	SSL_CTX_free(ssl);
	node_close(node);
	log_info("stopped");
	return status;
}
