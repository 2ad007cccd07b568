/*
 * main.c - the `passerelle` command: the daemon and every user's commands.
 *
 * Each command parses its own options, opens only what it needs of the node
 * (configuration, keys, directory, database), prints a readable result or
 * JSON with --json, and exits 0 on success or non-zero with one line on
 * stderr saying why.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "directory.h"
#include "federation.h"
#include "join.h"
#include "key.h"
#include "log.h"
#include "manage.h"
#include "member.h"
#include "node.h"
#include "outbox.h"
#include "pass.h"
#include "peer.h"
#include "qr.h"
#include "reconcile.h"
#include "server.h"
#include "settle.h"
#include "staff.h"
#include "tls.h"
#include "util.h"
#include "visit.h"
#include "web.h"



/* ------------------------------------------------------------ operator */

static char **main_argv;

/*
 * GnuTLS comes in with libcurl's LDAP and RTMP support, which the node never
 * uses, yet it initialises itself (and its PKCS#11 modules) when it is
 * loaded, before main(): 1.5 MB resident for nothing.  The daemon asks it
 * not to, with the environment variable GnuTLS reads in its constructor,
 * by executing itself again once; if that fails it simply goes on.
 */
static void
serve_without_gnutls_init(void)
{
	char self[4096];
	ssize_t n;

	if (getenv("GNUTLS_NO_IMPLICIT_INIT") != NULL || main_argv == NULL)
		return;
	/* By its own path, so that the process keeps its name (ps, perf). */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || (size_t)n >= sizeof(self) - 1)
		return;
	self[n] = '\0';
	if (setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 1) == 0)
		execv(self, main_argv);
}

static int
cmd_serve(int argc, char **argv)
{
	struct config *cfg;
	int r;

	if (cli_parse_options(argc, argv, NULL) != argc)
		cli_die_usage("serve takes no arguments");
	serve_without_gnutls_init();
	cfg = cli_load_config();
	r = server_run(cfg);
	config_free(cfg);
	return r;
}

