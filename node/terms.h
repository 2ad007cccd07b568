/*
 * terms.h - what two spaces agreed: per peer, as host (do we accept its
 * members, at what rate per half-day unit, with what monthly cap per visitor,
 * how many visits while its node cannot be reached) and as home (may our
 * members go there, do ticket books pay one ticket per unit).
 *
 * A peer without terms of its own gets the [terms] defaults of the
 * configuration.  A visit freezes the rate when it is authorized.
 */
#ifndef PASSERELLE_TERMS_H
#define PASSERELLE_TERMS_H

#include <stdbool.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "config.h"

struct terms {
	bool host_accept;
	int rate_cents;
	char currency[4];
	int host_monthly_cap;		/* -1: none */
	int offline_allowance;
	bool allow_roaming;
	bool ticket_per_unit;
	bool is_default;		/* no row: the configuration's defaults */
	char updated_at[40];
	char updated_by[128];
};

/* The terms with peer (defaults when none are set): 0 or -EIO. */
int terms_get(const struct config *cfg, PGconn *conn, const char *peer,
    struct terms *ret);

/*
 * For statements that read the terms with other things in one round trip:
 * the columns of `peer_terms t` (a left join), and how to read them from
 * column col of a row (the defaults when the join found no row).
 */
#define TERMS_COLUMNS "t.host_accept, t.host_rate_cents, t.currency," \
    " coalesce(t.host_monthly_cap, -1), t.host_offline_allowance," \
    " t.home_allow_roaming, t.home_ticket_per_unit," \
    " to_char(t.updated_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')," \
    " t.updated_by, t.peer"
#define TERMS_NCOLUMNS 10
#define TERMS_PEER_COLUMN 9
void terms_from_row(const struct config *cfg, PGresult *res, int row, int col,
    struct terms *ret);

/* Stores the terms with peer (audited as actor). */
int terms_set(PGconn *conn, const char *peer, const struct terms *t, const char *actor);

/* All peers with terms of their own. */
int terms_list(const struct config *cfg, PGconn *conn, cJSON **ret);

cJSON *terms_json(const char *peer, const struct terms *t);

#endif
