/*
 * api.c - the local face: the front desk's and managers' JSON API.
 *
 * Every /api/v1 request carries a staff bearer token (`passerelle staff
 * add`), or the session cookie of the web page (web_session.c, with its
 * CSRF token for changes); the role decides what it may do.  /healthz and
 * /metrics are open, which is why the local face listens on loopback by
 * default.  Other paths are the web page's (web.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "house.h"
#include "http.h"
#include "log.h"
#include "member.h"
#include "peer.h"
#include "qr.h"
#include "server.h"
#include "staff.h"
#include "util.h"
#include "visit.h"
#include "web.h"

#define API_PREFIX "/api/v1/"

struct api_ctx {
	struct http_job *job;
	struct worker *w;
	PGconn *conn;
	enum staff_role role;
	char actor[128];
};

bool
api_require(struct http_job *job, enum staff_role role, enum staff_role min)
{
	if (role >= min)
		return true;
	http_reply_error(job, 403, "forbidden", "this needs the %s role",
	    staff_role_name(min));
	return false;
}

/*
 * A request's "tickets" (0 when absent): a whole number, whose range
 * member.c checks.  Anything else is answered 400.
 */
static int
api_tickets(struct api_ctx *c, const cJSON *req, int *ret)
{
	if (util_json_int(req, "tickets", INT_MIN, INT_MAX, false, ret) == 0)
		return 0;
	http_reply_error(c->job, 400, "bad_request", "tickets must be a whole number");
	return -EINVAL;
}

static void
api_healthz(struct http_job *job, struct worker *w)
{
	PGconn *conn = server_worker_db(w);
	PGresult *res = conn != NULL ? db_query(conn, "select 1", 0, NULL) : NULL;
	bool expired = node_directory_expired(w->node), ok = res != NULL && !expired;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", ok ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "space", node_space_id(w->node));
	cJSON_AddNumberToObject(o, "directory_serial",
	    (double)node_directory_serial(w->node));
	cJSON_AddStringToObject(o, "directory", expired ? "expired" : "ok");
	cJSON_AddStringToObject(o, "database", res != NULL ? "ok" : "unreachable");
	PQclear(res);
	http_reply_json(job, ok ? 200 : 503, o);
}

static void
api_metrics(struct http_job *job, struct worker *w)
{
	uint64_t calls, conns;
	char text[1024];
	struct node_directory *nd = node_directory_current(w->node);
	long long expires = nd != NULL ?
	    (long long)(directory_expires_at(nd->dir) - util_now()) : 0;

	node_directory_put(w->node, nd);
	peer_stats(&calls, &conns);
	snprintf(text, sizeof(text),
	    "# TYPE passerelle_peer_calls_total counter\n"
	    "passerelle_peer_calls_total %llu\n"
	    "# TYPE passerelle_peer_connections_total counter\n"
	    "passerelle_peer_connections_total %llu\n"
	    "# TYPE passerelle_directory_serial gauge\n"
	    "passerelle_directory_serial %lld\n"
	    "# TYPE passerelle_directory_expires_seconds gauge\n"
	    "passerelle_directory_expires_seconds %lld\n",
	    (unsigned long long)calls, (unsigned long long)conns,
	    (long long)node_directory_serial(w->node), expires);
	http_reply_text(job, 200, "text/plain; version=0.0.4", text);
}

static void
api_checkin(struct api_ctx *c)
{
	struct visit_decision d;
	const cJSON *tok;
	cJSON *req;
	int r;

	if (!api_require(c->job, c->role, STAFF_CONCIERGE) || (req = http_job_json(c->job)) == NULL)
		return;
	tok = cJSON_GetObjectItemCaseSensitive(req, "pass");
	if (!cJSON_IsString(tok)) {
		cJSON_Delete(req);
		http_reply_error(c->job, 400, "bad_request", "expected {\"pass\": TOKEN}");
		return;
	}
	r = visit_check_in(c->w->node, c->conn, c->w->pc, tok->valuestring, &d);
	cJSON_Delete(req);
	if (r < 0)
		http_reply_error(c->job, 503, "unavailable", "%s", d.reason);
	else
		http_reply_json(c->job, 200, visit_decision_json(&d));
	log_info("check-in %s: %s%s%s (%s)", d.visit_id[0] ? d.visit_id : "-",
	    d.admitted ? "admitted" : "refused", d.reason_code[0] ? " " : "",
	    d.reason_code, d.home);
	visit_decision_clear(&d);
}

