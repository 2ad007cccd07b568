/*
 * web.h - the web page of the local face: the front desk and the manager's
 * office, served by the node itself.
 *
 *   web.c          pages and static files (embedded at build time from
 *                  node/www/ by scripts/embed-www.py) with their headers (a
 *                  strict Content-Security-Policy, ETags); the member's pass
 *                  link; the `staff passwd` command.
 *   web_session.c  staff sign-in with a password, session cookies, the CSRF
 *                  token, and the slowing down of repeated failed sign-ins.
 *   web_api.c      the JSON routes the pages need beyond the scripts' API:
 *                  the session, terms, visits by month, the month's
 *                  statement, passes and their links, plans and status.
 *
 * Not here: the API that scripts and the CLI use (api.c); api.c
 * authenticates a request by its bearer token, or else by its session
 * cookie (web_session_authenticate), and hands the web routes to web_api.c.
 */
#ifndef PASSERELLE_WEB_H
#define PASSERELLE_WEB_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "http.h"
#include "server.h"
#include "staff.h"

/* One embedded file of node/www/ (generated table, NULL path at the end). */
struct web_asset {
	const char *path;	/* relative to node/www/: "desk.js", "i18n/fr.json" */
	const char *type;
	const char *data;
	size_t len;
	const char *etag;	/* a quoted strong ETag */
};
extern const struct web_asset web_assets[];

/* A session lasts a working day, and ends sooner when left unused. */
#define WEB_SESSION_LIFETIME (12 * 3600)
#define WEB_SESSION_IDLE (2 * 3600)

/*
 * Failed sign-ins: past the first few (per account, per address), each one
 * doubles the wait before the next attempt, up to WEB_SIGNIN_MAX_DELAY
 * seconds.  A count is forgotten an hour after its last failure.
 */
#define WEB_SIGNIN_FREE_ACCOUNT 3
#define WEB_SIGNIN_FREE_ADDRESS 10
#define WEB_SIGNIN_MAX_DELAY 900

/* What a request authenticated by its session cookie is. */
struct web_staff {
	long long id;
	enum staff_role role;
	char name[101];
	char csrf[48];
};

/* A request to a web route of the API, once authenticated. */
struct web_ctx {
	struct http_job *job;
	struct worker *w;
	PGconn *conn;
	enum staff_role role;
	const char *name;	/* the staff account */
	const char *actor;	/* "staff:NAME", for the audit trail */
	const char *csrf;	/* the session's CSRF token; NULL with a bearer token */
};

/* web.c */

/* Pages, static files and member links: every path outside /api/v1/. */
void web_handle(struct http_job *job, struct worker *w);
const struct web_asset *web_asset_find(const char *path);
/* Adds the headers every page and file of the web page carries. */
void web_page_headers(struct http_job *job);
/* `passerelle staff passwd NAME [--password-file FILE]`. */
int web_cmd_staff_passwd(int argc, char **argv);

/* web_session.c */

/*
 * The staff member whose session cookie the request carries: 0, -EACCES
 * (no cookie, or no live session), -EIO.  This alone is enough for reading;
 * web_session_authenticate also requires, for any other method than GET,
 * the session's CSRF token in X-CSRF-Token (-EPERM when it is missing or
 * wrong).
 */
int web_session_find(PGconn *conn, const struct http_job *job, const char *space,
    struct web_staff *ret);
int web_session_authenticate(PGconn *conn, const struct http_job *job,
    const char *space, struct web_staff *ret);
/* POST /api/v1/signin {"name", "password"}: sets the cookie. */
void web_session_signin(struct http_job *job, struct worker *w, PGconn *conn);
/* POST /api/v1/signout: ends the session and clears the cookie. */
void web_session_signout(struct web_ctx *c);
/* Ends every session of an account (its password changed): 0 or -EIO. */
int web_session_end_all(PGconn *conn, const char *staff_name);

/* web_api.c */

/* Handles rest (the path after /api/v1/) when it is a web route. */
bool web_api_handle(struct web_ctx *c, const char *rest);

/*
 * Keeps a pass just issued (pass: member_issue_pass's JSON, token: the
 * signed pass) so that its QR code can be shown again, and makes the
 * member's link; adds "link" (a path: /p/SECRET) and "link_expires_at" to
 * pass.  0 or -EIO.
 */
int web_pass_keep(PGconn *conn, cJSON *pass, const char *token);

#endif
