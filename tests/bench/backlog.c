/*
 * backlog.c - an outbox backlog for the benchmark: N real cross visits, all
 * admitted by the home and checked out at the host while the home could not
 * be reached, so that N signed completions wait in the host's outbox.
 *
 * Each visit is written as the nodes would have written it, in bulk (one
 * statement per database and batch of BACKLOG_BATCH visits):
 *
 * at the home (HOME.conf's database), one new member per visit (the home
 * lets a member hold one open visit at a time), with the columns of
 * member_add() and a pass signed with the home's pass key (pass_sign(), as
 * bench_mint does); the 'initial' ledger row, then what home_decide() wrote
 * when it admitted the visit: the ticket debit (members.tickets - 1 and its
 * 'visit' movement, actor 'host:HOST') and the home_visits row (decision
 * 'admit', the request hash of home_request_hash() over the body the host
 * sent, the stored response of home_answer_body() with a receipt signed by
 * the home's key, the rate the host announced), still open;
 *
 * at the host (HOST.conf's database), the host_visits row as the check-in
 * (visit_update_sql) then visit_check_out() left it: closed, display name
 * dropped, units by the host's rule ([visit] half_day_max), the home's
 * receipt, and the completion signed with the host's key as
 * visit_sign_completion() signs it; and the outbox row visit_check_out()
 * queued (kind 'complete', member = the pseudonym, the same payload), with
 * one failed attempt behind it (the home was unreachable), due now.
 *
 * The rate and currency are the terms the host has with the home (or its
 * defaults), read with terms_get() as the check-in does.  Visits are spread
 * over the last twelve hours; one in four lasts longer than half_day_max
 * (two units).
 *
 * Usage: bench_backlog --host HOST.conf --home HOME.conf --count N
 *            [--tickets T] [--ids FILE]
 * Both databases must exist and be migrated (start the nodes once).  The
 * host's node must be stopped (its couriers would start draining); its
 * embedded PostgreSQL is started for the time of the run if needed.  --ids
 * writes the visit ids, one per line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "node.h"
#include "pass.h"
#include "terms.h"
#include "util.h"
#include "visit.h"

#define BACKLOG_BATCH 5000

/* One array literal being built ("{" first, "}" added at the end). */
struct arr {
	char *buf;
	size_t len, cap;
	int n;
};

static int
arr_reserve(struct arr *a, size_t more)
{
	if (a->len + more + 4 > a->cap) {
		size_t ncap = (a->len + more + 4) * 2;
		char *nb = realloc(a->buf, ncap);

		if (nb == NULL)
			return -ENOMEM;
		a->buf = nb;
		a->cap = ncap;
	}
	return 0;
}

static void
arr_reset(struct arr *a)
{
	a->len = 0;
	a->n = 0;
	if (arr_reserve(a, 1) == 0) {
		a->buf[a->len++] = '{';
		a->buf[a->len] = '\0';
	}
}

/* Appends s quoted, with '"' and '\' escaped as array literals want. */
static int
arr_add(struct arr *a, const char *s)
{
	size_t n = strlen(s);

	if (arr_reserve(a, 2 * n + 3) < 0)
		return -ENOMEM;
	if (a->n++ > 0)
		a->buf[a->len++] = ',';
	a->buf[a->len++] = '"';
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			a->buf[a->len++] = '\\';
		a->buf[a->len++] = *s;
	}
	a->buf[a->len++] = '"';
	a->buf[a->len] = '\0';
	return 0;
}

static const char *
arr_close(struct arr *a)
{
	a->buf[a->len++] = '}';
	a->buf[a->len] = '\0';
	return a->buf;
}

/* RFC 3339 as to_char(... 'YYYY-MM-DD"T"HH24:MI:SS"Z"') gives it (truncated). */
static void
fmt_rfc3339(int64_t us, char out[32])
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A timestamptz literal with its microseconds. */
static void
fmt_pg(int64_t us, char out[48])
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;
	char b[32];

	gmtime_r(&s, &tm);
	strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out, 48, "%s.%06d+00", b, (int)(us % 1000000));
}

