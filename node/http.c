/*
 * http.c - evhttp faces with loop threads, TLS, limits, and a worker pool.
 *
 * Threads: each face has `threads` loop threads.  Every loop thread binds its
 * own socket to the same address with SO_REUSEPORT, so the kernel spreads
 * connections between them and no loop thread ever touches another's
 * connections.  Requests are copied into jobs and queued for the pool; the
 * worker posts the finished job back to its loop thread with
 * event_base_once(), and only that thread calls evhttp_send_reply().
 *
 * A client that goes away while its job runs: the connection's close
 * callback clears job->priv->req, and the finished job is then dropped.
 *
 * Not here: routing and authentication (fed.c, api.c).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "http.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#define HTTP_QUEUE_MAX 8192

/* ---------------------------------------------------------------- pool */

struct http_private {
	struct http_job *next;		/* queue link */
	struct evhttp_request *req;	/* NULL once the client is gone */
	struct http_loop *loop;
	struct http_conn *conn;		/* TLS faces: the connection */
	http_handler_fn handler;
	void *handler_arg;
};

/*
 * A TLS connection, known from the first request on: its peer, the job it
 * runs, and its place in its loop's list (so that a space removed from the
 * directory can have its connections closed).  Allocated with its SSL and
 * freed with it (ex_data), unlinked by evhttp's close callback, which runs
 * first.
 */
struct http_conn {
	struct http_loop *loop;
	struct evhttp_connection *evcon;	/* NULL until the first request */
	struct http_job *job;
	char space[64];
	uint8_t spki[32];
	bool doomed;
	struct http_conn *prev, *next;
};

struct http_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct http_job *head, *tail;
	size_t queued;
	bool stopping;
	int nthreads;
	pthread_t *threads;
	http_worker_init_fn init;
	http_worker_fini_fn fini;
	void *arg;
	atomic_int started, failed;
};

struct http_loop {
	struct http_face *face;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	pthread_t thread;
	atomic_int in_flight;
	struct http_conn *conns;	/* TLS connections with a request seen */
	bool (*keep)(void *arg, const char *space, const uint8_t spki[32]);
	void *keep_arg;
};

struct http_face {
	struct http_face_options o;
	pthread_mutex_t ssl_lock;
	SSL_CTX *ssl_ctx;		/* our reference; replaced whole */
	char *name;
	struct http_pool *pool;
	int nloops;
	struct http_loop *loops;
	int port;
};

static void http_job_free(struct http_job *job);
static void http_job_done_cb(evutil_socket_t fd, short what, void *arg);

static void *
http_worker_main(void *arg)
{
	struct http_pool *pool = arg;
	void *worker = NULL;

	if (pool->init != NULL && pool->init(pool->arg, &worker) < 0) {
		atomic_fetch_add(&pool->failed, 1);
		atomic_fetch_add(&pool->started, 1);
		return NULL;
	}
	atomic_fetch_add(&pool->started, 1);
	for (;;) {
		struct http_job *job;
		struct timeval tv0 = { 0, 0 };

		pthread_mutex_lock(&pool->lock);
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		job = pool->head;
		if (job == NULL) {
			pthread_mutex_unlock(&pool->lock);
			break;
		}
		pool->head = job->priv->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pool->queued--;
		pthread_mutex_unlock(&pool->lock);

		job->priv->handler(job, worker, job->priv->handler_arg);
		if (job->status == 0)
			http_reply_error(job, 500, "internal", "no reply was produced");
		if (event_base_once(job->priv->loop->base, -1, EV_TIMEOUT,
		    http_job_done_cb, job, &tv0) < 0) {
			log_warnx("cannot hand a reply back to its loop");
			http_job_free(job);
		}
	}
	if (pool->fini != NULL)
		pool->fini(worker);
	return NULL;
}

