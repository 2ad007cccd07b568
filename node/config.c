/*
 * config.c - the configuration file: one table drives parsing, defaults,
 * validation and the reference printed by `passerelle config reference`.
 *
 * The file is INI, read with Debian's libinih (small, well kept, no
 * allocation surprises).  libinih does not pass line numbers to handlers in
 * Debian's build, so the reader callback counts lines itself; every error is
 * reported as FILE:LINE and parsing goes on, so that `config check` shows all
 * of them at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "log.h"
#include "util.h"

enum config_type {
	CONFIG_STRING,
	CONFIG_PATH,		/* resolved against the file's folder */
	CONFIG_INT,
	CONFIG_SECONDS,		/* a duration, stored in seconds */
	CONFIG_MILLISECONDS,	/* a duration, stored in milliseconds */
	CONFIG_BOOL,		/* yes/no, true/false, on/off, 1/0 */
};

struct config_option {
	const char *section;
	const char *key;
	enum config_type type;
	size_t offset;
	const char *def;	/* NULL: required */
	int64_t min, max;	/* for numbers */
	const char *doc;
};

#define STR(s, k, field, def, doc) \
	{ s, k, CONFIG_STRING, offsetof(struct config, field), def, 0, 0, doc }
#define PATH(s, k, field, def, doc) \
	{ s, k, CONFIG_PATH, offsetof(struct config, field), def, 0, 0, doc }
#define BOOL(s, k, field, def, doc) \
	{ s, k, CONFIG_BOOL, offsetof(struct config, field), def, 0, 1, doc }
#define NUM(s, k, type, field, def, min, max, doc) \
	{ s, k, type, offsetof(struct config, field), def, min, max, doc }

