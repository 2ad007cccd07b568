/*
 * node.c - the node's shared state: configuration, keys, directory, database.
 *
 * The directory pointer is protected by a mutex and reference counted; a new
 * directory replaces the old one whole, and the old one is freed when the
 * last request using it lets go.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "db.h"
#include "jws.h"
#include "b64url.h"
#include "key.h"
#include "log.h"
#include "node.h"
#include "pgembed.h"
#include "util.h"

#define NODE_MAX_TRUST 16

struct node {
	struct config *cfg;
	pthread_mutex_t key_lock;
	uint8_t pass_sk[KEY_SECRET_LEN];
	uint8_t pass_pk[KEY_PUBLIC_LEN];
	char pass_kid[64];
	bool have_pass_key;

	pthread_mutex_t dir_lock;
	struct node_directory *dir;
	int64_t saved_serial;	/* the newest saved when it started: no older one */
	struct directory_trust trust[NODE_MAX_TRUST];
	char trust_kids[NODE_MAX_TRUST][64];
	size_t ntrust;
	void (*on_change)(void *, const struct directory *, const struct directory *);
	void *on_change_arg;

	pthread_mutex_t hint_lock;
	pthread_cond_t hint_cond;
	char hint_space[64];
	int64_t hint_serial;
	bool hint_pending;

	char conninfo[1024];
	bool embedded;
	bool started_embedded;
	int claim_fd;		/* serve's lock on the embedded cluster, or -1 */
};

static void
node_directory_free(struct node_directory *nd)
{
	if (nd == NULL)
		return;
	directory_free(nd->dir);
	free(nd->token);
	free(nd);
}

/* Adds a trusted coordinator key (kid may be NULL: any kid). */
static void
node_trust_add(struct node *node, const char *kid, const uint8_t pk[32])
{
	for (size_t i = 0; i < node->ntrust; i++)
		if (memcmp(node->trust[i].pk, pk, 32) == 0)
			return;
	if (node->ntrust >= NODE_MAX_TRUST) {
		log_warnx("too many coordinator keys announced; ignoring %s",
		    kid != NULL ? kid : "(no kid)");
		return;
	}
	if (kid != NULL) {
		util_strlcpy(node->trust_kids[node->ntrust], kid,
		    sizeof(node->trust_kids[0]));
		node->trust[node->ntrust].kid = node->trust_kids[node->ntrust];
	} else {
		node->trust[node->ntrust].kid = NULL;
	}
	memcpy(node->trust[node->ntrust].pk, pk, 32);
	node->ntrust++;
}

/* Saves an accepted directory and the keys it announces, in one go. */
static int
node_directory_save(PGconn *conn, const char *token, const struct directory *dir,
    const char *source)
{
	char serial[32], expires[32];
	const char *params[4] = { serial, token, source, expires };
	int r = -EIO;

	snprintf(serial, sizeof(serial), "%lld", (long long)directory_serial(dir));
	util_format_time(directory_expires_at(dir), expires);
	if (db_begin(conn) < 0)
		return -EIO;
	if (db_exec(conn, "insert into directories (serial, token, source, expires_at)"
	    " values ($1, $2, $3, $4) on conflict (serial) do nothing", 4, params) < 0)
		goto out;
	for (size_t i = 0; i < directory_coordinator_key_count(dir); i++) {
		const struct directory_trust *t = directory_coordinator_key(dir, i);
		char x[64];
		const char *p3[3] = { t->kid, x, serial };

		b64url_encode(t->pk, 32, x);
		if (db_exec(conn, "insert into coordinator_keys (kid, x, announced_in)"
		    " values ($1, $2, $3) on conflict (kid) do nothing", 3, p3) < 0)
			goto out;
	}
	if (db_commit(conn) < 0)
		goto out;
	return 0;
out:
	db_rollback(conn);
	return r;
}

