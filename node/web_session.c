/*
 * web_session.c - staff sign-in on the web page: passwords, session
 * cookies, the CSRF token, and the slowing down of failed sign-ins.
 *
 * A session is a random 256-bit value in an HttpOnly, SameSite=Strict
 * cookie (Secure when the client speaks TLS: to the face itself, or to
 * the trusted proxy in front of it, [local] trusted_proxy); the database
 * keeps only its SHA-256, with its expiry and a CSRF token.  The page reads
 * the CSRF token from GET /api/v1/session and sends it in X-CSRF-Token with
 * every change: a request authenticated by its cookie that changes anything
 * and lacks it is refused.  Requests with a bearer token (scripts) carry no cookie and
 * need no CSRF token.  Sign-in itself only takes a JSON body, which no
 * cross-site form can send.
 *
 * Failed sign-ins are counted per account and per client address in the
 * database (several processes of one space share it): past a few, each
 * failure doubles the wait before the next attempt, answered 429 with
 * Retry-After, and each is logged and audited.  A sign-in clears both
 * counts.  Behind the trusted proxy, the client's address is the one the
 * proxy reports, not the proxy's own.
 *
 * Not here: bearer tokens (staff.c), what a role may do (api.c, web_api.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "util.h"
#include "web.h"

#define WEB_COOKIE_VALUE_LEN 43	/* 32 random bytes, base64url */

static void
web_session_cookie_name(const char *space, char *out, size_t len)
{
	/*
	 * Cookies ignore ports: nodes of two spaces on one host must not
	 * overwrite each other's, so the name carries the space.
	 */
	snprintf(out, len, "passerelle_%s", space);
}

/* The value of cookie name in a Cookie header: 0, or -ENOENT. */
static int
web_session_cookie_get(const char *header, const char *name, char *out, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = header;

	while (p != NULL && *p != '\0') {
		const char *end, *eq;

		while (*p == ' ' || *p == ';')
			p++;
		end = strchr(p, ';');
		if (end == NULL)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
			size_t vlen = (size_t)(end - eq - 1);

			if (vlen >= len)
				return -ENOENT;
			memcpy(out, eq + 1, vlen);
			out[vlen] = '\0';
			return 0;
		}
		p = end;
	}
	return -ENOENT;
}

static void
web_session_hash(const char *value, char out[65])
{
	util_sha256_hex(value, strlen(value), out);
}

/* An IP address, as inet_pton reads it. */
struct web_session_ip {
	int family;
	unsigned char bytes[sizeof(struct in6_addr)];
};

/* Reads the n bytes at s as an IPv4 or IPv6 address: 0, or -EINVAL. */
static int
web_session_ip_parse(const char *s, size_t n, struct web_session_ip *ret)
{
	char text[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(text))
		return -EINVAL;
	memcpy(text, s, n);
	text[n] = '\0';
	if (inet_pton(AF_INET, text, ret->bytes) == 1)
		ret->family = AF_INET;
	else if (inet_pton(AF_INET6, text, ret->bytes) == 1)
		ret->family = AF_INET6;
	else
		return -EINVAL;
	return 0;
}

static bool
web_session_ip_equal(const struct web_session_ip *a, const struct web_session_ip *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes,
	    a->family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr)) == 0;
}

/*
 * The last entry of an X-Forwarded-For value, written canonically in out:
 * 0, or -EINVAL when it is not a bare IP address.  The last entry is the
 * one the proxy appended; those before it are whatever the client sent.
 */
static int
web_session_forwarded_for(const char *value, char *out, size_t len)
{
	const char *start = strrchr(value, ',');
	const char *end = value + strlen(value);
	struct web_session_ip ip;

	start = start != NULL ? start + 1 : value;
	while (*start == ' ' || *start == '\t')
		start++;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (web_session_ip_parse(start, (size_t)(end - start), &ip) < 0 ||
	    inet_ntop(ip.family, ip.bytes, out, (socklen_t)len) == NULL)
		return -EINVAL;
	return 0;
}

/*
 * The client's address without its port ("127.0.0.1:5432" -> "127.0.0.1"),
 * and whether it reached us over HTTPS.  Behind the proxy named by [local]
 * trusted_proxy, the TCP peer is the proxy: the client is the last entry
 * of X-Forwarded-For (a malformed one leaves the proxy's address, so that
 * failures are still counted somewhere), and X-Forwarded-Proto: https says
 * that the client spoke TLS to it.  From any other peer these headers are
 * the client's own words and are ignored.
 */