int
http_pool_new(struct http_pool **ret, int nthreads, http_worker_init_fn init,
    http_worker_fini_fn fini, void *arg)
{
	struct http_pool *pool;

	pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return -ENOMEM;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->init = init;
	pool->fini = fini;
	pool->arg = arg;
	pool->threads = calloc((size_t)nthreads, sizeof(pthread_t));
	if (pool->threads == NULL) {
		free(pool);
		return -ENOMEM;
	}
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&pool->threads[i], NULL, http_worker_main, pool) != 0)
			break;
		pool->nthreads++;
	}
	/* Wait until each worker has its database connection, or failed. */
	while (atomic_load(&pool->started) < pool->nthreads)
		usleep(1000);
	if (pool->nthreads < nthreads || atomic_load(&pool->failed) > 0) {
		http_pool_free(pool);
		return -EIO;
	}
	*ret = pool;
	return 0;
}

void
http_pool_free(struct http_pool *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->threads);
	free(pool);
}

static int
http_pool_push(struct http_pool *pool, struct http_job *job)
{
	pthread_mutex_lock(&pool->lock);
	if (pool->stopping || pool->queued >= HTTP_QUEUE_MAX) {
		pthread_mutex_unlock(&pool->lock);
		return -EAGAIN;
	}
	job->priv->next = NULL;
	if (pool->tail != NULL)
		pool->tail->priv->next = job;
	else
		pool->head = job;
	pool->tail = job;
	pool->queued++;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

/* ---------------------------------------------------------------- replies */

void
http_reply_text(struct http_job *job, int status, const char *type, const char *text)
{
	free(job->resp_body);
	job->status = status;
	job->content_type = type;
	job->resp_body = strdup(text);
	job->resp_static = NULL;
}

void
http_reply_static(struct http_job *job, int status, const char *type,
    const char *data, size_t len)
{
	free(job->resp_body);
	job->resp_body = NULL;
	job->status = status;
	job->content_type = type;
	job->resp_static = data;
	job->resp_static_len = len;
}

int
http_reply_header(struct http_job *job, const char *name, const char *value)
{
	char *v;

	if (job->resp_nheaders >= HTTP_MAX_RESP_HEADERS)
		return -E2BIG;
	v = strdup(value);
	if (v == NULL)
		return -ENOMEM;
	job->resp_headers[job->resp_nheaders].name = name;
	job->resp_headers[job->resp_nheaders].value = v;
	job->resp_nheaders++;
	return 0;
}

void
http_reply_json(struct http_job *job, int status, cJSON *body)
{
	char *text = body != NULL ? cJSON_PrintUnformatted(body) : NULL;

	cJSON_Delete(body);
	free(job->resp_body);
	job->resp_static = NULL;
	job->status = text != NULL ? status : 500;
	job->content_type = "application/json";
	job->resp_body = text != NULL ? text :
	    strdup("{\"error\":\"internal\",\"detail\":\"out of memory\"}");
}

void
http_reply_error(struct http_job *job, int status, const char *error,
    const char *fmt, ...)
{
	cJSON *o = cJSON_CreateObject();
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	/*
	 * A detail cut at its size may end in the middle of a character, and
	 * cJSON copies bytes as they are: the body would not be UTF-8, so not
	 * JSON.  What follows the last whole character goes.
	 */
	detail[util_utf8_prefix(detail, strlen(detail))] = '\0';
	cJSON_AddStringToObject(o, "error", error);
	cJSON_AddStringToObject(o, "detail", detail);
	http_reply_json(job, status, o);
	log_info("%s %s from %s%s%s: %d %s: %s",
	    job->method_name != NULL ? job->method_name : "-", job->path,
	    job->remote, job->peer_space[0] ? " space " : "", job->peer_space,
	    status, error, detail);
}

int
http_json_depth(const char *text, size_t len, bool *ret_nul)
{
	int depth = 0, max = 0;
	bool in_string = false, escaped = false;

	*ret_nul = false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (c == '\0')
			*ret_nul = true;
		if (in_string) {
			if (escaped) {
				escaped = false;
			} else if (c == '\\') {
				escaped = true;
				if (len - i > 5 && memcmp(text + i + 1, "u0000", 5) == 0)
					*ret_nul = true;
			} else if (c == '"') {
				in_string = false;
			}
			continue;
		}
		if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
		} else if (c == '}' || c == ']')
			depth--;
	}
	return max;
}

