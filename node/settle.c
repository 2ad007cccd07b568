/*
 * settle.c - netting the federation's agreed statements into transfers.
 *
 * Every node publishes, signed, the balances of its statements for a month
 * (GET /federation/v1/balances): per peer and currency, what the peer owes
 * it, what it owes the peer, and the statement's status.  `passerelle
 * settle --month YYYY-MM` fetches them from every space of the directory
 * and keeps a pair of spaces only when both sides agreed their statements
 * and the amounts mirror each other (what A says B owes it is what B says it
 * owes A); any other pair is held back and reported, as roaming clearing
 * holds back disputed records.  The kept pairs give each space a net
 * position per currency, and the positions become transfers by a greedy
 * rule that any node recomputes identically (settle_transfers).
 *
 * Nothing here moves money or changes a statement: a settlement is a list
 * to act on, with a digest that lets the spaces check they all see the same.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <sodium.h>

#include "cli.h"
#include "db.h"
#include "log.h"
#include "peer.h"
#include "reconcile.h"
#include "server.h"
#include "settle.h"
#include "util.h"

#define SETTLE_TYP "balances"
#define SETTLE_MAX_STATEMENTS 10000
#define SETTLE_PEER_TIMEOUT_MS 15000
/* Cents beyond 2^53 would not survive JSON numbers. */
#define SETTLE_MAX_CENTS 9007199254740991.0

/* ------------------------------------------------------------- netting */

/* The largest position of one sign, ties to the smaller space id. */
static ssize_t
settle_pick(const struct settle_position *w, size_t n, int sign)
{
	ssize_t best = -1;

	for (size_t i = 0; i < n; i++) {
		int64_t v = w[i].cents * sign;

		if (v <= 0)
			continue;
		if (best < 0 || v > w[best].cents * sign ||
		    (v == w[best].cents * sign && strcmp(w[i].space, w[best].space) < 0))
			best = (ssize_t)i;
	}
	return best;
}

int
settle_transfers(const struct settle_position *pos, size_t n,
    struct settle_transfer **ret, size_t *ret_n)
{
	struct settle_position *w;
	struct settle_transfer *t = NULL;
	size_t nt = 0;
	int64_t sum = 0;

	*ret = NULL;
	*ret_n = 0;
	for (size_t i = 0; i < n; i++)
		sum += pos[i].cents;
	if (sum != 0)
		return -EINVAL;
	if (n < 2)
		return 0;
	w = malloc(n * sizeof(*w));
	t = malloc((n - 1) * sizeof(*t));
	if (w == NULL || t == NULL) {
		free(w);
		free(t);
		return -ENOMEM;
	}
	memcpy(w, pos, n * sizeof(*w));
	/*
	 * Each round settles at least one space in full (the smaller of the
	 * two amounts), and the last round settles two, since the positions
	 * sum to zero: hence at most n - 1 transfers.
	 */
	for (;;) {
		ssize_t c = settle_pick(w, n, 1), d = settle_pick(w, n, -1);
		int64_t amount;

		if (c < 0 || d < 0 || nt == n - 1)
			break;
		amount = w[c].cents < -w[d].cents ? w[c].cents : -w[d].cents;
		util_strlcpy(t[nt].from, w[d].space, sizeof(t[nt].from));
		util_strlcpy(t[nt].to, w[c].space, sizeof(t[nt].to));
		t[nt].cents = amount;
		nt++;
		w[c].cents -= amount;
		w[d].cents += amount;
	}
	free(w);
	if (nt == 0) {
		free(t);
		t = NULL;
	}
	*ret = t;
	*ret_n = nt;
	return 0;
}

/* ------------------------------------------------------------- publishing */

int
settle_balances(struct node *node, PGconn *conn, const char *month, cJSON **ret)
{
	const char *params[1] = { month };
	PGresult *res;
	cJSON *o, *a;

	if (!reconcile_month_valid(month))
		return -EINVAL;
	res = db_query(conn, "select " RECONCILE_STATEMENT_COLUMNS ", digest"
	    " from statements where month = $1 order by peer, currency", 1, params);
	if (res == NULL)
		return -EIO;
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "space", node_space_id(node));
	cJSON_AddStringToObject(o, "month", month);
	cJSON_AddNumberToObject(o, "iat", (double)util_now());
	a = cJSON_AddArrayToObject(o, "statements");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *s = reconcile_statement_json(res, i);

		cJSON_AddStringToObject(s, "digest", PQgetvalue(res, i, 7));
		cJSON_AddItemToArray(a, s);
	}
	PQclear(res);
	*ret = o;
	return 0;
}