static void
api_checkout(struct api_ctx *c, const char *visit_id)
{
	struct visit_checkout out;
	char err[256];
	cJSON *o;
	int r;

	if (!api_require(c->job, c->role, STAFF_CONCIERGE))
		return;
	if (!visit_id_valid(visit_id)) {
		http_reply_error(c->job, 400, "bad_request",
		    "'%s' is not a visit id (a lower-case UUID)", visit_id);
		return;
	}
	r = visit_check_out(c->w->node, c->conn, c->w->pc, visit_id, NULL, &out, err,
	    sizeof(err));
	if (r == -ENOENT) {
		http_reply_error(c->job, 404, "unknown_visit", "%s", err);
		return;
	} else if (r == -EINVAL) {
		http_reply_error(c->job, 409, "not_open", "%s", err);
		return;
	} else if (r < 0) {
		http_reply_error(c->job, 503, "unavailable", "%s", err);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "visit_id", out.visit_id);
	cJSON_AddStringToObject(o, "home", out.home);
	cJSON_AddNumberToObject(o, "units", out.units);
	cJSON_AddBoolToObject(o, "already_closed", out.already);
	cJSON_AddBoolToObject(o, "reported_to_home", out.reported);
	http_reply_json(c->job, 200, o);
}

static void
api_visits(struct api_ctx *c)
{
	cJSON *a, *o;
	int capacity = -1;

	if (!api_require(c->job, c->role, STAFF_CONCIERGE))
		return;
	a = visit_list(c->conn, false);
	if (a == NULL) {
		http_reply_error(c->job, 503, "unavailable", "database error");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "present", cJSON_GetArraySize(a));
	if (house_capacity(c->conn, &capacity) == 0 && capacity >= 0)
		cJSON_AddNumberToObject(o, "capacity", capacity);
	else
		cJSON_AddNullToObject(o, "capacity");
	cJSON_AddItemToObject(o, "visits", a);
	http_reply_json(c->job, 200, o);
}

void
api_member_reply(struct http_job *job, int r, cJSON *m, const char *err, int ok_status)
{
	if (r == 0)
		http_reply_json(job, ok_status, m);
	else if (r == -ENOENT)
		http_reply_error(job, 404, "unknown_member", "%s", err);
	else if (r == -EINVAL || r == -EPERM)
		http_reply_error(job, 400, "bad_request", "%s", err);
	else if (r == -EEXIST || r == -ENOTUNIQ)
		http_reply_error(job, 409, "conflict", "%s", err);
	else
		http_reply_error(job, 503, "unavailable", "%s", err);
}


static void
api_members(struct api_ctx *c, const char *rest)
{
	char err[256] = "";
	cJSON *m = NULL, *req;
	int r;

	if (!api_require(c->job, c->role, STAFF_MANAGER))
		return;
	if (rest[0] == '\0' && c->job->method == HTTP_GET) {
		r = member_list(c->conn, &m);
		api_member_reply(c->job, r, m, "database error", 200);
	} else if (rest[0] == '\0' && c->job->method == HTTP_POST) {
		struct member_new mn;

		if ((req = http_job_json(c->job)) == NULL)
			return;
		memset(&mn, 0, sizeof(mn));
		if (api_tickets(c, req, &mn.tickets) < 0) {
			cJSON_Delete(req);
			return;
		}
		mn.full_name = util_json_string(req, "full_name");
		mn.display_name = util_json_string(req, "display_name");
		mn.email = util_json_string(req, "email");
		mn.plan = util_json_string(req, "plan") ? util_json_string(req, "plan") : "tickets";
		mn.valid_until = util_json_string(req, "valid_until");
		mn.actor = c->actor;
		r = member_add(c->conn, &mn, &m, err, sizeof(err));
		cJSON_Delete(req);
		api_member_reply(c->job, r, m, err, 201);
	} else {
		char ref[128];
		const char *slash = strchr(rest, '/');
		size_t n = slash ? (size_t)(slash - rest) : strlen(rest);

		if (n == 0 || n >= sizeof(ref)) {
			http_reply_error(c->job, 404, "not_found", "no such member path");
			return;
		}
		memcpy(ref, rest, n);
		ref[n] = '\0';
		if (slash == NULL && c->job->method == HTTP_GET) {
			r = member_show(c->conn, ref, &m, err, sizeof(err));
			api_member_reply(c->job, r, m, err, 200);
		} else if (slash != NULL && strcmp(slash, "/topup") == 0 &&
		    c->job->method == HTTP_POST) {
			int tickets = 0;

			if ((req = http_job_json(c->job)) == NULL)
				return;
			if (api_tickets(c, req, &tickets) < 0) {
				cJSON_Delete(req);
				return;
			}
			r = member_topup(c->conn, ref, tickets, c->actor, &m, err, sizeof(err));
			cJSON_Delete(req);
			api_member_reply(c->job, r, m, err, 200);
		} else if (slash != NULL && strcmp(slash, "/passes") == 0 &&
		    c->job->method == HTTP_POST) {
			char *token = NULL, *svg = NULL;

			r = member_issue_pass(c->w->node, c->conn, ref, &token, &m, err,
			    sizeof(err));
			if (r == 0 && qr_svg(token, &svg) == 0)
				cJSON_AddStringToObject(m, "qr_svg", svg);
			/* Kept for the web page, with the member's link. */
			if (r == 0 && web_pass_keep(c->conn, m, token) < 0)
				log_warnx("pass issued but not kept for the web page");
			free(svg);
			free(token);
			api_member_reply(c->job, r, m, err, 201);
		} else {
			http_reply_error(c->job, 404, "not_found", "no endpoint %s", c->job->path);
		}
	}
}

