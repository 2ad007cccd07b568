/*
 * home.h - the home's side of a visit: deciding about its own member, and
 * recording the visit's completion.
 *
 * One transaction decides: the member row is locked, the member's standing,
 * plan, caps and roaming terms are checked, a ticket is debited together with
 * its ledger row, and the visit is stored with the exact response, which a
 * retry of the same visit id gets back byte for byte.  A member holds at most
 * one open visit anywhere (a partial unique index backs the check).
 */
#ifndef PASSERELLE_HOME_H
#define PASSERELLE_HOME_H

#include <stdbool.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "node.h"

struct home_request {
	const char *host;		/* from the caller's certificate */
	const char *visit_id;
	const char *token;
	int rate_cents;			/* the host's rate, frozen; -1: none */
	const char *currency;		/* NULL: none */
};

/*
 * Decides (in_txn: inside the caller's transaction, for a local check-in);
 * returns 0 with the HTTP status and a malloc'ed JSON body, or <0 when the
 * database failed.  A decision that loses to a concurrent one is taken
 * again, up to HOME_DECIDE_ATTEMPTS times in all; in_txn, -EAGAIN tells the
 * caller to roll back and do so.
 */
#define HOME_DECIDE_ATTEMPTS 3
int home_decide(struct node *node, PGconn *conn, const struct home_request *req,
    bool in_txn, int *ret_status, char **ret_body);

/*
 * Records that a visit ended (units counted by the host, and the host's
 * signed completion, checked by the caller), debiting extra
 * tickets where the terms say one ticket per unit.  Repeats are harmless:
 * *ret_already tells that it was recorded before.  -ENOENT: no admitted visit
 * with this id from host.  A void (units 0) of a visit not admitted yet is
 * kept, with the member named by sub (when given), so that its
 * authorization is refused if it comes.
 */
int home_complete_visit(struct node *node, PGconn *conn, const char *host,
    const char *visit_id, const char *sub, const char *checked_in_at,
    const char *checked_out_at, int units, const char *completion, bool in_txn,
    bool *ret_already);

/*
 * Federation handlers: POST /federation/v1/authorize, /complete and
 * /completions (up to HOME_BATCH_MAX completions, one answer each).  The
 * completion handlers run inside the caller's transaction.
 */
#define HOME_BATCH_MAX 200
void home_authorize(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, int *ret_status, char **ret_body);
void home_complete(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, int *ret_status, char **ret_body);
void home_complete_batch(struct node *node, PGconn *conn, const char *host,
    const cJSON *req, int *ret_status, char **ret_body);

/* {"error": ..., "detail": ...} as a malloc'ed string. */
char *home_error_body(const char *error, const char *detail);

#endif