void
settle_fed_balances(struct http_job *job, struct worker *w)
{
	char *month = NULL, *token = NULL;
	cJSON *p = NULL;
	PGconn *conn;

	if (job->method != HTTP_GET) {
		http_reply_error(job, 405, "method_not_allowed", "use GET");
		return;
	}
	month = http_job_query(job, "month");
	if (!reconcile_month_valid(month)) {
		http_reply_error(job, 400, "bad_request", "expected ?month=YYYY-MM");
		goto out;
	}
	conn = server_worker_db(w);
	if (conn == NULL || settle_balances(w->node, conn, month, &p) < 0) {
		http_reply_error(job, 503, "unavailable", "cannot read the statements; retry");
		goto out;
	}
	if (node_sign(w->node, SETTLE_TYP, p, &token) < 0) {
		http_reply_error(job, 503, "unavailable", "cannot sign the balances");
		goto out;
	}
	job->status = 200;
	job->content_type = "application/jose";
	job->resp_body = token;
out:
	cJSON_Delete(p);
	free(month);
}

/* ------------------------------------------------------------- gathering */

/* What one space published (or why we have nothing from it). */
struct settle_source {
	char space[64];
	cJSON *payload;		/* verified; NULL when unreachable */
	char *token;
	char error[256];
};

/* One space's statement with a peer, as it published it. */
struct settle_view {
	const char *space, *peer, *currency, *status;
	int64_t receivable, payable;
};

/* A pair of spaces in one currency, a < b. */
struct settle_pair {
	const char *a, *b, *currency;
	bool agreed;
	int64_t b_owes_a;
	char reason[320];
};

static bool
settle_cents(const cJSON *o, const char *name, int64_t *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v) || v->valuedouble < -SETTLE_MAX_CENTS ||
	    v->valuedouble > SETTLE_MAX_CENTS ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return false;
	*ret = (int64_t)v->valuedouble;
	return true;
}


/* Our own balances, signed as a peer would get them. */
static int
settle_gather_self(struct cli_session *s, const char *month, struct settle_source *src)
{
	int r = settle_balances(s->node, s->conn, month, &src->payload);

	if (r == 0 && node_sign(s->node, SETTLE_TYP, src->payload, &src->token) < 0)
		src->token = NULL;
	if (r < 0)
		snprintf(src->error, sizeof(src->error), "cannot read our statements");
	return r;
}

static int
settle_gather_peer(struct node *node, struct peer_client *pc, const char *month,
    struct settle_source *src)
{
	struct peer_response resp;
	char path[96];
	int r;

	snprintf(path, sizeof(path), "/federation/v1/balances?month=%s", month);
	r = peer_call(pc, src->space, "GET", path, NULL, NULL, SETTLE_PEER_TIMEOUT_MS,
	    &resp);
	if (r < 0) {
		snprintf(src->error, sizeof(src->error), "unreachable: %.200s", resp.error);
		goto out;
	}
	if (resp.status != 200) {
		snprintf(src->error, sizeof(src->error), "answered %ld: %.160s",
		    resp.status, resp.body != NULL ? resp.body : "");
		r = -EPROTO;
		goto out;
	}
	r = node_verify_signed(node, resp.body, SETTLE_TYP, src->space, &src->payload);
	if (r < 0) {
		snprintf(src->error, sizeof(src->error), "its balances do not verify with"
		    " its key in the directory");
		goto out;
	}
	src->token = resp.body;
	resp.body = NULL;
out:
	peer_response_clear(&resp);
	return r;
}

/* One published statement, checked; false when malformed. */
static bool
settle_view_parse(const cJSON *s, const char *space, struct settle_view *v)
{
	memset(v, 0, sizeof(*v));
	v->space = space;
	v->peer = util_json_string(s, "peer");
	v->currency = util_json_string(s, "currency");
	v->status = util_json_string(s, "status");
	return v->peer != NULL && v->currency != NULL && strlen(v->currency) == 3 &&
	    v->status != NULL && settle_cents(s, "receivable_cents", &v->receivable) &&
	    settle_cents(s, "payable_cents", &v->payable) && strcmp(v->peer, space) != 0;
}

