/*
 * manage.c - the space manager's commands: members and their plans,
 * passes, terms with each peer, the house rules, staff accounts.
 *
 * Each command opens a session (cli.h), calls the module that owns the
 * subject (member.c, terms.c, house.c, staff.c) and prints the result, or
 * JSON with --json.  Every change is audited with the actor "cli".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "directory.h"
#include "house.h"
#include "manage.h"
#include "member.h"
#include "qr.h"
#include "staff.h"
#include "terms.h"
#include "util.h"


static void
manage_print_member(const cJSON *m)
{
	const cJSON *v;

	printf("member %d  %s\n", cJSON_GetObjectItem(m, "id")->valueint,
	    cJSON_GetObjectItem(m, "full_name")->valuestring);
	printf("  display name  %s\n", cJSON_GetObjectItem(m, "display_name")->valuestring);
	printf("  pseudonym     %s\n", cJSON_GetObjectItem(m, "pseudonym")->valuestring);
	if ((v = cJSON_GetObjectItem(m, "email")) != NULL && v->valuestring[0] != '\0')
		printf("  e-mail        %s\n", v->valuestring);
	printf("  plan          %s", cJSON_GetObjectItem(m, "plan")->valuestring);
	if ((v = cJSON_GetObjectItem(m, "tickets")) != NULL)
		printf(", %d half-day ticket%s left", v->valueint, v->valueint == 1 ? "" : "s");
	if ((v = cJSON_GetObjectItem(m, "valid_until")) != NULL)
		printf(", valid until %s", v->valuestring);
	printf("\n  status        %s\n", cJSON_GetObjectItem(m, "status")->valuestring);
}

/* The common ending of a command that shows one member. */
static int
manage_member_result(struct cli_session *s, int r, cJSON *m, const char *err)
{
	if (r == 0) {
		if (cli_json)
			cli_print_json(m);
		else
			manage_print_member(m);
	}
	cJSON_Delete(m);
	cli_session_close(s);
	return r == 0 ? 0 : cli_fail("%s", err);
}