cJSON *
http_job_json(struct http_job *job)
{
	int max = job->priv->loop->face->o.max_json_depth;
	bool nul;
	cJSON *o;

	if (job->body_len == 0) {
		http_reply_error(job, 400, "bad_request", "a JSON body is required");
		return NULL;
	}
	/* JSON is UTF-8 (RFC 8259); what is not would fail in PostgreSQL. */
	if (!util_utf8_valid(job->body, job->body_len)) {
		http_reply_error(job, 400, "bad_request", "the body is not UTF-8");
		return NULL;
	}
	if (http_json_depth(job->body, job->body_len, &nul) > max) {
		http_reply_error(job, 400, "bad_request",
		    "JSON nested deeper than %d levels", max);
		return NULL;
	}
	if (nul) {
		http_reply_error(job, 400, "bad_request",
		    "the body holds a NUL character (raw or \\u0000)");
		return NULL;
	}
	o = cJSON_ParseWithLength(job->body, job->body_len);
	if (o == NULL || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		http_reply_error(job, 400, "bad_request", "the body is not a JSON object");
		return NULL;
	}
	return o;
}

char *
http_job_query(const struct http_job *job, const char *name)
{
	struct evkeyvalq q;
	const char *v;
	char *ret = NULL;

	if (job->query == NULL)
		return NULL;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(job->query, &q) < 0)
		return NULL;
	v = evhttp_find_header(&q, name);
	if (v != NULL)
		ret = strdup(v);
	evhttp_clear_headers(&q);
	return ret;
}

/* ---------------------------------------------------------------- loops */

static void
http_job_free(struct http_job *job)
{
	if (job == NULL)
		return;
	free(job->path);
	free(job->query);
	free(job->body);
	free(job->authorization);
	free(job->idempotency_key);
	free(job->cookie);
	free(job->csrf_token);
	free(job->accept_language);
	free(job->req_content_type);
	free(job->if_none_match);
	free(job->forwarded_for);
	free(job->forwarded_proto);
	for (int i = 0; i < job->resp_nheaders; i++)
		free(job->resp_headers[i].value);
	free(job->resp_body);
	free(job->resp_location);
	free(job->priv);
	free(job);
}

/* Plain faces: the client left while its job ran. */
static void
http_conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct http_job *job = arg;

	job->priv->req = NULL;
}

static int http_conn_idx = -1;

static void
http_conn_unlink(struct http_conn *conn)
{
	if (conn->evcon == NULL)
		return;
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		conn->loop->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
	conn->evcon = NULL;
}

/* TLS faces: the connection is going away (its SSL is freed after this). */
static void
http_tls_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *conn = arg;

	if (conn->job != NULL) {
		conn->job->priv->req = NULL;
		conn->job->priv->conn = NULL;
		conn->job = NULL;
	}
	http_conn_unlink(conn);
}

static void
http_conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	struct http_conn *conn = ptr;

	if (conn == NULL)
		return;
	http_conn_unlink(conn);
	free(conn);
}