/*
 * Adds the views a source published, all checked first (they point into
 * its payload, which is dropped when malformed); -EBADMSG when malformed.
 */
static int
settle_views(const struct settle_source *src, const char *month,
    struct settle_view **views, size_t *n, size_t *cap)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(src->payload, "statements"), *s;
	const char *space = util_json_string(src->payload, "space");
	const char *m = util_json_string(src->payload, "month");
	struct settle_view v;
	size_t count;

	if (space == NULL || strcmp(space, src->space) != 0 || m == NULL ||
	    strcmp(m, month) != 0 || !cJSON_IsArray(a) ||
	    cJSON_GetArraySize(a) > SETTLE_MAX_STATEMENTS)
		return -EBADMSG;
	cJSON_ArrayForEach(s, a)
		if (!settle_view_parse(s, src->space, &v))
			return -EBADMSG;
	count = (size_t)cJSON_GetArraySize(a);
	if (*n + count > *cap) {
		size_t ncap = *n + count + 16;
		struct settle_view *nv = realloc(*views, ncap * sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		*views = nv;
		*cap = ncap;
	}
	cJSON_ArrayForEach(s, a)
		(void)settle_view_parse(s, src->space, &(*views)[(*n)++]);
	return 0;
}

static const struct settle_view *
settle_find_view(const struct settle_view *views, size_t n, const char *space,
    const char *peer, const char *currency)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(views[i].space, space) == 0 && strcmp(views[i].peer, peer) == 0 &&
		    strcmp(views[i].currency, currency) == 0)
			return &views[i];
	return NULL;
}

static int
settle_pair_cmp(const void *x, const void *y)
{
	const struct settle_pair *p = x, *q = y;
	int c = strcmp(p->currency, q->currency);

	if (c == 0)
		c = strcmp(p->a, q->a);
	if (c == 0)
		c = strcmp(p->b, q->b);
	return c;
}

static int
settle_source_cmp(const void *x, const void *y)
{
	const struct settle_source *p = x, *q = y;

	return strcmp(p->space, q->space);
}

static int
settle_str_cmp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static const struct settle_source *
settle_source(const struct settle_source *srcs, size_t n, const char *space)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(srcs[i].space, space) == 0)
			return &srcs[i];
	return NULL;
}

/*
 * Decides one pair: kept when both sides agreed and mirror each other.  A
 * side with no statement counts as agreeing that nothing is owed.
 */
static void
settle_decide(struct settle_pair *p, const struct settle_source *srcs, size_t nsrc,
    const struct settle_view *views, size_t nviews)
{
	const struct settle_source *sa = settle_source(srcs, nsrc, p->a);
	const struct settle_source *sb = settle_source(srcs, nsrc, p->b);
	const struct settle_view *va = settle_find_view(views, nviews, p->a, p->b,
	    p->currency);
	const struct settle_view *vb = settle_find_view(views, nviews, p->b, p->a,
	    p->currency);
	int64_t ar = va != NULL ? va->receivable : 0, ap = va != NULL ? va->payable : 0;
	int64_t br = vb != NULL ? vb->receivable : 0, bp = vb != NULL ? vb->payable : 0;
	char x[32], y[32];

	p->agreed = false;
	if (sa->payload == NULL || sb->payload == NULL) {
		snprintf(p->reason, sizeof(p->reason), "no balances from %s (%s)",
		    sa->payload == NULL ? p->a : p->b,
		    sa->payload == NULL ? sa->error : sb->error);
	} else if (va != NULL && strcmp(va->status, "agreed") != 0) {
		snprintf(p->reason, sizeof(p->reason), "%s's statement is %s, not agreed",
		    p->a, va->status);
	} else if (vb != NULL && strcmp(vb->status, "agreed") != 0) {
		snprintf(p->reason, sizeof(p->reason), "%s's statement is %s, not agreed",
		    p->b, vb->status);
	} else if (ar != bp || ap != br) {
		reconcile_format_cents(ar - ap, x);
		reconcile_format_cents(bp - br, y);
		snprintf(p->reason, sizeof(p->reason), "the statements disagree: %s says"
		    " %s owes it %s, %s says it owes %s %s%s", p->a, p->b, x, p->b, p->a, y,
		    va == NULL || vb == NULL ? " (one side has no statement)" : "");
	} else {
		p->agreed = true;
		p->b_owes_a = ar - ap;
	}
}

/* ------------------------------------------------------------- settling */

