/*
 * config.h - the node's configuration, read from an INI file.
 *
 * One table in config.c names every option (section, key, type, default,
 * documentation); parsing, `config check` and docs/operating.md follow it.
 * Relative paths are resolved against the configuration file's folder.
 */
#ifndef PASSERELLE_CONFIG_H
#define PASSERELLE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config {
	char *path;		/* the file read */

	/* [node] */
	char *space_id;
	char *data_dir;
	char *database;		/* libpq URL; empty: the embedded default */
	char *timezone;
	char *log_level;

	/* [embedded] */
	char *pg_bin_dir;
	char *pg_user;

	/* [federation] */
	char *fed_listen;
	char *fed_cert;
	char *fed_key;
	char *fed_ca;
	char *directory_file;
	char *directory_key;	/* coordinator's public key */
	char *directory_urls;	/* where to poll for newer directories */
	int64_t directory_refresh;
	int64_t directory_warn;

	/* [local] */
	char *local_listen;
	char *local_trusted_proxy;	/* an IP address; empty: none */

	/* [pass] */
	char *pass_key;
	char *pass_kid;
	int64_t pass_lifetime;
	int64_t pass_leeway;

	/* [visit] */
	int64_t half_day_max;	/* a visit up to this long counts one unit */
	int64_t peer_timeout_ms;

	/* [terms]: the defaults for a peer without terms of its own */
	bool terms_accept;
	int64_t terms_rate_cents;
	char *terms_currency;
	int64_t terms_monthly_cap;	/* -1: none */
	int64_t terms_offline_allowance;
	bool terms_roaming;
	bool terms_ticket_per_unit;

	/* [limits] */
	int64_t threads;
	int64_t workers;
	int64_t couriers;
	int64_t max_body;
	int64_t max_headers;
	int64_t max_json_depth;
	int64_t request_timeout;
};

/*
 * Reads path.  Every problem is reported on errors (one line each,
 * "FILE:LINE: message"); returns 0 when there were none, -EINVAL otherwise,
 * and *ret is set only on success.
 */
int config_load(const char *path, FILE *errors, struct config **ret);
void config_free(struct config *cfg);

/* Prints the option table (for --help and docs). */
void config_print_reference(FILE *out);

/* The configuration file to use: explicit, $PASSERELLE_CONFIG or default. */
const char *config_default_path(const char *explicit_path);

#endif