int
manage_member_add(int argc, char **argv)
{
	const char *display = NULL, *email = NULL, *plan = "tickets", *tickets = "0",
	    *until = NULL;
	const struct cli_opt opts[] = {
		{ "display-name", true, &display, NULL },
		{ "email", true, &email, NULL },
		{ "plan", true, &plan, NULL },
		{ "tickets", true, &tickets, NULL },
		{ "until", true, &until, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct member_new mn;
	struct cli_session s;
	cJSON *m = NULL;
	char err[256];
	int i = cli_parse_options(argc, argv, opts), r;

	if (argc - i != 1)
		cli_die_usage("member add takes the member's full name (quoted)");
	memset(&mn, 0, sizeof(mn));
	mn.full_name = argv[i];
	mn.display_name = display;
	mn.email = email;
	mn.plan = plan;
	mn.tickets = cli_parse_int(tickets, "--tickets", 0, 10000);
	mn.valid_until = until;
	mn.actor = "cli";
	cli_session_open(&s, 0);
	r = member_add(s.conn, &mn, &m, err, sizeof(err));
	return manage_member_result(&s, r, m, err);
}

int
manage_member_list(int argc, char **argv)
{
	struct cli_session s;
	cJSON *a = NULL, *m;

	if (cli_parse_options(argc, argv, NULL) != argc)
		cli_die_usage("member list takes no arguments");
	cli_session_open(&s, 0);
	if (member_list(s.conn, &a) < 0) {
		cli_session_close(&s);
		return cli_fail("cannot list the members");
	}
	if (cli_json) {
		cli_print_json(a);
	} else {
		printf("%-5s %-22s %-16s %-8s %-8s %s\n", "ID", "NAME", "PSEUDONYM", "PLAN",
		    "TICKETS", "STATUS");
		cJSON_ArrayForEach(m, a) {
			const cJSON *t = cJSON_GetObjectItem(m, "tickets");
			char tk[16] = "-";

			if (t != NULL)
				snprintf(tk, sizeof(tk), "%d", t->valueint);
			printf("%-5d %-22.22s %-16s %-8s %-8s %s\n",
			    cJSON_GetObjectItem(m, "id")->valueint,
			    cJSON_GetObjectItem(m, "full_name")->valuestring,
			    cJSON_GetObjectItem(m, "pseudonym")->valuestring,
			    cJSON_GetObjectItem(m, "plan")->valuestring, tk,
			    cJSON_GetObjectItem(m, "status")->valuestring);
		}
	}
	cJSON_Delete(a);
	cli_session_close(&s);
	return 0;
}

int
manage_member_show(int argc, char **argv)
{
	struct cli_session s;
	cJSON *m = NULL;
	char err[256];
	int i = cli_parse_options(argc, argv, NULL), r;

	if (argc - i != 1)
		cli_die_usage("member show takes one member (id, pseudonym or e-mail)");
	cli_session_open(&s, 0);
	r = member_show(s.conn, argv[i], &m, err, sizeof(err));
	return manage_member_result(&s, r, m, err);
}

int
manage_member_topup(int argc, char **argv)
{
	struct cli_session s;
	cJSON *m = NULL;
	char err[256];
	int i = cli_parse_options(argc, argv, NULL), r, n;

	if (argc - i != 2)
		cli_die_usage("member topup takes a member and a number of tickets");
	n = cli_parse_int(argv[i + 1], "the number of tickets", 1, 10000);
	cli_session_open(&s, 0);
	r = member_topup(s.conn, argv[i], n, "cli", &m, err, sizeof(err));
	return manage_member_result(&s, r, m, err);
}

/*
 * Writes the whole SVG to fd, from its start, in place of what was there.
 */
static int
manage_write_svg(int fd, const char *svg)
{
	size_t len = strlen(svg);

	if (ftruncate(fd, 0) < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, svg, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		svg += n;
		len -= (size_t)n;
	}
	return 0;
}

int
manage_pass_issue(int argc, char **argv)
{
	const char *svg_path = NULL;
	bool show_qr = false, svg_made = false;
	const struct cli_opt opts[] = {
		{ "svg", true, &svg_path, NULL },
		{ "qr", false, NULL, &show_qr },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	cJSON *info = NULL;
	char *token = NULL, err[256];
	int i = cli_parse_options(argc, argv, opts), r, svg_fd = -1;

	if (argc - i != 1)
		cli_die_usage("pass issue takes one member (id, pseudonym or e-mail)");
	/*
	 * The SVG file is opened before the pass is signed and recorded: a
	 * path that cannot be written fails the command with no pass made.
	 * An existing file keeps its content until the QR code replaces it.
	 */
	cli_session_open(&s, NODE_NEED_PASS_KEY);
	if (svg_path != NULL) {
		svg_fd = open(svg_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (svg_fd >= 0)
			svg_made = true;
		else if (errno == EEXIST)
			svg_fd = open(svg_path, O_WRONLY | O_CLOEXEC);
		if (svg_fd < 0) {
			r = -errno;
			cli_session_close(&s);
			return cli_fail("cannot write the QR code to %s: %s", svg_path,
			    strerror(-r));
		}
	}
	r = member_issue_pass(s.node, s.conn, argv[i], &token, &info, err, sizeof(err));
	if (r < 0) {
		cli_session_close(&s);
		if (svg_fd >= 0) {
			close(svg_fd);
			if (svg_made)
				unlink(svg_path);
		}
		return cli_fail("%s", err);
	}
	if (svg_fd >= 0) {
		char *svg = NULL;
		int w = qr_svg(token, &svg);

		if (w == 0)
			w = manage_write_svg(svg_fd, svg);
		if (close(svg_fd) < 0 && w == 0)
			w = -errno;
		if (w < 0)
			r = cli_fail("cannot write the QR code to %s", svg_path);
		free(svg);
	}
	if (cli_json) {
		cli_print_json(info);
	} else {
		if (show_qr) {
			char *text = NULL;

			if (qr_text(token, &text) == 0)
				fputs(text, stdout);
			free(text);
		}
		puts(token);
	}
	free(token);
	cJSON_Delete(info);
	cli_session_close(&s);
	return r == 0 ? 0 : 1;
}

/* A new API token, printed once: only its hash is kept. */
static void
manage_print_staff_token(const char *name, enum staff_role role,
    const char *token)
{
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddStringToObject(o, "role", staff_role_name(role));
		cJSON_AddStringToObject(o, "token", token);
		cli_print_json(o);
		cJSON_Delete(o);
	} else
		printf("%s\n", token);
}

int
manage_staff_add(int argc, char **argv)
{
	const char *role_s = "concierge";
	const struct cli_opt opts[] = {
		{ "role", true, &role_s, NULL },
		{ NULL, false, NULL, NULL },
	};
	enum staff_role role;
	struct cli_session s;
	char token[96], err[256];
	int i = cli_parse_options(argc, argv, opts), r;

	if (argc - i != 1)
		cli_die_usage("staff add takes the account's name");
	if (staff_role_parse(role_s, &role) < 0)
		cli_die_usage("--role must be concierge, manager or admin, not '%s'", role_s);
	cli_session_open(&s, 0);
	r = staff_add(s.conn, argv[i], role, token, sizeof(token), err, sizeof(err));
	cli_session_close(&s);
	if (r < 0)
		return cli_fail("%s", err);
	manage_print_staff_token(argv[i], role, token);
	return 0;
}

int
manage_staff_list(int argc, char **argv)
{
	struct cli_session s;
	cJSON *a = NULL, *o;

	if (cli_parse_options(argc, argv, NULL) != argc)
		cli_die_usage("staff list takes no arguments");
	cli_session_open(&s, 0);
	if (staff_list(s.conn, &a) < 0) {
		cli_session_close(&s);
		return cli_fail("cannot list the staff accounts");
	}
	cli_session_close(&s);
	if (cli_json) {
		cli_print_json(a);
	} else {
		printf("%-24s %-10s %-9s %s\n", "NAME", "ROLE", "PASSWORD",
		    "CREATED (UTC)");
		cJSON_ArrayForEach(o, a) {
			const char *name =
			    cJSON_GetObjectItem(o, "name")->valuestring;
			const cJSON *pw = cJSON_GetObjectItem(o, "password_set");

			/* Names may be UTF-8: the cell counts characters. */
			cli_print_cell(name, 24);
			printf("%-10s %-9s %s\n",
			    cJSON_GetObjectItem(o, "role")->valuestring,
			    cJSON_IsTrue(pw) ? "yes" : "no",
			    cJSON_GetObjectItem(o, "created_at")->valuestring);
		}
	}
	cJSON_Delete(a);
	return 0;
}

int
manage_staff_remove(int argc, char **argv)
{
	enum staff_role role = STAFF_NONE;
	struct cli_session s;
	char err[256];
	int i = cli_parse_options(argc, argv, NULL), r;

	if (argc - i != 1)
		cli_die_usage("staff remove takes the account's name");
	cli_session_open(&s, 0);
	r = staff_remove(s.conn, argv[i], "cli", &role, err, sizeof(err));
	cli_session_close(&s);
	if (r < 0)
		return cli_fail("%s", err);
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "name", argv[i]);
		cJSON_AddStringToObject(o, "role", staff_role_name(role));
		cJSON_AddBoolToObject(o, "removed", true);
		cli_print_json(o);
		cJSON_Delete(o);
	} else
		printf("%s removed: its token and its web sessions are refused"
		    " from now on\n", argv[i]);
	return 0;
}

int
manage_staff_token(int argc, char **argv)
{
	enum staff_role role = STAFF_NONE;
	struct cli_session s;
	char token[96], err[256];
	int i = cli_parse_options(argc, argv, NULL), r;

	if (argc - i != 1)
		cli_die_usage("staff token takes the account's name");
	cli_session_open(&s, 0);
	r = staff_replace_token(s.conn, argv[i], "cli", &role, token,
	    sizeof(token), err, sizeof(err));
	cli_session_close(&s);
	if (r < 0)
		return cli_fail("%s", err);
	manage_print_staff_token(argv[i], role, token);
	return 0;
}

int
manage_member_plan(int argc, char **argv)
{
	const char *from = NULL, *until = NULL, *cap_s = NULL;
	bool monthly = false, tickets = false;
	const struct cli_opt opts[] = {
		{ "monthly", false, NULL, &monthly },
		{ "tickets", false, NULL, &tickets },
		{ "from", true, &from, NULL },
		{ "until", true, &until, NULL },
		{ "cap", true, &cap_s, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	cJSON *m = NULL;
	char err[256];
	int i = cli_parse_options(argc, argv, opts), cap = -1, r;

	if (argc - i != 1 || monthly == tickets)
		cli_die_usage("member plan takes a member and --monthly or --tickets");
	if (cap_s != NULL && strcmp(cap_s, "none") != 0)
		cap = cli_parse_int(cap_s, "--cap", 0, 62);
	cli_session_open(&s, 0);
	r = member_set_plan(s.conn, argv[i], monthly ? "monthly" : "tickets", from,
	    until, cap, "cli", &m, err, sizeof(err));
	return manage_member_result(&s, r, m, err);
}

static int
manage_member_status(int argc, char **argv, const char *status)
{
	struct cli_session s;
	cJSON *m = NULL;
	char err[256];
	int i = cli_parse_options(argc, argv, NULL), r;

	if (argc - i != 1)
		cli_die_usage("this takes one member (id, pseudonym or e-mail)");
	cli_session_open(&s, 0);
	r = member_set_status(s.conn, argv[i], status, "cli", &m, err, sizeof(err));
	return manage_member_result(&s, r, m, err);
}

int
manage_member_suspend(int argc, char **argv)
{
	return manage_member_status(argc, argv, "suspended");
}

int
manage_member_resume(int argc, char **argv)
{
	return manage_member_status(argc, argv, "active");
}

int
manage_member_history(int argc, char **argv)
{
	struct cli_session s;
	cJSON *m = NULL, *e;
	char err[256];
	int i = cli_parse_options(argc, argv, NULL), r;

	if (argc - i != 1)
		cli_die_usage("member history takes one member (id, pseudonym or e-mail)");
	cli_session_open(&s, 0);
	r = member_history(s.conn, argv[i], &m, err, sizeof(err));
	cli_session_close(&s);
	if (r < 0)
		return cli_fail("%s", err);
	if (cli_json) {
		cli_print_json(m);
	} else {
		const cJSON *t = cJSON_GetObjectItem(m, "tickets");
		const cJSON *sum = cJSON_GetObjectItem(m, "ledger_sum");

		manage_print_member(m);
		printf("\n%-21s %-18s %-22s %7s  %s\n", "WHEN (UTC)", "BY", "WHAT",
		    "TICKETS", "DETAIL");
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(m, "history")) {
			const cJSON *n = cJSON_GetObjectItem(e, "tickets");
			const cJSON *d = cJSON_GetObjectItem(e, "detail");
			char tk[16] = "";

			if (n != NULL)
				snprintf(tk, sizeof(tk), "%+d", n->valueint);
			printf("%-21s %-18.18s %-22s %7s  %s\n",
			    cJSON_GetObjectItem(e, "at")->valuestring,
			    cJSON_GetObjectItem(e, "by")->valuestring,
			    cJSON_GetObjectItem(e, "what")->valuestring, tk,
			    d != NULL ? d->valuestring : "");
		}
		if (t != NULL && sum != NULL)
			printf("\nbalance %d, sum of movements %d%s\n", t->valueint,
			    sum->valueint, t->valueint == sum->valueint ? "" :
			    "  << they differ: report this");
	}
	cJSON_Delete(m);
	return 0;
}

int
manage_pass_revoke(int argc, char **argv)
{
	bool member = false;
	const struct cli_opt opts[] = {
		{ "member", false, NULL, &member },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	char err[256];
	int i = cli_parse_options(argc, argv, opts), n = 0, r;

	if (argc - i != 1)
		cli_die_usage("pass revoke takes a pass id (jti), or --member MEMBER");
	cli_session_open(&s, 0);
	r = member_revoke(s.conn, argv[i], member, "cli", &n, err, sizeof(err));
	cli_session_close(&s);
	if (r < 0)
		return cli_fail("%s", err);
	if (cli_json)
		printf("{\"revoked\": %d}\n", n);
	else
		printf("%d pass%s revoked: refused at once here and by the hosts"
		    " that reach this node; published to the others\n", n,
		    n == 1 ? "" : "es");
	return 0;
}

/* yes/no for the terms' options. */
static bool
manage_yes(const char *v, const char *what)
{
	if (strcmp(v, "yes") == 0)
		return true;
	if (strcmp(v, "no") != 0)
		cli_die_usage("%s takes yes or no, not '%s'", what, v);
	return false;
}

static void
manage_print_terms(const char *peer, const struct terms *t)
{
	char cap[16] = "none";

	if (t->host_monthly_cap >= 0)
		snprintf(cap, sizeof(cap), "%d", t->host_monthly_cap);
	cli_print_cell(peer, 14);
	printf("%-6s %6d.%02d %-3s  %-5s %-7d %-7s %-8s %s\n",
	    t->host_accept ? "yes" : "no", t->rate_cents / 100, t->rate_cents % 100,
	    t->currency, cap, t->offline_allowance, t->allow_roaming ? "yes" : "no",
	    t->ticket_per_unit ? "unit" : "visit", t->is_default ? "(defaults)" :
	    t->updated_at);
}

int
manage_peer_terms(int argc, char **argv)
{
	const char *accept = NULL, *rate = NULL, *currency = NULL, *cap = NULL,
	    *offline = NULL, *roaming = NULL, *per_unit = NULL;
	const struct cli_opt opts[] = {
		{ "accept", true, &accept, NULL },
		{ "rate", true, &rate, NULL },
		{ "currency", true, &currency, NULL },
		{ "cap", true, &cap, NULL },
		{ "offline", true, &offline, NULL },
		{ "roaming", true, &roaming, NULL },
		{ "ticket-per-unit", true, &per_unit, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	struct terms t;
	int i = cli_parse_options(argc, argv, opts);
	bool setting = accept || rate || currency || cap || offline || roaming || per_unit;

	if (argc - i > 1 || (setting && argc - i != 1))
		cli_die_usage("peer terms takes [PEER] and, to change them, options");
	cli_session_open(&s, NODE_NEED_DIRECTORY);
	if (argc - i == 1) {
		const char *peer = argv[i];
		struct node_directory *nd = node_directory_current(s.node);
		bool known = directory_find_space(nd->dir, peer) != NULL;

		node_directory_put(s.node, nd);
		if (!known || strcmp(peer, node_space_id(s.node)) == 0) {
			cli_session_close(&s);
			return cli_fail("'%s' is not a peer space of the directory", peer);
		}
		if (terms_get(s.cfg, s.conn, peer, &t) < 0) {
			cli_session_close(&s);
			return cli_fail("database error");
		}
		if (setting) {
			if (accept != NULL)
				t.host_accept = manage_yes(accept, "--accept");
			if (rate != NULL)
				t.rate_cents = cli_parse_int(rate, "--rate (cents)", 0, 10000000);
			if (currency != NULL) {
				if (strlen(currency) != 3 ||
				    strspn(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
					cli_die_usage("--currency takes an ISO 4217 code such as EUR");
				util_strlcpy(t.currency, currency, sizeof(t.currency));
			}
			if (cap != NULL)
				t.host_monthly_cap = strcmp(cap, "none") == 0 ? -1 :
				    cli_parse_int(cap, "--cap", 0, 1000);
			if (offline != NULL)
				t.offline_allowance = cli_parse_int(offline, "--offline", 0,
				    100000);
			if (roaming != NULL)
				t.allow_roaming = manage_yes(roaming, "--roaming");
			if (per_unit != NULL)
				t.ticket_per_unit = manage_yes(per_unit, "--ticket-per-unit");
			if (terms_set(s.conn, peer, &t, "cli") < 0 ||
			    terms_get(s.cfg, s.conn, peer, &t) < 0) {
				cli_session_close(&s);
				return cli_fail("database error");
			}
		}
		if (cli_json) {
			cJSON *o = terms_json(peer, &t);

			cli_print_json(o);
			cJSON_Delete(o);
		} else {
			printf("%-14s %-6s %13s  %-5s %-7s %-7s %-8s %s\n", "PEER", "ACCEPT",
			    "RATE/UNIT", "CAP", "OFFLINE", "ROAMING", "TICKETS", "SET");
			manage_print_terms(peer, &t);
		}
	} else {
		/* Every peer of the directory, with its terms or the defaults. */
		struct node_directory *nd = node_directory_current(s.node);
		cJSON *a = cJSON_CreateArray();

		if (!cli_json)
			printf("%-14s %-6s %13s  %-5s %-7s %-7s %-8s %s\n", "PEER", "ACCEPT",
			    "RATE/UNIT", "CAP", "OFFLINE", "ROAMING", "TICKETS", "SET");
		for (size_t k = 0; k < directory_count(nd->dir); k++) {
			const char *peer = directory_space_at(nd->dir, k)->id;

			if (strcmp(peer, node_space_id(s.node)) == 0)
				continue;
			if (terms_get(s.cfg, s.conn, peer, &t) < 0)
				break;
			if (cli_json)
				cJSON_AddItemToArray(a, terms_json(peer, &t));
			else
				manage_print_terms(peer, &t);
		}
		node_directory_put(s.node, nd);
		if (cli_json)
			cli_print_json(a);
		cJSON_Delete(a);
	}
	cli_session_close(&s);
	return 0;
}

static void
manage_print_house(cJSON *h)
{
	const cJSON *cap = cJSON_GetObjectItem(h, "capacity"), *c;

	printf("hours     %s\n", cJSON_GetObjectItem(h, "hours_text")->valuestring);
	if (cJSON_IsNumber(cap))
		printf("seats     %d\n", cap->valueint);
	else
		printf("seats     no limit\n");
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(h, "closures"))
		printf("closed    %s %s\n", cJSON_GetObjectItem(c, "day")->valuestring,
		    cJSON_GetObjectItem(c, "reason")->valuestring);
}

/*
 * house show | house hours DAY HH:MM-HH:MM|closed | house close DATE
 * [--reason R] | house reopen DATE | house capacity N|none: one function
 * for the five, told apart by the command's name in main.c's table.
 */
int
manage_house(int argc, char **argv)
{
	const char *what = cli_current->name, *reason = NULL;
	const struct cli_opt opts[] = {
		{ "reason", true, &reason, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	char err[256] = "";
	int i = cli_parse_options(argc, argv, opts), r = 0;
	cJSON *h;

	if (strcmp(what, "show") == 0 && argc - i != 0)
		cli_die_usage("house show takes no arguments");
	if (strcmp(what, "hours") == 0 && (argc - i != 2 ||
	    house_weekday_parse(argv[i]) < 0))
		cli_die_usage("house hours takes a day (mon..sun) and HH:MM-HH:MM or closed");
	if ((strcmp(what, "close") == 0 || strcmp(what, "reopen") == 0 ||
	    strcmp(what, "capacity") == 0) && argc - i != 1)
		cli_die_usage("house %s takes one argument", what);
	cli_session_open(&s, 0);
	if (strcmp(what, "hours") == 0) {
		char opens[16] = "", closes[16] = "";

		if (strcmp(argv[i + 1], "closed") == 0) {
			r = house_set_hours(s.conn, house_weekday_parse(argv[i]), NULL, NULL,
			    "cli", err, sizeof(err));
		} else if (sscanf(argv[i + 1], "%15[0-9:]-%15[0-9:]", opens, closes) == 2) {
			r = house_set_hours(s.conn, house_weekday_parse(argv[i]), opens,
			    closes, "cli", err, sizeof(err));
		} else {
			cli_session_close(&s);
			cli_die_usage("hours are HH:MM-HH:MM, or closed");
		}
	} else if (strcmp(what, "close") == 0) {
		r = house_set_closure(s.conn, argv[i], reason != NULL ? reason : "", "cli",
		    err, sizeof(err));
	} else if (strcmp(what, "reopen") == 0) {
		r = house_set_closure(s.conn, argv[i], NULL, "cli", err, sizeof(err));
	} else if (strcmp(what, "capacity") == 0) {
		int cap = strcmp(argv[i], "none") == 0 ? -1 :
		    cli_parse_int(argv[i], "the number of seats", 0, 100000);

		r = house_set_capacity(s.conn, cap, "cli");
		if (r < 0)
			snprintf(err, sizeof(err), "database error");
	}
	if (r < 0) {
		cli_session_close(&s);
		return cli_fail("%s", err);
	}
	h = house_json(s.conn);
	if (cli_json)
		cli_print_json(h);
	else
		manage_print_house(h);
	cJSON_Delete(h);
	cli_session_close(&s);
	return 0;
}