int
node_directory_offer(struct node *node, PGconn *conn, const char *token,
    size_t len, const char *source, bool *ret_changed, char *err, size_t errlen)
{
	struct directory_trust trust[NODE_MAX_TRUST];
	char kids[NODE_MAX_TRUST][64];
	struct directory *dir = NULL;
	struct node_directory *nd = NULL, *old;
	const char *why = NULL;
	size_t ntrust;
	int64_t current, saved;
	int r;

	*ret_changed = false;
	while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r' ||
	    token[len - 1] == ' '))
		len--;
	pthread_mutex_lock(&node->dir_lock);
	ntrust = node->ntrust;
	memcpy(trust, node->trust, sizeof(trust));
	memcpy(kids, node->trust_kids, sizeof(kids));
	current = node->dir != NULL ? directory_serial(node->dir->dir) : 0;
	saved = node->saved_serial;
	pthread_mutex_unlock(&node->dir_lock);
	for (size_t i = 0; i < ntrust; i++)
		if (trust[i].kid != NULL)
			trust[i].kid = kids[i];

	r = directory_load_trusted(token, len, trust, ntrust, util_now(), &dir, &why);
	if (r < 0) {
		snprintf(err, errlen, "directory from %s refused: %s", source,
		    why != NULL ? why : "invalid");
		return r;
	}
	if (directory_find_space(dir, node->cfg->space_id) == NULL) {
		snprintf(err, errlen, "directory serial %lld from %s refused: it does"
		    " not list this space ('%s')", (long long)directory_serial(dir),
		    source, node->cfg->space_id);
		r = -ENOENT;
		goto out;
	}
	if (directory_serial(dir) < saved) {
		/* A restart whose newest saved directory was refused (expired). */
		snprintf(err, errlen, "directory serial %lld from %s refused: older than"
		    " the serial %lld this node saved (rollback)",
		    (long long)directory_serial(dir), source, (long long)saved);
		r = -ESTALE;
		goto out;
	}
	if (directory_serial(dir) < current) {
		snprintf(err, errlen, "directory serial %lld from %s refused: older than"
		    " the serial %lld in force (rollback)", (long long)directory_serial(dir),
		    source, (long long)current);
		r = -ESTALE;
		goto out;
	}
	if (directory_serial(dir) == current) {
		struct node_directory *cur = node_directory_current(node);
		bool same = cur != NULL && cur->token_len == len &&
		    memcmp(cur->token, token, len) == 0;

		node_directory_put(node, cur);
		if (same) {
			r = 0;
			goto out;
		}
		snprintf(err, errlen, "directory serial %lld from %s refused: the serial"
		    " in force has other content", (long long)current, source);
		r = -EEXIST;
		goto out;
	}
	if (conn != NULL) {
		r = node_directory_save(conn, token, dir, source);
		if (r < 0) {
			snprintf(err, errlen, "cannot save directory serial %lld",
			    (long long)directory_serial(dir));
			goto out;
		}
	}
	nd = calloc(1, sizeof(*nd));
	if (nd == NULL || (nd->token = malloc(len + 1)) == NULL) {
		free(nd);
		nd = NULL;
		r = -ENOMEM;
		goto out;
	}
	memcpy(nd->token, token, len);
	nd->token[len] = '\0';
	nd->token_len = len;
	nd->dir = dir;
	nd->refs = 1;
	dir = NULL;

	pthread_mutex_lock(&node->dir_lock);
	old = node->dir;
	/* A racing offer may have installed a newer one meanwhile. */
	if (old != NULL && directory_serial(old->dir) >= directory_serial(nd->dir)) {
		pthread_mutex_unlock(&node->dir_lock);
		node_directory_free(nd);
		r = 0;
		goto out;
	}
	node->dir = nd;
	for (size_t i = 0; i < directory_coordinator_key_count(nd->dir); i++) {
		const struct directory_trust *t = directory_coordinator_key(nd->dir, i);

		node_trust_add(node, t->kid, t->pk);
	}
	nd->refs++; /* ours, for the callback below */
	pthread_mutex_unlock(&node->dir_lock);

	log_info("directory serial %lld accepted from %s (%zu spaces)",
	    (long long)directory_serial(nd->dir), source, directory_count(nd->dir));
	if (node->on_change != NULL)
		node->on_change(node->on_change_arg, old != NULL ? old->dir : NULL, nd->dir);
	node_directory_put(node, old);
	node_directory_put(node, nd);
	*ret_changed = true;
	r = 0;
