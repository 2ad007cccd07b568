/*
 * visit.h - a visit from both sides: the host's check-in and check-out, and
 * the home's decision about its member.
 *
 * Host: verify the pass offline, apply the terms and the house rules, choose
 * the visit id, ask the home (or decide locally for our own members: home.h),
 * record the visit with the home's signed receipt.
 */
#ifndef PASSERELLE_VISIT_H
#define PASSERELLE_VISIT_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "node.h"
#include "peer.h"

struct visit_decision {
	char visit_id[37];
	bool admitted;
	char reason_code[48];
	char reason[320];
	char home[64];
	char display_name[64];
	char plan[16];
	int tickets_left;	/* -1 when not a ticket book or unknown */
	int rate_cents;		/* the rate frozen on the visit, -1: none */
	char currency[4];
	char *receipt;		/* the home's signed decision, malloc'ed */
	bool home_admitted;	/* the home's answer said admit (honoured or not) */
	bool receipt_key_unknown; /* its receipt's key is not in our directory yet */
};

struct visit_checkout {
	char visit_id[37];
	char home[64];
	int units;
	bool already;		/* it was closed before this call */
	bool reported;		/* the home has the completion already */
};

/* The host's check-in of a pass; 0 with a decision, or <0 (ret->reason). */
int visit_check_in(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *token, struct visit_decision *ret);
void visit_decision_clear(struct visit_decision *d);
cJSON *visit_decision_json(const struct visit_decision *d);

/*
 * Closes an open visit at time at (RFC 3339; NULL: now), counts its units,
 * reports the completion to the home (through the outbox).
 */
int visit_check_out(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *visit_id, const char *at, struct visit_checkout *ret, char *err,
    size_t errlen);

/* Checks out, at closing time, the visits still open after it. */
int visit_close_overdue(struct node *node, PGconn *conn, struct peer_client *pc,
    int *ret_closed);

/* What a host's completion says of a visit (rate and currency: NULL, none). */
struct visit_completion {
	const char *visit_id;
	const char *home;
	const char *sub;
	const char *checked_in_at;
	const char *checked_out_at;
	int units;
	int rate_cents;
	const char *currency;
	int64_t iat;
};

/* The host's signed completion (JWS typ "completion"); NULL without a key. */
char *visit_sign_completion(struct node *node, const struct visit_completion *c);

/* The body of POST /federation/v1/complete, as the outbox sends it. */
char *visit_completion_payload(const char *visit_id, const char *checked_in_at,
    const char *checked_out_at, int units, const char *completion);

/*
 * Queues for the home a void completion of visit_id (no unit, the ticket
 * given back), in the caller's transaction: the host gave up on a visit the
 * home may have admitted.
 */
int visit_void(struct node *node, PGconn *conn, const char *visit_id,
    const char *home, const char *sub);

/*
 * The home's answer to a provisional visit's authorization, delivered late
 * by the outbox: the visit is confirmed or disputed (caller's transaction).
 * 0 when judged, 1 when not yet (the home's receipt is signed with a key
 * our directory does not list yet: the message is sent again), <0 error.
 */
int visit_authorization_arrived(struct node *node, PGconn *conn,
    const char *visit_id, const char *home, const char *body);

/* Refuses and voids check-ins left pending by a process that died. */
int visit_resolve_stale(struct node *node, PGconn *conn, int *ret_voided);

/*
 * Who is here now (open visits), or the visits the home disputed (a
 * provisional admission it refused), as a JSON array.
 */
cJSON *visit_list(PGconn *conn, bool disputed);


/* True when s is a canonical lower-case UUID. */
bool visit_id_valid(const char *s);

#endif