static void
http_send(struct http_loop *loop, struct evhttp_request *req, struct http_job *job)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();
	const struct http_face_options *o = &loop->face->o;
	bool cache_control = false;

	evhttp_add_header(out, "Content-Type", job->content_type != NULL ?
	    job->content_type : "application/json");
	for (int i = 0; i < job->resp_nheaders; i++) {
		evhttp_add_header(out, job->resp_headers[i].name, job->resp_headers[i].value);
		if (strcasecmp(job->resp_headers[i].name, "Cache-Control") == 0)
			cache_control = true;
	}
	if (!cache_control)
		evhttp_add_header(out, "Cache-Control", "no-store");
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	if (job->resp_location != NULL)
		evhttp_add_header(out, "Location", job->resp_location);
	if (job->close_connection ||
	    (job->priv->conn != NULL && job->priv->conn->doomed))
		evhttp_add_header(out, "Connection", "close");
	if (o->serial_fn != NULL) {
		char serial[32];

		snprintf(serial, sizeof(serial), "%lld",
		    (long long)o->serial_fn(o->serial_arg));
		evhttp_add_header(out, "Passerelle-Directory-Serial", serial);
	}
	if (buf != NULL && job->resp_static != NULL)
		evbuffer_add_reference(buf, job->resp_static, job->resp_static_len,
		    NULL, NULL);
	else if (buf != NULL && job->resp_body != NULL)
		evbuffer_add(buf, job->resp_body, strlen(job->resp_body));
	evhttp_send_reply(req, job->status, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

static void
http_job_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_job *job = arg;
	struct evhttp_request *req = job->priv->req;
	struct http_loop *loop = job->priv->loop;

	if (req != NULL) {
		if (job->priv->conn != NULL)
			job->priv->conn->job = NULL;
		else
			evhttp_connection_set_closecb(evhttp_request_get_connection(req),
			    NULL, NULL);
		http_send(loop, req, job);
	}
	atomic_fetch_sub(&loop->in_flight, 1);
	http_job_free(job);
}

static enum http_method
http_method_of(struct evhttp_request *req, const char **ret_name)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:
		*ret_name = "GET";
		return HTTP_GET;
	case EVHTTP_REQ_POST:
		*ret_name = "POST";
		return HTTP_POST;
	case EVHTTP_REQ_PUT:
		*ret_name = "PUT";
		return HTTP_PUT;
	case EVHTTP_REQ_DELETE:
		*ret_name = "DELETE";
		return HTTP_DELETE;
	case EVHTTP_REQ_HEAD:
		*ret_name = "HEAD";
		return HTTP_OTHER;
	case EVHTTP_REQ_OPTIONS:
		*ret_name = "OPTIONS";
		return HTTP_OTHER;
	case EVHTTP_REQ_TRACE:
		*ret_name = "TRACE";
		return HTTP_OTHER;
	case EVHTTP_REQ_PATCH:
		*ret_name = "PATCH";
		return HTTP_OTHER;
	default:
		*ret_name = "other";
		return HTTP_OTHER;
	}
}

static char *
http_header_dup(struct evkeyvalq *in, const char *name)
{
	const char *v = evhttp_find_header(in, name);

	return v != NULL ? strdup(v) : NULL;
}

/*
 * The last header called name, or NULL: a proxy appends its own
 * X-Forwarded-For after whatever the client sent, as a last entry or as a
 * last header line, and only that one is the proxy's word.
 */
static char *
http_header_dup_last(struct evkeyvalq *in, const char *name)
{
	const char *v = NULL;
	struct evkeyval *h;

	TAILQ_FOREACH(h, in, next)
		if (strcasecmp(h->key, name) == 0)
			v = h->value;
	return v != NULL ? strdup(v) : NULL;
}

/* Reads the client's certificate from the TLS connection under req. */
static void
http_job_peer(struct http_job *job, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	X509 *cert;

	if (ssl == NULL)
		return;
	job->priv->conn = SSL_get_ex_data(ssl, http_conn_idx);
	cert = SSL_get0_peer_certificate(ssl);
	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return;
	job->has_peer_cert = true;
	if (tls_cert_space_id(cert, job->peer_space, sizeof(job->peer_space)) < 0)
		job->peer_space[0] = '\0';
	if (tls_cert_spki_sha256(cert, job->peer_spki_sha256) < 0)
		job->has_peer_cert = false;
}

/* TLS faces: the first request makes the connection known to its loop. */
static void
http_conn_attach(struct http_loop *loop, struct http_job *job,
    struct evhttp_connection *evcon)
{
	struct http_conn *conn = job->priv->conn;

