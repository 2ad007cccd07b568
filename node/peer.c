/*
 * peer.c - the federation client: libcurl (OpenSSL build) with client
 * certificates, the federation CA as the only trust anchor, and the peer's
 * key pinned from the directory.
 *
 * One CURL easy handle per peer client keeps a small cache of live
 * connections; calls to the same peer from the same thread reuse them.
 * CURLOPT_CAINFO points at the federation CA file only, which also avoids
 * loading the system bundle on every new connection.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <sodium.h>

#include "log.h"
#include "peer.h"
#include "util.h"

struct peer_client {
	struct node *node;
	CURL *curl;
};

static atomic_uint_fast64_t peer_calls;
static atomic_uint_fast64_t peer_new_connections;

/* ------------------------------------------------------------ health */

#define PEER_HEALTH_MAX 1024
#define PEER_DOWN_AFTER 3		/* consecutive failures */
#define PEER_BACKOFF_MAX 60		/* seconds between probes, at most */

struct peer_health {
	char space[64];
	int failures;			/* consecutive */
	int64_t last_success;
	int64_t last_failure;
	int64_t next_probe;		/* while down */
	int64_t last_probe;
	char last_error[160];
};

static pthread_mutex_t peer_health_lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer_health peer_healths[PEER_HEALTH_MAX];
static size_t peer_nhealth;

/* The entry for space (created if there is room); the lock is held. */
static struct peer_health *
peer_health_find(const char *space)
{
	for (size_t i = 0; i < peer_nhealth; i++)
		if (strcmp(peer_healths[i].space, space) == 0)
			return &peer_healths[i];
	if (peer_nhealth == PEER_HEALTH_MAX)
		return NULL;
	util_strlcpy(peer_healths[peer_nhealth].space, space,
	    sizeof(peer_healths[0].space));
	return &peer_healths[peer_nhealth++];
}

static void
peer_health_report(const char *space, bool ok, const char *error)
{
	struct peer_health *h;

	pthread_mutex_lock(&peer_health_lock);
	h = peer_health_find(space);
	if (h != NULL && ok) {
		if (h->failures >= PEER_DOWN_AFTER)
			log_info("peer %s answers again", space);
		h->failures = 0;
		h->last_success = util_now();
	} else if (h != NULL) {
		h->failures++;
		h->last_failure = util_now();
		util_strlcpy(h->last_error, error, sizeof(h->last_error));
		if (h->failures >= PEER_DOWN_AFTER) {
			int64_t backoff = (int64_t)1 << (h->failures - PEER_DOWN_AFTER < 6 ?
			    h->failures - PEER_DOWN_AFTER : 6);

			if (backoff > PEER_BACKOFF_MAX)
				backoff = PEER_BACKOFF_MAX;
			h->next_probe = util_now() + backoff;
			if (h->failures == PEER_DOWN_AFTER)
				log_warnx("peer %s is down (%s); probing it before calling again",
				    space, error);
		}
	}
	pthread_mutex_unlock(&peer_health_lock);
}

/* The peer's count of consecutive failures (0 for a peer never called). */
static int
peer_failures(const char *space)
{
	int failures = 0;

	pthread_mutex_lock(&peer_health_lock);
	for (size_t i = 0; i < peer_nhealth; i++)
		if (strcmp(peer_healths[i].space, space) == 0) {
			failures = peer_healths[i].failures;
			break;
		}
	pthread_mutex_unlock(&peer_health_lock);
	return failures;
}

bool
peer_is_down(const char *space)
{
	return peer_failures(space) >= PEER_DOWN_AFTER;
}

bool
peer_is_failing(const char *space)
{
	return peer_failures(space) > 0;
}

bool
peer_mark_alive(const char *space)
{
	bool had = false;

	pthread_mutex_lock(&peer_health_lock);
	for (size_t i = 0; i < peer_nhealth; i++)
		if (strcmp(peer_healths[i].space, space) == 0) {
			had = peer_healths[i].failures > 0;
			break;
		}
	pthread_mutex_unlock(&peer_health_lock);
	if (had)
		peer_health_report(space, true, NULL);
	return had;
}

/*
 * Down, and its backoff has passed (or, for the front desk, a second since
 * the last probe): one caller gets to probe.
 */
static bool
peer_probe_due(const char *space, bool desk)
{
	bool due = false;

	pthread_mutex_lock(&peer_health_lock);
	for (size_t i = 0; i < peer_nhealth; i++)
		if (strcmp(peer_healths[i].space, space) == 0) {
			struct peer_health *h = &peer_healths[i];
			int64_t now = util_now();

			if (h->failures >= PEER_DOWN_AFTER &&
			    (now >= h->next_probe || (desk && now > h->last_probe))) {
				due = true;
				h->last_probe = now;
				/* The others wait for this probe's outcome. */
				if (h->next_probe < now + 5)
					h->next_probe = now + 5;
			}
			break;
		}
	pthread_mutex_unlock(&peer_health_lock);
	return due;
}


