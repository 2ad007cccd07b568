/*
 * node.h - what one running node knows: its configuration, its keys, the
 * directory it trusts, and how to reach its database.
 *
 * Both `passerelle serve` and the one-shot commands build a struct node; the
 * daemon shares one between its threads.  The directory is swapped whole
 * (reference counted) so that a reload never disturbs a request in flight.
 */
#ifndef PASSERELLE_NODE_H
#define PASSERELLE_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"
#include "directory.h"

struct node;

enum node_open_flags {
	NODE_NEED_DIRECTORY = 1 << 0,	/* load and verify the directory */
	NODE_NEED_PASS_KEY = 1 << 1,	/* load the pass-signing key */
	NODE_NEED_DATABASE = 1 << 2,	/* start the embedded PostgreSQL if needed */
};

/* Opens a node from its configuration; err gets a one-line reason. */
int node_open(struct node **ret, struct config *cfg, int flags, char *err, size_t errlen);

/* Closes it; stops the embedded PostgreSQL if this process started it. */
void node_close(struct node *node);

const struct config *node_config(const struct node *node);
const char *node_space_id(const struct node *node);
const char *node_conninfo(const struct node *node);

/* The pass-signing key (NULL when not loaded). */
const uint8_t *node_pass_sk(const struct node *node);

/*
 * The current directory, with a reference the caller drops with
 * node_directory_put().  NULL when none is loaded.
 */
struct node_directory {
	struct directory *dir;
	char *token;		/* the signed form, served to peers */
	size_t token_len;
	int refs;
};
struct node_directory *node_directory_get(struct node *node);
void node_directory_put(struct node *node, struct node_directory *nd);
int64_t node_directory_serial(struct node *node);

/* Connects to the node's database (one connection per thread). */
int node_db_connect(struct node *node, PGconn **ret, char *err, size_t errlen);

/* Keep the embedded PostgreSQL running after node_close() (serve hands over). */
void node_keep_database(struct node *node, bool keep);

#endif