out:
	directory_free(dir);
	return r;
}

/* The configured file: the first directory, before any is saved. */
static int
node_offer_file(struct node *node, PGconn *conn, char *err, size_t errlen)
{
	const struct config *cfg = node->cfg;
	char *token = NULL;
	size_t len = 0;
	bool changed;
	int r;

	r = util_read_file(cfg->directory_file, DIRECTORY_MAX_TOKEN, &token, &len);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the directory %s: %s",
		    cfg->directory_file, strerror(-r));
		return r;
	}
	r = node_directory_offer(node, conn, token, len, cfg->directory_file, &changed,
	    err, errlen);
	free(token);
	return r;
}

/*
 * With a database: the keys learnt so far, then the newest saved directory,
 * then the file (which only wins when it is newer).
 */
static int
node_directory_from_db(struct node *node, PGconn *conn, char *err, size_t errlen)
{
	PGresult *res;
	char ferr[512] = "";
	bool changed;
	int r, rf;

	res = db_query(conn, "select kid, x from coordinator_keys order by learnt_at", 0, NULL);
	if (res == NULL) {
		snprintf(err, errlen, "cannot read the coordinator keys");
		return -EIO;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		uint8_t pk[32];
		size_t n;
		const char *x = PQgetvalue(res, i, 1);

		if (b64url_decode(x, strlen(x), pk, sizeof(pk), &n) == 0 && n == 32)
			node_trust_add(node, PQgetvalue(res, i, 0), pk);
	}
	PQclear(res);
	res = db_query(conn, "select token, serial from directories order by serial desc"
	    " limit 1", 0, NULL);
	if (res == NULL) {
		snprintf(err, errlen, "cannot read the saved directory");
		return -EIO;
	}
	r = -ENOENT;
	if (PQntuples(res) == 1) {
		node->saved_serial = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		r = node_directory_offer(node, NULL, PQgetvalue(res, 0, 0),
		    (size_t)PQgetlength(res, 0, 0), "the database", &changed, err, errlen);
		if (r < 0)
			log_warnx("%s", err);
	}
	PQclear(res);
	rf = node_offer_file(node, conn, ferr, sizeof(ferr));
	if (rf < 0 && r == 0 && rf != -ENOENT)
		log_info("%s (keeping the saved one)", ferr);
	if (r < 0 && rf < 0) {
		snprintf(err, errlen, "%s", ferr);
		return rf;
	}
	return 0;
}

static const char *
node_pg_bin_dir(const struct config *cfg)
{
	return cfg->pg_bin_dir[0] != '\0' ? cfg->pg_bin_dir : NULL;
}