static void
web_session_client(const struct http_job *job, const struct config *cfg, char *out,
    size_t len, bool *ret_https)
{
	const char *colon = strrchr(job->remote, ':');
	size_t n = colon != NULL ? (size_t)(colon - job->remote) : strlen(job->remote);
	struct web_session_ip peer, proxy;
	bool trusted;

	snprintf(out, len, "%.*s", (int)n, job->remote);
	*ret_https = job->tls;
	trusted = cfg->local_trusted_proxy != NULL && cfg->local_trusted_proxy[0] != '\0' &&
	    web_session_ip_parse(cfg->local_trusted_proxy, strlen(cfg->local_trusted_proxy),
	    &proxy) == 0 && web_session_ip_parse(job->remote, n, &peer) == 0 &&
	    web_session_ip_equal(&peer, &proxy);
	if (!trusted)
		return;
	if (job->forwarded_for != NULL) {
		char client[INET6_ADDRSTRLEN];

		if (web_session_forwarded_for(job->forwarded_for, client, sizeof(client)) == 0)
			snprintf(out, len, "%s", client);
	}
	if (job->forwarded_proto != NULL) {
		const char *p = job->forwarded_proto + strspn(job->forwarded_proto, " \t");
		size_t plen = strcspn(p, " \t");

		/* Exactly "https", spaces aside: a list is not one proxy's word. */
		if (plen == 5 && strncasecmp(p, "https", 5) == 0 &&
		    p[plen + strspn(p + plen, " \t")] == '\0')
			*ret_https = true;
	}
}

static void
web_session_set_cookie(struct http_job *job, const char *space, const char *value,
    int max_age, bool secure)
{
	char name[96], cookie[256];

	web_session_cookie_name(space, name, sizeof(name));
	snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Max-Age=%d; HttpOnly;"
	    " SameSite=Strict%s", name, value, max_age, secure ? "; Secure" : "");
	http_reply_header(job, "Set-Cookie", cookie);
}

static void
web_session_audit(PGconn *conn, const char *actor, const char *action,
    const char *subject, const char *detail)
{
	const char *params[4] = { actor, action, subject, detail };

	db_exec(conn, "insert into audit (actor, action, subject, detail)"
	    " values ($1, $2, $3, $4)", 4, params);
}

int
web_session_find(PGconn *conn, const struct http_job *job, const char *space,
    struct web_staff *ret)
{
	char name[96], value[WEB_COOKIE_VALUE_LEN + 8], hash[65], idle[16];
	const char *params[2] = { hash, idle };
	PGresult *res;
	bool touch;

	if (job->cookie == NULL)
		return -EACCES;
	web_session_cookie_name(space, name, sizeof(name));
	if (web_session_cookie_get(job->cookie, name, value, sizeof(value)) < 0 ||
	    strlen(value) != WEB_COOKIE_VALUE_LEN)
		return -EACCES;
	web_session_hash(value, hash);
	snprintf(idle, sizeof(idle), "%d", WEB_SESSION_IDLE);
	res = db_query(conn, "select t.id, t.role, t.name, s.csrf_token,"
	    "  s.last_seen_at < now() - interval '1 minute'"
	    " from web_sessions s join staff t on t.id = s.staff_id"
	    " where s.id_hash = $1 and s.expires_at > now()"
	    "  and s.last_seen_at > now() - make_interval(secs => $2::int)", 2, params);
	if (res == NULL)
		return -EIO;
	if (PQntuples(res) != 1 || staff_role_parse(PQgetvalue(res, 0, 1), &ret->role) < 0) {
		PQclear(res);
		return -EACCES;
	}
	ret->id = atoll(PQgetvalue(res, 0, 0));
	util_strlcpy(ret->name, PQgetvalue(res, 0, 2), sizeof(ret->name));
	util_strlcpy(ret->csrf, PQgetvalue(res, 0, 3), sizeof(ret->csrf));
	touch = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
	PQclear(res);
	/* The idle clock is moved at most once a minute: the desk polls often. */
	if (touch)
		db_exec(conn, "update web_sessions set last_seen_at = now()"
		    " where id_hash = $1", 1, params);
	return 0;
}

int
web_session_authenticate(PGconn *conn, const struct http_job *job, const char *space,
    struct web_staff *ret)
{
	size_t len;
	int r;

	r = web_session_find(conn, job, space, ret);
	if (r < 0 || job->method == HTTP_GET)
		return r;
	len = strlen(ret->csrf);
	if (job->csrf_token == NULL || strlen(job->csrf_token) != len ||
	    sodium_memcmp(job->csrf_token, ret->csrf, len) != 0)
		return -EPERM;
	return 0;
}

