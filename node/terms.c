/*
 * terms.c - the terms between this space and each peer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "terms.h"
#include "util.h"

static void
terms_defaults(const struct config *cfg, struct terms *t)
{
	memset(t, 0, sizeof(*t));
	t->host_accept = cfg->terms_accept;
	t->rate_cents = (int)cfg->terms_rate_cents;
	util_strlcpy(t->currency, cfg->terms_currency, sizeof(t->currency));
	t->host_monthly_cap = (int)cfg->terms_monthly_cap;
	t->offline_allowance = (int)cfg->terms_offline_allowance;
	t->allow_roaming = cfg->terms_roaming;
	t->ticket_per_unit = cfg->terms_ticket_per_unit;
	t->is_default = true;
}

/* Reads the TERMS_COLUMNS that start at column col of row. */
static void
terms_read(PGresult *res, int row, int col, struct terms *t)
{
	memset(t, 0, sizeof(*t));
	t->host_accept = strcmp(PQgetvalue(res, row, col + 0), "t") == 0;
	t->rate_cents = atoi(PQgetvalue(res, row, col + 1));
	util_strlcpy(t->currency, PQgetvalue(res, row, col + 2), sizeof(t->currency));
	t->host_monthly_cap = atoi(PQgetvalue(res, row, col + 3));
	t->offline_allowance = atoi(PQgetvalue(res, row, col + 4));
	t->allow_roaming = strcmp(PQgetvalue(res, row, col + 5), "t") == 0;
	t->ticket_per_unit = strcmp(PQgetvalue(res, row, col + 6), "t") == 0;
	util_strlcpy(t->updated_at, PQgetvalue(res, row, col + 7), sizeof(t->updated_at));
	util_strlcpy(t->updated_by, PQgetvalue(res, row, col + 8), sizeof(t->updated_by));
}

void
terms_from_row(const struct config *cfg, PGresult *res, int row, int col,
    struct terms *ret)
{
	if (PQgetisnull(res, row, col + TERMS_PEER_COLUMN))
		terms_defaults(cfg, ret);
	else
		terms_read(res, row, col, ret);
}

int
terms_get(const struct config *cfg, PGconn *conn, const char *peer, struct terms *ret)
{
	const char *params[1] = { peer };
	PGresult *res;

	res = db_query(conn, "select " TERMS_COLUMNS " from peer_terms t"
	    " where peer = $1", 1, params);
	if (res == NULL)
		return -EIO;
	if (PQntuples(res) == 1)
		terms_read(res, 0, 0, ret);
	else
		terms_defaults(cfg, ret);
	PQclear(res);
	return 0;
}

int
terms_set(PGconn *conn, const char *peer, const struct terms *t, const char *actor)
{
	char rate[16], cap[16], offline[16];
	const char *params[9];

	snprintf(rate, sizeof(rate), "%d", t->rate_cents);
	snprintf(cap, sizeof(cap), "%d", t->host_monthly_cap);
	snprintf(offline, sizeof(offline), "%d", t->offline_allowance);
	params[0] = peer;
	params[1] = t->host_accept ? "t" : "f";
	params[2] = rate;
	params[3] = t->currency;
	params[4] = t->host_monthly_cap >= 0 ? cap : NULL;
	params[5] = offline;
	params[6] = t->allow_roaming ? "t" : "f";
	params[7] = t->ticket_per_unit ? "t" : "f";
	params[8] = actor;
	if (db_begin(conn) < 0)
		return -EIO;
	if (db_exec(conn, "insert into peer_terms (peer, host_accept, host_rate_cents,"
	    " currency, host_monthly_cap, host_offline_allowance, home_allow_roaming,"
	    " home_ticket_per_unit, updated_by) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
	    " on conflict (peer) do update set host_accept = $2, host_rate_cents = $3,"
	    " currency = $4, host_monthly_cap = $5, host_offline_allowance = $6,"
	    " home_allow_roaming = $7, home_ticket_per_unit = $8, updated_by = $9,"
	    " updated_at = now()", 9, params) < 0)
		goto fail;
	{
		cJSON *o = terms_json(peer, t);
		char *detail = cJSON_PrintUnformatted(o);
		const char *p3[3] = { actor, peer, detail };
		int r = db_exec(conn, "insert into audit (actor, action, subject, detail)"
		    " values ($1, 'terms.set', $2, $3)", 3, p3);

		free(detail);
		cJSON_Delete(o);
		if (r < 0)
			goto fail;
	}
	return db_commit(conn);
fail:
	db_rollback(conn);
	return -EIO;
}

cJSON *
terms_json(const char *peer, const struct terms *t)
{
	cJSON *o = cJSON_CreateObject(), *host, *home;

	cJSON_AddStringToObject(o, "peer", peer);
	host = cJSON_AddObjectToObject(o, "as_host");
	cJSON_AddBoolToObject(host, "accept", t->host_accept);
	cJSON_AddNumberToObject(host, "rate_cents", t->rate_cents);
	cJSON_AddStringToObject(host, "currency", t->currency);
	if (t->host_monthly_cap >= 0)
		cJSON_AddNumberToObject(host, "monthly_cap", t->host_monthly_cap);
	else
		cJSON_AddNullToObject(host, "monthly_cap");
	cJSON_AddNumberToObject(host, "offline_allowance", t->offline_allowance);
	home = cJSON_AddObjectToObject(o, "as_home");
	cJSON_AddBoolToObject(home, "allow_roaming", t->allow_roaming);
	cJSON_AddBoolToObject(home, "ticket_per_unit", t->ticket_per_unit);
	cJSON_AddBoolToObject(o, "default", t->is_default);
	if (!t->is_default) {
		cJSON_AddStringToObject(o, "updated_at", t->updated_at);
		cJSON_AddStringToObject(o, "updated_by", t->updated_by);
	}
	return o;
}

int
terms_list(const struct config *cfg, PGconn *conn, cJSON **ret)
{
	PGresult *res;
	cJSON *a;

	(void)cfg;
	res = db_query(conn, "select " TERMS_COLUMNS " from peer_terms t order by peer",
	    0, NULL);
	if (res == NULL)
		return -EIO;
	a = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(res); i++) {
		struct terms t;

		terms_read(res, i, 0, &t);
		cJSON_AddItemToArray(a, terms_json(PQgetvalue(res, i, TERMS_PEER_COLUMN), &t));
	}
	PQclear(res);
	*ret = a;
	return 0;
}
