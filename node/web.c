/*
 * web.c - the web page's pages and files, the member's pass link, and the
 * `staff passwd` command.
 *
 * The files of node/www/ are compiled into the binary (scripts/embed-www.py)
 * and served from memory: plain HTML, CSS and JavaScript with no build step
 * and nothing loaded from elsewhere, under a Content-Security-Policy that
 * allows only this node's own scripts, styles and images (no inline script
 * or style).  Static files are revalidated by ETag; pages are not cached.
 *
 * A page is guarded by role: without a session it sends the browser to the
 * sign-in page, with a role too low it answers 403 with a page saying so.
 * The data on every page comes from the JSON API, which checks roles again.
 *
 * The member's pass link, /p/SECRET, is public: whoever holds the link sees
 * the pass, as whoever holds the phone does.  Its secret is random (256
 * bits), only its hash is stored, it expires with the pass, and it dies when
 * the pass is revoked or a new link replaces it.
 *
 * Not here: sessions (web_session.c), the JSON routes (api.c, web_api.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "db.h"
#include "log.h"
#include "qr.h"
#include "util.h"
#include "web.h"

/*
 * Only this node's own files; no inline script or style (style attributes
 * included); no frames; forms post only here.  The camera's stream is a
 * MediaStream shown in a <video>.
 */
static const char web_csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; media-src 'self' mediastream: blob:; manifest-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct web_page {
	const char *path;
	const char *file;
	enum staff_role role;	/* STAFF_NONE: anyone */
};

static const struct web_page web_pages[] = {
	{ "/signin", "signin.html", STAFF_NONE },
	{ "/desk", "desk.html", STAFF_CONCIERGE },
	{ "/manage/members", "members.html", STAFF_MANAGER },
	{ "/manage/pass", "pass.html", STAFF_MANAGER },
	{ "/manage/terms", "terms.html", STAFF_MANAGER },
	{ "/manage/visits", "visits.html", STAFF_MANAGER },
	{ "/manage/statement", "statement.html", STAFF_MANAGER },
	{ "/manage/spaces", "spaces.html", STAFF_MANAGER },
};

const struct web_asset *
web_asset_find(const char *path)
{
	for (const struct web_asset *a = web_assets; a->path != NULL; a++)
		if (strcmp(a->path, path) == 0)
			return a;
	return NULL;
}

void
web_page_headers(struct http_job *job)
{
	http_reply_header(job, "Content-Security-Policy", web_csp);
	http_reply_header(job, "Referrer-Policy", "no-referrer");
	http_reply_header(job, "X-Frame-Options", "DENY");
	http_reply_header(job, "Permissions-Policy",
	    "camera=(self), microphone=(), geolocation=(), payment=()");
}

static void
web_redirect(struct http_job *job, const char *to)
{
	free(job->resp_location);
	job->resp_location = strdup(to);
	http_reply_text(job, 303, "text/plain; charset=utf-8", "See Other\n");
}

/* Serves an embedded file; static files are cached and revalidated. */
static void
web_serve(struct http_job *job, const struct web_asset *a, int status, bool cache)
{
	web_page_headers(job);
	if (cache) {
		http_reply_header(job, "Cache-Control", "no-cache");
		http_reply_header(job, "ETag", a->etag);
		if (job->if_none_match != NULL && strstr(job->if_none_match, a->etag) != NULL) {
			http_reply_static(job, 304, a->type, "", 0);
			return;
		}
	}
	http_reply_static(job, status, a->type, a->data, a->len);
}

static void
web_serve_file(struct http_job *job, const char *file, int status)
{
	const struct web_asset *a = web_asset_find(file);

	if (a == NULL) {
		http_reply_error(job, 500, "internal", "the page %s is not in this build", file);
		return;
	}
	web_serve(job, a, status, false);
}

/* A page behind a role: to the sign-in page without a session, 403 below it. */
static void
web_page(struct http_job *job, struct worker *w, const struct web_page *page)
{
	struct web_staff ws;
	PGconn *conn;
	char next[160];
	int r;

	if (page->role == STAFF_NONE) {
		web_serve_file(job, page->file, 200);
		return;
	}
	conn = server_worker_db(w);
	if (conn == NULL) {
		http_reply_error(job, 503, "unavailable", "the node's database is down");
		return;
	}
	r = web_session_find(conn, job, node_space_id(w->node), &ws);
	if (r == -EIO) {
		http_reply_error(job, 503, "unavailable", "database error");
		return;
	}
	if (r < 0) {
		snprintf(next, sizeof(next), "/signin?next=%s", page->path);
		web_redirect(job, next);
		return;
	}
	if (ws.role < page->role) {
		log_info("GET %s from %s: 403: '%s' is a %s", job->path, job->remote,
		    ws.name, staff_role_name(ws.role));
		web_serve_file(job, "forbidden.html", 403);
		return;
	}
	web_serve_file(job, page->file, 200);
}

