/*
 * http.h - the HTTP faces of a node (libevent evhttp) and their worker pool.
 *
 * A face listens on one address with several loop threads, each with its own
 * event_base, evhttp and SO_REUSEPORT socket, optionally behind TLS
 * (bufferevent_openssl).  A loop thread only reads requests and writes
 * replies: it copies what a handler needs into a struct http_job and queues
 * it for the worker pool, whose threads own the database connections and the
 * peer clients.  The reply is sent back from the loop thread that owns the
 * connection.
 */
#ifndef PASSERELLE_HTTP_H
#define PASSERELLE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/ssl.h>

struct http_face;
struct http_pool;

enum http_method {
	HTTP_GET,
	HTTP_POST,
	HTTP_PUT,
	HTTP_DELETE,
	HTTP_OTHER,
};

#define HTTP_MAX_RESP_HEADERS 8

struct http_job {
	/* The request, copied on the loop thread. */
	enum http_method method;
	const char *method_name;	/* "GET", "PATCH", ...: for messages */
	char *path;
	char *query;			/* NULL when there is none */
	char *body;			/* NUL-terminated */
	size_t body_len;
	char *authorization;		/* Authorization header or NULL */
	char *idempotency_key;		/* Idempotency-Key header or NULL */
	int64_t peer_directory_serial;	/* Passerelle-Directory-Serial, or 0 */
	char *cookie;			/* Cookie header or NULL */
	char *csrf_token;		/* X-CSRF-Token header or NULL */
	char *accept_language;		/* Accept-Language header or NULL */
	char *req_content_type;		/* Content-Type header or NULL */
	char *if_none_match;		/* If-None-Match header or NULL */
	char *forwarded_for;		/* X-Forwarded-For (the last one) or NULL */
	char *forwarded_proto;		/* X-Forwarded-Proto (the last one) or NULL */
	bool tls;			/* it came over TLS */
	char remote[64];
	bool has_peer_cert;		/* TLS faces: the client's certificate */
	char peer_space[64];		/* its SAN space id ("" if none) */
	uint8_t peer_spki_sha256[32];

	/* The reply, filled by the handler on a worker thread. */
	int status;
	char *resp_body;
	const char *content_type;
	char *resp_location;		/* optional Location header */
	bool close_connection;		/* close it after the reply */
	/*
	 * A body not owned by the job (embedded static files), used instead
	 * of resp_body when set; and extra headers (http_reply_header).
	 */
	const char *resp_static;
	size_t resp_static_len;
	struct http_header {
		const char *name;	/* a static string */
		char *value;
	} resp_headers[HTTP_MAX_RESP_HEADERS];
	int resp_nheaders;

	/* Private to http.c. */
	struct http_private *priv;
};

/* A handler runs on a worker thread; worker is what init_worker made. */
typedef void (*http_handler_fn)(struct http_job *job, void *worker, void *arg);
typedef int (*http_worker_init_fn)(void *arg, void **ret_worker);
typedef void (*http_worker_fini_fn)(void *worker);

int http_pool_new(struct http_pool **ret, int nthreads, http_worker_init_fn init,
    http_worker_fini_fn fini, void *arg);
/* Finishes the queued jobs, then joins and frees the threads. */
void http_pool_free(struct http_pool *pool);

struct http_face_options {
	const char *name;		/* "federation", "local": for logs */
	const char *listen;		/* "HOST:PORT", "[::1]:PORT" */
	SSL_CTX *ssl_ctx;		/* NULL: plain HTTP */
	int threads;
	size_t max_body;
	size_t max_headers;
	int max_json_depth;
	int timeout_seconds;
	http_handler_fn handler;
	void *handler_arg;
	/*
	 * When set, called on the loop thread first: it answers there what
	 * needs neither the database nor any wait (returns true), sparing the
	 * hand-over to a worker and back.
	 */
	bool (*quick)(struct http_job *job, void *arg);
	void *quick_arg;
	/* When set, every reply carries Passerelle-Directory-Serial. */
	int64_t (*serial_fn)(void *arg);
	void *serial_arg;
};

/* Binds and starts the loop threads (err gets a reason on failure). */
int http_face_new(struct http_face **ret, const struct http_face_options *o,
    struct http_pool *pool, char *err, size_t errlen);
/*
 * Stops accepting, waits up to grace_ms for requests in flight, then stops
 * the loops and frees the face.
 */
void http_face_free(struct http_face *face, int grace_ms);

/* Replaces a TLS face's context for new connections (takes ownership). */
void http_face_set_ssl_ctx(struct http_face *face, SSL_CTX *ctx);

/*
 * Closes the face's TLS connections whose peer keep() refuses (a connection
 * running a request is closed after its reply).  Runs on the loop threads.
 */
void http_face_close_connections(struct http_face *face,
    bool (*keep)(void *arg, const char *space, const uint8_t spki[32]), void *arg);

/* Reply helpers for handlers; they take ownership of the cJSON object. */
void http_reply_json(struct http_job *job, int status, cJSON *body);
void http_reply_text(struct http_job *job, int status, const char *type, const char *text);
void http_reply_error(struct http_job *job, int status, const char *error,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A body that outlives the job (not copied): embedded files. */
void http_reply_static(struct http_job *job, int status, const char *type,
    const char *data, size_t len);
/*
 * Adds a response header (name static, value copied); a Cache-Control given
 * here replaces the default no-store.  -E2BIG past HTTP_MAX_RESP_HEADERS.
 */
int http_reply_header(struct http_job *job, const char *name, const char *value);

/*
 * Parses the body as a JSON object within the face's depth limit; on failure
 * replies 400 itself and returns NULL.
 */
cJSON *http_job_json(struct http_job *job);

/* The value of a query parameter (malloc'ed, decoded) or NULL. */
char *http_job_query(const struct http_job *job, const char *name);

/*
 * Maximum nesting of a JSON text, scanning without parsing (strings aware),
 * and whether it holds a NUL, raw or as the escape \u0000: the parsed
 * strings are C strings, and a value with anything after a NUL would pass
 * for the part before it.
 */
int http_json_depth(const char *text, size_t len, bool *ret_nul);

#endif