/*
 * TLS sessions are shared by the node's peer clients (each worker has its
 * own connections): a worker calling a peer for the first time, or again
 * after the peer closed an idle connection, resumes a session another
 * worker made instead of a full mutual-TLS handshake.  The peer's face
 * still checks the certificate's space and pin on every request.
 */
static CURLSH *peer_share;
static pthread_mutex_t peer_share_locks[CURL_LOCK_DATA_LAST];

static void
peer_share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *arg)
{
	(void)c;
	(void)access;
	(void)arg;
	pthread_mutex_lock(&peer_share_locks[data]);
}

static void
peer_share_unlock(CURL *c, curl_lock_data data, void *arg)
{
	(void)c;
	(void)arg;
	pthread_mutex_unlock(&peer_share_locks[data]);
}

static void
peer_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&peer_share_locks[i], NULL);
	peer_share = curl_share_init();
	if (peer_share != NULL &&
	    (curl_share_setopt(peer_share, CURLSHOPT_LOCKFUNC, peer_share_lock) != CURLSHE_OK ||
	    curl_share_setopt(peer_share, CURLSHOPT_UNLOCKFUNC, peer_share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(peer_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)) {
		curl_share_cleanup(peer_share);
		peer_share = NULL;
	}
}

int
peer_client_new(struct peer_client **ret, struct node *node)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct peer_client *pc;

	/* curl_global_init is not thread-safe in curl 7.88: run it once. */
	(void)pthread_once(&once, peer_global_init);
	pc = calloc(1, sizeof(*pc));
	if (pc == NULL)
		return -ENOMEM;
	pc->node = node;
	pc->curl = curl_easy_init();
	if (pc->curl == NULL) {
		free(pc);
		return -ENOMEM;
	}
	*ret = pc;
	return 0;
}

void
peer_client_free(struct peer_client *pc)
{
	if (pc == NULL)
		return;
	curl_easy_cleanup(pc->curl);
	free(pc);
}

void
peer_response_clear(struct peer_response *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

void
peer_stats(uint64_t *ret_calls, uint64_t *ret_new_connections)
{
	*ret_calls = atomic_load(&peer_calls);
	*ret_new_connections = atomic_load(&peer_new_connections);
}

static size_t
peer_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct peer_response *resp = userdata;
	size_t n = size * nmemb;
	char *nbody;

	if (resp->len + n > PEER_MAX_RESPONSE)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	nbody = realloc(resp->body, resp->len + n + 1);
	if (nbody == NULL)
		return 0;
	memcpy(nbody + resp->len, data, n);
	resp->len += n;
	nbody[resp->len] = '\0';
	resp->body = nbody;
	return n;
}

static size_t
peer_header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct peer_response *resp = userdata;
	size_t n = size * nmemb;
	static const char name[] = "Passerelle-Directory-Serial:";

	if (n > sizeof(name) && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		char buf[32];
		size_t vlen = n - (sizeof(name) - 1);

		if (vlen >= sizeof(buf))
			vlen = sizeof(buf) - 1;
		memcpy(buf, data + sizeof(name) - 1, vlen);
		buf[vlen] = '\0';
		resp->directory_serial = strtoll(buf, NULL, 10);
	}
	return n;
}

/*
 * Builds CURLOPT_PINNEDPUBLICKEY from the space's pins:
 * "sha256//BASE64;sha256//BASE64" (any one of them may match).
 */
static void
peer_pin(const struct directory_space *space, char *out, size_t outlen)
{
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < space->npins && n < outlen; i++) {
		sodium_bin2base64(b64, sizeof(b64), space->spki_sha256[i], 32,
		    sodium_base64_VARIANT_ORIGINAL);
		n += (size_t)snprintf(out + n, outlen - n, "%ssha256//%s",
		    i > 0 ? ";" : "", b64);
	}
}