int
node_embedded_revive(struct node *node, char *err, size_t errlen)
{
	bool started = false;
	char *pg_dir;
	int r;

	if (node->claim_fd < 0)
		return 0;
	pg_dir = util_path_join(node->cfg->data_dir, "pg");
	if (pg_dir == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = pgembed_revive(pg_dir, node_pg_bin_dir(node->cfg),
	    node->cfg->pg_user, &started, err, errlen);
	free(pg_dir);
	if (r < 0)
		return r;
	return started ? 1 : 0;
}

int
node_open(struct node **ret, struct config *cfg, int flags, char *err, size_t errlen)
{
	struct node *node;
	int r;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot start");
		return -EIO;
	}
	node = calloc(1, sizeof(*node));
	if (node == NULL)
		return -ENOMEM;
	node->cfg = cfg;
	node->claim_fd = -1;
	pthread_mutex_init(&node->dir_lock, NULL);
	pthread_mutex_init(&node->key_lock, NULL);
	pthread_mutex_init(&node->hint_lock, NULL);
	pthread_cond_init(&node->hint_cond, NULL);

	if (flags & NODE_NEED_PASS_KEY) {
		r = node_reload_pass_key(node, cfg->pass_key, cfg->pass_kid, err, errlen);
		if (r < 0)
			goto fail;
	}
	if (flags & NODE_NEED_DIRECTORY) {
		uint8_t pk[32];

		r = key_load_public(cfg->directory_key, pk);
		if (r < 0) {
			snprintf(err, errlen, "cannot read the coordinator's key %s: %s",
			    cfg->directory_key, strerror(-r));
			goto fail;
		}
		node_trust_add(node, NULL, pk);
	}
	if (cfg->database[0] != '\0') {
		util_strlcpy(node->conninfo, cfg->database, sizeof(node->conninfo));
	} else {
		char *pg_dir;

		node->embedded = true;
		if (flags & NODE_NEED_DATABASE) {
			r = util_mkdir_p(cfg->data_dir, 0755);
			if (r < 0) {
				snprintf(err, errlen, "cannot create data_dir %s: %s",
				    cfg->data_dir, strerror(-r));
				goto fail;
			}
			pg_dir = util_path_join(cfg->data_dir, "pg");
			if (pg_dir == NULL) {
				r = -ENOMEM;
				goto fail;
			}
			/*
			 * The claim comes first: a command that started the
			 * server and ends while we start sees it, and leaves
			 * the server to us (see pgembed_stop).
			 */
			r = 0;
			if (flags & NODE_SERVE)
				r = pgembed_claim(pg_dir, node_pg_bin_dir(cfg),
				    cfg->pg_user, &node->claim_fd, err, errlen);
			if (r == 0)
				r = pgembed_ensure(pg_dir, node_pg_bin_dir(cfg),
				    cfg->pg_user, node->conninfo,
				    sizeof(node->conninfo), &node->started_embedded,
				    err, errlen);
			free(pg_dir);
			if (r < 0)
				goto fail;
		}
	}
	if ((flags & NODE_NEED_DATABASE) && (flags & NODE_MIGRATE)) {
		PGconn *conn = NULL;
		int applied = 0;

		/* A fresh database is usable at once: the schema comes first. */
		r = node_db_connect(node, &conn, err, errlen);
		if (r == 0)
			r = db_migrate(conn, &applied, err, errlen);
		if (r == 0 && (flags & NODE_NEED_DIRECTORY))
			r = node_directory_from_db(node, conn, err, errlen);
		db_close(conn);
		if (r < 0)
			goto fail;
	} else if (flags & NODE_NEED_DIRECTORY) {
		r = node_offer_file(node, NULL, err, errlen);
		if (r < 0)
			goto fail;
	}
	*ret = node;
	return 0;
fail:
	/* The caller still owns cfg; node_close only reads it. */
	node_close(node);
	return r;
}

void
node_close(struct node *node)
{
	if (node == NULL)
		return;
	/*
	 * A serve stops the server whoever started it (a serve killed before
	 * leaves it running for the next one); a command only the server it
	 * started, and not while a serve claims it.
	 */
	if (node->claim_fd >= 0 || node->started_embedded) {
		char *pg_dir = util_path_join(node->cfg->data_dir, "pg");

		if (pg_dir != NULL) {
			if (pgembed_stop(pg_dir, node_pg_bin_dir(node->cfg),
			    node->cfg->pg_user, node->claim_fd < 0) < 0)
				log_warnx("could not stop the embedded PostgreSQL");
			free(pg_dir);
		}
	}
	if (node->claim_fd >= 0)
		close(node->claim_fd);	/* after the stop: lets go of the claim */
	if (node->dir != NULL && --node->dir->refs == 0)
		node_directory_free(node->dir);
	pthread_mutex_destroy(&node->dir_lock);
	pthread_mutex_destroy(&node->key_lock);
	pthread_mutex_destroy(&node->hint_lock);
	pthread_cond_destroy(&node->hint_cond);
	sodium_memzero(node->pass_sk, sizeof(node->pass_sk));
	free(node);
}

const struct config *
node_config(const struct node *node)
{
	return node->cfg;
}

const char *
node_space_id(const struct node *node)
{
	return node->cfg->space_id;
}

const char *
node_conninfo(const struct node *node)
{
	return node->conninfo;
}

