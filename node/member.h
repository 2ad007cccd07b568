/*
 * member.h - the home's members, their plans and balances, and their passes.
 *
 * A member is named to peers only by a random pseudonym; the full name and
 * e-mail stay in this database.  Every change of a ticket balance is a row of
 * ticket_movements, and members.tickets is kept equal to their sum.
 */
#ifndef PASSERELLE_MEMBER_H
#define PASSERELLE_MEMBER_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "node.h"

struct member_new {
	const char *full_name;
	const char *display_name;	/* NULL: first name and initial */
	const char *email;		/* may be NULL */
	const char *plan;		/* "monthly" or "tickets" */
	int tickets;			/* initial balance (tickets plan) */
	const char *valid_until;	/* YYYY-MM-DD (monthly plan) */
	const char *actor;
};

/* Adds a member; *ret is a JSON object describing it. */
int member_add(PGconn *conn, const struct member_new *m, cJSON **ret,
    char *err, size_t errlen);

/* ref is the numeric id, the pseudonym or the e-mail address. */
int member_show(PGconn *conn, const char *ref, cJSON **ret, char *err, size_t errlen);
int member_list(PGconn *conn, cJSON **ret);
int member_topup(PGconn *conn, const char *ref, int tickets, const char *actor,
    cJSON **ret, char *err, size_t errlen);

/*
 * Changes the plan: "tickets" (the balance stays), or "monthly" from
 * valid_from (NULL: today) until valid_until with an optional cap of
 * half-days a month at other spaces (roam_cap < 0: none).
 */
int member_set_plan(PGconn *conn, const char *ref, const char *plan,
    const char *valid_from, const char *valid_until, int roam_cap,
    const char *actor, cJSON **ret, char *err, size_t errlen);

/* "active" or "suspended". */
int member_set_status(PGconn *conn, const char *ref, const char *status,
    const char *actor, cJSON **ret, char *err, size_t errlen);

/*
 * What happened to a member: plan and status changes (audit) and every
 * ticket movement, oldest first, with who and when; and whether the
 * balance equals the sum of the movements.
 */
int member_history(PGconn *conn, const char *ref, cJSON **ret, char *err,
    size_t errlen);

/*
 * Revokes one pass (ref is its jti) or, with all, every pass of the member
 * ref names; *ret_count counts the passes revoked now.
 */
int member_revoke(PGconn *conn, const char *ref, bool all, const char *actor,
    int *ret_count, char *err, size_t errlen);

/*
 * Issues a pass for the member: records it and signs it with the node's
 * pass key.  *ret_token is malloc'ed; *ret describes the pass.
 */
int member_issue_pass(struct node *node, PGconn *conn, const char *ref,
    char **ret_token, cJSON **ret, char *err, size_t errlen);

#endif
