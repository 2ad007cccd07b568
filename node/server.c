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
#include "revocation.h"
#include "server.h"
#include "tls.h"
#include "util.h"
#include "visit.h"

PGconn *
server_worker_db(struct worker *w)
{
	char err[256];

	if (w->conn != NULL && !db_is_broken(w->conn))
		return w->conn;
	if (w->conn != NULL) {
		/* PQreset keeps the conninfo; a server restart needs just this. */
		db_forget(w->conn);
		PQreset(w->conn);
		if (!db_is_broken(w->conn))
			return w->conn;
		db_close(w->conn);
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
		db_close(w->conn);
		free(w);
		return -ENOMEM;
	}
	*ret_worker = w;
	return 0;
}

/* What a worker holds, let go as its thread ends (pool, courier, refresher). */
static void
server_worker_close(struct worker *w)
{
	peer_client_free(w->pc);
	w->pc = NULL;
	db_close(w->conn);
	w->conn = NULL;
}

static void
server_worker_fini(void *worker)
{
	struct worker *w = worker;

	if (w == NULL)
		return;
	server_worker_close(w);
	free(w);
}

/* ------------------------------------------------------------ directory */

struct server_state {
	struct node *node;
	struct http_face *fed;
	char crl_file[4096];
	char *crl;		/* the CRL in force (PEM), to notice changes */
};

/* keep() for http_face_close_connections: still admitted, same key. */
static bool
server_space_admitted(void *arg, const char *space_id, const uint8_t spki[32])
{
	struct node *node = arg;
	struct node_directory *nd = node_directory_get(node);
	const struct directory_space *sp =
	    nd != NULL ? directory_find_space(nd->dir, space_id) : NULL;
	bool ok = sp != NULL && directory_space_pinned(sp, spki);

	node_directory_put(node, nd);
	return ok;
}

/*
 * A new directory: close the connections of spaces it no longer admits,
 * and load the CRL it carries into the federation face's TLS context.
 */
static void
server_directory_changed(void *arg, const struct directory *old,
    const struct directory *dir)
{
	struct server_state *st = arg;
	const struct config *cfg = node_config(st->node);
	const char *crl = directory_crl(dir);
	SSL_CTX *ctx;
	char err[512];

	if (st->fed == NULL)
		return;
	http_face_close_connections(st->fed, server_space_admitted, st->node);
	if (crl == NULL || (st->crl != NULL && strcmp(st->crl, crl) == 0))
		return;
	if (util_write_file(st->crl_file, crl, strlen(crl), 0644) < 0) {
		log_warn("cannot write %s", st->crl_file);
		return;
	}
	ctx = tls_server_ctx_new(cfg->fed_cert, cfg->fed_key, cfg->fed_ca, err, sizeof(err));
	if (ctx == NULL || tls_ctx_load_crl(ctx, st->crl_file, err, sizeof(err)) < 0) {
		log_warnx("the directory's CRL is not applied: %s", err);
		SSL_CTX_free(ctx);
		return;
	}
	http_face_set_ssl_ctx(st->fed, ctx);
	free(st->crl);
	st->crl = strdup(crl);
	log_info("CRL from directory serial %lld applied to the federation face",
	    (long long)directory_serial(dir));
}

static int64_t
server_serial(void *arg)
{
	return node_directory_serial(arg);
}

/* ------------------------------------------------------------ courier */

#define SERVER_MAX_COURIERS 16

struct courier {
	struct node *node;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stop;
};

static void *
courier_main(void *arg)
{
	struct courier *c = arg;
	struct worker w = { .node = c->node };
	int64_t next_closing_check = 0;

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
		while (!c->stop &&
		    outbox_deliver_due(c->node, w.conn, w.pc, 128, &delivered) == 0 &&
		    delivered > 0)
			log_debug("outbox: %d delivered", delivered);
		/*
		 * Visits still open at closing time are checked out then, and
		 * check-ins left pending by a dead process are voided.
		 */
		if (util_now() >= next_closing_check) {
			int closed = 0, voided = 0;

			(void)visit_close_overdue(c->node, w.conn, w.pc, &closed);
			(void)visit_resolve_stale(c->node, w.conn, &voided);
			next_closing_check = util_now() + 5;
		}
	}
	server_worker_close(&w);
	return NULL;
}

/* ------------------------------------------------------------ refresher */