void
api_handle(struct http_job *job, void *worker, void *arg)
{
	struct worker *w = worker;
	struct api_ctx c;
	const char *p = job->path;

	if (strcmp(p, "/healthz") == 0) {
		api_healthz(job, w);
		return;
	}
	if (strcmp(p, "/metrics") == 0) {
		api_metrics(job, w);
		return;
	}
	if (strcmp(p, "/api/v1/spaces.geojson") == 0) {
		/* The map is public: the directory is a public document. */
		struct node_directory *nd = node_directory_current(w->node);

		if (nd == NULL) {
			http_reply_error(job, 503, "unavailable", "no directory loaded");
			return;
		}
		http_reply_json(job, 200, directory_geojson(nd->dir));
		job->content_type = "application/geo+json";
		node_directory_put(w->node, nd);
		return;
	}
	if (strncmp(p, API_PREFIX, strlen(API_PREFIX)) != 0) {
		web_handle(job, w);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.job = job;
	c.w = w;
	c.conn = server_worker_db(w);
	if (c.conn == NULL) {
		http_reply_error(job, 503, "unavailable", "the node's database is down");
		return;
	}
	p += strlen(API_PREFIX);
	if (strcmp(p, "signin") == 0) {
		web_session_signin(job, w, c.conn);
		return;
	}
	/* A bearer token when there is one; the web page's session otherwise. */
	{
		struct web_staff ws;
		int r;

		memset(&ws, 0, sizeof(ws));
		if (job->authorization != NULL) {
			r = staff_authenticate(c.conn, job->authorization, &c.role, ws.name,
			    sizeof(ws.name));
		} else {
			r = web_session_authenticate(c.conn, job, node_space_id(w->node), &ws);
			c.role = ws.role;
		}
		if (r == -EIO) {
			http_reply_error(job, 503, "unavailable", "database error");
			return;
		}
		if (r == -EPERM) {
			http_reply_error(job, 403, "csrf",
			    "a change made with a session cookie needs its X-CSRF-Token");
			return;
		}
		if (r < 0) {
			http_reply_error(job, 401, "unauthorized",
			    "send 'Authorization: Bearer TOKEN' with a staff token, or sign in");
			return;
		}
		snprintf(c.actor, sizeof(c.actor), "staff:%s", ws.name);
		{
			struct web_ctx wc = { job, w, c.conn, c.role, ws.name, c.actor,
			    job->authorization == NULL ? ws.csrf : NULL };

			if (web_api_handle(&wc, p))
				return;
		}
	}
	if (strcmp(p, "checkin") == 0 && job->method == HTTP_POST) {
		api_checkin(&c);
	} else if (strcmp(p, "visits") == 0 && job->method == HTTP_GET) {
		api_visits(&c);
	} else if (strncmp(p, "visits/", 7) == 0 && job->method == HTTP_POST &&
	    strlen(p) == 7 + 36 + strlen("/checkout") &&
	    strcmp(p + 7 + 36, "/checkout") == 0) {
		char vid[37];

		memcpy(vid, p + 7, 36);
		vid[36] = '\0';
		api_checkout(&c, vid);
	} else if (strcmp(p, "members") == 0) {
		api_members(&c, "");
	} else if (strncmp(p, "members/", 8) == 0) {
		api_members(&c, p + 8);
	} else {
		http_reply_error(job, 404, "not_found", "no endpoint %s %s",
		    job->method_name, job->path);
	}
}