	if (conn->evcon == NULL) {
		conn->evcon = evcon;
		conn->loop = loop;
		conn->next = loop->conns;
		if (loop->conns != NULL)
			loop->conns->prev = conn;
		loop->conns = conn;
		util_strlcpy(conn->space, job->peer_space, sizeof(conn->space));
		memcpy(conn->spki, job->peer_spki_sha256, 32);
		evhttp_connection_set_closecb(evcon, http_tls_closed_cb, conn);
	}
	conn->job = job;
}

/* Our limits, answered in JSON (413, 431, 400) on the loop thread. */
static bool
http_over_limits(struct http_face *face, struct evhttp_request *req,
    struct http_job *job)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyval *h;
	const char *uri;
	size_t headers = 0;

	TAILQ_FOREACH(h, in, next)
		headers += strlen(h->key) + strlen(h->value) + 4;
	if (headers > face->o.max_headers) {
		job->path = strdup("(headers)");
		http_reply_error(job, 431, "headers_too_large",
		    "the request's headers exceed %zu bytes", face->o.max_headers);
		job->close_connection = true;
		return true;
	}
	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > face->o.max_body) {
		job->path = strdup("(body)");
		http_reply_error(job, 413, "body_too_large",
		    "the request's body exceeds %zu bytes", face->o.max_body);
		job->close_connection = true;
		return true;
	}
	/*
	 * The path is matched, logged, echoed in error details and given to
	 * PostgreSQL as text: bytes that are not UTF-8 would make the reply
	 * something other than JSON, or a query fail (503) instead of a 4xx.
	 */
	uri = evhttp_request_get_uri(req);
	if (uri == NULL || !util_utf8_valid(uri, strlen(uri))) {
		job->path = strdup("(not UTF-8)");
		http_reply_error(job, 400, "bad_request", "the request's URI is not UTF-8");
		return true;
	}
	return false;
}

static void
http_request_cb(struct evhttp_request *req, void *arg)
{
	struct http_loop *loop = arg;
	struct http_face *face = loop->face;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct http_job *job;
	const char *v;
	char *addr = NULL;
	uint16_t port = 0;

	job = calloc(1, sizeof(*job));
	if (job == NULL || (job->priv = calloc(1, sizeof(*job->priv))) == NULL) {
		free(job);
		evhttp_send_error(req, 503, "Out of memory");
		return;
	}
	job->priv->loop = loop;
	if (http_over_limits(face, req, job)) {
		http_send(loop, req, job);
		http_job_free(job);
		return;
	}
	job->priv->req = req;
	job->priv->loop = loop;
	job->priv->handler = face->o.handler;
	job->priv->handler_arg = face->o.handler_arg;
	job->method = http_method_of(req, &job->method_name);
	v = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	job->path = strdup(v != NULL && v[0] != '\0' ? v : "/");
	v = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	job->query = v != NULL ? strdup(v) : NULL;
	job->body_len = evbuffer_get_length(body);
	job->body = malloc(job->body_len + 1);
	if (job->path == NULL || job->body == NULL) {
		http_job_free(job);
		evhttp_send_error(req, 503, "Out of memory");
		return;
	}
	evbuffer_remove(body, job->body, job->body_len);
	job->body[job->body_len] = '\0';
	job->authorization = http_header_dup(in, "Authorization");
	job->idempotency_key = http_header_dup(in, "Idempotency-Key");
	job->cookie = http_header_dup(in, "Cookie");
	job->csrf_token = http_header_dup(in, "X-CSRF-Token");
	job->accept_language = http_header_dup(in, "Accept-Language");
	job->req_content_type = http_header_dup(in, "Content-Type");
	job->if_none_match = http_header_dup(in, "If-None-Match");
	job->forwarded_for = http_header_dup_last(in, "X-Forwarded-For");
	job->forwarded_proto = http_header_dup_last(in, "X-Forwarded-Proto");
	job->tls = face->o.ssl_ctx != NULL;
	v = evhttp_find_header(in, "Passerelle-Directory-Serial");
	if (v != NULL)
		job->peer_directory_serial = strtoll(v, NULL, 10);
	evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(job->remote, sizeof(job->remote), "%s:%u", addr ? addr : "?", port);
	if (face->o.ssl_ctx != NULL)
		http_job_peer(job, req);

	if (job->priv->conn != NULL)
		http_conn_attach(loop, job, evcon);
	if (face->o.quick != NULL && face->o.quick(job, face->o.quick_arg)) {
		if (job->priv->conn != NULL)
			job->priv->conn->job = NULL;
		http_send(loop, req, job);
		http_job_free(job);
		return;
	}
	if (job->priv->conn == NULL)
		evhttp_connection_set_closecb(evcon, http_conn_closed_cb, job);
	atomic_fetch_add(&loop->in_flight, 1);
	if (http_pool_push(face->pool, job) < 0) {
		atomic_fetch_sub(&loop->in_flight, 1);
		if (job->priv->conn != NULL)
			job->priv->conn->job = NULL;
		else
			evhttp_connection_set_closecb(evcon, NULL, NULL);
		http_reply_error(job, 503, "busy", "the node is overloaded; retry shortly");
		http_send(loop, req, job);
		http_job_free(job);
	}
}

