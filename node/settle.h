/*
 * settle.h - the federation's month, netted: every space publishes the
 * balances of its agreed statements, signed; any node fetches them all,
 * keeps the pairs whose two sides agree, and reduces the net positions to
 * at most one transfer fewer than the spaces involved, by a deterministic
 * rule, so that every node computes the same list.
 */
#ifndef PASSERELLE_SETTLE_H
#define PASSERELLE_SETTLE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "http.h"
#include "node.h"

struct worker;

/* One space's net position in one currency: what it is owed (> 0). */
struct settle_position {
	char space[64];
	int64_t cents;
};

struct settle_transfer {
	char from[64];
	char to[64];
	int64_t cents;
};

/*
 * The transfers that bring positions (summing to zero) to zero: the largest
 * debtor pays the largest creditor as much as it can, again and again, ties
 * going to the smaller space id.  At most n - 1 transfers; *ret is
 * malloc'ed (NULL when there are none).  -EINVAL when the sum is not zero.
 */
int settle_transfers(const struct settle_position *pos, size_t n,
    struct settle_transfer **ret, size_t *ret_n);

/* Our statements of month as published: {"space", "month", "statements": [...]}. */
int settle_balances(struct node *node, PGconn *conn, const char *month, cJSON **ret);

/* GET /federation/v1/balances?month=YYYY-MM, signed (typ "balances"). */
void settle_fed_balances(struct http_job *job, struct worker *w);

/* `passerelle settle --month YYYY-MM` (main.c lists it). */
int settle_cmd_run(int argc, char **argv);

#endif
