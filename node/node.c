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

#include <sodium.h>

#include "db.h"
#include "key.h"
#include "log.h"
#include "node.h"
#include "pgembed.h"
#include "util.h"

struct node {
	struct config *cfg;
	uint8_t pass_sk[KEY_SECRET_LEN];
	uint8_t pass_pk[KEY_PUBLIC_LEN];
	bool have_pass_key;
	uint8_t coordinator_pk[KEY_PUBLIC_LEN];

	pthread_mutex_t dir_lock;
	struct node_directory *dir;

	char conninfo[1024];
	bool embedded;
	bool started_embedded;
	bool keep_database;
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

static int
node_load_directory(struct node *node, char *err, size_t errlen)
{
	const struct config *cfg = node->cfg;
	struct node_directory *nd;
	const char *why = NULL;
	int r;

	r = key_load_public(cfg->directory_key, node->coordinator_pk);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the coordinator's key %s: %s",
		    cfg->directory_key, strerror(-r));
		return r;
	}
	nd = calloc(1, sizeof(*nd));
	if (nd == NULL)
		return -ENOMEM;
	r = util_read_file(cfg->directory_file, DIRECTORY_MAX_TOKEN, &nd->token,
	    &nd->token_len);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the directory %s: %s",
		    cfg->directory_file, strerror(-r));
		goto out;
	}
	/* A file usually ends with a newline that is not part of the token. */
	while (nd->token_len > 0 && (nd->token[nd->token_len - 1] == '\n' ||
	    nd->token[nd->token_len - 1] == '\r' || nd->token[nd->token_len - 1] == ' '))
		nd->token[--nd->token_len] = '\0';
	r = directory_load(nd->token, nd->token_len, node->coordinator_pk,
	    util_now(), &nd->dir, &why);
	if (r < 0) {
		snprintf(err, errlen, "directory %s refused: %s", cfg->directory_file,
		    why != NULL ? why : "invalid");
		goto out;
	}
	if (directory_find_space(nd->dir, cfg->space_id) == NULL) {
		snprintf(err, errlen, "space '%s' is not in the directory %s",
		    cfg->space_id, cfg->directory_file);
		r = -ENOENT;
		goto out;
	}
	nd->refs = 1;
	node->dir = nd;
	nd = NULL;
	r = 0;
out:
	node_directory_free(nd);
	return r;
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
	pthread_mutex_init(&node->dir_lock, NULL);

	if (flags & NODE_NEED_PASS_KEY) {
		r = key_load_private(cfg->pass_key, node->pass_sk, node->pass_pk);
		if (r < 0) {
			snprintf(err, errlen, "cannot read the pass-signing key %s: %s",
			    cfg->pass_key, strerror(-r));
			goto fail;
		}
		node->have_pass_key = true;
	}
	if (flags & NODE_NEED_DIRECTORY) {
		r = node_load_directory(node, err, errlen);
		if (r < 0)
			goto fail;
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
			r = pgembed_ensure(pg_dir,
			    cfg->pg_bin_dir[0] != '\0' ? cfg->pg_bin_dir : NULL,
			    cfg->pg_user, node->conninfo, sizeof(node->conninfo),
			    &node->started_embedded, err, errlen);
			free(pg_dir);
			if (r < 0)
				goto fail;
		}
	}
	*ret = node;
	return 0;
fail:
	node->cfg = NULL; /* the caller still owns it */
	node_close(node);
	return r;
}

void
node_close(struct node *node)
{
	if (node == NULL)
		return;
	if (node->started_embedded && !node->keep_database) {
		char *pg_dir = util_path_join(node->cfg->data_dir, "pg");

		if (pg_dir != NULL) {
			if (pgembed_stop(pg_dir, node->cfg->pg_bin_dir[0] != '\0' ?
			    node->cfg->pg_bin_dir : NULL, node->cfg->pg_user) < 0)
				log_warnx("could not stop the embedded PostgreSQL");
			free(pg_dir);
		}
	}
	if (node->dir != NULL && --node->dir->refs == 0)
		node_directory_free(node->dir);
	pthread_mutex_destroy(&node->dir_lock);
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

const uint8_t *
node_pass_sk(const struct node *node)
{
	return node->have_pass_key ? node->pass_sk : NULL;
}

struct node_directory *
node_directory_get(struct node *node)
{
	struct node_directory *nd;

	pthread_mutex_lock(&node->dir_lock);
	nd = node->dir;
	if (nd != NULL)
		nd->refs++;
	pthread_mutex_unlock(&node->dir_lock);
	return nd;
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
node_keep_database(struct node *node, bool keep)
{
	node->keep_database = keep;
}