/*
 * The directory refresher: polls the configured URLs every
 * [federation] directory_refresh, and fetches from a peer at once when one
 * says it holds a newer serial.  What it fetches goes through
 * node_directory_offer(), which verifies, saves and swaps it.
 */
/* Seconds between two polls that hints of the same serial may cause. */
#define REFRESHER_HINT_INTERVAL 30
#define REFRESHER_REVIVE_INTERVAL 5	/* seconds between looks at the embedded server */
/* Seconds between two polls of the coordinator's URLs while the directory is expired. */
#define REFRESHER_EXPIRED_INTERVAL 60

struct refresher {
	struct node *node;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool poll_now;
};

static void
refresher_offer(struct refresher *rf, PGconn *conn, const struct peer_response *resp,
    const char *source)
{
	char err[512];
	bool changed = false;

	if (resp->status != 200) {
		log_warnx("directory from %s: HTTP %ld", source, resp->status);
		return;
	}
	if (node_directory_offer(rf->node, conn, resp->body, resp->len, source,
	    &changed, err, sizeof(err)) < 0)
		log_warnx("%s", err);
}

static void
refresher_poll(struct refresher *rf, struct worker *w)
{
	const struct config *cfg = node_config(rf->node);
	char *urls = strdup(cfg->directory_urls), *save = NULL;

	if (urls == NULL)
		return;
	for (char *url = strtok_r(urls, " \t,", &save); url != NULL;
	    url = strtok_r(NULL, " \t,", &save)) {
		struct peer_response resp;

		if (peer_fetch_url(w->pc, url, 10000, &resp) < 0)
			log_warnx("directory poll: %s", resp.error);
		else
			refresher_offer(rf, w->conn, &resp, url);
		peer_response_clear(&resp);
	}
	free(urls);
}

static void
refresher_check_expiry(struct refresher *rf, int64_t *last_warned, bool *expired)
{
	const struct config *cfg = node_config(rf->node);
	struct node_directory *nd = node_directory_current(rf->node);
	int64_t left;

	if (nd == NULL)
		return;
	left = directory_expires_at(nd->dir) - util_now();
	/* Said at once when it expires, then hourly; the warning before, hourly. */
	if (left <= 0 && (!*expired || util_now() - *last_warned >= 3600)) {
		log_warnx("directory serial %lld has expired: this node trusts no"
		    " space (visitors and peers are refused) until it gets a new one"
		    " from the coordinator", (long long)directory_serial(nd->dir));
		*last_warned = util_now();
	} else if (left > 0 && left < cfg->directory_warn &&
	    util_now() - *last_warned >= 3600) {
		log_warnx("directory serial %lld expires in %lld hours: ask the"
		    " coordinator for a new one", (long long)directory_serial(nd->dir),
		    (long long)(left / 3600));
		*last_warned = util_now();
	}
	*expired = left <= 0;
	node_directory_put(rf->node, nd);
}