static const struct config_option config_options[] = {
	STR("node", "space_id", space_id, NULL,
	    "This space's id in the federation directory (a-z, 0-9, -)."),
	PATH("node", "data_dir", data_dir, "data",
	    "Folder for the node's state: the embedded PostgreSQL lives in DATA_DIR/pg."),
	STR("node", "database", database, "",
	    "libpq URL of the node's database; empty runs the embedded default."),
	STR("node", "timezone", timezone, "Europe/Paris",
	    "The space's time zone, for hours and for display."),
	STR("node", "log_level", log_level, "info", "error, warn, info or debug."),

	PATH("embedded", "bin_dir", pg_bin_dir, "",
	    "PostgreSQL's programs (initdb, pg_ctl); empty finds the newest installed."),
	STR("embedded", "user", pg_user, "postgres",
	    "Unprivileged user that runs the embedded PostgreSQL when the node runs as root."),

	STR("federation", "listen", fed_listen, "127.0.0.1:7443",
	    "Address and port of the federation face (mutual TLS)."),
	PATH("federation", "cert", fed_cert, "node.crt",
	    "This node's certificate, issued by the federation CA."),
	PATH("federation", "key", fed_key, "node.key", "This node's private key."),
	PATH("federation", "ca", fed_ca, "ca.crt", "The federation CA certificate."),
	PATH("federation", "directory", directory_file, "directory.jws",
	    "The signed federation directory."),
	PATH("federation", "directory_key", directory_key, "coordinator.pub",
	    "The coordinator's public key, which signs the directory."),
	STR("federation", "directory_urls", directory_urls, "",
	    "Where to poll for newer directories (https://, http:// or file://; several"
	    " separated by spaces). Peers' answers also announce newer serials."),
	NUM("federation", "directory_refresh", CONFIG_SECONDS, directory_refresh, "5m",
	    5, 86400, "How often the directory URLs are polled."),
	NUM("federation", "directory_warn", CONFIG_SECONDS, directory_warn, "7d", 0,
	    365LL * 86400, "Warn (log and metric) this long before the directory expires."),

	STR("local", "listen", local_listen, "127.0.0.1:7080",
	    "Address and port of the local face (front desk API, health)."),
	STR("local", "trusted_proxy", local_trusted_proxy, "",
	    "IP address of the TLS reverse proxy in front of the local face; its"
	    " X-Forwarded-For and X-Forwarded-Proto are believed, nobody else's."
	    " Empty: none."),

	PATH("pass", "key", pass_key, "pass.key", "The pass-signing private key (Ed25519)."),
	STR("pass", "kid", pass_kid, NULL,
	    "The key id of the pass-signing key, as listed in the directory."),
	NUM("pass", "lifetime", CONFIG_SECONDS, pass_lifetime, "30d", 60, 3660LL * 86400,
	    "How long a newly issued pass is valid."),
	NUM("pass", "leeway", CONFIG_SECONDS, pass_leeway, "60s", 0, 3600,
	    "Clock allowance when checking a pass's nbf and exp."),

	NUM("visit", "half_day_max", CONFIG_SECONDS, half_day_max, "5h", 60, 86400,
	    "A visit up to this long counts one half-day unit; longer counts two."),
	NUM("visit", "peer_timeout", CONFIG_MILLISECONDS, peer_timeout_ms, "3s", 100, 60000,
	    "How long the front desk waits for a home node."),

	BOOL("terms", "accept_visitors", terms_accept, "yes",
	    "Default for a peer without terms: do we accept its members?"),
	NUM("terms", "rate", CONFIG_INT, terms_rate_cents, "0", 0, 10000000,
	    "Default rate we charge a peer per half-day unit, in cents."),
	STR("terms", "currency", terms_currency, "EUR",
	    "Currency of the rates (ISO 4217, three capitals)."),
	NUM("terms", "visitor_monthly_cap", CONFIG_INT, terms_monthly_cap, "-1", -1, 1000,
	    "Default cap of half-day units per visitor and month (-1: none)."),
	NUM("terms", "offline_allowance", CONFIG_INT, terms_offline_allowance, "0", 0,
	    100000, "Default number of visits admitted while a peer cannot be reached."),
	BOOL("terms", "allow_roaming", terms_roaming, "yes",
	    "Default: may our members roam to a peer?"),
	BOOL("terms", "ticket_per_unit", terms_ticket_per_unit, "no",
	    "Default: do our ticket-book members spend one ticket per unit (else per visit)?"),

	NUM("limits", "threads", CONFIG_INT, threads, "2", 1, 64,
	    "Event loop threads of the federation face."),
	NUM("limits", "workers", CONFIG_INT, workers, "8", 1, 256,
	    "Worker threads of each face (each with its own database connection)."),
	NUM("limits", "couriers", CONFIG_INT, couriers, "2", 1, 16,
	    "Threads delivering the outbox (each with its own database connection)."),
	NUM("limits", "max_body", CONFIG_INT, max_body, "65536", 1024, 16 * 1024 * 1024,
	    "Largest request body accepted, in bytes (larger: 413)."),
	NUM("limits", "max_headers", CONFIG_INT, max_headers, "8192", 1024, 1024 * 1024,
	    "Largest request header block accepted, in bytes."),
	NUM("limits", "max_json_depth", CONFIG_INT, max_json_depth, "16", 2, 256,
	    "Deepest JSON nesting accepted in a request."),
	NUM("limits", "request_timeout", CONFIG_SECONDS, request_timeout, "10s", 1, 600,
	    "Time a client has to send its request (and to read the answer)."),
};

struct config_parse {
	struct config *cfg;
	const char *path;
	const char *dir;
	FILE *input;
	FILE *errors;
	int line;
	int nerrors;
	bool seen[UTIL_ARRAY_SIZE(config_options)];
};

static char **
config_string_slot(struct config *cfg, const struct config_option *o)
{
	return (char **)(void *)((char *)cfg + o->offset);
}

static int64_t *
config_int_slot(struct config *cfg, const struct config_option *o)
{
	return (int64_t *)(void *)((char *)cfg + o->offset);
}