int
node_pass_key(struct node *node, uint8_t ret_sk[64], char *ret_kid, size_t kidlen)
{
	int r = -ENOKEY;

	pthread_mutex_lock(&node->key_lock);
	if (node->have_pass_key) {
		memcpy(ret_sk, node->pass_sk, KEY_SECRET_LEN);
		util_strlcpy(ret_kid, node->pass_kid, kidlen);
		r = 0;
	}
	pthread_mutex_unlock(&node->key_lock);
	return r;
}

int
node_reload_pass_key(struct node *node, const char *key_file, const char *kid,
    char *err, size_t errlen)
{
	uint8_t sk[KEY_SECRET_LEN], pk[KEY_PUBLIC_LEN];
	int r;

	r = key_load_private(key_file, sk, pk);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the pass-signing key %s: %s",
		    key_file, strerror(-r));
		return r;
	}
	pthread_mutex_lock(&node->key_lock);
	memcpy(node->pass_sk, sk, sizeof(sk));
	memcpy(node->pass_pk, pk, sizeof(pk));
	util_strlcpy(node->pass_kid, kid, sizeof(node->pass_kid));
	node->have_pass_key = true;
	pthread_mutex_unlock(&node->key_lock);
	sodium_memzero(sk, sizeof(sk));
	return 0;
}

int
node_pass_key_listed(struct node *node, const char *key_file, char *err, size_t errlen)
{
	struct node_directory *nd;
	uint8_t pk[KEY_PUBLIC_LEN], listed[KEY_PUBLIC_LEN];
	char kid[64];
	bool have;
	int r = 0;

	pthread_mutex_lock(&node->key_lock);
	have = node->have_pass_key;
	memcpy(pk, node->pass_pk, sizeof(pk));
	util_strlcpy(kid, node->pass_kid, sizeof(kid));
	pthread_mutex_unlock(&node->key_lock);
	nd = node_directory_current(node);
	if (!have || nd == NULL)
		goto out;
	if (directory_find_key(nd->dir, node->cfg->space_id, kid, listed) < 0) {
		snprintf(err, errlen, "pass key kid %s is not in directory serial %lld "
		    "for space %s", kid, (long long)directory_serial(nd->dir),
		    node->cfg->space_id);
		r = -ENOENT;
	} else if (sodium_memcmp(pk, listed, sizeof(pk)) != 0) {
		snprintf(err, errlen, "%s does not match the key directory serial %lld "
		    "lists under %s", key_file, (long long)directory_serial(nd->dir), kid);
		r = -EKEYREJECTED;
	}
out:
	node_directory_put(node, nd);
	return r;
}

struct node_directory *
node_directory_current(struct node *node)
{
	struct node_directory *nd;

	pthread_mutex_lock(&node->dir_lock);
	nd = node->dir;
	if (nd != NULL)
		nd->refs++;
	pthread_mutex_unlock(&node->dir_lock);
	return nd;
}

static bool
node_directory_past(const struct node_directory *nd)
{
	return nd != NULL && directory_expires_at(nd->dir) <= util_now();
}

struct node_directory *
node_directory_get(struct node *node)
{
	struct node_directory *nd = node_directory_current(node);

	if (node_directory_past(nd)) {
		node_directory_put(node, nd);
		return NULL;
	}
	return nd;
}

bool
node_directory_expired(struct node *node)
{
	struct node_directory *nd = node_directory_current(node);
	bool expired = node_directory_past(nd);

	node_directory_put(node, nd);
	return expired;
}

void
node_directory_put(struct node *node, struct node_directory *nd)
{
	bool last;

	if (nd == NULL)
		return;
	pthread_mutex_lock(&node->dir_lock);
	last = --nd->refs == 0;
	pthread_mutex_unlock(&node->dir_lock);
	if (last)
		node_directory_free(nd);
}

int64_t
node_directory_serial(struct node *node)
{
	int64_t serial = 0;

	pthread_mutex_lock(&node->dir_lock);
	if (node->dir != NULL)
		serial = directory_serial(node->dir->dir);
	pthread_mutex_unlock(&node->dir_lock);
	return serial;
}