/* --------------------------------------------------------- member links */

/* A link's secret: 43 base64url characters. */
static bool
web_link_secret_valid(const char *s, size_t n)
{
	if (n != 43)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* /p/SECRET (or /p/SECRET/), /p/SECRET/pass.json, /p/SECRET/qr.svg */
static void
web_member_link(struct http_job *job, struct worker *w, const char *rest)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	char secret[64], hash[65];
	const char *params[1] = { hash };
	const char *status;
	PGconn *conn;
	PGresult *res;
	cJSON *o;
	bool page, qr, json;

	if (!web_link_secret_valid(rest, n)) {
		http_reply_error(job, 404, "not_found", "no such link");
		return;
	}
	/* rest and slash point into job->path, which is replaced just below. */
	memcpy(secret, rest, n);
	secret[n] = '\0';
	util_sha256_hex(secret, n, hash);
	sodium_memzero(secret, sizeof(secret));
	page = slash == NULL || strcmp(slash, "/") == 0;
	qr = slash != NULL && strcmp(slash, "/qr.svg") == 0;
	json = slash != NULL && strcmp(slash, "/pass.json") == 0;
	/*
	 * The secret is the member's credential: no log line shows it, so
	 * the path is redacted before any reply, a 404 for a suffix we do not
	 * serve included.  A failed reply (no memory) must not log it either.
	 */
	{
		char *redacted = util_aprintf("/p/(link)%s", page ? "" : qr ? "/qr.svg" :
		    json ? "/pass.json" : "/(other)");

		if (redacted == NULL) {
			http_reply_error(job, 503, "unavailable", "out of memory");
			return;
		}
		free(job->path);
		job->path = redacted;
	}
	if (job->method != HTTP_GET) {
		http_reply_error(job, 404, "not_found", "no endpoint %s", job->path);
		return;
	}
	if (page) {
		/*
		 * The page itself (with the trailing slash a mail client or a
		 * hand may add); it asks for pass.json.
		 */
		http_reply_header(job, "X-Robots-Tag", "noindex");
		web_serve_file(job, "card.html", 200);
		return;
	}
	if (!qr && !json) {
		http_reply_error(job, 404, "not_found", "no such link");
		return;
	}
	conn = server_worker_db(w);
	if (conn == NULL) {
		http_reply_error(job, 503, "unavailable", "the node's database is down");
		return;
	}
	res = db_query(conn, "select l.token, m.display_name, m.plan, m.status,"
	    "  to_char(p.expires_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    "  case when p.revoked_at is not null or l.link_revoked_at is not null"
	    "   then 'revoked' when p.expires_at <= now() or l.link_expires_at <= now()"
	    "   then 'expired' else 'valid' end"
	    " from web_pass_links l join passes p on p.jti = l.jti"
	    " join members m on m.id = p.member_id where l.link_hash = $1", 1, params);
	if (res == NULL) {
		http_reply_error(job, 503, "unavailable", "database error");
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		http_reply_error(job, 404, "unknown_link",
		    "this link is not (or no longer) a pass: ask your space for a new one");
		return;
	}
	status = PQgetvalue(res, 0, 5);
	if (qr) {
		char *svg = NULL;

		if (strcmp(status, "valid") != 0)
			http_reply_error(job, 410, status, "this pass is %s", status);
		else if (qr_svg(PQgetvalue(res, 0, 0), &svg) < 0)
			http_reply_error(job, 500, "internal", "cannot draw the QR code");
		else {
			web_page_headers(job);
			http_reply_text(job, 200, "image/svg+xml", svg);
		}
		free(svg);
		PQclear(res);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddStringToObject(o, "display_name", PQgetvalue(res, 0, 1));
	cJSON_AddStringToObject(o, "plan", PQgetvalue(res, 0, 2));
	cJSON_AddStringToObject(o, "member_status", PQgetvalue(res, 0, 3));
	cJSON_AddStringToObject(o, "expires_at", PQgetvalue(res, 0, 4));
	cJSON_AddStringToObject(o, "home", node_space_id(w->node));
	{
		struct node_directory *nd = node_directory_get(w->node);
		const struct directory_space *sp = nd != NULL ?
		    directory_find_space(nd->dir, node_space_id(w->node)) : NULL;

		if (sp != NULL)
			cJSON_AddStringToObject(o, "home_name", sp->name);
		node_directory_put(w->node, nd);
	}
	if (strcmp(status, "valid") == 0) {
		cJSON_AddStringToObject(o, "token", PQgetvalue(res, 0, 0));
		cJSON_AddStringToObject(o, "qr", "qr.svg");
	}
	PQclear(res);
	http_reply_json(job, 200, o);
}

/* ------------------------------------------------------------- routing */

void
web_handle(struct http_job *job, struct worker *w)
{
	const char *p = job->path;

	/* Before anything can log the path: it may hold a link's secret. */
	if (strncmp(p, "/p/", 3) == 0) {
		web_member_link(job, w, p + 3);
		return;
	}
	if (job->method != HTTP_GET) {
		http_reply_error(job, 404, "not_found", "no endpoint %s", p);
		return;
	}
	if (strcmp(p, "/") == 0 || strcmp(p, "/index.html") == 0) {
		web_redirect(job, "/desk");
		return;
	}
	if (strcmp(p, "/manage") == 0 || strcmp(p, "/manage/") == 0) {
		web_redirect(job, "/manage/members");
		return;
	}
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(web_pages); i++)
		if (strcmp(p, web_pages[i].path) == 0) {
			web_page(job, w, &web_pages[i]);
			return;
		}
	if (strncmp(p, "/static/", 8) == 0) {
		const struct web_asset *a = web_asset_find(p + 8);
		size_t n = strlen(p);

		/* Pages go through their routes, and their guards. */
		if (a != NULL && !(n > 5 && strcmp(p + n - 5, ".html") == 0)) {
			web_serve(job, a, 200, true);
			return;
		}
	}
	if (strcmp(p, "/favicon.ico") == 0) {
		web_serve(job, web_asset_find("icon.svg"), 200, true);
		return;
	}
	http_reply_error(job, 404, "not_found", "no endpoint %s", p);
}

