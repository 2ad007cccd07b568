/*
 * outbox.h - messages a node owes its peers, kept in PostgreSQL.
 *
 * A message is written in the same transaction as the state change that made
 * it due, then delivered by whoever claims it first (FOR UPDATE SKIP LOCKED),
 * so several processes on one database never deliver one message twice (a
 * check-out's is locked by its worker while it delivers it at once:
 * outbox_add_deliver).
 * Failures back off exponentially with jitter; a peer's 4xx is final.
 */
#ifndef PASSERELLE_OUTBOX_H
#define PASSERELLE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include <libpq-fe.h>

#include "db.h"
#include "node.h"
#include "peer.h"

#define OUTBOX_AUTHORIZE "authorize"
#define OUTBOX_COMPLETE "complete"

/*
 * Queues payload for peer in the caller's transaction, for the couriers.
 * Messages about one member (pseudonym) are delivered in the order queued.
 */
int outbox_add(PGconn *conn, const char *peer, const char *kind,
    const char *visit_id, const char *member, const char *payload);

/*
 * Queues payload and delivers it at once: the caller's last statement
 * (before; NULL for none), the message and the COMMIT of the caller's
 * transaction in one round trip, then the call to the peer (the row locked
 * meanwhile, as a courier's claim locks it), after anything about the
 * member that still waits before it.  0 delivered, 1 left to the couriers
 * (the peer did not take it, or an earlier message waits), -EIO when it
 * may not have been committed.
 */
#define OUTBOX_HOLD "10 seconds"
int outbox_add_deliver(struct node *node, PGconn *conn, struct peer_client *pc,
    const struct db_call *before, const char *peer, const char *kind,
    const char *visit_id, const char *member, const char *payload);

/* Delivers up to limit due messages; *ret_delivered counts successes. */
int outbox_deliver_due(struct node *node, PGconn *conn, struct peer_client *pc,
    int limit, int *ret_delivered);

/*
 * Sends now, in order, what waits for peer about member (before a new
 * authorization for them overtakes it); returns how many still wait.
 */
int outbox_flush_member(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *peer, const char *member);

/* What waits (or, with all, everything), oldest first, as a JSON array. */
int outbox_list(PGconn *conn, bool all, cJSON **ret);

/*
 * Makes waiting messages due now: every one when id is NULL, or the one id
 * names (even one that failed for good); *ret_count counts them.  A named
 * message that is not in the outbox is -ENOENT, one delivered -EALREADY.
 */
int outbox_retry(PGconn *conn, const char *id, int *ret_count);

#endif
