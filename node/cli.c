/*
 * cli.c - option parsing, errors, output and sessions for the commands.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "log.h"


const char *cli_config_path;
bool cli_json;
const struct cli_command *cli_current;


void
cli_die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("passerelle: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	exit(CLI_EXIT_USAGE);
}

int
cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("passerelle: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

void
cli_print_json(cJSON *o)
{
	char *s = cJSON_Print(o);

	if (s != NULL)
		puts(s);
	free(s);
}


static void cli_command_help(const struct cli_command *cmd, const struct cli_opt *opts);

int
cli_parse_options(int argc, char **argv, const struct cli_opt *opts)
{
	const struct cli_command *cmd = cli_current;
	struct option lo[32];
	size_t n = 0;
	int c, idx;

	for (const struct cli_opt *o = opts; o != NULL && o->name != NULL; o++)
		lo[n++] = (struct option){ o->name, o->has_arg ? required_argument :
		    no_argument, NULL, 1000 + (int)(o - opts) };
	lo[n++] = (struct option){ "json", no_argument, NULL, 'j' };
	lo[n++] = (struct option){ "config", required_argument, NULL, 'c' };
	lo[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[n] = (struct option){ NULL, 0, NULL, 0 };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:h", lo, &idx)) != -1) {
		if (c == 'j') {
			cli_json = true;
		} else if (c == 'c') {
			cli_config_path = optarg;
		} else if (c == 'h') {
			cli_command_help(cmd, opts);
			exit(0);
		} else if (c >= 1000) {
			const struct cli_opt *o = &opts[c - 1000];

			if (o->has_arg)
				*o->value = optarg;
			else
				*o->flag = true;
		} else if (c == '?') {
			if (optopt != 0)
				cli_die_usage("%s %s: unknown option -%c", cmd->group ? cmd->group : "",
				    cmd->name, optopt);
			cli_die_usage("%s%s%s: unknown option or missing value in '%s'",
			    cmd->group ? cmd->group : "", cmd->group ? " " : "", cmd->name,
			    argv[optind - 1]);
		} else {
			cli_die_usage("option -%c needs a value", optopt);
		}
	}
	return optind;
}

static void
cli_command_help(const struct cli_command *cmd, const struct cli_opt *opts)
{
	printf("usage: passerelle [-c FILE] %s%s%s %s\n\n%s\n", cmd->group ? cmd->group : "",
	    cmd->group ? " " : "", cmd->name, cmd->args, cmd->help);
	printf("\noptions:\n");
	for (const struct cli_opt *o = opts; o != NULL && o->name != NULL; o++)
		printf("  --%s%s\n", o->name, o->has_arg ? " VALUE" : "");
	printf("  --json          print JSON for scripts\n"
	    "  -c, --config F  configuration file (default passerelle.conf or $PASSERELLE_CONFIG)\n"
	    "  -h, --help      this help\n");
}

struct config *
cli_load_config(void)
{
	const char *path = config_default_path(cli_config_path);
	struct config *cfg = NULL;
	enum log_level lvl;

	if (config_load(path, stderr, &cfg) < 0) {
		fprintf(stderr, "passerelle: the configuration %s has errors (above)\n", path);
		exit(1);
	}
	if (log_level_parse(cfg->log_level, &lvl) == 0) {
		/* A command's chatter (starting PostgreSQL...) is not its result. */
		if (lvl == LOG_LEVEL_INFO && cli_current != NULL &&
		    strcmp(cli_current->name, "serve") != 0)
			lvl = LOG_LEVEL_WARN;
		log_init(lvl, cfg->space_id);
	}
	return cfg;
}


void
cli_session_open(struct cli_session *s, int flags)
{
	cli_session_open_flags(s, flags | NODE_NEED_DATABASE | NODE_MIGRATE, true);
}

void
cli_session_open_flags(struct cli_session *s, int flags, bool connect)
{
	char err[512];

	memset(s, 0, sizeof(s[0]));
	s->cfg = cli_load_config();
	if (node_open(&s->node, s->cfg, flags, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		exit(1);
	}
	if (connect && node_db_connect(s->node, &s->conn, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		node_close(s->node);
		exit(1);
	}
}

void
cli_session_close(struct cli_session *s)
{
	db_close(s->conn);
	node_close(s->node);
	config_free(s->cfg);
}

int
cli_parse_int(const char *s, const char *what, int min, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		cli_die_usage("%s must be a whole number from %d to %d, not '%s'", what, min, max, s);
	return (int)v;
}


void
cli_print_cell(const char *s, int width)
{
	int n = 0;

	for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	    *p != '\0'; ) {
		size_t len = *p < 0x80 ? 1 : *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4;

		if (n == width)
			break;
		fwrite(p, 1, len, stdout);
		n++;
		/* Continuation bytes are never NUL in valid UTF-8; stop at one. */
		while (len-- > 0 && *p != '\0')
			p++;
	}
	for (; n < width; n++)
		putchar(' ');
	putchar(' ');
}