/*
 * One TLS record for a reply.  evhttp writes the status line and headers
 * into the connection's output, then appends the body as chains of their
 * own; bufferevent_openssl makes one SSL_write, so one record and one
 * write(2), of each chain.  The reply is written only once it is whole
 * (evhttp enables writing after), so the chains are joined as they come:
 * the peer then reads one record (two reads instead of four) from one TCP
 * segment.  Only up to a record's size: a longer body is several records
 * anyway, and is not copied.
 */
#define HTTP_ONE_RECORD 16384

static void
http_tls_out_cb(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	(void)arg;
	if (info->n_added > 0 && evbuffer_get_length(out) <= HTTP_ONE_RECORD)
		evbuffer_pullup(out, -1);
}

static struct bufferevent *
http_bev_tls_cb(struct event_base *base, void *arg)
{
	struct http_loop *loop = arg;
	struct http_face *face = loop->face;
	struct http_conn *conn;
	struct bufferevent *bev;
	SSL *ssl;

	/* The context may be replaced (a new CRL): take it under the lock. */
	pthread_mutex_lock(&face->ssl_lock);
	ssl = SSL_new(face->ssl_ctx);
	pthread_mutex_unlock(&face->ssl_lock);
	if (ssl == NULL)
		return NULL;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL || SSL_set_ex_data(ssl, http_conn_idx, conn) != 1) {
		free(conn);
		SSL_free(ssl);
		return NULL;
	}
	conn->loop = loop;
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl); /* frees conn too */
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* Added after bufferevent_openssl's own, it runs before it. */
	if (evbuffer_add_cb(bufferevent_get_output(bev), http_tls_out_cb, NULL) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}

/* One listening socket per loop thread, all on the same port. */
static int
http_listen_socket(const char *addr, int port_override, char *err, size_t errlen,
    int *ret_port)
{
	char host[256], port[16];
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = -1, one = 1, r;

	if (util_parse_listen(addr, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "listen address '%s' is not HOST:PORT", addr);
		return -EINVAL;
	}
	if (port_override > 0)
		snprintf(port, sizeof(port), "%d", port_override);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0) {
		snprintf(err, errlen, "listen address '%s': %s", addr, gai_strerror(r));
		return -EINVAL;
	}
	/*
	 * The loops share the port with SO_REUSEPORT, which would also let us
	 * share it, silently, with another process of the same user already
	 * listening there: a first bind without it tells.
	 */
	if (port_override <= 0 && strcmp(port, "0") != 0) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
			goto fail;
		close(fd);
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/*
	 * evhttp never sets TCP_NODELAY, and keep-alive replies then wait for
	 * the peer's delayed ACK (about 40 ms each).  Accepted sockets inherit
	 * it from the listener on Linux.
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0)
		goto fail;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
		*ret_port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	freeaddrinfo(ai);
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return -EADDRINUSE;
}

static void
http_global_init(void)
{
	evthread_use_pthreads();
	http_conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, http_conn_ex_free);
}

static void *
http_loop_main(void *arg)
{
	struct http_loop *loop = arg;

	/*
	 * Once the listener is gone, a loop may have no event left while jobs
	 * still run in the pool; it must keep running to send their replies
	 * (and count them done).  Only http_loop_break_cb ends it.
	 */
	event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void