static void
config_error(struct config_parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
config_error(struct config_parse *p, int line, const char *fmt, ...)
{
	va_list ap;

	p->nerrors++;
	if (p->errors == NULL)
		return;
	if (line > 0)
		fprintf(p->errors, "%s:%d: ", p->path, line);
	else
		fprintf(p->errors, "%s: ", p->path);
	va_start(ap, fmt);
	vfprintf(p->errors, fmt, ap);
	va_end(ap);
	fputc('\n', p->errors);
}

/* Sets one option from its text; returns 0 or a message. */
static const char *
config_set(struct config_parse *p, const struct config_option *o, const char *value)
{
	struct config *cfg = p->cfg;

	switch (o->type) {
	case CONFIG_STRING:
	case CONFIG_PATH: {
		char **slot = config_string_slot(cfg, o);
		char *v;

		if (o->type == CONFIG_PATH && value[0] != '\0')
			v = util_path_join(p->dir, value);
		else
			v = strdup(value);
		if (v == NULL)
			return "out of memory";
		free(*slot);
		*slot = v;
		return NULL;
	}
	case CONFIG_BOOL: {
		bool *slot = (bool *)(void *)((char *)cfg + o->offset);

		if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0 ||
		    strcasecmp(value, "on") == 0 || strcmp(value, "1") == 0)
			*slot = true;
		else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
		    strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0)
			*slot = false;
		else
			return "expected yes or no";
		return NULL;
	}
	case CONFIG_INT:
	case CONFIG_SECONDS:
	case CONFIG_MILLISECONDS: {
		int64_t v;
		char *end;

		if (o->type == CONFIG_INT) {
			long long ll;

			errno = 0;
			ll = strtoll(value, &end, 10);
			if (errno != 0 || end == value || *end != '\0')
				return "expected a whole number";
			v = ll;
		} else if (o->type == CONFIG_MILLISECONDS && value[0] != '\0' &&
		    strlen(value) > 2 && strcmp(value + strlen(value) - 2, "ms") == 0) {
			long long ll;

			errno = 0;
			ll = strtoll(value, &end, 10);
			if (errno != 0 || end == value || strcmp(end, "ms") != 0 || ll < 0)
				return "expected a duration such as 500ms, 3s or 5m";
			v = ll;
		} else {
			if (util_parse_duration(value, &v) < 0)
				return "expected a duration such as 90s, 15m, 5h or 30d";
			/* Out of range anyway, but checked before it can overflow. */
			if (o->type == CONFIG_MILLISECONDS && v > INT64_MAX / 1000)
				return "value out of range";
			if (o->type == CONFIG_MILLISECONDS)
				v *= 1000;
		}
		if (v < o->min || v > o->max)
			return "value out of range";
		*config_int_slot(cfg, o) = v;
		return NULL;
	}
	}
	return "unknown option type";
}

static int
config_handler(void *user, const char *section, const char *key, const char *value)
{
	struct config_parse *p = user;
	bool known_section = false;

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(config_options); i++) {
		const struct config_option *o = &config_options[i];
		const char *msg;

		if (strcmp(o->section, section) != 0)
			continue;
		known_section = true;
		if (strcmp(o->key, key) != 0)
			continue;
		if (p->seen[i])
			config_error(p, p->line, "[%s] %s is set twice", section, key);
		p->seen[i] = true;
		msg = config_set(p, o, value);
		if (msg != NULL)
			config_error(p, p->line, "[%s] %s = %s: %s", section, key,
			    value, msg);
		return 1;
	}
	if (!known_section)
		config_error(p, p->line, "unknown section [%s]", section);
	else
		config_error(p, p->line, "unknown option '%s' in [%s]", key, section);
	/* Keep going: every error is reported, not only the first. */
	return 1;
}

/* libinih's line reader, counting lines for the handler's messages. */
static char *
config_reader(char *str, int num, void *stream)
{
	struct config_parse *p = stream;
	char *s = fgets(str, num, p->input);

	if (s != NULL)
		p->line++;
	return s;
}