/* The db commands: a connection, and no migration first. */
static int
cmd_db_migrate(int argc, char **argv)
{
	struct cli_session s;
	char err[512];
	int applied = 0, r = 1;

	if (cli_parse_options(argc, argv, NULL) != argc)
		cli_die_usage("db migrate takes no arguments");
	cli_session_open_flags(&s, NODE_NEED_DATABASE, true);
	if (db_migrate(s.conn, &applied, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (cli_json)
		printf("{\"applied\": %d}\n", applied);
	else
		printf("%d migration%s applied\n", applied, applied == 1 ? "" : "s");
	r = 0;
out:
	cli_session_close(&s);
	return r;
}

static int
cmd_db_status(int argc, char **argv)
{
	struct cli_session s;
	int cur = 0, latest = 0, r = 1;

	if (cli_parse_options(argc, argv, NULL) != argc)
		cli_die_usage("db status takes no arguments");
	cli_session_open_flags(&s, NODE_NEED_DATABASE, true);
	if (db_schema_version(s.conn, &cur, &latest) < 0) {
		cli_fail("cannot read the schema version");
		goto out;
	}
	if (cli_json)
		printf("{\"current\": %d, \"latest\": %d, \"embedded\": %s}\n", cur, latest,
		    s.cfg->database[0] == '\0' ? "true" : "false");
	else
		printf("schema version %d of %d (%s)%s\n", cur, latest,
		    s.cfg->database[0] == '\0' ? "embedded PostgreSQL" : "external PostgreSQL",
		    cur < latest ? ": run 'passerelle db migrate'" : cur > latest ?
		    ": newer than this passerelle knows: install the newer passerelle" :
		    ", up to date");
	/* Every other command refuses such a database: so does a script's check. */
	r = cur > latest ? 1 : 0;
out:
	cli_session_close(&s);
	return r;
}

/* The node certificate must name this space, or peers will refuse us. */
static int
tls_file_space_id_ok(const struct config *cfg, char *space, size_t len, char *err,
    size_t errlen)
{
	int r = tls_file_space_id(cfg->fed_cert, space, len);

	if (r < 0) {
		snprintf(err, errlen, "certificate %s names no space (%s)", cfg->fed_cert,
		    strerror(-r));
		return r;
	}
	if (strcmp(space, cfg->space_id) != 0) {
		snprintf(err, errlen, "certificate %s is for space '%s', not '%s'",
		    cfg->fed_cert, space, cfg->space_id);
		return -EINVAL;
	}
	return 0;
}

static int
cmd_config_check(int argc, char **argv)
{
	struct config *cfg;
	struct node *node;
	char err[512];
	int r;

	if (cli_parse_options(argc, argv, NULL) != argc)
		cli_die_usage("config check takes no arguments");
	cfg = cli_load_config();
	/* Beyond the syntax: the keys, certificates and directory must load. */
	r = node_open(&node, cfg, NODE_NEED_DIRECTORY | NODE_NEED_PASS_KEY, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", cfg->path, err);
		config_free(cfg);
		return 1;
	}
	{
		char space[64];

		if (tls_file_space_id_ok(cfg, space, sizeof(space), err, sizeof(err)) < 0 ||
		    node_pass_key_listed(node, cfg->pass_key, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: %s\n", cfg->path, err);
			node_close(node);
			config_free(cfg);
			return 1;
		}
	}
	printf("%s: OK (space %s, directory serial %lld)\n", cfg->path, cfg->space_id,
	    (long long)node_directory_serial(node));
	node_close(node);
	config_free(cfg);
	return 0;
}

static int
cmd_config_reference(int argc, char **argv)
{
	if (cli_parse_options(argc, argv, NULL) != argc)
		cli_die_usage("config reference takes no arguments");
	config_print_reference(stdout);
	return 0;
}

/* ------------------------------------------------------------ front desk */

static int
cmd_visit_checkin(int argc, char **argv)
{
	struct cli_session s;
	struct peer_client *pc = NULL;
	struct visit_decision d;
	int i = cli_parse_options(argc, argv, NULL), r;

	if (argc - i != 1)
		cli_die_usage("visit checkin takes the pass (the token the QR code holds)");
	cli_session_open(&s, NODE_NEED_DIRECTORY | NODE_NEED_PASS_KEY);
	if (peer_client_new(&pc, s.node) < 0) {
		cli_session_close(&s);
		return cli_fail("out of memory");
	}
	r = visit_check_in(s.node, s.conn, pc, argv[i], &d);
	if (cli_json) {
		cJSON *o = visit_decision_json(&d);

		cli_print_json(o);
		cJSON_Delete(o);
	} else if (d.admitted) {
		printf("ADMITTED  %s (%s, %s plan)", d.display_name, d.home, d.plan);
		if (d.tickets_left >= 0)
			printf(", %d ticket%s left", d.tickets_left, d.tickets_left == 1 ? "" : "s");
		printf("\nvisit     %s\n", d.visit_id);
	} else {
		printf("REFUSED   %s%s%s\n", d.display_name, d.display_name[0] ? ": " : "",
		    d.reason);
	}
	if (r == 0 && !d.admitted)
		fprintf(stderr, "passerelle: refused (%s): %s\n", d.reason_code, d.reason);
	else if (r < 0)
		fprintf(stderr, "passerelle: %s\n", d.reason);
	r = r < 0 ? 1 : d.admitted ? 0 : CLI_EXIT_REFUSED;
	visit_decision_clear(&d);
	peer_client_free(pc);
	cli_session_close(&s);
	return r;
}

static int
cmd_visit_checkout(int argc, char **argv)
{
	struct cli_session s;
	struct peer_client *pc = NULL;
	struct visit_checkout out;
	char err[256];
	int i = cli_parse_options(argc, argv, NULL), r;

	if (argc - i != 1)
		cli_die_usage("visit checkout takes a visit id");
	cli_session_open(&s, NODE_NEED_DIRECTORY | NODE_NEED_PASS_KEY);
	if (peer_client_new(&pc, s.node) < 0) {
		cli_session_close(&s);
		return cli_fail("out of memory");
	}
	r = visit_check_out(s.node, s.conn, pc, argv[i], NULL, &out, err, sizeof(err));
	peer_client_free(pc);
	cli_session_close(&s);
	if (r < 0)
		return cli_fail("%s", err);
	if (cli_json)
		printf("{\"visit_id\": \"%s\", \"home\": \"%s\", \"units\": %d,"
		    " \"already_closed\": %s, \"reported_to_home\": %s}\n", out.visit_id,
		    out.home, out.units, out.already ? "true" : "false",
		    out.reported ? "true" : "false");
	else
		printf("%s visit %s: %d half-day unit%s%s\n",
		    out.already ? "already checked out," : "checked out", out.visit_id,
		    out.units, out.units == 1 ? "" : "s", out.reported ?
		    ", reported to the home space" : out.already ? "" :
		    " (the report to the home waits in the outbox)");
	return 0;
}

static int
cmd_visit_list(int argc, char **argv)
{
	bool present = false, disputed = false;
	const struct cli_opt opts[] = {
		{ "present", false, NULL, &present },
		{ "disputed", false, NULL, &disputed },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	cJSON *a, *v;

	if (cli_parse_options(argc, argv, opts) != argc)
		cli_die_usage("visit list takes no arguments");
	cli_session_open(&s, 0);
	a = visit_list(s.conn, disputed);
	cli_session_close(&s);
	if (a == NULL)
		return cli_fail("cannot list the visits");
	if (cli_json) {
		cli_print_json(a);
	} else {
		printf("%-36s  %-12s %-20s %s\n", "VISIT", "HOME", "NAME", "SINCE");
		cJSON_ArrayForEach(v, a) {
			const cJSON *why = cJSON_GetObjectItem(v, "reason");

			printf("%-36s  %-12s %-20s %s%s%s\n",
			    cJSON_GetObjectItem(v, "visit_id")->valuestring,
			    cJSON_GetObjectItem(v, "home")->valuestring,
			    cJSON_GetObjectItem(v, "display_name")->valuestring,
			    cJSON_GetObjectItem(v, "checked_in_at")->valuestring,
			    cJSON_IsTrue(cJSON_GetObjectItem(v, "provisional")) ?
			    "  (provisional)" : "", why != NULL ? "  disputed: " : "");
			if (why != NULL)
				printf("    %s\n", why->valuestring);
		}
		printf("%d %s\n", cJSON_GetArraySize(a), disputed ? "disputed" : "present");
	}
	cJSON_Delete(a);
	return 0;
}

/* ------------------------------------------------------------ outbox */

static int
cmd_outbox_list(int argc, char **argv)
{
	bool all = false;
	const struct cli_opt opts[] = {
		{ "all", false, NULL, &all },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	cJSON *a = NULL, *m;

	if (cli_parse_options(argc, argv, opts) != argc)
		cli_die_usage("outbox list takes no arguments");
	cli_session_open(&s, 0);
	if (outbox_list(s.conn, all, &a) < 0) {
		cli_session_close(&s);
		return cli_fail("cannot read the outbox");
	}
	cli_session_close(&s);
	if (cli_json) {
		cli_print_json(a);
	} else {
		printf("%-8s %-12s %-10s %-36s %-9s %8s  %-20s %s\n", "ID", "PEER", "KIND",
		    "VISIT", "STATE", "ATTEMPTS", "NEXT", "LAST ERROR");
		cJSON_ArrayForEach(m, a)
			printf("%-8d %-12s %-10s %-36s %-9s %8d  %-20s %s\n",
			    cJSON_GetObjectItem(m, "id")->valueint,
			    cJSON_GetObjectItem(m, "peer")->valuestring,
			    cJSON_GetObjectItem(m, "kind")->valuestring,
			    cJSON_GetObjectItem(m, "visit_id")->valuestring,
			    cJSON_GetObjectItem(m, "state")->valuestring,
			    cJSON_GetObjectItem(m, "attempts")->valueint,
			    cJSON_GetObjectItem(m, "next_attempt_at")->valuestring,
			    cJSON_GetObjectItem(m, "last_error")->valuestring);
		printf("%d message%s\n", cJSON_GetArraySize(a),
		    cJSON_GetArraySize(a) == 1 ? "" : "s");
	}
	cJSON_Delete(a);
	return 0;
}

static int
cmd_outbox_retry(int argc, char **argv)
{
	struct cli_session s;
	struct peer_client *pc = NULL;
	int i = cli_parse_options(argc, argv, NULL), n = 0, delivered = 0, total = 0, r;

	if (argc - i > 1)
		cli_die_usage("outbox retry takes at most one message id");
	if (argc - i == 1)
		(void)cli_parse_int(argv[i], "the message id", 1, 2000000000);
	cli_session_open(&s, NODE_NEED_DIRECTORY | NODE_NEED_PASS_KEY);
	r = outbox_retry(s.conn, argc - i == 1 ? argv[i] : NULL, &n);
	if (r == -ENOENT || r == -EALREADY) {
		cli_session_close(&s);
		return cli_fail(r == -ENOENT ? "no message %s in the outbox" :
		    "message %s was delivered already", argv[i]);
	}
	if (r < 0 || peer_client_new(&pc, s.node) < 0) {
		cli_session_close(&s);
		return cli_fail("cannot reach the outbox");
	}
	/*
	 * Pushes them now, from here, for ten seconds at most; a running node's
	 * courier sends the rest (they are all due now).
	 */
	{
		int64_t until = util_monotonic_us() + 10 * 1000000;

		while (util_monotonic_us() < until &&
		    outbox_deliver_due(s.node, s.conn, pc, 32, &delivered) == 0 &&
		    delivered > 0)
			total += delivered;
	}
	peer_client_free(pc);
	cli_session_close(&s);
	if (cli_json)
		printf("{\"retried\": %d, \"delivered\": %d}\n", n, total);
	else
		printf("%d message%s due now, %d delivered from here\n", n,
		    n == 1 ? "" : "s", total);
	return 0;
}

/* ------------------------------------------------------------ coordinator */

static int
cmd_key_generate(int argc, char **argv)
{
	const char *pub = NULL;
	const struct cli_opt opts[] = {
		{ "public", true, &pub, NULL },
		{ NULL, false, NULL, NULL },
	};
	uint8_t pk[KEY_PUBLIC_LEN];
	int i = cli_parse_options(argc, argv, opts), r;

	if (argc - i != 1)
		cli_die_usage("key generate takes the private key file to write");
	if (access(argv[i], F_OK) == 0)
		return cli_fail("%s exists already: not overwriting a key", argv[i]);
	r = key_generate_pair(argv[i], pub, pk);
	if (r == -EINVAL && pub != NULL)
		return cli_fail("--public %s names the private key file %s itself", pub, argv[i]);
	if (r == -EEXIST && pub != NULL && access(pub, F_OK) == 0)
		return cli_fail("%s exists already: not overwriting it", pub);
	if (r < 0)
		return cli_fail("cannot make %s%s%s: %s", argv[i], pub != NULL ? " and " : "",
		    pub != NULL ? pub : "", strerror(-r));
	return 0;
}

static int
cmd_directory_sign(int argc, char **argv)
{
	const char *key = NULL, *kid = "coordinator-1", *out = NULL;
	const struct cli_opt opts[] = {
		{ "key", true, &key, NULL },
		{ "kid", true, &kid, NULL },
		{ "output", true, &out, NULL },
		{ NULL, false, NULL, NULL },
	};
	uint8_t sk[KEY_SECRET_LEN], pk[KEY_PUBLIC_LEN];
	char *desc = NULL, *token = NULL, *dir, *slash, err[512];
	int i = cli_parse_options(argc, argv, opts), r;

	if (argc - i != 1 || key == NULL || out == NULL)
		cli_die_usage("directory sign takes DESCRIPTION --key KEY --output FILE");
	r = key_load_private(key, sk, pk);
	if (r < 0)
		return cli_fail("cannot read the coordinator key %s: %s", key, strerror(-r));
	r = util_read_file(argv[i], 4 * 1024 * 1024, &desc, NULL);
	if (r < 0)
		return cli_fail("cannot read %s: %s", argv[i], strerror(-r));
	dir = strdup(argv[i]);
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		strcpy(dir, ".");
	r = directory_sign_description(desc, dir, sk, kid, util_now(), &token, err,
	    sizeof(err));
	sodium_memzero(sk, sizeof(sk));
	free(desc);
	free(dir);
	if (r < 0)
		return cli_fail("%s: %s", argv[i], err);
	r = util_write_file(out, token, strlen(token), 0644);
	free(token);
	if (r < 0)
		return cli_fail("cannot write %s: %s", out, strerror(-r));
	return 0;
}

static int
cmd_directory_show(int argc, char **argv)
{
	struct cli_session s;
	struct node_directory *nd;
	char exp[32];

	if (cli_parse_options(argc, argv, NULL) != argc)
		cli_die_usage("directory show takes no arguments");
	cli_session_open_flags(&s, NODE_NEED_DIRECTORY | NODE_NEED_DATABASE | NODE_MIGRATE,
	    false);
	nd = node_directory_current(s.node);
	util_format_time(directory_expires_at(nd->dir), exp);
	if (cli_json) {
		cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "spaces");

		cJSON_AddStringToObject(o, "federation", directory_federation(nd->dir));
		cJSON_AddNumberToObject(o, "serial", (double)directory_serial(nd->dir));
		cJSON_AddStringToObject(o, "expires_at", exp);
		for (size_t k = 0; k < directory_count(nd->dir); k++)
			cJSON_AddItemToArray(a, cJSON_Duplicate(
			    directory_space_at(nd->dir, k)->json, 1));
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("federation %s, serial %lld, expires %s\n\n",
		    directory_federation(nd->dir), (long long)directory_serial(nd->dir), exp);
		printf("%-14s %-28s %-18s %5s  %s\n", "ID", "NAME", "CITY", "SEATS",
		    "FEDERATION URL");
		for (size_t k = 0; k < directory_count(nd->dir); k++) {
			const struct directory_space *sp = directory_space_at(nd->dir, k);
			const cJSON *cap = cJSON_GetObjectItemCaseSensitive(sp->json,
			    "capacity");
			char seats[16] = "-";

			if (cJSON_IsNumber(cap))
				snprintf(seats, sizeof(seats), "%d", cap->valueint);
			cli_print_cell(sp->id, 14);
			cli_print_cell(sp->name, 28);
			cli_print_cell(sp->city, 18);
			printf("%5s  %s\n", seats, sp->url);
		}
	}
	node_directory_put(s.node, nd);
	cli_session_close(&s);
	return 0;
}

static int
cmd_directory_export(int argc, char **argv)
{
	bool geojson = false;
	const char *out = NULL;
	const struct cli_opt opts[] = {
		{ "geojson", false, NULL, &geojson },
		{ "output", true, &out, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	struct node_directory *nd;
	char *text;
	cJSON *fc;
	int r = 0;

	if (cli_parse_options(argc, argv, opts) != argc)
		cli_die_usage("directory export takes no arguments");
	if (!geojson)
		cli_die_usage("directory export needs a format: --geojson");
	cli_session_open_flags(&s, NODE_NEED_DIRECTORY | NODE_NEED_DATABASE | NODE_MIGRATE,
	    false);
	nd = node_directory_current(s.node);
	fc = directory_geojson(nd->dir);
	node_directory_put(s.node, nd);
	text = cJSON_Print(fc);
	cJSON_Delete(fc);
	if (out != NULL) {
		if (util_write_file(out, text, strlen(text), 0644) < 0)
			r = cli_fail("cannot write %s", out);
	} else {
		puts(text);
	}
	free(text);
	cli_session_close(&s);
	return r;
}

/* ------------------------------------------------------------ dispatch */

static const struct cli_command commands[] = {
	{ NULL, "serve", cmd_serve, "", "Run the node: federation face, local face, outbox.",
	    "operator" },
	{ "db", "migrate", cmd_db_migrate, "", "Apply pending schema migrations.", "operator" },
	{ "db", "status", cmd_db_status, "", "Show the schema version.", "operator" },
	{ "config", "check", cmd_config_check, "",
	    "Check the configuration, keys, certificate and directory.", "operator" },
	{ "config", "reference", cmd_config_reference, "",
	    "Print every option with its default.", "operator" },
	{ "outbox", "list", cmd_outbox_list, "[--all]",
	    "What waits for peers: kind, attempts, last error.", "operator" },
	{ "outbox", "retry", cmd_outbox_retry, "[ID]",
	    "Deliver waiting messages now (a failed one only when named).", "operator" },
	{ "member", "add", manage_member_add,
	    "NAME [--plan tickets|monthly] [--tickets N] [--until YYYY-MM-DD]"
	    " [--email E] [--display-name D]", "Add a member.", "manager" },
	{ "member", "list", manage_member_list, "", "List the members.", "manager" },
	{ "member", "show", manage_member_show, "MEMBER", "Show one member.", "manager" },
	{ "member", "topup", manage_member_topup, "MEMBER N", "Add N half-day tickets.",
	    "manager" },
	{ "member", "plan", manage_member_plan,
	    "MEMBER --tickets | --monthly [--from DATE] --until DATE [--cap N]",
	    "Change a member's plan.", "manager" },
	{ "member", "suspend", manage_member_suspend, "MEMBER",
	    "Suspend a membership (refused everywhere).", "manager" },
	{ "member", "resume", manage_member_resume, "MEMBER", "Lift a suspension.",
	    "manager" },
	{ "member", "history", manage_member_history, "MEMBER",
	    "Plan changes and ticket movements, with who and when.", "manager" },
	{ "pass", "issue", manage_pass_issue, "MEMBER [--svg FILE] [--qr]",
	    "Sign a pass for a member; print the token (and its QR code).", "manager" },
	{ "pass", "revoke", manage_pass_revoke, "JTI | --member MEMBER",
	    "Revoke a pass (a lost phone), or every pass of a member.", "manager" },
	{ "pass", "new-key", join_cmd_new_pass_key, "[--kid KID] [--output FILE] [--key FILE]",
	    "Make a new pass-signing key and its request for the coordinator.", "manager" },
	{ "peer", "terms", manage_peer_terms,
	    "[PEER [--accept yes|no] [--rate CENTS] [--currency EUR] [--cap N|none]"
	    " [--offline N] [--roaming yes|no] [--ticket-per-unit yes|no]]",
	    "Show or set the terms with peer spaces.", "manager" },
	{ "house", "show", manage_house, "", "The house rules: hours, closures, seats.",
	    "manager" },
	{ "house", "hours", manage_house, "DAY HH:MM-HH:MM|closed",
	    "Set a weekday's opening hours (mon..sun).", "manager" },
	{ "house", "close", manage_house, "DATE [--reason TEXT]",
	    "Close the space on a date.", "manager" },
	{ "house", "reopen", manage_house, "DATE", "Cancel a closure.", "manager" },
	{ "house", "capacity", manage_house, "N|none", "Set the number of seats.",
	    "manager" },
	{ "staff", "add", manage_staff_add, "NAME [--role concierge|manager|admin]",
	    "Create a staff account; print its API token once.", "manager" },
	{ "staff", "list", manage_staff_list, "",
	    "List the staff accounts (never their token or password).",
	    "manager" },
	{ "staff", "remove", manage_staff_remove, "NAME",
	    "Remove an account (someone left): its token and sessions end.",
	    "manager" },
	{ "staff", "token", manage_staff_token, "NAME",
	    "Replace an account's API token (a leaked one); print it once.",
	    "manager" },
	{ "staff", "passwd", web_cmd_staff_passwd, "NAME [--password-file FILE]",
	    "Set a staff account's password for the web page (read from stdin).",
	    "manager" },
	{ "visit", "checkin", cmd_visit_checkin, "TOKEN",
	    "Check a pass in (exit 3 when refused).", "front desk" },
	{ "visit", "checkout", cmd_visit_checkout, "VISIT", "Check a visit out.",
	    "front desk" },
	{ "visit", "list", cmd_visit_list, "[--present | --disputed]",
	    "Who is here now; or the visits a home disputed.", "front desk" },
	{ NULL, "init", join_cmd_init,
	    "DIR --id ID --name NAME --url https://HOST:PORT --dns NAME [--ip IP]..."
	    " [--city C] [--address A] [--lat N --lon N] [--hours JSON] [--capacity N]"
	    " [--services a,b] [--contact C] [--listen HOST:PORT] [--local-listen HOST:PORT]"
	    " [--directory-url URL]",
	    "A new space: keys, certificate request, join request.", "new space" },
	{ NULL, "join", join_cmd_join, "BUNDLE [--key NEW_NODE_KEY]",
	    "Install the coordinator's join bundle (certificate, directory).", "new space" },
	{ "federation", "init", federation_cmd_init,
	    "DIR --name NAME [--ca-name NAME] [--valid-days N]",
	    "Create a federation: CA, directory-signing key, first directory.",
	    "coordinator" },
	{ "federation", "admit", federation_cmd_admit,
	    "REQUEST --federation DIR [--bundle FILE]",
	    "Admit a space: certificate, directory entry, join bundle.", "coordinator" },
	{ "federation", "remove", federation_cmd_remove,
	    "SPACE --federation DIR [--reason REASON]",
	    "Remove a space: revoke its certificate, drop it from the directory.",
	    "coordinator" },
	{ "federation", "add-key", federation_cmd_add_key,
	    "KEY_REQUEST --federation DIR [--retire-old-after 30d]",
	    "Add a space's new pass-signing key, retiring the old ones later.",
	    "coordinator" },
	{ "federation", "renew", federation_cmd_renew,
	    "SPACE CSR --federation DIR [--overlap 7d] [--bundle FILE]",
	    "Renew a space's node certificate.", "coordinator" },
	{ "federation", "roll-key", federation_cmd_roll_key,
	    "--federation DIR [--kid KID] | --finish --federation DIR",
	    "Roll the directory-signing key over (announce, then switch).", "coordinator" },
	{ "federation", "sign", federation_cmd_sign, "--federation DIR [--valid-days N]",
	    "Sign and publish the directory again (next serial).", "coordinator" },
	/* Reconciliation and settlement (reconcile.c). */
	{ NULL, "reconcile", reconcile_cmd_run,
	    "--peer SPACE --month YYYY-MM [--all] [--csv] [--output FILE]"
	    "  (and: reconcile show|list|agree|dispute)",
	    "Compare a month's shared visits with a peer's ledger; the statement.",
	    "manager" },
	{ "reconcile", "show", reconcile_cmd_show,
	    "--peer SPACE --month YYYY-MM [--all] [--csv] [--output FILE]",
	    "Print a stored statement again (no peer asked).", "manager" },
	{ "reconcile", "list", reconcile_cmd_list, "--month YYYY-MM",
	    "The month's statements with every peer, and their status.", "manager" },
	{ "reconcile", "agree", reconcile_cmd_agree,
	    "--peer SPACE --month YYYY-MM [--currency EUR] [--note TEXT]",
	    "Agree a statement: it counts in the settlement.", "manager" },
	{ "reconcile", "dispute", reconcile_cmd_dispute,
	    "--peer SPACE --month YYYY-MM [VISIT] --note TEXT | VISIT --withdraw",
	    "Dispute a line (held back) or a whole statement.", "manager" },
	{ NULL, "settle", settle_cmd_run, "--month YYYY-MM",
	    "Net the federation's agreed statements into a few transfers.", "manager" },
	{ "key", "generate", cmd_key_generate, "FILE [--public FILE]",
	    "Make an Ed25519 key (pass signing, directory signing).", "coordinator" },
	{ "directory", "sign", cmd_directory_sign,
	    "DESCRIPTION --key KEY [--kid KID] --output FILE",
	    "Sign a federation directory from its description.", "coordinator" },
	{ "directory", "show", cmd_directory_show, "", "List the directory's spaces.",
	    "coordinator" },
	{ "directory", "export", cmd_directory_export, "--geojson [--output FILE]",
	    "The map of spaces as GeoJSON (RFC 7946).", "coordinator" },
	{ NULL, NULL, NULL, NULL, NULL, NULL },
};

static void
usage(FILE *out)
{
	static const char *const roles[] = { "operator", "manager", "front desk",
		"new space", "coordinator" };

	fprintf(out, "usage: passerelle [-c FILE] COMMAND [ARGS] [--json] [--help]\n\n"
	    "Passerelle: a node of a federation of coworking spaces.\n");
	/* Grouped by who uses them, whatever their order in the table. */
	for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
		fprintf(out, "\n%s:\n", roles[r]);
		for (const struct cli_command *c = commands; c->name != NULL; c++) {
			char name[64];

			if (strcmp(c->who, roles[r]) != 0)
				continue;
			snprintf(name, sizeof(name), "%s%s%s", c->group ? c->group : "",
			    c->group ? " " : "", c->name);
			fprintf(out, "  %-20s %s\n", name, c->help);
		}
	}
	fprintf(out, "\nThe configuration is -c FILE, $PASSERELLE_CONFIG or ./passerelle.conf.\n"
	    "'passerelle COMMAND --help' tells more; docs/operating.md tells all.\n");
}

int
main(int argc, char **argv)
{
	int i = 1;

	main_argv = argv;
	log_init(LOG_LEVEL_INFO, "passerelle");
	/* -c may come before the command, as in `passerelle -c FILE serve`. */
	while (i < argc && argv[i][0] == '-') {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			cli_config_path = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			cli_config_path = argv[i] + 9;
			i++;
		} else if (strcmp(argv[i], "--json") == 0) {
			cli_json = true;
			i++;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			puts("passerelle 0.1.0");
			return 0;
		} else {
			cli_die_usage("unknown option '%s'", argv[i]);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	/* Two words first: "reconcile show" is not the one-word "reconcile". */
	for (const struct cli_command *c = commands; c->name != NULL; c++)
		if (c->group != NULL && strcmp(argv[i], c->group) == 0 && i + 1 < argc &&
		    strcmp(argv[i + 1], c->name) == 0) {
			cli_current = c;
			return c->fn(argc - i - 1, argv + i + 1);
		}
	for (const struct cli_command *c = commands; c->name != NULL; c++)
		if (c->group == NULL && strcmp(argv[i], c->name) == 0) {
			cli_current = c;
			return c->fn(argc - i, argv + i);
		}
	/* A group alone, or with --help, lists its commands. */
	for (const struct cli_command *c = commands; c->name != NULL; c++)
		if (c->group != NULL && strcmp(argv[i], c->group) == 0) {
			bool help = i + 1 < argc && (strcmp(argv[i + 1], "--help") == 0 ||
			    strcmp(argv[i + 1], "-h") == 0);

			fprintf(help ? stdout : stderr, "%s%s commands:\n",
			    help ? "" : "passerelle: ", argv[i]);
			for (const struct cli_command *d = commands; d->name != NULL; d++)
				if (d->group != NULL && strcmp(d->group, argv[i]) == 0)
					fprintf(help ? stdout : stderr, "  %s %s %s\n", d->group,
					    d->name, d->args);
			return help ? 0 : CLI_EXIT_USAGE;
		}
	cli_die_usage("unknown command '%s'", argv[i]);
}