static void *
refresher_main(void *arg)
{
	struct refresher *rf = arg;
	const struct config *cfg = node_config(rf->node);
	struct worker w = { .node = rf->node };
	int64_t next_poll = 0, last_warned = 0, last_hinted = 0, hinted_serial = 0;
	int64_t next_revive = util_now() + REFRESHER_REVIVE_INTERVAL;
	bool expired = false;

	if (peer_client_new(&w.pc, rf->node) < 0)
		return NULL;
	while (!atomic_load(&rf->stop)) {
		char space[64];
		int64_t serial;
		bool hinted = node_directory_wait_hint(rf->node, 1000, space,
		    sizeof(space), &serial) == 1;

		if (atomic_load(&rf->stop))
			break;
		/*
		 * The embedded PostgreSQL is this serve's to keep running: one
		 * killed (OOM, an operator) is started again, and the workers
		 * reconnect by themselves.
		 */
		if (util_now() >= next_revive) {
			char err[512];
			int r = node_embedded_revive(rf->node, err, sizeof(err));

			if (r < 0)
				log_warnx("the embedded PostgreSQL is not running "
				    "and cannot be started: %s", err);
			else if (r == 1)
				log_warnx("the embedded PostgreSQL was not running:"
				    " started it again");
			next_revive = util_now() + REFRESHER_REVIVE_INTERVAL;
		}
		if (server_worker_db(&w) == NULL)
			continue;
		/*
		 * A hint comes with a request (the caller's directory serial):
		 * a serial higher than any hinted before is acted on within a
		 * second, the same again once every REFRESHER_HINT_INTERVAL, so
		 * that requests naming a higher serial, true or not, cannot keep
		 * the refresher fetching.
		 */
		if (hinted && util_now() - last_hinted < (serial > hinted_serial ? 1 :
		    REFRESHER_HINT_INTERVAL))
			hinted = false;
		if (hinted) {
			last_hinted = util_now();
			if (serial > hinted_serial)
				hinted_serial = serial;
		}
		if (hinted && space[0] != '\0' && serial > node_directory_serial(rf->node)) {
			struct peer_response resp;
			char source[128];

			snprintf(source, sizeof(source), "space %s", space);
			if (peer_call(w.pc, space, "GET", "/federation/v1/directory", NULL,
			    NULL, 10000, &resp) < 0)
				log_warnx("directory from %s: %s", source, resp.error);
			else
				refresher_offer(rf, w.conn, &resp, source);
			peer_response_clear(&resp);
		} else if (hinted && cfg->directory_urls[0] != '\0') {
			/*
			 * A caller we do not know holds a newer directory: the
			 * coordinator's URLs only (the revocations keep their
			 * schedule).
			 */
			refresher_poll(rf, &w);
		}
		if (atomic_exchange(&rf->poll_now, false))
			next_poll = 0;
		if (util_now() >= next_poll) {
			int fetched = 0;

			if (cfg->directory_urls[0] != '\0')
				refresher_poll(rf, &w);
			/* The peers' revocations, for when they cannot be asked. */
			(void)revocation_fetch_all(rf->node, w.conn, w.pc, &fetched);
			next_poll = util_now() + cfg->directory_refresh;
		}
		/* Expired: the coordinator's URLs every minute, to trust again soon. */
		if (node_directory_expired(rf->node) && cfg->directory_urls[0] != '\0' &&
		    next_poll > util_now() + REFRESHER_EXPIRED_INTERVAL)
			next_poll = util_now() + REFRESHER_EXPIRED_INTERVAL;
		refresher_check_expiry(rf, &last_warned, &expired);
	}
	server_worker_close(&w);
	return NULL;
}

/* ------------------------------------------------------------ the daemon */

/*
 * A pass key the directory does not list is only warned about: during a
 * rotation the coordinator's directory that lists the new key may come a
 * little after the key is switched.
 */
static void
server_warn_unlisted_pass_key(struct node *node, const char *key_file,
    const char *prefix)
{
	char err[512];

	if (node_pass_key_listed(node, key_file, err, sizeof(err)) < 0)
		log_warnx("%s%s: passes signed now will be refused until the "
		    "directory lists the key", prefix, err);
}

/*
 * SIGHUP: what can change without a restart is read again: the pass-signing
 * key and its kid (after a rotation) and the log level; the directory is
 * polled at once.  Other options need a restart, and the log says so.
 */
static void
server_reload(struct node *node, const struct config *cfg)
{
	struct config *fresh = NULL;
	enum log_level lvl;
	char err[512];

	log_info("SIGHUP: reloading %s", cfg->path);
	if (config_load(cfg->path, NULL, &fresh) < 0) {
		log_warnx("SIGHUP: %s has errors (run `passerelle config check`);"
		    " keeping the running configuration", cfg->path);
		return;
	}
	if (node_reload_pass_key(node, fresh->pass_key, fresh->pass_kid, err,
	    sizeof(err)) < 0) {
		log_warnx("SIGHUP: %s; keeping the current pass key", err);
	} else {
		log_info("SIGHUP: pass-signing key %s loaded", fresh->pass_kid);
		server_warn_unlisted_pass_key(node, fresh->pass_key, "SIGHUP: ");
	}
	if (log_level_parse(fresh->log_level, &lvl) == 0)
		log_init(lvl, fresh->space_id);
	config_free(fresh);
}