int
peer_call(struct peer_client *pc, const char *space_id, const char *method,
    const char *path, const char *body, const char *const *headers,
    long timeout_ms, struct peer_response *ret)
{
	const struct config *cfg = node_config(pc->node);
	struct node_directory *nd;
	const struct directory_space *space;
	struct curl_slist *hdrs = NULL;
	char url[1024], pin[64 * DIRECTORY_MAX_PINS], serial[64];
	CURL *c = pc->curl;
	CURLcode cc;
	long connects = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	/*
	 * A directory is a document the coordinator signed, verified when it
	 * arrives: fetching one from a peer that the expired directory in
	 * force lists and pins is how a node whose directory has expired
	 * catches up.  Every other call needs a directory still trusted.
	 */
	nd = strcmp(path, "/federation/v1/directory") == 0 ?
	    node_directory_current(pc->node) : node_directory_get(pc->node);
	space = nd != NULL ? directory_find_space(nd->dir, space_id) : NULL;
	if (space == NULL) {
		snprintf(ret->error, sizeof(ret->error),
		    "space '%s' is not in the directory", space_id);
		node_directory_put(pc->node, nd);
		return -ENOENT;
	}
	snprintf(url, sizeof(url), "%s%s", space->url, path);
	peer_pin(space, pin, sizeof(pin));
	snprintf(serial, sizeof(serial), "Passerelle-Directory-Serial: %lld",
	    (long long)directory_serial(nd->dir));
	node_directory_put(pc->node, nd);

	curl_easy_reset(c); /* keeps the connection cache */
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, serial);
	hdrs = curl_slist_append(hdrs, "Expect:");
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		hdrs = curl_slist_append(hdrs, headers[i]);

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_SSLCERT, cfg->fed_cert);
	curl_easy_setopt(c, CURLOPT_SSLKEY, cfg->fed_key);
	curl_easy_setopt(c, CURLOPT_CAINFO, cfg->fed_ca);
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, pin);
	curl_easy_setopt(c, CURLOPT_MAXCONNECTS, 64L);
	if (peer_share != NULL)
		curl_easy_setopt(c, CURLOPT_SHARE, peer_share);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, peer_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, ret);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, peer_header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, ret);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body != NULL ? strlen(body) : 0));
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}

	cc = curl_easy_perform(c);
	atomic_fetch_add(&peer_calls, 1);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
	if (connects > 0)
		atomic_fetch_add(&peer_new_connections, (uint_fast64_t)connects);
	ret->reused = connects == 0;
	if (cc != CURLE_OK) {
		snprintf(ret->error, sizeof(ret->error), "%s: %s", space_id,
		    curl_easy_strerror(cc));
		peer_health_report(space_id, false, curl_easy_strerror(cc));
		free(ret->body);
		ret->body = NULL;
		ret->len = 0;
		r = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);
	if (ret->body == NULL)
		ret->body = strdup("");
	/*
	 * Any HTTP answer, a 5xx included, comes from a node that is up: it
	 * answers at once, so there is nothing to stop hammering.  (The caller
	 * still treats a 5xx as no decision.)
	 */
	peer_health_report(space_id, true, NULL);
	/* The peer holds a newer directory: the refresher fetches it there. */
	node_directory_hint(pc->node, space_id, ret->directory_serial);
	r = ret->body != NULL ? 0 : -ENOMEM;
out:
	curl_slist_free_all(hdrs);
	return r;
}

int
peer_fetch_url(struct peer_client *pc, const char *url, long timeout_ms,
    struct peer_response *ret)
{
	bool file = strncasecmp(url, "file:", 5) == 0;
	/*
	 * A file: URL gets a handle of its own: libcurl 7.88 (Debian 12) leaks
	 * a file: transfer's connection, 920 bytes, when the handle that made
	 * it then makes a transfer of another kind (the refresher's next call
	 * to a peer).
	 */
	CURL *c = file ? curl_easy_init() : pc->curl;
	CURLcode cc;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (c == NULL) {
		snprintf(ret->error, sizeof(ret->error), "%s: out of memory", url);
		return -ENOMEM;
	}
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http,file");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, peer_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, ret);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, peer_header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, ret);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		snprintf(ret->error, sizeof(ret->error), "%s: %s", url,
		    curl_easy_strerror(cc));
		free(ret->body);
		ret->body = NULL;
		ret->len = 0;
		r = -EHOSTUNREACH;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);
	if (file)
		ret->status = 200;
	if (ret->body == NULL)
		ret->body = strdup("");
	r = ret->body != NULL ? 0 : -ENOMEM;
out:
	if (file)
		curl_easy_cleanup(c);
	return r;
}

bool
peer_probe(struct peer_client *pc, const char *space_id, bool desk)
{
	struct peer_response resp;
	bool up;

	if (!peer_is_down(space_id))
		return true;
	if (!peer_probe_due(space_id, desk))
		return false;
	{
		long timeout = (long)node_config(pc->node)->peer_timeout_ms;

		up = peer_call(pc, space_id, "GET", "/federation/v1/ping", NULL, NULL,
		    timeout < 2000 ? timeout : 2000, &resp) == 0 && resp.status == 200;
	}
	peer_response_clear(&resp);
	return up;
}