/* ------------------------------------------------------------ sign-in */

/* Seconds to wait before the next attempt for this name or address (0: none). */
static int
web_session_wait(PGconn *conn, const char *account, const char *address)
{
	const char *params[2] = { account, address };
	PGresult *res;
	int wait;

	res = db_query(conn, "select coalesce(ceil(extract(epoch from"
	    "  max(next_attempt_at) - now()))::int, 0) from web_signin_failures"
	    " where ((scope = 'account' and key = $1) or (scope = 'address' and key = $2))"
	    "  and next_attempt_at > now()", 2, params);
	if (res == NULL)
		return -EIO;
	wait = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return wait;
}

/*
 * Counts one failure for (scope, key); returns the failures in a row (or
 * <0) and the wait it imposes in *ret_wait.
 */
static int
web_session_count_failure(PGconn *conn, const char *scope, const char *key, int free_n,
    int *ret_wait)
{
	char freebuf[16], maxbuf[16];
	const char *params[4] = { scope, key, freebuf, maxbuf };
	PGresult *res;
	int n;

	snprintf(freebuf, sizeof(freebuf), "%d", free_n);
	snprintf(maxbuf, sizeof(maxbuf), "%d", WEB_SIGNIN_MAX_DELAY);
	res = db_query(conn,
	    "with prev as (select case when last_failure_at < now() - interval '1 hour'"
	    "   then 0 else failures end as n from web_signin_failures"
	    "   where scope = $1 and key = $2),"
	    " f as (select coalesce((select n from prev), 0) + 1 as n)"
	    " insert into web_signin_failures (scope, key, failures, last_failure_at,"
	    "  next_attempt_at)"
	    " select $1, $2, f.n, now(), now() + make_interval(secs => case"
	    "  when f.n > $3::int then least(power(2, f.n - $3::int), $4::int) else 0 end)"
	    " from f"
	    " on conflict (scope, key) do update set failures = excluded.failures,"
	    "  last_failure_at = excluded.last_failure_at,"
	    "  next_attempt_at = excluded.next_attempt_at"
	    " returning failures, ceil(extract(epoch from next_attempt_at - now()))::int",
	    4, params);
	if (res == NULL)
		return -EIO;
	n = atoi(PQgetvalue(res, 0, 0));
	*ret_wait = atoi(PQgetvalue(res, 0, 1));
	PQclear(res);
	return n;
}

static void
web_session_too_many(struct http_job *job, int wait)
{
	char s[16];

	snprintf(s, sizeof(s), "%d", wait);
	http_reply_header(job, "Retry-After", s);
	http_reply_error(job, 429, "too_many_attempts",
	    "too many failed sign-ins: try again in %d second%s", wait,
	    wait == 1 ? "" : "s");
}