http_loop_stop_accepting_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *loop = arg;

	if (loop->bound != NULL) {
		evhttp_del_accept_socket(loop->http, loop->bound);
		loop->bound = NULL;
	}
}

static void
http_loop_break_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *loop = arg;

	event_base_loopbreak(loop->base);
}

int
http_face_new(struct http_face **ret, const struct http_face_options *o,
    struct http_pool *pool, char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct http_face *face;
	int r = 0;

	(void)pthread_once(&once, http_global_init);
	face = calloc(1, sizeof(*face));
	if (face == NULL)
		return -ENOMEM;
	face->o = *o;
	pthread_mutex_init(&face->ssl_lock, NULL);
	if (o->ssl_ctx != NULL) {
		SSL_CTX_up_ref(o->ssl_ctx);
		face->ssl_ctx = o->ssl_ctx;
	}
	face->pool = pool;
	face->loops = calloc((size_t)o->threads, sizeof(*face->loops));
	if (face->loops == NULL) {
		free(face);
		return -ENOMEM;
	}
	for (int i = 0; i < o->threads; i++) {
		struct http_loop *loop = &face->loops[i];
		struct timeval tv = { o->timeout_seconds, 0 };
		int fd, port = 0;

		loop->face = face;
		/* The first socket may bind port 0; the others follow it. */
		fd = http_listen_socket(o->listen, face->port, err, errlen, &port);
		if (fd < 0) {
			r = fd;
			break;
		}
		if (face->port == 0)
			face->port = port;
		loop->base = event_base_new();
		loop->http = loop->base != NULL ? evhttp_new(loop->base) : NULL;
		if (loop->http == NULL) {
			close(fd);
			snprintf(err, errlen, "cannot create an event loop");
			r = -ENOMEM;
			break;
		}
		/*
		 * evhttp answers what passes its limits with an HTML page; ours
		 * are checked first (http_request_cb) to answer in JSON, and
		 * evhttp's, twice as large, only bound what is read at all.
		 */
		evhttp_set_max_body_size(loop->http, (ev_ssize_t)(2 * o->max_body + 4096));
		evhttp_set_max_headers_size(loop->http,
		    (ev_ssize_t)(2 * o->max_headers + 1024));
		evhttp_set_timeout_tv(loop->http, &tv);
		/*
		 * Methods evhttp knows reach the routes, which answer what they
		 * do not take with a JSON 404 or 405; evhttp would answer 501
		 * in HTML.  CONNECT stays out (501): nothing here tunnels.
		 */
		evhttp_set_allowed_methods(loop->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
		    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
		    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
		evhttp_set_default_content_type(loop->http, "application/json");
		evhttp_set_gencb(loop->http, http_request_cb, loop);
		if (o->ssl_ctx != NULL)
			evhttp_set_bevcb(loop->http, http_bev_tls_cb, loop);
		loop->bound = evhttp_accept_socket_with_handle(loop->http, fd);
		if (loop->bound == NULL) {
			close(fd);
			snprintf(err, errlen, "cannot accept on %s", o->listen);
			r = -EIO;
			break;
		}
		if (pthread_create(&loop->thread, NULL, http_loop_main, loop) != 0) {
			snprintf(err, errlen, "cannot start a loop thread");
			r = -EAGAIN;
			break;
		}
		face->nloops++;
	}
	if (r < 0) {
		/* Free what was made of the loop that failed, then the others. */
		struct http_loop *bad = &face->loops[face->nloops];

		if (bad->http != NULL)
			evhttp_free(bad->http);
		if (bad->base != NULL)
			event_base_free(bad->base);
		http_face_free(face, 0);
		return r;
	}
	log_info("%s face listening on %s (port %d, %d threads%s)", o->name,
	    o->listen, face->port, o->threads, o->ssl_ctx ? ", mutual TLS" : "");
	*ret = face;
	return 0;
}


void
http_face_free(struct http_face *face, int grace_ms)
{
	struct timeval tv0 = { 0, 0 };
	int64_t deadline;

	if (face == NULL)
		return;
	for (int i = 0; i < face->nloops; i++)
		event_base_once(face->loops[i].base, -1, EV_TIMEOUT,
		    http_loop_stop_accepting_cb, &face->loops[i], &tv0);
	/*
	 * Requests in flight get their answer before the loops stop.  A job
	 * holds a pointer to its loop, so the loops cannot go before the last
	 * job is back, however long after the grace period (workers' calls
	 * are bounded by their own timeouts).
	 */
	deadline = util_monotonic_us() + (int64_t)grace_ms * 1000;
	for (bool warned = false;;) {
		int busy = 0;

		for (int i = 0; i < face->nloops; i++)
			busy += atomic_load(&face->loops[i].in_flight);
		if (busy == 0)
			break;
		if (!warned && util_monotonic_us() >= deadline) {
			log_warnx("%s face: %d requests still running after %d ms",
			    face->o.name, busy, grace_ms);
			warned = true;
		}
		usleep(5000);
	}
	usleep(20000); /* lets the last replies leave the loops' buffers */
	for (int i = 0; i < face->nloops; i++)
		event_base_once(face->loops[i].base, -1, EV_TIMEOUT,
		    http_loop_break_cb, &face->loops[i], &tv0);
	for (int i = 0; i < face->nloops; i++) {
		pthread_join(face->loops[i].thread, NULL);
		evhttp_free(face->loops[i].http);
		event_base_free(face->loops[i].base);
	}
	free(face->loops);
	SSL_CTX_free(face->ssl_ctx);
	pthread_mutex_destroy(&face->ssl_lock);
	free(face);
}

void
http_face_set_ssl_ctx(struct http_face *face, SSL_CTX *ctx)
{
	SSL_CTX *old;

	pthread_mutex_lock(&face->ssl_lock);
	old = face->ssl_ctx;
	face->ssl_ctx = ctx;
	pthread_mutex_unlock(&face->ssl_lock);
	SSL_CTX_free(old);
}

static void
http_loop_close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *loop = arg;
	struct http_conn *conn, *next;
	int closed = 0;

	for (conn = loop->conns; conn != NULL; conn = next) {
		next = conn->next;
		if (loop->keep(loop->keep_arg, conn->space, conn->spki))
			continue;
		if (conn->job != NULL) {
			conn->doomed = true; /* closed after its reply */
			continue;
		}
		evhttp_connection_free(conn->evcon); /* unlinks conn */
		closed++;
	}
	if (closed > 0)
		log_info("%s face: closed %d connection%s of spaces no longer admitted",
		    loop->face->o.name, closed, closed == 1 ? "" : "s");
}

void
http_face_close_connections(struct http_face *face,
    bool (*keep)(void *arg, const char *space, const uint8_t spki[32]), void *arg)
{
	struct timeval tv0 = { 0, 0 };

	for (int i = 0; i < face->nloops; i++) {
		face->loops[i].keep = keep;
		face->loops[i].keep_arg = arg;
		event_base_once(face->loops[i].base, -1, EV_TIMEOUT, http_loop_close_cb,
		    &face->loops[i], &tv0);
	}
}