/* ------------------------------------------------------------- command */

/* Reads a line from the terminal without echo; 0, or -EIO. */
static int
web_read_secret(const char *prompt, char *out, size_t len)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO);
	size_t n;

	if (tty) {
		fputs(prompt, stderr);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) < 0)
			return -EIO;
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
			return -EIO;
	}
	if (fgets(out, (int)len, stdin) == NULL)
		out[0] = '\0';
	if (tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	n = strlen(out);
	if (n == 0)
		return -EIO;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return 0;
}

int
web_cmd_staff_passwd(int argc, char **argv)
{
	const char *file = NULL;
	const struct cli_opt opts[] = {
		{ "password-file", true, &file, NULL },
		{ NULL, false, NULL, NULL },
	};
	char password[STAFF_PASSWORD_MAX + 2], again[STAFF_PASSWORD_MAX + 2], err[256];
	struct cli_session s;
	int i = cli_parse_options(argc, argv, opts), r;

	if (argc - i != 1)
		cli_die_usage("staff passwd takes the account's name");
	if (file != NULL) {
		char *text = NULL;
		size_t n;

		r = util_read_file(file, STAFF_PASSWORD_MAX + 2, &text, &n);
		if (r < 0)
			return cli_fail("cannot read %s: %s", file, strerror(-r));
		/* The first line, as `echo secret > file` writes it. */
		n = strcspn(text, "\r\n");
		text[n] = '\0';
		util_strlcpy(password, text, sizeof(password));
		sodium_memzero(text, strlen(text));
		free(text);
	} else {
		if (web_read_secret("Password: ", password, sizeof(password)) < 0)
			return cli_fail("no password given (on standard input or"
			    " --password-file FILE)");
		if (isatty(STDIN_FILENO)) {
			if (web_read_secret("Again: ", again, sizeof(again)) < 0 ||
			    strcmp(password, again) != 0) {
				sodium_memzero(password, sizeof(password));
				sodium_memzero(again, sizeof(again));
				return cli_fail("the two passwords differ");
			}
			sodium_memzero(again, sizeof(again));
		}
	}
	cli_session_open(&s, 0);
	r = staff_set_password(s.conn, argv[i], password, err, sizeof(err));
	sodium_memzero(password, sizeof(password));
	if (r == 0) {
		const char *params[2] = { argv[i], "staff.passwd" };

		/* A new password signs the account out everywhere. */
		web_session_end_all(s.conn, argv[i]);
		db_exec(s.conn, "insert into audit (actor, action, subject)"
		    " values ('cli', $2, $1)", 2, params);
	}
	cli_session_close(&s);
	if (r < 0)
		return cli_fail("%s", err);
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "name", argv[i]);
		cJSON_AddBoolToObject(o, "password_set", true);
		cli_print_json(o);
		cJSON_Delete(o);
	} else
		printf("password set for %s; its sessions are ended\n", argv[i]);
	return 0;
}