/* Everything one `settle` gathers and computes. */
struct settle_run {
	const char *month;
	struct settle_source *srcs;	/* every space of the directory, sorted */
	size_t nsrc;
	struct settle_view *views;
	size_t nviews, capviews;
	struct settle_pair *pairs;	/* sorted by currency, a, b */
	size_t npairs;
	const char **currencies;	/* of the kept pairs, sorted */
	size_t ncur;
};

/* Every space's balances: ours from the database, the others' signed. */
static int
settle_gather(struct settle_run *run, struct cli_session *s, struct peer_client *pc)
{
	struct node_directory *nd = node_directory_current(s->node);

	run->srcs = calloc(directory_count(nd->dir) + 1, sizeof(*run->srcs));
	for (size_t i = 0; run->srcs != NULL && i < directory_count(nd->dir); i++)
		util_strlcpy(run->srcs[run->nsrc++].space,
		    directory_space_at(nd->dir, i)->id, sizeof(run->srcs[0].space));
	node_directory_put(s->node, nd);
	if (run->srcs == NULL)
		return -ENOMEM;
	qsort(run->srcs, run->nsrc, sizeof(*run->srcs), settle_source_cmp);
	for (size_t i = 0; i < run->nsrc; i++) {
		struct settle_source *src = &run->srcs[i];
		int r = strcmp(src->space, node_space_id(s->node)) == 0 ?
		    settle_gather_self(s, run->month, src) :
		    settle_gather_peer(s->node, pc, run->month, src);

		if (r == 0 && (r = settle_views(src, run->month, &run->views, &run->nviews,
		    &run->capviews)) < 0) {
			if (r == -ENOMEM)
				return r;
			snprintf(src->error, sizeof(src->error), "its balances are malformed");
			cJSON_Delete(src->payload);
			src->payload = NULL;
		}
		if (src->payload == NULL)
			log_warnx("settle: nothing from %s: %s", src->space, src->error);
	}
	return 0;
}

/* The pairs that either side mentions (both in the directory), decided. */
static int
settle_pairs(struct settle_run *run)
{
	run->pairs = calloc(run->nviews + 1, sizeof(*run->pairs));
	run->currencies = calloc(run->nviews + 1, sizeof(*run->currencies));
	if (run->pairs == NULL || run->currencies == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < run->nviews; i++) {
		const struct settle_view *v = &run->views[i];
		struct settle_pair p = { 0 };
		bool seen = false;

		if (settle_source(run->srcs, run->nsrc, v->peer) == NULL)
			continue;	/* a space no longer in the directory */
		p.a = strcmp(v->space, v->peer) < 0 ? v->space : v->peer;
		p.b = strcmp(v->space, v->peer) < 0 ? v->peer : v->space;
		p.currency = v->currency;
		for (size_t k = 0; k < run->npairs && !seen; k++)
			seen = settle_pair_cmp(&run->pairs[k], &p) == 0;
		if (!seen)
			run->pairs[run->npairs++] = p;
	}
	qsort(run->pairs, run->npairs, sizeof(*run->pairs), settle_pair_cmp);
	for (size_t k = 0; k < run->npairs; k++) {
		bool seen = false;

		settle_decide(&run->pairs[k], run->srcs, run->nsrc, run->views, run->nviews);
		for (size_t c = 0; c < run->ncur && !seen; c++)
			seen = strcmp(run->currencies[c], run->pairs[k].currency) == 0;
		if (!seen && run->pairs[k].agreed)
			run->currencies[run->ncur++] = run->pairs[k].currency;
	}
	qsort(run->currencies, run->ncur, sizeof(*run->currencies), settle_str_cmp);
	return 0;
}