int
server_run(struct config *cfg)
{
	struct node *node = NULL;
	struct http_pool *pool = NULL, *local_pool = NULL;
	struct http_face *fed = NULL, *local = NULL;
	struct courier couriers[SERVER_MAX_COURIERS];
	int ncouriers = 0;
	struct refresher refresher;
	struct server_state state = { .node = NULL };
	bool refresher_started = false;
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
	    NODE_NEED_DATABASE | NODE_MIGRATE | NODE_SERVE, err,
	    sizeof(err)) < 0) {
		log_warnx("cannot start: %s", err);
		return 1;
	}
	server_warn_unlisted_pass_key(node, cfg->pass_key, "");
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
	db_close(conn);
	conn = NULL;

	ssl = tls_server_ctx_new(cfg->fed_cert, cfg->fed_key, cfg->fed_ca, err, sizeof(err));
	if (ssl == NULL) {
		log_warnx("cannot start: federation TLS: %s", err);
		goto out;
	}
	/*
	 * Two pools: the front desk's check-ins wait on other nodes, and those
	 * nodes' requests to us must never queue behind them (with one pool,
	 * three nodes checking each other's members in could all wait on each
	 * other until their timeouts).
	 */
	if (http_pool_new(&pool, (int)cfg->workers, server_worker_init,
	    server_worker_fini, node) < 0 ||
	    http_pool_new(&local_pool, (int)cfg->workers, server_worker_init,
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
			.quick = fed_quick,
			.quick_arg = node,
			.serial_fn = server_serial,
			.serial_arg = node,
		};

		if (http_face_new(&fed, &o, pool, err, sizeof(err)) < 0) {
			log_warnx("cannot start: federation face: %s", err);
			goto out;
		}
		state.node = node;
		state.fed = fed;
		snprintf(state.crl_file, sizeof(state.crl_file), "%s/crl.pem", cfg->data_dir);
		{
			/* The directory in force may carry a CRL already. */
			struct node_directory *nd = node_directory_current(node);

			server_directory_changed(&state, NULL, nd->dir);
			node_directory_put(node, nd);
		}
		node_on_directory_change(node, server_directory_changed, &state);
		o.name = "local";
		o.listen = cfg->local_listen;
		o.ssl_ctx = NULL;
		o.threads = 1;
		o.handler = api_handle;
		o.quick = NULL;
		o.serial_fn = NULL;
		if (http_face_new(&local, &o, local_pool, err, sizeof(err)) < 0) {
			log_warnx("cannot start: local face: %s", err);
			goto out;
		}
	}
	/*
	 * Couriers claim with SKIP LOCKED and keep each member's messages in
	 * order, so several deliver a backlog in parallel safely.
	 */
	memset(couriers, 0, sizeof(couriers));
	for (int i = 0; i < (int)cfg->couriers && i < SERVER_MAX_COURIERS; i++) {
		couriers[i].node = node;
		pthread_mutex_init(&couriers[i].lock, NULL);
		pthread_cond_init(&couriers[i].cond, NULL);
		if (pthread_create(&couriers[i].thread, NULL, courier_main,
		    &couriers[i]) != 0)
			break;
		ncouriers++;
	}
	memset(&refresher, 0, sizeof(refresher));
	refresher.node = node;
	refresher_started = pthread_create(&refresher.thread, NULL, refresher_main,
	    &refresher) == 0;

	log_info("space %s ready: federation https://%s, local http://%s, directory serial %lld",
	    cfg->space_id, cfg->fed_listen, cfg->local_listen,
	    (long long)node_directory_serial(node));
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			server_reload(node, cfg);
			atomic_store(&refresher.poll_now, true);
			node_directory_wake(node);
			continue;
		}
		break;
	}
	log_info("signal %d: stopping", sig);
	status = 0;
out:
	if (refresher_started) {
		atomic_store(&refresher.stop, true);
		node_directory_wake(node);
		pthread_join(refresher.thread, NULL);
	}
	if (node != NULL)
		node_on_directory_change(node, NULL, NULL);
	http_face_free(fed, 10000);
	http_face_free(local, 10000);
	for (int i = 0; i < ncouriers; i++) {
		pthread_mutex_lock(&couriers[i].lock);
		couriers[i].stop = true;
		pthread_cond_signal(&couriers[i].cond);
		pthread_mutex_unlock(&couriers[i].lock);
	}
	for (int i = 0; i < ncouriers; i++) {
		pthread_join(couriers[i].thread, NULL);
	}
	http_pool_free(pool);
	http_pool_free(local_pool);
	db_close(conn);
	SSL_CTX_free(ssl);
	node_close(node);
	free(state.crl);
	log_info("stopped");
	return status;
}