int
config_load(const char *path, FILE *errors, struct config **ret)
{
	struct config_parse p;
	struct config *cfg;
	char *dir = NULL, *slash;
	int r;

	memset(&p, 0, sizeof(p));
	p.path = path;
	p.errors = errors;
	cfg = calloc(1, sizeof(*cfg));
	dir = strdup(path);
	if (cfg == NULL || dir == NULL) {
		r = -ENOMEM;
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		strcpy(dir, ".");
	p.cfg = cfg;
	p.dir = dir;
	cfg->path = strdup(path);

	p.input = fopen(path, "r");
	if (p.input == NULL) {
		r = -errno;
		if (errors != NULL)
			fprintf(errors, "%s: cannot read: %s\n", path, strerror(errno));
		goto out;
	}
	r = ini_parse_stream(config_reader, &p, config_handler, &p);
	fclose(p.input);
	if (r > 0)
		config_error(&p, r, "syntax error (expected [section] or key = value)");
	else if (r < 0)
		config_error(&p, 0, "cannot parse (out of memory)");

	/* Defaults for what the file did not set; required options reported. */
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(config_options); i++) {
		const struct config_option *o = &config_options[i];
		const char *msg;

		if (p.seen[i])
			continue;
		if (o->def == NULL) {
			config_error(&p, 0, "[%s] %s is required", o->section, o->key);
			continue;
		}
		msg = config_set(&p, o, o->def);
		if (msg != NULL)
			config_error(&p, 0, "default of [%s] %s: %s", o->section,
			    o->key, msg);
	}
	if (cfg->space_id != NULL) {
		size_t n = strlen(cfg->space_id);
		bool ok = n > 0 && n <= 63;

		for (size_t i = 0; i < n && ok; i++) {
			char c = cfg->space_id[i];
			ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			    (c == '-' && i > 0);
		}
		if (!ok)
			config_error(&p, 0, "[node] space_id '%s': use 1 to 63 of a-z, 0-9 and -",
			    cfg->space_id);
	}
	{
		/* What serve would refuse, said by config check too. */
		const char *const listens[2][2] = { { "federation", cfg->fed_listen },
			{ "local", cfg->local_listen } };

		for (int i = 0; i < 2; i++) {
			char host[256], port[16];

			if (listens[i][1] != NULL && util_parse_listen(listens[i][1], host,
			    sizeof(host), port, sizeof(port)) < 0)
				config_error(&p, 0, "[%s] listen '%s': use HOST:PORT"
				    " (or [IPV6]:PORT), with a port of 0 to 65535",
				    listens[i][0], listens[i][1]);
		}
	}
	if (cfg->local_trusted_proxy != NULL && cfg->local_trusted_proxy[0] != '\0') {
		unsigned char addr[sizeof(struct in6_addr)];

		if (inet_pton(AF_INET, cfg->local_trusted_proxy, addr) != 1 &&
		    inet_pton(AF_INET6, cfg->local_trusted_proxy, addr) != 1)
			config_error(&p, 0, "[local] trusted_proxy '%s': use one IP address"
			    " (such as 127.0.0.1), without a port", cfg->local_trusted_proxy);
	}
	if (cfg->terms_currency != NULL && (strlen(cfg->terms_currency) != 3 ||
	    strspn(cfg->terms_currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3))
		config_error(&p, 0, "[terms] currency '%s': use an ISO 4217 code such as EUR",
		    cfg->terms_currency);
	if (cfg->log_level != NULL) {
		enum log_level lvl;

		if (log_level_parse(cfg->log_level, &lvl) < 0)
			config_error(&p, 0, "[node] log_level '%s': use error, warn, info or debug",
			    cfg->log_level);
	}
	r = p.nerrors > 0 ? -EINVAL : 0;
	if (r == 0) {
		*ret = cfg;
		cfg = NULL;
	}
out:
	config_free(cfg);
	free(dir);
	return r;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(config_options); i++) {
		const struct config_option *o = &config_options[i];

		if (o->type == CONFIG_STRING || o->type == CONFIG_PATH)
			free(*config_string_slot(cfg, o));
	}
	free(cfg->path);
	free(cfg);
}

void
config_print_reference(FILE *out)
{
	const char *section = "";

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(config_options); i++) {
		const struct config_option *o = &config_options[i];

		if (strcmp(section, o->section) != 0) {
			fprintf(out, "%s[%s]\n", i > 0 ? "\n" : "", o->section);
			section = o->section;
		}
		fprintf(out, "# %s\n", o->doc);
		if (o->def == NULL)
			fprintf(out, "%s = (required)\n", o->key);
		else
			fprintf(out, "%s = %s\n", o->key, o->def);
	}
}

const char *
config_default_path(const char *explicit_path)
{
	const char *env;

	if (explicit_path != NULL)
		return explicit_path;
	env = getenv("PASSERELLE_CONFIG");
	if (env != NULL && env[0] != '\0')
		return env;
	return "passerelle.conf";
}