/* The home's side of a batch: members, passes, ledger, admitted visits. */
static const char home_sql[] =
    "with m as (insert into members (pseudonym, display_name, full_name, plan,"
    "   tickets, created_at)"
    "   select u.p, u.d, 'Bench visitor ' || u.d, 'tickets', $8::int - 1,"
    "   to_timestamp($10)"
    "   from unnest($1::text[], $2::text[]) as u(p, d)"
    "   returning id, pseudonym),"
    " j as (select m.id, u.* from m join unnest($1::text[], $3::text[],"
    "   $4::uuid[], $5::text[], $6::text[], $7::timestamptz[], $15::text[])"
    "   as u(p, jti, v, h, r, a, d) on u.p = m.pseudonym),"
    " mv as (insert into ticket_movements (member_id, delta, reason, visit_id,"
    "   actor, at)"
    "   select id, $8::int, 'initial', null::uuid, 'bench:backlog', to_timestamp($10)"
    "   from m union all select id, -1, 'visit', v, 'host:' || $12, a from j),"
    " pass as (insert into passes (jti, member_id, kid, issued_at, expires_at, digest)"
    "   select jti, id, $9, to_timestamp($10), to_timestamp($11), decode(d, 'hex')"
    "   from j)"
    " insert into home_visits (visit_id, host, member_id, jti, decision, reason_code,"
    "   request_hash, response, rate_cents, currency, authorized_at)"
    " select v, $12, id, jti, 'admit', null, h, r, $13::int, $14, a from j";

/* The host's side: closed visits with their completion, and the outbox. */
static const char host_sql[] =
    "with v as (insert into host_visits (visit_id, home, pseudonym, display_name,"
    "   plan, jti, status, reason_code, reason, receipt, tickets_left, checked_in_at,"
    "   checked_out_at, units, rate_cents, currency, completion)"
    "   select u.v, $2, u.p, null, 'tickets', u.j, 'closed', null, null, u.r,"
    "   $6::int, u.i, u.o, u.n, $10::int, $11, u.c"
    "   from unnest($1::uuid[], $3::text[], $4::text[], $5::text[],"
    "   $7::timestamptz[], $8::timestamptz[], $9::int[], $12::text[])"
    "   as u(v, p, j, r, i, o, n, c))"
    " insert into outbox (peer, kind, visit_id, payload, member, attempts,"
    "   last_error, next_attempt_at, created_at)"
    " select $2, 'complete', u.v, u.pl, u.p, 1, $14, u.o + interval '2 seconds', u.o"
    " from unnest($1::uuid[], $3::text[], $8::timestamptz[], $13::text[])"
    "   as u(v, p, o, pl) order by u.o";

enum {
	A_SUB, A_NAME, A_JTI, A_VISIT, A_HASH, A_RESP, A_AUTH, A_RECEIPT,
	A_IN, A_OUT, A_UNITS, A_COMPL, A_PAYLOAD, A_DIGEST, A_COUNT
};

static void
usage(void)
{
	fprintf(stderr, "usage: bench_backlog --host HOST.conf --home HOME.conf --count N"
	    " [--tickets T] [--ids FILE]\n");
}

