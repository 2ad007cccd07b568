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

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "config.h"
#include "directory.h"

struct node;

enum node_open_flags {
	NODE_NEED_DIRECTORY = 1 << 0,	/* load and verify the directory */
	NODE_NEED_PASS_KEY = 1 << 1,	/* load the pass-signing key */
	NODE_NEED_DATABASE = 1 << 2,	/* start the embedded PostgreSQL if needed;
					   with NODE_NEED_DIRECTORY the newest saved
					   directory wins (needs NODE_MIGRATE) */
	NODE_MIGRATE = 1 << 3,		/* apply pending migrations first */
	NODE_SERVE = 1 << 4,		/* `passerelle serve`: with the embedded
					   PostgreSQL, claim it for the life of
					   the process (one serve per data_dir)
					   and stop it at close */
};

/* Opens a node from its configuration; err gets a one-line reason. */
int node_open(struct node **ret, struct config *cfg, int flags, char *err, size_t errlen);

/*
 * Closes it.  The embedded PostgreSQL is stopped by a serve (NODE_SERVE)
 * whoever started it, and by a command that started it only when no serve
 * claims it meanwhile.
 */
void node_close(struct node *node);

/*
 * For a serve on the embedded PostgreSQL: starts the server again if it is
 * not running (killed, or stopped behind the node's back).  Returns 1 when
 * it did, 0 when it was running or the node has no embedded server, or a
 * negative code with err.
 */
int node_embedded_revive(struct node *node, char *err, size_t errlen);

const struct config *node_config(const struct node *node);
const char *node_space_id(const struct node *node);
const char *node_conninfo(const struct node *node);

/*
 * A copy of the pass-signing key and its kid (they change when a rotated key
 * is loaded with node_reload_pass_key); -ENOKEY when none is loaded.
 */
int node_pass_key(struct node *node, uint8_t ret_sk[64], char *ret_kid, size_t kidlen);

/* Loads the pass key and kid that cfg names (SIGHUP after a rotation). */
int node_reload_pass_key(struct node *node, const char *key_file, const char *kid,
    char *err, size_t errlen);

/*
 * Whether the directory in force lists the loaded pass key for this space
 * under its kid: 0 (also when no key or no directory is loaded), or
 * -ENOENT (no such kid, or retired) or -EKEYREJECTED (another key under
 * that kid), with err naming the kid, or key_file, and the serial.  Every
 * node refuses the passes such a key signs as altered.
 */
int node_pass_key_listed(struct node *node, const char *key_file, char *err,
    size_t errlen);

/*
 * The directory the node trusts, with a reference the caller drops with
 * node_directory_put(): NULL when none is loaded or when it has expired
 * (a running node trusts no space, key or pin of an expired directory,
 * as a starting node refuses it; the refresher keeps asking for a new
 * one).  node_directory_current() is the one in force even if expired,
 * for what only shows it (status, metrics, rollback checks).
 */
struct node_directory {
	struct directory *dir;
	char *token;		/* the signed form, served to peers */
	size_t token_len;
	int refs;
};
struct node_directory *node_directory_get(struct node *node);
struct node_directory *node_directory_current(struct node *node);
bool node_directory_expired(struct node *node);
void node_directory_put(struct node *node, struct node_directory *nd);
int64_t node_directory_serial(struct node *node);

/*
 * Offers a signed directory (from the configured file, a poll, a peer).  It
 * is accepted only if it verifies with a trusted coordinator key (the
 * configured one, or one announced by a directory already accepted), has not
 * expired, and has a higher serial than the current one; it is then saved in
 * the database (when conn is not NULL) before it takes effect.  *ret_changed
 * tells whether it replaced the current directory.  A directory with the
 * current serial and the same content is a no-op; an older serial is refused
 * (rollback), and so is the same serial with other content.
 */
int node_directory_offer(struct node *node, PGconn *conn, const char *token,
    size_t len, const char *source, bool *ret_changed, char *err, size_t errlen);

/* Called after every change of directory (from the thread that offered it). */
void node_on_directory_change(struct node *node,
    void (*fn)(void *arg, const struct directory *old, const struct directory *dir),
    void *arg);

/*
 * A peer said it holds a newer directory (Passerelle-Directory-Serial): the
 * refresher is woken to fetch it from that space, or to poll the configured
 * URLs when space_id is "" (a caller we do not know yet).  Cheap; any thread.
 */
void node_directory_hint(struct node *node, const char *space_id, int64_t serial);
/* Waits up to timeout_ms for a hint; 1 with the space, 0 on time-out. */
int node_directory_wait_hint(struct node *node, int timeout_ms, char *space,
    size_t len, int64_t *ret_serial);
void node_directory_wake(struct node *node);

/*
 * Verifies a JWS that space_id signed with one of its pass-signing keys in
 * the current directory (receipts, completions, revocation lists): the
 * header's typ must be typ; on success *ret_payload is the parsed JSON
 * object (the caller deletes it).  -ENOENT: unknown space or key;
 * -EBADMSG: malformed or wrong typ; -EKEYREJECTED: bad signature.
 */
int node_verify_signed(struct node *node, const char *token, const char *typ,
    const char *space_id, cJSON **ret_payload);

/* Signs payload as this space (pass-signing key) with header typ. */
int node_sign(struct node *node, const char *typ, const cJSON *payload,
    char **ret_token);

/* Connects to the node's database (one connection per thread). */
int node_db_connect(struct node *node, PGconn **ret, char *err, size_t errlen);

#endif
