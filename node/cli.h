/*
 * cli.h - what every command of the `passerelle` binary shares: option
 * parsing (-c, --json, --help and the command's own options), the one-line
 * errors, JSON output, and opening the node for one command.
 *
 * Command functions live with their subject (main.c for most, federation.c
 * for the coordinator's, join.c for a new space's) and are listed in the one
 * table of main.c.
 */
#ifndef PASSERELLE_CLI_H
#define PASSERELLE_CLI_H

#include <stdbool.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "config.h"
#include "node.h"

#define CLI_EXIT_USAGE 2
#define CLI_EXIT_REFUSED 3

struct cli_command {
	const char *group;	/* NULL for a one-word command */
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *args;
	const char *help;
	const char *who;
};

/* A command's own option: with a value (value) or a flag (flag). */
struct cli_opt {
	const char *name;
	bool has_arg;
	const char **value;
	bool *flag;
};

extern const char *cli_config_path;	/* -c FILE */
extern bool cli_json;			/* --json */
extern const struct cli_command *cli_current;

/* Prints "passerelle: MESSAGE (see --help)" and exits 2. */
void cli_die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints "passerelle: MESSAGE" and returns 1 (for `return cli_fail(...)`). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_print_json(cJSON *o);
/*
 * Prints s in a column of width characters (UTF-8 aware: "numérique" is
 * nine wide), cut if longer, then one space.
 */
void cli_print_cell(const char *s, int width);

/*
 * Parses the current command's options (NULL-terminated opts, may be NULL)
 * and the common ones; returns the index of the first positional argument.
 */
int cli_parse_options(int argc, char **argv, const struct cli_opt *opts);
/* A whole number in [min, max], or exit 2 naming what. */
int cli_parse_int(const char *s, const char *what, int min, int max);

/* The configuration; exits 1 with every error printed when it has any. */
struct config *cli_load_config(void);

/* A node and a migrated database connection for one command. */
struct cli_session {
	struct config *cfg;
	struct node *node;
	PGconn *conn;
};
void cli_session_open(struct cli_session *s, int flags);
/*
 * The same with exactly these node flags (no migration unless asked), and
 * a connection only if connect: for db migrate and db status, which must
 * not migrate, and for the commands that read only the directory.
 */
void cli_session_open_flags(struct cli_session *s, int flags, bool connect);
void cli_session_close(struct cli_session *s);

#endif
