/*
 * reconcile.h - month-end reconciliation with one peer: the ledgers both
 * nodes keep of their shared visits, compared visit by visit, with the
 * signed evidence of each visit checked, and the resulting statement stored
 * (open, agreed, disputed) and printed as a table, CSV or JSON.
 *
 * A month is a UTC calendar month of the visits' check-in times, the same
 * for both sides whatever their time zones.  Money is integer cents with a
 * currency; a statement holds one currency.
 */
#ifndef PASSERELLE_RECONCILE_H
#define PASSERELLE_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "http.h"
#include "node.h"

struct worker;

/* True when s is a month "YYYY-MM". */
bool reconcile_month_valid(const char *s);

/* Cents as currency units with two decimals ("-1234.50"); out needs 32. */
void reconcile_format_cents(int64_t cents, char out[32]);

/*
 * A row of the statements table selected with RECONCILE_STATEMENT_COLUMNS
 * first, as JSON: peer, currency, status, receivable_cents, payable_cents,
 * net_cents, held_lines, lines.  The caller adds its other columns.
 */
#define RECONCILE_STATEMENT_COLUMNS "peer, currency, status, receivable_cents," \
    " payable_cents, held_lines, lines"
cJSON *reconcile_statement_json(const PGresult *res, int i);

/*
 * GET /federation/v1/ledger and /federation/v1/balances (settle.c), for the
 * space named by the caller's certificate.
 */
void reconcile_fed_handle(struct http_job *job, struct worker *w);

/* The commands (main.c lists them). */
/*
 * The stored statement with peer for month, as the CSV `reconcile --csv`
 * writes (for the manager's page); -ENOENT when there is none.
 */
int reconcile_statement_csv(struct node *node, PGconn *conn, const char *peer,
    const char *month, char **ret_csv);

int reconcile_cmd_run(int argc, char **argv);
int reconcile_cmd_show(int argc, char **argv);
int reconcile_cmd_list(int argc, char **argv);
int reconcile_cmd_agree(int argc, char **argv);
int reconcile_cmd_dispute(int argc, char **argv);

#endif