static void
settle_digest_line(crypto_hash_sha256_state *hs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
settle_digest_line(crypto_hash_sha256_state *hs, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	crypto_hash_sha256_update(hs, (const unsigned char *)line, strlen(line));
}

/* One currency: the net positions over the kept pairs, and the transfers. */
static int
settle_currency(const struct settle_run *run, const char *currency,
    crypto_hash_sha256_state *hs, cJSON **ret)
{
	struct settle_position *pos = calloc(run->nsrc + 1, sizeof(*pos));
	struct settle_transfer *t = NULL;
	size_t npos = 0, nt = 0;
	cJSON *co, *jp, *jt;
	int r;

	if (pos == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < run->nsrc; i++) {
		const char *space = run->srcs[i].space;
		bool involved = false;

		util_strlcpy(pos[npos].space, space, sizeof(pos[0].space));
		pos[npos].cents = 0;
		for (size_t k = 0; k < run->npairs; k++) {
			const struct settle_pair *p = &run->pairs[k];

			if (!p->agreed || strcmp(p->currency, currency) != 0)
				continue;
			if (strcmp(p->a, space) == 0) {
				pos[npos].cents += p->b_owes_a;
				involved = true;
			} else if (strcmp(p->b, space) == 0) {
				pos[npos].cents -= p->b_owes_a;
				involved = true;
			}
		}
		if (involved)
			npos++;
	}
	r = settle_transfers(pos, npos, &t, &nt);
	if (r < 0) {
		free(pos);
		return r;
	}
	co = cJSON_CreateObject();
	cJSON_AddStringToObject(co, "currency", currency);
	jp = cJSON_AddArrayToObject(co, "positions");
	jt = cJSON_AddArrayToObject(co, "transfers");
	for (size_t i = 0; i < npos; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "space", pos[i].space);
		cJSON_AddNumberToObject(o, "net_cents", (double)pos[i].cents);
		cJSON_AddItemToArray(jp, o);
	}
	for (size_t i = 0; i < nt; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "from", t[i].from);
		cJSON_AddStringToObject(o, "to", t[i].to);
		cJSON_AddNumberToObject(o, "amount_cents", (double)t[i].cents);
		cJSON_AddItemToArray(jt, o);
		settle_digest_line(hs, "transfer %s %s %s %lld\n", currency, t[i].from,
		    t[i].to, (long long)t[i].cents);
	}
	free(pos);
	free(t);
	*ret = co;
	return 0;
}

/*
 * The settlement as JSON.  Its digest covers what every node sees alike:
 * the month, each pair's outcome and the transfers, so two nodes that print
 * the same digest settle the same way.
 */
static int
settle_compute(const struct settle_run *run, int64_t serial, cJSON **ret)
{
	crypto_hash_sha256_state hs;
	unsigned char digest[32];
	char hex[65];
	cJSON *out, *jcur, *jpairs, *junreach, *jbal;

	crypto_hash_sha256_init(&hs);
	settle_digest_line(&hs, "passerelle settlement v1\nmonth %s\n", run->month);
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "month", run->month);
	cJSON_AddStringToObject(out, "month_basis", "UTC check-in time");
	cJSON_AddNumberToObject(out, "directory_serial", (double)serial);
	jcur = cJSON_AddArrayToObject(out, "currencies");
	jpairs = cJSON_AddArrayToObject(out, "pairs");
	junreach = cJSON_AddArrayToObject(out, "unreachable");
	jbal = cJSON_AddObjectToObject(out, "balances");
	for (size_t i = 0; i < run->nsrc; i++) {
		const struct settle_source *src = &run->srcs[i];

		if (src->payload == NULL) {
			cJSON *u = cJSON_CreateObject();

			cJSON_AddStringToObject(u, "space", src->space);
			cJSON_AddStringToObject(u, "reason", src->error);
			cJSON_AddItemToArray(junreach, u);
		} else if (src->token != NULL) {
			cJSON_AddStringToObject(jbal, src->space, src->token);
		}
	}
	for (size_t k = 0; k < run->npairs; k++) {
		const struct settle_pair *p = &run->pairs[k];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "a", p->a);
		cJSON_AddStringToObject(o, "b", p->b);
		cJSON_AddStringToObject(o, "currency", p->currency);
		cJSON_AddStringToObject(o, "status", p->agreed ? "agreed" : "held");
		if (p->agreed) {
			cJSON_AddNumberToObject(o, "b_owes_a_cents", (double)p->b_owes_a);
			settle_digest_line(&hs, "pair %s %s %s agreed %lld\n", p->a, p->b,
			    p->currency, (long long)p->b_owes_a);
		} else {
			cJSON_AddStringToObject(o, "reason", p->reason);
			settle_digest_line(&hs, "pair %s %s %s held\n", p->a, p->b, p->currency);
		}
		cJSON_AddItemToArray(jpairs, o);
	}
	for (size_t c = 0; c < run->ncur; c++) {
		cJSON *co;
		int r = settle_currency(run, run->currencies[c], &hs, &co);

		if (r < 0) {
			cJSON_Delete(out);
			return r;
		}
		cJSON_AddItemToArray(jcur, co);
	}
	crypto_hash_sha256_final(&hs, digest);
	util_hex(digest, sizeof(digest), hex);
	cJSON_AddStringToObject(out, "digest", hex);
	*ret = out;
	return 0;
}