static int
open_node(const char *path, struct config **cfg, struct node **node, PGconn **conn)
{
	char err[512];

	if (config_load(path, stderr, cfg) < 0)
		return -1;
	if (node_open(node, *cfg, NODE_NEED_DATABASE | NODE_MIGRATE | NODE_NEED_PASS_KEY,
	    err, sizeof(err)) < 0 || node_db_connect(*node, conn, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_backlog: %s: %s\n", path, err);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "home", required_argument, NULL, 'M' },
		{ "count", required_argument, NULL, 'n' },
		{ "tickets", required_argument, NULL, 't' },
		{ "ids", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host_conf = NULL, *home_conf = NULL, *ids_path = NULL;
	long count = 0, tickets = 1000000;
	struct config *hcfg = NULL, *mcfg = NULL;
	struct node *hnode = NULL, *mnode = NULL;
	PGconn *hconn = NULL, *mconn = NULL;
	struct arr a[A_COUNT];
	struct terms ht, mt;
	FILE *ids = NULL;
	uint8_t sk[64];
	char kid[64], home[64], host[64];
	int64_t t_start = util_monotonic_us(), now_us, t0_us, iat, exp;
	long spread_us = 4L * 3600 * 1000000;
	int ch, rc = 1;

	memset(a, 0, sizeof(a));
	while ((ch = getopt_long(argc, argv, "H:M:n:t:i:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': host_conf = optarg; break;
		case 'M': home_conf = optarg; break;
		case 'n': count = atol(optarg); break;
		case 't': tickets = atol(optarg); break;
		case 'i': ids_path = optarg; break;
		default: usage(); return 2;
		}
	}
	if (host_conf == NULL || home_conf == NULL || count <= 0 || tickets <= 1 ||
	    tickets > 1000000000) {
		usage();
		return 2;
	}
	log_init(LOG_LEVEL_WARN, "bench_backlog");
	if (open_node(home_conf, &mcfg, &mnode, &mconn) < 0 ||
	    open_node(host_conf, &hcfg, &hnode, &hconn) < 0)
		goto out;
	util_strlcpy(home, node_space_id(mnode), sizeof(home));
	util_strlcpy(host, node_space_id(hnode), sizeof(host));
	if (node_pass_key(mnode, sk, kid, sizeof(kid)) < 0) {
		fprintf(stderr, "bench_backlog: no pass key for %s\n", home);
		goto out;
	}
	/* The terms the check-in applied: the host's with the home, and back. */
	if (terms_get(hcfg, hconn, home, &ht) < 0 || terms_get(mcfg, mconn, host, &mt) < 0) {
		fprintf(stderr, "bench_backlog: cannot read the terms\n");
		goto out;
	}
	if (!ht.host_accept || !mt.allow_roaming) {
		fprintf(stderr, "bench_backlog: the terms between %s and %s refuse these"
		    " visits\n", host, home);
		goto out;
	}
	if (ids_path != NULL && (ids = fopen(ids_path, "w")) == NULL) {
		fprintf(stderr, "bench_backlog: %s: %s\n", ids_path, strerror(errno));
		goto out;
	}
	now_us = util_now() * 1000000;
	t0_us = now_us - 12LL * 3600 * 1000000;
	iat = t0_us / 1000000 - 86400;		/* passes issued the day before */
	exp = iat + mcfg->pass_lifetime;
	if (exp <= now_us / 1000000)
		exp = now_us / 1000000 + 86400;

	for (long done = 0; done < count;) {
		long n = count - done < BACKLOG_BATCH ? count - done : BACKLOG_BATCH;
		char tl_s[16], tk_s[16], rate_s[16], iat_s[32], exp_s[32];
		const char *p[15];
		int r = 0;

		for (int k = 0; k < A_COUNT; k++)
			arr_reset(&a[k]);
		for (long i = 0; i < n && r == 0; i++) {
			long seq = done + i;
			struct pass_claims c;
			char visit_id[37], hash[65], in_s[32], out_s[32], in_pg[48], out_pg[48];
			char digest[65], body_rate[48], units_s[8], *token = NULL, *receipt = NULL,
			    *completion = NULL, *resp = NULL, *payload = NULL, *hin = NULL;
			int64_t in_us, out_us, dur;
			int units;
			cJSON *o;

			memset(&c, 0, sizeof(c));
			util_strlcpy(c.iss, home, sizeof(c.iss));
			util_random_id(c.sub, 9);
			snprintf(c.name, sizeof(c.name), "O.%06ld", seq);
			util_strlcpy(c.plan, "tickets", sizeof(c.plan));
			util_strlcpy(c.kid, kid, sizeof(c.kid));
			util_random_id(c.jti, 9);
			c.iat = iat;
			c.nbf = iat;
			c.exp = exp;
			if (pass_sign(&c, sk, &token) < 0) {
				r = -EIO;
				break;
			}
			pass_digest(token, digest);
			util_uuid_v4(visit_id);
			/* Times: check-ins over four hours, 1 in 4 stays a full day. */
			in_us = t0_us + (int64_t)((double)seq * spread_us / count) +
			    (int64_t)randombytes_uniform(1000000);
			dur = (seq % 4 == 3 ? 6 * 3600 : 2 * 3600) + (int64_t)(seq % 3600);
			out_us = in_us + dur * 1000000;
			units = dur <= hcfg->half_day_max ? 1 : 2;
			fmt_rfc3339(in_us, in_s);
			fmt_rfc3339(out_us, out_s);
			fmt_pg(in_us, in_pg);
			fmt_pg(out_us, out_pg);

			/* home_request_hash() over the body visit_authorize_body() made. */
			snprintf(body_rate, sizeof(body_rate), "%d %s", ht.rate_cents, ht.currency);
			hin = util_aprintf("%s\n%s\n%s\n%s\n", host, visit_id, token, body_rate);
			if (hin == NULL) {
				r = -ENOMEM;
				goto next;
			}
			util_sha256_hex(hin, strlen(hin), hash);

			/* home_sign_receipt(): the home's signature over its decision. */
			o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "visit_id", visit_id);
			cJSON_AddStringToObject(o, "home", home);
			cJSON_AddStringToObject(o, "host", host);
			cJSON_AddStringToObject(o, "sub", c.sub);
			cJSON_AddStringToObject(o, "jti", c.jti);
			cJSON_AddStringToObject(o, "decision", "admit");
			cJSON_AddNumberToObject(o, "tickets_left", (double)(tickets - 1));
			cJSON_AddNumberToObject(o, "rate_cents", ht.rate_cents);
			cJSON_AddStringToObject(o, "currency", ht.currency);
			cJSON_AddNumberToObject(o, "iat", (double)(in_us / 1000000));
			r = node_sign(mnode, "receipt", o, &receipt) < 0 ? -EIO : 0;
			cJSON_Delete(o);
			if (r < 0)
				goto next;
			/* home_answer_body(): the stored response. */
			o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "visit_id", visit_id);
			cJSON_AddStringToObject(o, "home", home);
			cJSON_AddStringToObject(o, "host", host);
			cJSON_AddStringToObject(o, "decision", "admit");
			cJSON_AddStringToObject(o, "display_name", c.name);
			cJSON_AddStringToObject(o, "plan", c.plan);
			cJSON_AddNumberToObject(o, "tickets_left", (double)(tickets - 1));
			cJSON_AddStringToObject(o, "receipt", receipt);
			resp = cJSON_PrintUnformatted(o);
			cJSON_Delete(o);

			/* The host's signature, and the payload visit_check_out() queues. */
			{
				const struct visit_completion vc = { .visit_id = visit_id,
					.home = home, .sub = c.sub, .checked_in_at = in_s,
					.checked_out_at = out_s, .units = units,
					.rate_cents = ht.rate_cents, .currency = ht.currency,
					.iat = out_us / 1000000 };

				completion = visit_sign_completion(hnode, &vc);
			}
			if (completion == NULL) {
				r = -EIO;
				goto next;
			}
			payload = visit_completion_payload(visit_id, in_s, out_s, units,
			    completion);
			if (resp == NULL || payload == NULL) {
				r = -ENOMEM;
				goto next;
			}
			snprintf(units_s, sizeof(units_s), "%d", units);
			if (arr_add(&a[A_SUB], c.sub) < 0 || arr_add(&a[A_NAME], c.name) < 0 ||
			    arr_add(&a[A_JTI], c.jti) < 0 || arr_add(&a[A_VISIT], visit_id) < 0 ||
			    arr_add(&a[A_HASH], hash) < 0 || arr_add(&a[A_RESP], resp) < 0 ||
			    arr_add(&a[A_AUTH], in_pg) < 0 ||
			    arr_add(&a[A_RECEIPT], receipt) < 0 ||
			    arr_add(&a[A_IN], in_pg) < 0 || arr_add(&a[A_OUT], out_pg) < 0 ||
			    arr_add(&a[A_UNITS], units_s) < 0 ||
			    arr_add(&a[A_COMPL], completion) < 0 ||
			    arr_add(&a[A_PAYLOAD], payload) < 0 ||
			    arr_add(&a[A_DIGEST], digest) < 0)
				r = -ENOMEM;
			if (ids != NULL)
				fprintf(ids, "%s\n", visit_id);
next:
			free(hin);
			free(token);
			free(receipt);
			free(completion);
			free(resp);
			free(payload);
		}
		if (r < 0) {
			fprintf(stderr, "bench_backlog: cannot build the batch (%s)\n",
			    strerror(-r));
			goto out;
		}
		for (int k = 0; k < A_COUNT; k++)
			arr_close(&a[k]);
		snprintf(tl_s, sizeof(tl_s), "%ld", tickets - 1);
		snprintf(tk_s, sizeof(tk_s), "%ld", tickets);
		snprintf(rate_s, sizeof(rate_s), "%d", ht.rate_cents);
		snprintf(iat_s, sizeof(iat_s), "%lld", (long long)iat);
		snprintf(exp_s, sizeof(exp_s), "%lld", (long long)exp);

		/* The home first: an outbox row never names a visit it lacks. */
		p[0] = a[A_SUB].buf;
		p[1] = a[A_NAME].buf;
		p[2] = a[A_JTI].buf;
		p[3] = a[A_VISIT].buf;
		p[4] = a[A_HASH].buf;
		p[5] = a[A_RESP].buf;
		p[6] = a[A_AUTH].buf;
		p[7] = tk_s;
		p[8] = kid;
		p[9] = iat_s;
		p[10] = exp_s;
		p[11] = host;
		p[12] = rate_s;
		p[13] = ht.currency;
		p[14] = a[A_DIGEST].buf;
		if (db_exec(mconn, home_sql, 15, p) < 0) {
			fprintf(stderr, "bench_backlog: cannot write at %s (%s)\n", home,
			    db_last_sqlstate());
			goto out;
		}
		p[0] = a[A_VISIT].buf;
		p[1] = home;
		p[2] = a[A_SUB].buf;
		p[3] = a[A_JTI].buf;
		p[4] = a[A_RECEIPT].buf;
		p[5] = tl_s;
		p[6] = a[A_IN].buf;
		p[7] = a[A_OUT].buf;
		p[8] = a[A_UNITS].buf;
		p[9] = rate_s;
		p[10] = ht.currency;
		p[11] = a[A_COMPL].buf;
		p[12] = a[A_PAYLOAD].buf;
		p[13] = "bench: the home could not be reached";
		if (db_exec(hconn, host_sql, 14, p) < 0) {
			fprintf(stderr, "bench_backlog: cannot write at %s (%s)\n", host,
			    db_last_sqlstate());
			goto out;
		}
		done += n;
	}
	if (ids != NULL) {
		int e = fclose(ids);

		ids = NULL;
		if (e != 0) {
			fprintf(stderr, "bench_backlog: %s: %s\n", ids_path, strerror(errno));
			goto out;
		}
	}
	/* Fresh statistics, as autovacuum would soon have them. */
	(void)db_exec(mconn, "analyze members, passes, ticket_movements, home_visits", 0,
	    NULL);
	(void)db_exec(hconn, "analyze host_visits, outbox", 0, NULL);
	printf("backlog: %ld visits of %s members checked out at %s; %ld completions"
	    " wait in %s's outbox (%.1f s)\n", count, home, host, count, host,
	    (double)(util_monotonic_us() - t_start) / 1e6);
	rc = 0;
out:
	if (ids != NULL)
		fclose(ids);
	for (int k = 0; k < A_COUNT; k++)
		free(a[k].buf);
	if (hconn != NULL)
		PQfinish(hconn);
	if (mconn != NULL)
		PQfinish(mconn);
	node_close(hnode);
	node_close(mnode);
	config_free(hcfg);
	config_free(mcfg);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}
