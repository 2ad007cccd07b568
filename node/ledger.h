/*
 * ledger.h - the ledger of the visits this node shares with one peer, as
 * it serves it (GET /federation/v1/ledger) and as it fetches a peer's.
 *
 * Records are JSON objects: {"visit_id", "role": "host"|"home" (the
 * holder's role), "sub", "checked_in_at", "checked_out_at", "units",
 * "rate_cents", "currency", "state", "receipt", "completion", and
 * "disputed", "dispute_note" when the holder disputes the visit}.  Pages go
 * in the order of (visit_id, role); a page's marker is the key of its last
 * record, "VISIT_ID.ROLE".
 */
#ifndef PASSERELLE_LEDGER_H
#define PASSERELLE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "http.h"
#include "node.h"
#include "peer.h"

struct worker;

/* Records per page, and the JSON size a page stays under. */
#define LEDGER_PAGE_RECORDS 200
#define LEDGER_PAGE_BYTES (512 * 1024)
/* Evidence tokens are ~600 bytes; a larger one is left out of the ledger. */
#define LEDGER_MAX_TOKEN (16 * 1024)

/* True when s is a page marker "VISIT_ID.host" or "VISIT_ID.home". */
bool ledger_marker_valid(const char *s);

/*
 * One page of this node's records of the visits shared with peer in month
 * (UTC check-in times), after the marker after (NULL or "": from the
 * start): a JSON array, and in *ret_next the marker of the next page
 * (malloc'ed), or NULL when this page is the last.
 */
int ledger_page(PGconn *conn, const char *peer, const char *month,
    const char *after, cJSON **ret_records, char **ret_next);

/* Every page of ours, as one JSON array. */
int ledger_own(PGconn *conn, const char *peer, const char *month, cJSON **ret);

/*
 * Every page of peer's, each verified (its key, this caller, this month,
 * this page, records in order), as one JSON array; err says why not.
 */
int ledger_fetch(struct node *node, struct peer_client *pc, const char *peer,
    const char *month, cJSON **ret, int *ret_pages, char *err, size_t errlen);

/* GET /federation/v1/ledger?month=YYYY-MM[&after=MARKER], signed. */
void ledger_fed_handle(struct http_job *job, struct worker *w);

#endif