void
web_session_signin(struct http_job *job, struct worker *w, PGconn *conn)
{
	const char *space = node_space_id(w->node);
	char address[64], account[128], value[WEB_COOKIE_VALUE_LEN + 8], hash[65];
	char csrf[48], life[16], sname[101], sid[32], actor[128];
	const char *name, *password;
	enum staff_role role;
	long long id;
	cJSON *req = NULL, *o;
	PGresult *res;
	bool https;
	int r, wait;

	if (job->method != HTTP_POST) {
		http_reply_error(job, 405, "method_not_allowed", "sign in with POST");
		return;
	}
	/* A cross-site form cannot send JSON: no sign-in forged from elsewhere. */
	if (job->req_content_type == NULL ||
	    strncasecmp(job->req_content_type, "application/json", 16) != 0) {
		http_reply_error(job, 415, "unsupported_media_type",
		    "sign in with a JSON body (Content-Type: application/json)");
		return;
	}
	if ((req = http_job_json(job)) == NULL)
		return;
	name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "name"));
	password = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "password"));
	if (name == NULL || password == NULL || name[0] == '\0' || strlen(name) > 100) {
		http_reply_error(job, 400, "bad_request",
		    "expected {\"name\": ACCOUNT, \"password\": PASSWORD}");
		goto out;
	}
	web_session_client(job, node_config(w->node), address, sizeof(address), &https);
	util_strlcpy(account, name, sizeof(account));

	wait = web_session_wait(conn, account, address);
	if (wait < 0) {
		http_reply_error(job, 503, "unavailable", "database error");
		goto out;
	}
	if (wait > 0) {
		log_warnx("sign-in as '%s' from %s refused: %d s to wait after failed"
		    " attempts", account, address, wait);
		web_session_too_many(job, wait);
		goto out;
	}

	r = staff_check_password(conn, name, password, &id, &role, sname, sizeof(sname));
	if (r == -EIO) {
		http_reply_error(job, 503, "unavailable", "database error");
		goto out;
	}
	if (r < 0) {
		int wa = 0, wb = 0, n;
		char detail[128];

		n = web_session_count_failure(conn, "account", account,
		    WEB_SIGNIN_FREE_ACCOUNT, &wa);
		if (web_session_count_failure(conn, "address", address,
		    WEB_SIGNIN_FREE_ADDRESS, &wb) < 0 || n < 0) {
			http_reply_error(job, 503, "unavailable", "database error");
			goto out;
		}
		wait = wa > wb ? wa : wb;
		snprintf(detail, sizeof(detail), "from %s, %d in a row", address, n);
		web_session_audit(conn, "web", "web.signin_failed", account, detail);
		log_warnx("failed sign-in as '%s' from %s (%d in a row; next attempt"
		    " in %d s)", account, address, n, wait);
		http_reply_error(job, 401, "bad_credentials", "wrong name or password");
		goto out;
	}

	/*
	 * Signed in: the account's count and the address's start again, so
	 * that staff behind one proxy or one NAT do not inherit the waits of
	 * each other's typing mistakes.
	 */
	{
		const char *params[2] = { account, address };

		db_exec(conn, "delete from web_signin_failures where (scope = 'account'"
		    " and key = $1) or (scope = 'address' and key = $2)", 2, params);
		db_exec(conn, "delete from web_sessions where expires_at < now()", 0, NULL);
	}
	util_random_token(value, 32);
	util_random_token(csrf, 32);
	web_session_hash(value, hash);
	snprintf(sid, sizeof(sid), "%lld", id);
	snprintf(life, sizeof(life), "%d", WEB_SESSION_LIFETIME);
	{
		const char *params[5] = { hash, sid, csrf, address, life };

		res = db_query(conn, "insert into web_sessions (id_hash, staff_id,"
		    " csrf_token, remote, expires_at) values ($1, $2, $3, $4,"
		    " now() + make_interval(secs => $5::int))"
		    " returning to_char(expires_at at time zone 'UTC',"
		    "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", 5, params);
	}
	if (res == NULL) {
		http_reply_error(job, 503, "unavailable", "database error");
		goto out;
	}
	snprintf(actor, sizeof(actor), "staff:%s", sname);
	web_session_audit(conn, actor, "web.signin", sname, address);
	log_info("signed in: '%s' (%s) from %s", sname, staff_role_name(role), address);
	web_session_set_cookie(job, space, value, WEB_SESSION_LIFETIME, https);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", sname);
	cJSON_AddStringToObject(o, "role", staff_role_name(role));
	cJSON_AddStringToObject(o, "space", space);
	cJSON_AddStringToObject(o, "csrf", csrf);
	cJSON_AddStringToObject(o, "expires_at", PQgetvalue(res, 0, 0));
	PQclear(res);
	http_reply_json(job, 200, o);
	sodium_memzero(value, sizeof(value));
out:
	if (req != NULL) {
		cJSON *pw = cJSON_GetObjectItemCaseSensitive(req, "password");

		if (cJSON_IsString(pw))
			sodium_memzero(pw->valuestring, strlen(pw->valuestring));
	}
	cJSON_Delete(req);
}

void
web_session_signout(struct web_ctx *c)
{
	const char *space = node_space_id(c->w->node);
	char name[96], value[WEB_COOKIE_VALUE_LEN + 8], hash[65], address[64];
	const char *params[1] = { hash };
	cJSON *o;
	bool https;

	web_session_client(c->job, node_config(c->w->node), address, sizeof(address), &https);
	web_session_cookie_name(space, name, sizeof(name));
	if (c->job->cookie != NULL &&
	    web_session_cookie_get(c->job->cookie, name, value, sizeof(value)) == 0) {
		web_session_hash(value, hash);
		if (db_exec(c->conn, "delete from web_sessions where id_hash = $1", 1,
		    params) < 0) {
			http_reply_error(c->job, 503, "unavailable", "database error");
			return;
		}
		web_session_audit(c->conn, c->actor, "web.signout", c->name, NULL);
	}
	web_session_set_cookie(c->job, space, "", 0, https);
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "signed_out", true);
	http_reply_json(c->job, 200, o);
}

int
web_session_end_all(PGconn *conn, const char *staff_name)
{
	const char *params[1] = { staff_name };

	return db_exec(conn, "delete from web_sessions where staff_id in"
	    " (select id from staff where name = $1)", 1, params);
}