int
node_db_connect(struct node *node, PGconn **ret, char *err, size_t errlen)
{
	if (node->conninfo[0] == '\0') {
		snprintf(err, errlen, "no database (the embedded PostgreSQL is not started)");
		return -ENOTCONN;
	}
	return db_connect(node->conninfo, ret, err, errlen);
}


void
node_on_directory_change(struct node *node,
    void (*fn)(void *arg, const struct directory *old, const struct directory *dir),
    void *arg)
{
	pthread_mutex_lock(&node->dir_lock);
	node->on_change = fn;
	node->on_change_arg = arg;
	pthread_mutex_unlock(&node->dir_lock);
}

void
node_directory_hint(struct node *node, const char *space_id, int64_t serial)
{
	if (serial <= node_directory_serial(node) || space_id == NULL)
		return;
	pthread_mutex_lock(&node->hint_lock);
	if (!node->hint_pending || serial > node->hint_serial) {
		util_strlcpy(node->hint_space, space_id, sizeof(node->hint_space));
		node->hint_serial = serial;
		node->hint_pending = true;
		pthread_cond_signal(&node->hint_cond);
	}
	pthread_mutex_unlock(&node->hint_lock);
}

void
node_directory_wake(struct node *node)
{
	pthread_mutex_lock(&node->hint_lock);
	pthread_cond_broadcast(&node->hint_cond);
	pthread_mutex_unlock(&node->hint_lock);
}

int
node_directory_wait_hint(struct node *node, int timeout_ms, char *space, size_t len,
    int64_t *ret_serial)
{
	struct timespec ts;
	int got = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&node->hint_lock);
	if (!node->hint_pending)
		pthread_cond_timedwait(&node->hint_cond, &node->hint_lock, &ts);
	if (node->hint_pending) {
		util_strlcpy(space, node->hint_space, len);
		*ret_serial = node->hint_serial;
		node->hint_pending = false;
		got = 1;
	}
	pthread_mutex_unlock(&node->hint_lock);
	return got;
}

int
node_verify_signed(struct node *node, const char *token, const char *typ,
    const char *space_id, cJSON **ret_payload)
{
	struct node_directory *nd = node_directory_get(node);
	struct jws *jws = NULL;
	const char *t, *kid;
	const uint8_t *payload;
	uint8_t pk[32];
	size_t len;
	cJSON *o;
	int r;

	r = jws_parse(token, JWS_MAX_TOKEN * 16, &jws) < 0 ? -EBADMSG : 0;
	if (r < 0)
		goto out;
	t = jws_header_string(jws, "typ");
	kid = jws_header_string(jws, "kid");
	if (t == NULL || strcmp(t, typ) != 0 || kid == NULL) {
		r = -EBADMSG;
		goto out;
	}
	if (nd == NULL || directory_find_key(nd->dir, space_id, kid, pk) < 0) {
		r = -ENOENT;
		goto out;
	}
	if (jws_verify(jws, pk) < 0) {
		r = -EKEYREJECTED;
		goto out;
	}
	payload = jws_payload(jws, &len);
	o = jws_json_parse_object((const char *)payload, len, 8);
	if (o == NULL) {
		r = -EBADMSG;
		goto out;
	}
	*ret_payload = o;
out:
	jws_free(jws);
	node_directory_put(node, nd);
	return r;
}

int
node_sign(struct node *node, const char *typ, const cJSON *payload, char **ret_token)
{
	char header[192], kid[64], *text;
	uint8_t sk[64];
	int r;

	r = node_pass_key(node, sk, kid, sizeof(kid));
	if (r < 0)
		return r;
	text = cJSON_PrintUnformatted(payload);
	if (text == NULL) {
		sodium_memzero(sk, sizeof(sk));
		return -ENOMEM;
	}
	snprintf(header, sizeof(header), "{\"alg\":\"EdDSA\",\"typ\":\"%s\",\"kid\":\"%s\"}",
	    typ, kid);
	r = jws_sign(header, (const uint8_t *)text, strlen(text), sk, ret_token) < 0 ?
	    -EIO : 0;
	sodium_memzero(sk, sizeof(sk));
	cJSON_free(text);
	return r;
}