static void
settle_print(const cJSON *out, size_t nspaces)
{
	const cJSON *co, *o;
	int held = 0;

	printf("Settlement for %s (UTC check-in times), from the agreed statements"
	    " of %zu spaces (directory serial %lld)\n", util_json_string(out, "month"),
	    nspaces, (long long)cJSON_GetObjectItem(out, "directory_serial")->valuedouble);
	if (cJSON_GetArraySize(cJSON_GetObjectItem(out, "currencies")) == 0)
		printf("\nNo agreed balances: nothing to transfer.\n");
	cJSON_ArrayForEach(co, cJSON_GetObjectItem(out, "currencies")) {
		const char *cur = util_json_string(co, "currency");

		printf("\n%s\n  net positions (+ is owed, - owes)\n", cur);
		cJSON_ArrayForEach(o, cJSON_GetObjectItem(co, "positions")) {
			int64_t v = (int64_t)cJSON_GetObjectItem(o, "net_cents")->valuedouble;
			char x[33];

			x[0] = '+';
			reconcile_format_cents(v, v > 0 ? x + 1 : x);
			printf("    %-20s %15s\n", util_json_string(o, "space"), x);
		}
		printf("  transfers (%d)\n", cJSON_GetArraySize(cJSON_GetObjectItem(co,
		    "transfers")));
		cJSON_ArrayForEach(o, cJSON_GetObjectItem(co, "transfers")) {
			char x[32];

			reconcile_format_cents((int64_t)cJSON_GetObjectItem(o,
			    "amount_cents")->valuedouble, x);
			printf("    %-20s pays %-20s %14s %s\n", util_json_string(o, "from"),
			    util_json_string(o, "to"), x, cur);
		}
	}
	cJSON_ArrayForEach(o, cJSON_GetObjectItem(out, "pairs"))
		if (strcmp(util_json_string(o, "status"), "held") == 0) {
			if (held++ == 0)
				printf("\nheld back (not in the transfers)\n");
			printf("  %s and %s, %s: %s\n", util_json_string(o, "a"),
			    util_json_string(o, "b"), util_json_string(o, "currency"),
			    util_json_string(o, "reason"));
		}
	if (cJSON_GetArraySize(cJSON_GetObjectItem(out, "unreachable")) > 0)
		printf("\nspaces without balances\n");
	cJSON_ArrayForEach(o, cJSON_GetObjectItem(out, "unreachable"))
		printf("  %s: %s\n", util_json_string(o, "space"), util_json_string(o, "reason"));
	printf("\ndigest %s\n", util_json_string(out, "digest"));
}

int
settle_cmd_run(int argc, char **argv)
{
	struct settle_run run = { 0 };
	const struct cli_opt opts[] = {
		{ "month", true, &run.month, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	struct peer_client *pc = NULL;
	cJSON *out = NULL;
	int r;

	if (cli_parse_options(argc, argv, opts) != argc || run.month == NULL)
		cli_die_usage("settle takes --month YYYY-MM");
	if (!reconcile_month_valid(run.month))
		cli_die_usage("--month must be YYYY-MM, not '%s'", run.month);
	cli_session_open(&s, NODE_NEED_DIRECTORY | NODE_NEED_PASS_KEY);
	r = peer_client_new(&pc, s.node);
	if (r == 0)
		r = settle_gather(&run, &s, pc);
	if (r == 0)
		r = settle_pairs(&run);
	if (r == 0)
		r = settle_compute(&run, node_directory_serial(s.node), &out);
	if (r == -EINVAL)
		r = cli_fail("the agreed balances do not sum to zero");
	else if (r < 0)
		r = cli_fail("out of memory");
	else if (cli_json)
		cli_print_json(out);
	else
		settle_print(out, run.nsrc);
	cJSON_Delete(out);
	for (size_t i = 0; run.srcs != NULL && i < run.nsrc; i++) {
		cJSON_Delete(run.srcs[i].payload);
		free(run.srcs[i].token);
	}
	free(run.srcs);
	free(run.views);
	free(run.pairs);
	free(run.currencies);
	peer_client_free(pc);
	cli_session_close(&s);
	return r;
}
