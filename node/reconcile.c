/*
 * reconcile.c - month-end reconciliation of the visits shared with one peer.
 *
 * Each node keeps its own record of every visit it took part in: as host
 * (host_visits, with the home's signed receipt and its own signed
 * completion) and as home (home_visits, with the receipt it signed and the
 * host's completion).  At the end of a month a manager runs `passerelle
 * reconcile --peer SPACE --month YYYY-MM`: this node fetches the peer's
 * ledger (ledger.c: GET /federation/v1/ledger, mutual TLS, signed page by
 * page), builds its own with the same code, and compares them visit by
 * visit, checking each side's copy of the evidence.  Each
 * line is matched, only on one side, differs in units or in rate, lacks its
 * evidence or carries evidence that does not verify; provisional and
 * disputed visits are listed but held back from the totals.  The statement
 * (one per currency) is stored with a status (open, agreed, disputed) and
 * printed as a table, CSV or JSON.
 *
 * What this file does not do: exchange the ledgers (ledger.c), net the
 * balances of the whole federation (settle.c), or change anything about a
 * visit.  A statement is a report on
 * the visits; it never rewrites them.
 *
 * A month is a UTC calendar month of the check-in times, so that both sides
 * put a visit in the same month whatever their time zones.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "ledger.h"
#include "log.h"
#include "peer.h"
#include "reconcile.h"
#include "server.h"
#include "settle.h"
#include "terms.h"
#include "util.h"
#include "visit.h"

#define RECONCILE_MAX_NOTE 500
#define RECONCILE_TIME_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

/* ------------------------------------------------------------- helpers */

bool
reconcile_month_valid(const char *s)
{
	if (s == NULL || strlen(s) != 7 || s[4] != '-')
		return false;
	for (int i = 0; i < 7; i++)
		if (i != 4 && (s[i] < '0' || s[i] > '9'))
			return false;
	/* PostgreSQL has no year 0: a month in it would fail every query. */
	if (strncmp(s, "0000", 4) == 0)
		return false;
	return (s[5] == '0' && s[6] >= '1') || (s[5] == '1' && s[6] <= '2');
}

void
reconcile_format_cents(int64_t cents, char out[32])
{
	uint64_t a = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;

	snprintf(out, 32, "%s%llu.%02llu", cents < 0 ? "-" : "",
	    (unsigned long long)(a / 100), (unsigned long long)(a % 100));
}

cJSON *
reconcile_statement_json(const PGresult *res, int i)
{
	cJSON *o = cJSON_CreateObject();
	int64_t rc = strtoll(PQgetvalue(res, i, 3), NULL, 10);
	int64_t pc = strtoll(PQgetvalue(res, i, 4), NULL, 10);

	cJSON_AddStringToObject(o, "peer", PQgetvalue(res, i, 0));
	cJSON_AddStringToObject(o, "currency", PQgetvalue(res, i, 1));
	cJSON_AddStringToObject(o, "status", PQgetvalue(res, i, 2));
	cJSON_AddNumberToObject(o, "receivable_cents", (double)rc);
	cJSON_AddNumberToObject(o, "payable_cents", (double)pc);
	cJSON_AddNumberToObject(o, "net_cents", (double)(rc - pc));
	cJSON_AddNumberToObject(o, "held_lines", atoi(PQgetvalue(res, i, 5)));
	cJSON_AddNumberToObject(o, "lines", atoi(PQgetvalue(res, i, 6)));
	return o;
}

/* A whole number member in [min, max]: 0; absent or null: 1; else -1. */
static int
reconcile_json_int(const cJSON *o, const char *name, int min, int max, int *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*ret = -1;
	if (v == NULL || cJSON_IsNull(v))
		return 1;
	return util_json_int(o, name, min, max, false, ret) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------- the route */

void
reconcile_fed_handle(struct http_job *job, struct worker *w)
{
	if (strcmp(job->path, "/federation/v1/balances") == 0)
		settle_fed_balances(job, w);
	else
		ledger_fed_handle(job, w);
}

/* ------------------------------------------------------------- comparing */

/* One side's record of a visit, pointing into its JSON. */
struct reconcile_rec {
	const char *visit_id;
	bool host_is_us;	/* the key: the same visit on both sides */
	const char *sub, *in, *out, *currency, *state, *receipt, *completion;
	const char *note;	/* the holder's dispute note, or NULL */
	int units, rate;	/* -1: none */
};

/*
 * A member's pseudonym as a record may carry it: a host keeps whatever its
 * pass said, so anything printable goes (the CSV defuses formulas).
 */
static bool
reconcile_sub_valid(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Reads and checks one record (ours or the peer's); -EBADMSG if malformed. */
static int
reconcile_rec_parse(const cJSON *o, bool ours, struct reconcile_rec *ret)
{
	static const char *const states[] = { "pending", "open", "closed",
		"provisional", "disputed" };
	const char *role = util_json_string(o, "role");
	const cJSON *v;
	int64_t t;
	bool state_ok = false;

	memset(ret, 0, sizeof(*ret));
	ret->visit_id = util_json_string(o, "visit_id");
	ret->sub = util_json_string(o, "sub");
	ret->in = util_json_string(o, "checked_in_at");
	ret->out = util_json_string(o, "checked_out_at");
	ret->currency = util_json_string(o, "currency");
	ret->state = util_json_string(o, "state");
	ret->receipt = util_json_string(o, "receipt");
	ret->completion = util_json_string(o, "completion");
	ret->note = util_json_string(o, "dispute_note");
	if (!visit_id_valid(ret->visit_id) || role == NULL ||
	    (strcmp(role, "host") != 0 && strcmp(role, "home") != 0) ||
	    !reconcile_sub_valid(ret->sub) || ret->in == NULL ||
	    util_parse_time(ret->in, &t) < 0 ||
	    (ret->out != NULL && util_parse_time(ret->out, &t) < 0) ||
	    reconcile_json_int(o, "units", 0, 100, &ret->units) < 0 ||
	    reconcile_json_int(o, "rate_cents", 0, 10000000, &ret->rate) < 0 ||
	    (ret->currency != NULL && (strlen(ret->currency) != 3 ||
	    strspn(ret->currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)) ||
	    (ret->receipt != NULL && strlen(ret->receipt) > LEDGER_MAX_TOKEN) ||
	    (ret->completion != NULL && strlen(ret->completion) > LEDGER_MAX_TOKEN))
		return -EBADMSG;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(states) && ret->state != NULL; i++)
		state_ok |= strcmp(ret->state, states[i]) == 0;
	if (!state_ok)
		return -EBADMSG;
	v = cJSON_GetObjectItemCaseSensitive(o, "disputed");
	if (!cJSON_IsTrue(v) || ret->note == NULL)
		ret->note = NULL;
	else if (strlen(ret->note) > RECONCILE_MAX_NOTE)
		return -EBADMSG;
	/* Our record as host, or the peer's as home: we hosted the visit. */
	ret->host_is_us = (strcmp(role, "host") == 0) == ours;
	return 0;
}

static int
reconcile_rec_cmp(const void *a, const void *b)
{
	const struct reconcile_rec *x = a, *y = b;
	int c = strcmp(x->visit_id, y->visit_id);

	return c != 0 ? c : (int)x->host_is_us - (int)y->host_is_us;
}

static int
reconcile_recs(const cJSON *a, bool ours, struct reconcile_rec **ret, size_t *ret_n)
{
	size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
	struct reconcile_rec *recs = calloc(n + 1, sizeof(*recs));
	const cJSON *o;

	if (recs == NULL)
		return -ENOMEM;
	cJSON_ArrayForEach(o, a) {
		if (reconcile_rec_parse(o, ours, &recs[i]) < 0) {
			free(recs);
			return -EBADMSG;
		}
		i++;
	}
	qsort(recs, n, sizeof(*recs), reconcile_rec_cmp);
	for (i = 1; i < n; i++)
		if (reconcile_rec_cmp(&recs[i - 1], &recs[i]) == 0) {
			free(recs);
			return -EBADMSG;
		}
	*ret = recs;
	*ret_n = n;
	return 0;
}

enum reconcile_ev {
	RECONCILE_EV_OK,
	RECONCILE_EV_MISSING,
	RECONCILE_EV_INVALID,
};

/* What one side's evidence proves, and why not. */
struct reconcile_evidence {
	enum reconcile_ev status;
	char why[200];
	int units;		/* what the host's completion says; -1: unknown */
	int receipt_rate;	/* the rate the home's receipt states; -1 */
	char receipt_currency[4];
	int completion_rate;	/* the rate the host's completion states; -1 */
	char completion_currency[4];
};

static const char *
reconcile_verify_error(int r)
{
	return r == -EKEYREJECTED ? "bad signature" : r == -ENOENT ?
	    "not signed with a key of the directory" : "malformed";
}

static void
reconcile_evidence_fail(struct reconcile_evidence *ev, enum reconcile_ev status,
    const char *why)
{
	if (status < ev->status)
		return;
	if (status > ev->status)
		ev->why[0] = '\0';
	ev->status = status;
	if (ev->why[0] != '\0')
		util_strlcpy(ev->why + strlen(ev->why), "; ", sizeof(ev->why) - strlen(ev->why));
	util_strlcpy(ev->why + strlen(ev->why), why, sizeof(ev->why) - strlen(ev->why));
}

/* The rate a token states, if it states one. */
static void
reconcile_evidence_rate(const cJSON *p, int *ret_rate, char currency[4])
{
	int rate;

	if (reconcile_json_int(p, "rate_cents", 0, 10000000, &rate) == 0 &&
	    util_json_string(p, "currency") != NULL) {
		*ret_rate = rate;
		util_strlcpy(currency, util_json_string(p, "currency"), 4);
	}
}

/* True when the evidence states a rate other than rate (in currency). */
static bool
reconcile_evidence_rate_differs(const struct reconcile_evidence *ev, int rate,
    const char *currency)
{
	return (ev->receipt_rate >= 0 && (ev->receipt_rate != rate ||
	    strcmp(ev->receipt_currency, currency) != 0)) ||
	    (ev->completion_rate >= 0 && (ev->completion_rate != rate ||
	    strcmp(ev->completion_currency, currency) != 0));
}

/*
 * Checks one side's copy of the evidence: the home's receipt (it admitted
 * this member for this visit at this host) and, once the visit is over, the
 * host's completion (these units, this rate).  Each must verify with its
 * signer's key in the directory and name this visit, these spaces and this
 * member.
 */
static void
reconcile_check_evidence(struct node *node, const char *host, const char *home,
    const struct reconcile_rec *r, struct reconcile_evidence *ev)
{
	cJSON *p = NULL;
	int rc;

	memset(ev, 0, sizeof(*ev));
	ev->units = -1;
	ev->receipt_rate = -1;
	ev->completion_rate = -1;
	if (r->receipt == NULL) {
		reconcile_evidence_fail(ev, RECONCILE_EV_MISSING, "no receipt from the home");
	} else if ((rc = node_verify_signed(node, r->receipt, "receipt", home, &p)) < 0) {
		char why[120];

		snprintf(why, sizeof(why), "the receipt does not verify (%s)",
		    reconcile_verify_error(rc));
		reconcile_evidence_fail(ev, RECONCILE_EV_INVALID, why);
	} else if (!util_json_is(p, "visit_id", r->visit_id) ||
	    !util_json_is(p, "home", home) || !util_json_is(p, "host", host) ||
	    !util_json_is(p, "decision", "admit") ||
	    !util_json_is(p, "sub", r->sub)) {
		reconcile_evidence_fail(ev, RECONCILE_EV_INVALID,
		    "the receipt names another visit, space, member or decision");
	} else {
		reconcile_evidence_rate(p, &ev->receipt_rate, ev->receipt_currency);
	}
	cJSON_Delete(p);
	p = NULL;

	if (r->completion == NULL) {
		if (r->units >= 0)
			reconcile_evidence_fail(ev, RECONCILE_EV_MISSING,
			    "no completion from the host");
	} else if ((rc = node_verify_signed(node, r->completion, "completion", host,
	    &p)) < 0) {
		char why[120];

		snprintf(why, sizeof(why), "the completion does not verify (%s)",
		    reconcile_verify_error(rc));
		reconcile_evidence_fail(ev, RECONCILE_EV_INVALID, why);
	} else if (!util_json_is(p, "visit_id", r->visit_id) ||
	    !util_json_is(p, "home", home) || !util_json_is(p, "host", host) ||
	    !util_json_is(p, "sub", r->sub) ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "void")) ||
	    reconcile_json_int(p, "units", 0, 100, &ev->units) != 0) {
		ev->units = -1;
		reconcile_evidence_fail(ev, RECONCILE_EV_INVALID,
		    "the completion names another visit, space or member");
	} else {
		/* The host's completion states the rate frozen on its record. */
		reconcile_evidence_rate(p, &ev->completion_rate, ev->completion_currency);
	}
	cJSON_Delete(p);
}

/* One line of a statement: a visit as both sides see it. */
struct reconcile_line {
	const struct reconcile_rec *here, *there;
	const char *result;
	char detail[480];
	char currency[4];
	int64_t amount;
	bool provisional;
	const char *note_here;	/* our dispute */
	const char *note_there;	/* the peer's dispute */
};

static void
reconcile_value(char *out, size_t len, int v, const char *currency)
{
	if (v < 0)
		snprintf(out, len, "none");
	else if (currency != NULL && currency[0] != '\0')
		snprintf(out, len, "%d.%02d %s", v / 100, v % 100, currency);
	else
		snprintf(out, len, "%d", v);
}

/* Says which copies of the evidence are in state status, and why. */
static void
reconcile_evidence_detail(struct reconcile_line *l, const char *peer,
    const struct reconcile_evidence *eh, const struct reconcile_evidence *et,
    enum reconcile_ev status)
{
	bool here = eh->status == status, there = et->status == status;

	snprintf(l->detail, sizeof(l->detail), "%s%s%s%s%s%s",
	    here ? "our copy: " : "", here ? eh->why : "", here && there ? "; " : "",
	    there ? peer : "", there ? "'s copy: " : "", there ? et->why : "");
}

/* Classifies a visit that both sides hold. */
static void
reconcile_compare(struct node *node, const char *peer, struct reconcile_line *l)
{
	const struct reconcile_rec *h = l->here, *t = l->there;
	const char *host = h->host_is_us ? node_space_id(node) : peer;
	const char *home = h->host_is_us ? peer : node_space_id(node);
	struct reconcile_evidence eh, et;
	const char *ch = h->currency != NULL ? h->currency : "";
	const char *ct = t->currency != NULL ? t->currency : "";
	char a[48], b[48], c[48];

	reconcile_check_evidence(node, host, home, h, &eh);
	reconcile_check_evidence(node, host, home, t, &et);
	if (eh.status == RECONCILE_EV_INVALID || et.status == RECONCILE_EV_INVALID) {
		l->result = "evidence_invalid";
		reconcile_evidence_detail(l, peer, &eh, &et, RECONCILE_EV_INVALID);
	} else if (h->units < 0 || t->units < 0) {
		l->result = "open";
		snprintf(l->detail, sizeof(l->detail), "%s", h->units < 0 && t->units < 0 ?
		    "the visit is not over" : "the completion has not reached the home yet");
	} else if (eh.status == RECONCILE_EV_MISSING || et.status == RECONCILE_EV_MISSING) {
		l->result = "evidence_missing";
		reconcile_evidence_detail(l, peer, &eh, &et, RECONCILE_EV_MISSING);
	} else if (h->units != t->units) {
		struct reconcile_evidence *hev = h->host_is_us ? &eh : &et;

		l->result = "units_differ";
		snprintf(l->detail, sizeof(l->detail), "we count %d, %s counts %d;"
		    " the host's signed completion says %d", h->units, peer, t->units,
		    hev->units);
	} else if (h->rate != t->rate || strcmp(ch, ct) != 0) {
		/* Both copies of the receipt verified: either one will do. */
		struct reconcile_evidence *rev = eh.receipt_rate >= 0 ? &eh : &et;

		reconcile_value(a, sizeof(a), h->rate, ch);
		reconcile_value(b, sizeof(b), t->rate, ct);
		reconcile_value(c, sizeof(c), rev->receipt_rate, rev->receipt_currency);
		l->result = "rate_differs";
		snprintf(l->detail, sizeof(l->detail), "we have %s, %s has %s;"
		    " the home's signed receipt says %s", a, peer, b, c);
	} else if ((eh.units >= 0 && eh.units != h->units) ||
	    (et.units >= 0 && et.units != h->units) ||
	    reconcile_evidence_rate_differs(&eh, h->rate, ch) ||
	    reconcile_evidence_rate_differs(&et, h->rate, ch)) {
		/* Both records agree, but not with what was signed. */
		l->result = "evidence_invalid";
		snprintf(l->detail, sizeof(l->detail), "both records say %d units at %d,"
		    " but the signed evidence says otherwise", h->units, h->rate);
	} else {
		l->result = "matched";
	}
}

/* Fills a line: its result, currency, amount and flags. */
static void
reconcile_line_finish(struct node *node, const char *peer, struct reconcile_line *l)
{
	const struct reconcile_rec *any = l->here != NULL ? l->here : l->there;
	const struct reconcile_rec *hr, *mr;
	bool host_is_us = any->host_is_us;

	hr = host_is_us ? l->here : l->there;	/* the host's record */
	mr = host_is_us ? l->there : l->here;	/* the home's record */
	if (l->here != NULL && l->there != NULL) {
		reconcile_compare(node, peer, l);
	} else if (l->here != NULL) {
		l->result = "only_here";
		snprintf(l->detail, sizeof(l->detail), "%s has no record of this visit", peer);
	} else {
		l->result = "only_there";
		snprintf(l->detail, sizeof(l->detail), "we have no record of this visit");
	}
	/* The host sets units and rate; the home's record stands in for it. */
	if (hr == NULL)
		hr = mr;
	util_strlcpy(l->currency, hr->currency != NULL ? hr->currency :
	    mr != NULL && mr->currency != NULL ? mr->currency : "XXX", sizeof(l->currency));
	l->amount = hr->units >= 0 && hr->rate >= 0 ? (int64_t)hr->units * hr->rate : 0;
	l->provisional = (l->here != NULL && strcmp(l->here->state, "provisional") == 0) ||
	    (l->there != NULL && strcmp(l->there->state, "provisional") == 0);
	if (l->there != NULL)
		l->note_there = l->there->note;
	/* A provisional admission that the home refused is disputed by it. */
	if (l->there != NULL && strcmp(l->there->state, "disputed") == 0 &&
	    l->note_there == NULL)
		l->note_there = "refused by the home after a provisional admission";
	if (l->here != NULL && strcmp(l->here->state, "disputed") == 0 &&
	    l->note_here == NULL)
		l->note_here = "refused by the home after a provisional admission";
}

/* ------------------------------------------------------------- storing */

static cJSON *
reconcile_line_json(const struct reconcile_line *l)
{
	const struct reconcile_rec *any = l->here != NULL ? l->here : l->there;
	const struct reconcile_rec *hr = any->host_is_us ? l->here : l->there;
	const struct reconcile_rec *mr = any->host_is_us ? l->there : l->here;
	cJSON *o = cJSON_CreateObject();

	if (hr == NULL)
		hr = mr;
	cJSON_AddStringToObject(o, "currency", l->currency);
	cJSON_AddStringToObject(o, "visit_id", any->visit_id);
	cJSON_AddStringToObject(o, "direction", any->host_is_us ? "receivable" : "payable");
	cJSON_AddStringToObject(o, "member", any->sub);
	cJSON_AddStringToObject(o, "checked_in_at", hr->in);
	if (hr->out != NULL)
		cJSON_AddStringToObject(o, "checked_out_at", hr->out);
#define RECONCILE_SIDE(name, rec, field, cond) \
	if ((rec) != NULL && (cond)) \
		cJSON_AddNumberToObject(o, name, (rec)->field)
	RECONCILE_SIDE("units_here", l->here, units, l->here->units >= 0);
	RECONCILE_SIDE("units_there", l->there, units, l->there->units >= 0);
	RECONCILE_SIDE("rate_here", l->here, rate, l->here->rate >= 0);
	RECONCILE_SIDE("rate_there", l->there, rate, l->there->rate >= 0);
#undef RECONCILE_SIDE
	if (l->here != NULL && l->here->currency != NULL)
		cJSON_AddStringToObject(o, "currency_here", l->here->currency);
	if (l->there != NULL && l->there->currency != NULL)
		cJSON_AddStringToObject(o, "currency_there", l->there->currency);
	cJSON_AddNumberToObject(o, "amount_cents", (double)l->amount);
	cJSON_AddStringToObject(o, "result", l->result);
	cJSON_AddStringToObject(o, "detail", l->detail);
	cJSON_AddBoolToObject(o, "provisional", l->provisional);
	cJSON_AddBoolToObject(o, "disputed_here", l->note_here != NULL);
	cJSON_AddBoolToObject(o, "disputed_there", l->note_there != NULL);
	if (l->note_here != NULL)
		cJSON_AddStringToObject(o, "note_here", l->note_here);
	if (l->note_there != NULL)
		cJSON_AddStringToObject(o, "note_there", l->note_there);
	return o;
}

/*
 * Totals and digest of the statements of one peer and month, from their
 * lines.  A statement that was agreed goes back to open when its lines
 * change: what was agreed is no longer what it says.
 */
static const char reconcile_refresh_sql[] =
    "update statements s set lines = t.lines,"
    " receivable_cents = t.rc, receivable_units = t.ru, receivable_visits = t.rv,"
    " payable_cents = t.pc, payable_units = t.pu, payable_visits = t.pv,"
    " held_lines = t.hl, held_cents = t.hc, digest = t.digest,"
    " status = case when s.status = 'agreed' and s.digest <> t.digest then 'open'"
    "  else s.status end,"
    " status_at = case when s.status = 'agreed' and s.digest <> t.digest then now()"
    "  else s.status_at end,"
    " status_by = case when s.status = 'agreed' and s.digest <> t.digest then $3"
    "  else s.status_by end"
    " from (select st.id, count(l.visit_id)::int as lines,"
    "  coalesce(sum(l.amount_cents) filter (where not l.held and"
    "   l.direction = 'receivable'), 0) as rc,"
    "  coalesce(sum(l.units_here) filter (where not l.held and"
    "   l.direction = 'receivable'), 0) as ru,"
    "  count(l.visit_id) filter (where not l.held and l.direction = 'receivable') as rv,"
    "  coalesce(sum(l.amount_cents) filter (where not l.held and"
    "   l.direction = 'payable'), 0) as pc,"
    "  coalesce(sum(l.units_here) filter (where not l.held and"
    "   l.direction = 'payable'), 0) as pu,"
    "  count(l.visit_id) filter (where not l.held and l.direction = 'payable') as pv,"
    "  count(l.visit_id) filter (where l.held) as hl,"
    "  coalesce(sum(l.amount_cents) filter (where l.held), 0) as hc,"
    "  encode(sha256(convert_to(st.currency || E'\\n' || coalesce(string_agg("
    "   concat_ws('|', l.visit_id, l.direction, l.result,"
    "    coalesce(l.units_here::text, '-'), coalesce(l.units_there::text, '-'),"
    "    coalesce(l.rate_here::text, '-'), coalesce(l.rate_there::text, '-'),"
    "    coalesce(l.currency_here::text, '-'), coalesce(l.currency_there::text, '-'),"
    "    l.amount_cents, l.held),"
    "   E'\\n' order by l.visit_id, l.direction), ''), 'UTF8')), 'hex') as digest"
    "  from statements st left join statement_lines l on l.statement_id = st.id"
    "  where st.peer = $1 and st.month = $2 group by st.id) t"
    " where s.id = t.id";

static const char reconcile_insert_lines_sql[] =
    "insert into statement_lines (statement_id, visit_id, direction, member,"
    " checked_in_at, checked_out_at, units_here, units_there, rate_here, rate_there,"
    " currency_here, currency_there, amount_cents, result, detail, provisional,"
    " disputed_here, disputed_there, note_here, note_there)"
    " select s.id, l.visit_id, l.direction, l.member, l.checked_in_at,"
    "  l.checked_out_at, l.units_here, l.units_there, l.rate_here, l.rate_there,"
    "  l.currency_here, l.currency_there, l.amount_cents, l.result, l.detail,"
    "  l.provisional, l.disputed_here, l.disputed_there, l.note_here, l.note_there"
    " from json_to_recordset($3::json) as l(currency text, visit_id uuid,"
    "  direction text, member text, checked_in_at timestamptz,"
    "  checked_out_at timestamptz, units_here integer, units_there integer,"
    "  rate_here integer, rate_there integer, currency_here text,"
    "  currency_there text, amount_cents bigint, result text, detail text,"
    "  provisional boolean, disputed_here boolean, disputed_there boolean,"
    "  note_here text, note_there text)"
    " join statements s on s.peer = $1 and s.month = $2 and s.currency = l.currency";

/*
 * Replaces the statements of peer and month by these lines, in one go.  No
 * line at all still makes a statement (in empty_currency), so that the
 * two spaces can agree that nothing is owed.
 */
static int
reconcile_store(PGconn *conn, const char *peer, const char *month,
    const struct reconcile_line *lines, size_t n, const char *empty_currency)
{
	cJSON *rows = cJSON_CreateArray(), *currencies = cJSON_CreateArray(), *c;
	char *rows_text = NULL, *cur_text = NULL;
	int r = -EIO;

	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		cJSON_AddItemToArray(rows, reconcile_line_json(&lines[i]));
		cJSON_ArrayForEach(c, currencies)
			seen |= strcmp(c->valuestring, lines[i].currency) == 0;
		if (!seen)
			cJSON_AddItemToArray(currencies, cJSON_CreateString(lines[i].currency));
	}
	if (n == 0)
		cJSON_AddItemToArray(currencies, cJSON_CreateString(empty_currency));
	rows_text = cJSON_PrintUnformatted(rows);
	cur_text = cJSON_PrintUnformatted(currencies);
	if (rows_text == NULL || cur_text == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (db_begin(conn) < 0)
		goto out;
	{
		const char *p3[3] = { peer, month, cur_text };

		if (db_exec(conn, "delete from statements where peer = $1 and month = $2"
		    " and currency not in (select json_array_elements_text($3::json))",
		    3, p3) < 0 ||
		    db_exec(conn, "insert into statements (peer, month, currency, status_by)"
		    " select $1, $2, c, 'cli' from json_array_elements_text($3::json) as c"
		    " on conflict (peer, month, currency) do update set reconciled_at = now()",
		    3, p3) < 0 ||
		    db_exec(conn, "delete from statement_lines where statement_id in"
		    " (select id from statements where peer = $1 and month = $2)", 2, p3) < 0)
			goto rollback;
	}
	{
		const char *p3[3] = { peer, month, rows_text };

		if (db_exec(conn, reconcile_insert_lines_sql, 3, p3) < 0)
			goto rollback;
	}
	{
		const char *p3[3] = { peer, month, "cli" };

		if (db_exec(conn, reconcile_refresh_sql, 3, p3) < 0)
			goto rollback;
	}
	if (db_commit(conn) < 0)
		goto rollback;
	r = 0;
	goto out;
rollback:
	db_rollback(conn);
out:
	cJSON_Delete(rows);
	cJSON_Delete(currencies);
	cJSON_free(rows_text);
	cJSON_free(cur_text);
	return r;
}

/* Our disputes with peer, sorted by visit id, for the lines. */
static int
reconcile_load_disputes(PGconn *conn, const char *peer, PGresult **ret)
{
	const char *params[1] = { peer };

	*ret = db_query(conn, "select visit_id::text, note from reconcile_disputes"
	    " where peer = $1 order by visit_id", 1, params);
	return *ret != NULL ? 0 : -EIO;
}

static const char *
reconcile_dispute_note(PGresult *disputes, const char *visit_id)
{
	int lo = 0, hi = PQntuples(disputes) - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = strcmp(PQgetvalue(disputes, mid, 0), visit_id);

		if (c == 0)
			return PQgetvalue(disputes, mid, 1);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/*
 * The whole reconciliation: both ledgers, compared, stored.  ret_stats gets
 * the number of records on each side and of the peer's pages.
 */
static int
reconcile_run(struct node *node, PGconn *conn, struct peer_client *pc,
    const char *peer, const char *month, int ret_stats[3], char *err, size_t errlen)
{
	cJSON *ours = NULL, *theirs = NULL;
	struct reconcile_rec *h = NULL, *t = NULL;
	struct reconcile_line *lines = NULL;
	PGresult *disputes = NULL;
	struct terms terms;
	size_t nh = 0, nt = 0, n = 0, i = 0, j = 0;
	int r, pages = 0;

	r = ledger_own(conn, peer, month, &ours);
	if (r < 0) {
		snprintf(err, errlen, "cannot read our visits with %s", peer);
		goto out;
	}
	r = ledger_fetch(node, pc, peer, month, &theirs, &pages, err, errlen);
	if (r < 0)
		goto out;
	r = reconcile_recs(ours, true, &h, &nh);
	if (r < 0) {
		snprintf(err, errlen, "our own ledger is malformed (a bad record in the"
		    " database)");
		goto out;
	}
	r = reconcile_recs(theirs, false, &t, &nt);
	if (r < 0) {
		snprintf(err, errlen, "%s's ledger holds a malformed or repeated record", peer);
		goto out;
	}
	r = reconcile_load_disputes(conn, peer, &disputes);
	if (r < 0) {
		snprintf(err, errlen, "cannot read our disputes");
		goto out;
	}
	lines = calloc(nh + nt + 1, sizeof(*lines));
	if (lines == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/* Both lists are sorted by (visit id, who hosted): merge them. */
	while (i < nh || j < nt) {
		struct reconcile_line *l = &lines[n++];
		int c = i == nh ? 1 : j == nt ? -1 : reconcile_rec_cmp(&h[i], &t[j]);

		if (c <= 0)
			l->here = &h[i++];
		if (c >= 0)
			l->there = &t[j++];
		l->note_here = reconcile_dispute_note(disputes,
		    (l->here != NULL ? l->here : l->there)->visit_id);
		reconcile_line_finish(node, peer, l);
	}
	r = terms_get(node_config(node), conn, peer, &terms);
	if (r == 0)
		r = reconcile_store(conn, peer, month, lines, n, terms.currency);
	if (r < 0) {
		snprintf(err, errlen, "cannot store the statement");
		goto out;
	}
	ret_stats[0] = (int)nh;
	ret_stats[1] = (int)nt;
	ret_stats[2] = pages;
out:
	PQclear(disputes);
	free(lines);
	free(h);
	free(t);
	cJSON_Delete(ours);
	cJSON_Delete(theirs);
	return r;
}

/* ------------------------------------------------------------- reading */

/* The stored statements of peer and month (one per currency), as JSON. */
static int
reconcile_load(struct node *node, PGconn *conn, const char *peer, const char *month,
    cJSON **ret)
{
	const char *params[2] = { peer, month };
	PGresult *res, *lr;
	cJSON *o, *a;

	res = db_query(conn, "select id, currency, status, status_by,"
	    " to_char(status_at at time zone 'UTC', " RECONCILE_TIME_FMT "),"
	    " to_char(reconciled_at at time zone 'UTC', " RECONCILE_TIME_FMT "),"
	    " coalesce(note, ''), digest, lines, receivable_cents, receivable_units,"
	    " receivable_visits, payable_cents, payable_units, payable_visits,"
	    " held_lines, held_cents"
	    " from statements where peer = $1 and month = $2 order by currency", 2, params);
	if (res == NULL)
		return -EIO;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "space", node_space_id(node));
	cJSON_AddStringToObject(o, "peer", peer);
	cJSON_AddStringToObject(o, "month", month);
	cJSON_AddStringToObject(o, "month_basis", "UTC check-in time");
	a = cJSON_AddArrayToObject(o, "statements");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *s = cJSON_CreateObject(), *t, *counts, *ls;
		const char *p1[1] = { PQgetvalue(res, i, 0) };
		int64_t rc = strtoll(PQgetvalue(res, i, 9), NULL, 10);
		int64_t pc = strtoll(PQgetvalue(res, i, 12), NULL, 10);

		cJSON_AddItemToArray(a, s);
		cJSON_AddStringToObject(s, "currency", PQgetvalue(res, i, 1));
		cJSON_AddStringToObject(s, "status", PQgetvalue(res, i, 2));
		cJSON_AddStringToObject(s, "status_by", PQgetvalue(res, i, 3));
		cJSON_AddStringToObject(s, "status_at", PQgetvalue(res, i, 4));
		cJSON_AddStringToObject(s, "reconciled_at", PQgetvalue(res, i, 5));
		if (PQgetvalue(res, i, 6)[0] != '\0')
			cJSON_AddStringToObject(s, "note", PQgetvalue(res, i, 6));
		cJSON_AddStringToObject(s, "digest", PQgetvalue(res, i, 7));
		t = cJSON_AddObjectToObject(s, "totals");
		cJSON_AddNumberToObject(t, "lines", atoi(PQgetvalue(res, i, 8)));
		cJSON_AddNumberToObject(t, "receivable_cents", (double)rc);
		cJSON_AddNumberToObject(t, "receivable_units", atoi(PQgetvalue(res, i, 10)));
		cJSON_AddNumberToObject(t, "receivable_visits", atoi(PQgetvalue(res, i, 11)));
		cJSON_AddNumberToObject(t, "payable_cents", (double)pc);
		cJSON_AddNumberToObject(t, "payable_units", atoi(PQgetvalue(res, i, 13)));
		cJSON_AddNumberToObject(t, "payable_visits", atoi(PQgetvalue(res, i, 14)));
		cJSON_AddNumberToObject(t, "net_cents", (double)(rc - pc));
		cJSON_AddNumberToObject(t, "held_lines", atoi(PQgetvalue(res, i, 15)));
		cJSON_AddNumberToObject(t, "held_cents",
		    (double)strtoll(PQgetvalue(res, i, 16), NULL, 10));
		cJSON_AddStringToObject(t, "owed_by", rc >= pc ? peer : node_space_id(node));
		cJSON_AddStringToObject(t, "owed_to", rc >= pc ? node_space_id(node) : peer);
		counts = cJSON_AddObjectToObject(s, "counts");
		ls = cJSON_AddArrayToObject(s, "lines");

		lr = db_query(conn, "select visit_id::text, direction, member,"
		    " to_char(checked_in_at at time zone 'UTC', " RECONCILE_TIME_FMT "),"
		    " to_char(checked_out_at at time zone 'UTC', " RECONCILE_TIME_FMT "),"
		    " units_here, units_there, rate_here, rate_there, currency_here::text,"
		    " currency_there::text, amount_cents, result, detail, provisional,"
		    " disputed_here, disputed_there, note_here, note_there, held"
		    " from statement_lines where statement_id = $1"
		    " order by checked_in_at, visit_id, direction", 1, p1);
		if (lr == NULL) {
			PQclear(res);
			cJSON_Delete(o);
			return -EIO;
		}
		for (int k = 0; k < PQntuples(lr); k++) {
			cJSON *l = cJSON_CreateObject(), *cnt;
			bool recv = strcmp(PQgetvalue(lr, k, 1), "receivable") == 0;
			const char *result = PQgetvalue(lr, k, 12);

			cJSON_AddItemToArray(ls, l);
			cJSON_AddStringToObject(l, "visit_id", PQgetvalue(lr, k, 0));
			cJSON_AddStringToObject(l, "direction", PQgetvalue(lr, k, 1));
			cJSON_AddStringToObject(l, "owed_by", recv ? peer : node_space_id(node));
			cJSON_AddStringToObject(l, "owed_to", recv ? node_space_id(node) : peer);
			cJSON_AddStringToObject(l, "member", PQgetvalue(lr, k, 2));
			db_json_column(l, "checked_in_at", lr, k, 3, false);
			db_json_column(l, "checked_out_at", lr, k, 4, false);
			db_json_column(l, "units_here", lr, k, 5, true);
			db_json_column(l, "units_there", lr, k, 6, true);
			db_json_column(l, "rate_here", lr, k, 7, true);
			db_json_column(l, "rate_there", lr, k, 8, true);
			db_json_column(l, "currency_here", lr, k, 9, false);
			db_json_column(l, "currency_there", lr, k, 10, false);
			db_json_column(l, "amount_cents", lr, k, 11, true);
			cJSON_AddStringToObject(l, "result", result);
			cJSON_AddStringToObject(l, "detail", PQgetvalue(lr, k, 13));
			cJSON_AddBoolToObject(l, "provisional", PQgetvalue(lr, k, 14)[0] == 't');
			cJSON_AddBoolToObject(l, "disputed_here", PQgetvalue(lr, k, 15)[0] == 't');
			cJSON_AddBoolToObject(l, "disputed_there",
			    PQgetvalue(lr, k, 16)[0] == 't');
			db_json_column(l, "note_here", lr, k, 17, false);
			db_json_column(l, "note_there", lr, k, 18, false);
			cJSON_AddBoolToObject(l, "held", PQgetvalue(lr, k, 19)[0] == 't');
			cnt = cJSON_GetObjectItemCaseSensitive(counts, result);
			if (cnt == NULL)
				cJSON_AddNumberToObject(counts, result, 1);
			else
				cJSON_SetNumberValue(cnt, cnt->valuedouble + 1);
		}
		PQclear(lr);
	}
	PQclear(res);
	*ret = o;
	return 0;
}

/* ------------------------------------------------------------- printing */

static int64_t
reconcile_num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

static const char *
reconcile_str(const cJSON *o, const char *name)
{
	const char *s = util_json_string(o, name);

	return s != NULL ? s : "";
}

/* "1" when both sides agree, "1/2" (ours/theirs) when not, "-" for none. */
static void
reconcile_pair(char *out, size_t len, const cJSON *l, const char *a, const char *b,
    bool money)
{
	int64_t x = reconcile_num(l, a), y = reconcile_num(l, b);
	char xs[32] = "-", ys[32] = "-";

	if (x >= 0) {
		if (money)
			reconcile_format_cents(x, xs);
		else
			snprintf(xs, sizeof(xs), "%lld", (long long)x);
	}
	if (y >= 0) {
		if (money)
			reconcile_format_cents(y, ys);
		else
			snprintf(ys, sizeof(ys), "%lld", (long long)y);
	}
	if (x == y || y < 0)
		snprintf(out, len, "%s", x >= 0 ? xs : ys);
	else if (x < 0)
		snprintf(out, len, "%s", ys);
	else
		snprintf(out, len, "%s/%s", xs, ys);
}

static void
reconcile_print_table(FILE *f, const cJSON *st, bool all)
{
	const char *peer = reconcile_str(st, "peer"), *self = reconcile_str(st, "space");
	const cJSON *s;

	if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "statements")) == 0)
		fprintf(f, "No statement with %s for %s: run 'passerelle reconcile --peer %s"
		    " --month %s'.\n", peer, reconcile_str(st, "month"), peer,
		    reconcile_str(st, "month"));
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(st, "statements")) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "totals");
		const char *cur = reconcile_str(s, "currency");
		int64_t net = reconcile_num(t, "net_cents"), held = reconcile_num(t, "held_lines");
		char a[32], b[32], c[32], who[160];
		const cJSON *l, *cnt;
		int shown = 0;

		fprintf(f, "Statement %s and %s, %s (UTC check-in times), %s: %s\n", self,
		    peer, reconcile_str(st, "month"), cur, reconcile_str(s, "status"));
		fprintf(f, "reconciled %s; status set %s by %s; digest %.16s\n",
		    reconcile_str(s, "reconciled_at"), reconcile_str(s, "status_at"),
		    reconcile_str(s, "status_by"), reconcile_str(s, "digest"));
		if (util_json_string(s, "note") != NULL)
			fprintf(f, "note: %s\n", reconcile_str(s, "note"));
		reconcile_format_cents(reconcile_num(t, "receivable_cents"), a);
		reconcile_format_cents(reconcile_num(t, "payable_cents"), b);
		reconcile_format_cents(net < 0 ? -net : net, c);
		fprintf(f, "\n%-46s %7s %10s %14s\n", "", "visits", "half-days", "amount");
		snprintf(who, sizeof(who), "%s owes %s (its members here)", peer, self);
		fprintf(f, "%-46s %7lld %10lld %14s %s\n", who,
		    (long long)reconcile_num(t, "receivable_visits"),
		    (long long)reconcile_num(t, "receivable_units"), a, cur);
		snprintf(who, sizeof(who), "%s owes %s (our members there)", self, peer);
		fprintf(f, "%-46s %7lld %10lld %14s %s\n", who,
		    (long long)reconcile_num(t, "payable_visits"),
		    (long long)reconcile_num(t, "payable_units"), b, cur);
		if (net == 0)
			snprintf(who, sizeof(who), "net: nothing owed either way");
		else
			snprintf(who, sizeof(who), "net: %s owes %s", reconcile_str(t, "owed_by"),
			    reconcile_str(t, "owed_to"));
		fprintf(f, "%-65s %14s %s\n\n", who, c, cur);

		if (reconcile_num(t, "lines") == 0) {
			fprintf(f, "No visits shared with %s this month.\n\n", peer);
			continue;
		}
		fprintf(f, "%lld line%s:", (long long)reconcile_num(t, "lines"),
		    reconcile_num(t, "lines") == 1 ? "" : "s");
		cJSON_ArrayForEach(cnt, cJSON_GetObjectItemCaseSensitive(s, "counts"))
			fprintf(f, " %s %d%s", cnt->string, cnt->valueint,
			    cnt->next != NULL ? "," : "");
		reconcile_format_cents(reconcile_num(t, "held_cents"), a);
		fprintf(f, "\n%lld held back (%s %s, not in the totals)%s\n", (long long)held,
		    a, cur, held > 0 || all ? ":" : ".");
		cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(s, "lines")) {
			bool is_held = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "held"));
			char units[32], rate[48], amount[32], in[20], flags[64];

			if (!is_held && !all)
				continue;
			if (shown++ == 0)
				fprintf(f, "\n%-36s  %-12s %-12s %-16s %-5s %-11s %10s  %s\n",
				    "VISIT", "OWED BY", "MEMBER", "CHECKED IN", "UNITS", "RATE",
				    "AMOUNT", "RESULT");
			reconcile_pair(units, sizeof(units), l, "units_here", "units_there", false);
			reconcile_pair(rate, sizeof(rate), l, "rate_here", "rate_there", true);
			reconcile_format_cents(reconcile_num(l, "amount_cents"), amount);
			snprintf(in, sizeof(in), "%.16s", reconcile_str(l, "checked_in_at"));
			if (in[0] != '\0' && strlen(in) > 10)
				in[10] = ' ';
			snprintf(flags, sizeof(flags), "%s%s%s",
			    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "provisional")) ?
			    " provisional" : "",
			    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "disputed_here")) ?
			    " disputed-here" : "",
			    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "disputed_there")) ?
			    " disputed-there" : "");
			fprintf(f, "%-36s  %-12.12s %-12.12s %-16s %-5s %-11s %10s  %s%s\n",
			    reconcile_str(l, "visit_id"), reconcile_str(l, "owed_by"),
			    reconcile_str(l, "member"), in, units, rate, amount,
			    reconcile_str(l, "result"), flags);
			if (reconcile_str(l, "detail")[0] != '\0')
				fprintf(f, "%38s%s\n", "", reconcile_str(l, "detail"));
			if (util_json_string(l, "note_here") != NULL)
				fprintf(f, "%38sour note: %s\n", "", reconcile_str(l, "note_here"));
			if (util_json_string(l, "note_there") != NULL)
				fprintf(f, "%38s%s's note: %s\n", "", peer,
				    reconcile_str(l, "note_there"));
		}
		fprintf(f, "\n");
	}
}

/*
 * One CSV field (RFC 4180).  Free text that a spreadsheet would take for a
 * formula gets a leading apostrophe: notes may come from the peer.
 */
static void
reconcile_csv_field(FILE *f, const char *s, bool text, bool last)
{
	bool quote = strpbrk(s, ",\"\r\n") != NULL;

	if (quote)
		fputc('"', f);
	if (text && strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0')
		fputc('\'', f);
	for (; *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	if (quote)
		fputc('"', f);
	fputs(last ? "\r\n" : ",", f);
}

static void
reconcile_csv_money(FILE *f, const cJSON *l, const char *name)
{
	int64_t v = reconcile_num(l, name);
	char s[32] = "";

	if (v >= 0)
		reconcile_format_cents(v, s);
	reconcile_csv_field(f, s, false, false);
}

static void
reconcile_csv_int(FILE *f, const cJSON *l, const char *name)
{
	int64_t v = reconcile_num(l, name);
	char s[32] = "";

	if (v >= 0)
		snprintf(s, sizeof(s), "%lld", (long long)v);
	reconcile_csv_field(f, s, false, false);
}

static void
reconcile_print_csv(FILE *f, const cJSON *st)
{
	static const char header[] = "month,space,peer,currency,visit_id,owed_by,"
	    "owed_to,member,checked_in_at,checked_out_at,units,units_peer,rate,"
	    "rate_peer,amount,result,held,provisional,disputed,detail,note\r\n";
	const cJSON *s, *l;

	fputs(header, f);
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(st, "statements"))
		cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(s, "lines")) {
			bool dh = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l,
			    "disputed_here"));
			bool dt = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l,
			    "disputed_there"));
			char note[1200];

			snprintf(note, sizeof(note), "%s%s%s%s%s",
			    reconcile_str(l, "note_here"),
			    dh && dt ? " / " : "", dt ? reconcile_str(st, "peer") : "",
			    dt ? ": " : "", reconcile_str(l, "note_there"));
			reconcile_csv_field(f, reconcile_str(st, "month"), false, false);
			reconcile_csv_field(f, reconcile_str(st, "space"), false, false);
			reconcile_csv_field(f, reconcile_str(st, "peer"), false, false);
			reconcile_csv_field(f, reconcile_str(s, "currency"), false, false);
			reconcile_csv_field(f, reconcile_str(l, "visit_id"), false, false);
			reconcile_csv_field(f, reconcile_str(l, "owed_by"), false, false);
			reconcile_csv_field(f, reconcile_str(l, "owed_to"), false, false);
			reconcile_csv_field(f, reconcile_str(l, "member"), true, false);
			reconcile_csv_field(f, reconcile_str(l, "checked_in_at"), false, false);
			reconcile_csv_field(f, reconcile_str(l, "checked_out_at"), false, false);
			reconcile_csv_int(f, l, "units_here");
			reconcile_csv_int(f, l, "units_there");
			reconcile_csv_money(f, l, "rate_here");
			reconcile_csv_money(f, l, "rate_there");
			reconcile_csv_money(f, l, "amount_cents");
			reconcile_csv_field(f, reconcile_str(l, "result"), false, false);
			reconcile_csv_field(f, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l,
			    "held")) ? "yes" : "no", false, false);
			reconcile_csv_field(f, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l,
			    "provisional")) ? "yes" : "no", false, false);
			reconcile_csv_field(f, dh || dt ? "yes" : "no", false, false);
			reconcile_csv_field(f, reconcile_str(l, "detail"), true, false);
			reconcile_csv_field(f, note, true, true);
		}
}

/* Prints the stored statement: table, CSV or JSON, to stdout or a file. */
static int
reconcile_print(const cJSON *st, bool csv, bool all, const char *output)
{
	FILE *f = stdout;
	int r = 0;

	if (output != NULL && (f = fopen(output, "w")) == NULL)
		return cli_fail("cannot write %s: %s", output, strerror(errno));
	if (cli_json) {
		char *s = cJSON_Print(st);

		if (s != NULL)
			fprintf(f, "%s\n", s);
		cJSON_free(s);
	} else if (csv) {
		reconcile_print_csv(f, st);
	} else {
		reconcile_print_table(f, st, all);
	}
	if (f != stdout && fclose(f) != 0)
		r = cli_fail("cannot write %s: %s", output, strerror(errno));
	return r;
}

/* ------------------------------------------------------------- commands */

struct reconcile_args {
	const char *peer, *month, *output, *currency, *note;
	bool all, csv, withdraw;
};

/* Checks --peer and --month; the peer must be another space we know. */
static void
reconcile_check_args(const struct reconcile_args *a, const char *what)
{
	if (a->peer == NULL || a->month == NULL)
		cli_die_usage("%s takes --peer SPACE --month YYYY-MM", what);
	if (!reconcile_month_valid(a->month))
		cli_die_usage("--month must be YYYY-MM, not '%s'", a->month);
	if (a->currency != NULL && (strlen(a->currency) != 3 ||
	    strspn(a->currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3))
		cli_die_usage("--currency must be a code like EUR, not '%s'", a->currency);
}

static int
reconcile_show_stored(struct cli_session *s, const struct reconcile_args *a)
{
	cJSON *st = NULL;
	int r;

	if (reconcile_load(s->node, s->conn, a->peer, a->month, &st) < 0)
		return cli_fail("cannot read the statement");
	r = reconcile_print(st, a->csv, a->all, a->output);
	cJSON_Delete(st);
	return r;
}

/*
 * The options of a statement's commands (reconcile, reconcile show): the
 * pair of spaces and month, and how to print.  Exits on a bad one.
 */
static void
reconcile_statement_args(int argc, char **argv, struct reconcile_args *a,
    const char *what, const char *usage)
{
	const struct cli_opt opts[] = {
		{ "peer", true, &a->peer, NULL },
		{ "month", true, &a->month, NULL },
		{ "output", true, &a->output, NULL },
		{ "all", false, NULL, &a->all },
		{ "csv", false, NULL, &a->csv },
		{ NULL, false, NULL, NULL },
	};

	if (cli_parse_options(argc, argv, opts) != argc)
		cli_die_usage("%s", usage);
	reconcile_check_args(a, what);
}

int
reconcile_cmd_run(int argc, char **argv)
{
	struct reconcile_args a = { 0 };
	struct cli_session s;
	struct peer_client *pc = NULL;
	struct node_directory *nd;
	char err[512];
	int stats[3] = { 0, 0, 0 }, r;

	reconcile_statement_args(argc, argv, &a, "reconcile",
	    "reconcile takes --peer SPACE --month YYYY-MM"
	    " (or: reconcile show|list|agree|dispute)");
	cli_session_open(&s, NODE_NEED_DIRECTORY);
	nd = node_directory_get(s.node);
	r = nd != NULL && directory_find_space(nd->dir, a.peer) != NULL &&
	    strcmp(a.peer, node_space_id(s.node)) != 0;
	node_directory_put(s.node, nd);
	if (!r) {
		cli_session_close(&s);
		return cli_fail("'%s' is not another space of the directory", a.peer);
	}
	if (peer_client_new(&pc, s.node) < 0) {
		cli_session_close(&s);
		return cli_fail("out of memory");
	}
	r = reconcile_run(s.node, s.conn, pc, a.peer, a.month, stats, err, sizeof(err));
	peer_client_free(pc);
	if (r < 0) {
		cli_session_close(&s);
		return cli_fail("%s", err);
	}
	log_info("reconciled %s with %s: %d records here, %d there (%d pages)", a.month,
	    a.peer, stats[0], stats[1], stats[2]);
	r = reconcile_show_stored(&s, &a);
	cli_session_close(&s);
	return r;
}

int
reconcile_cmd_show(int argc, char **argv)
{
	struct reconcile_args a = { 0 };
	struct cli_session s;
	int r;

	reconcile_statement_args(argc, argv, &a, "reconcile show",
	    "reconcile show takes --peer SPACE --month YYYY-MM");
	cli_session_open(&s, 0);
	r = reconcile_show_stored(&s, &a);
	cli_session_close(&s);
	return r;
}

int
reconcile_cmd_list(int argc, char **argv)
{
	const char *month = NULL;
	const struct cli_opt opts[] = {
		{ "month", true, &month, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct cli_session s;
	const char *params[1];
	PGresult *res;
	cJSON *arr;

	if (cli_parse_options(argc, argv, opts) != argc || month == NULL)
		cli_die_usage("reconcile list takes --month YYYY-MM");
	if (!reconcile_month_valid(month))
		cli_die_usage("--month must be YYYY-MM, not '%s'", month);
	params[0] = month;
	cli_session_open(&s, 0);
	res = db_query(s.conn, "select " RECONCILE_STATEMENT_COLUMNS ", status_by,"
	    " to_char(status_at at time zone 'UTC', " RECONCILE_TIME_FMT ")"
	    " from statements where month = $1 order by peer, currency", 1, params);
	cli_session_close(&s);
	if (res == NULL)
		return cli_fail("cannot list the statements");
	arr = cJSON_CreateArray();
	if (!cli_json && PQntuples(res) > 0)
		printf("%-14s %-4s %-9s %14s %14s %14s %6s  %s\n", "PEER", "CUR", "STATUS",
		    "RECEIVABLE", "PAYABLE", "NET", "HELD", "SINCE");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = reconcile_statement_json(res, i);
		int64_t rc = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		int64_t pc = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		char x[32], y[32], z[32];

		cJSON_AddStringToObject(o, "status_by", PQgetvalue(res, i, 7));
		cJSON_AddStringToObject(o, "status_at", PQgetvalue(res, i, 8));
		cJSON_AddItemToArray(arr, o);
		reconcile_format_cents(rc, x);
		reconcile_format_cents(pc, y);
		reconcile_format_cents(rc - pc, z);
		if (!cli_json)
			printf("%-14s %-4s %-9s %14s %14s %14s %6s  %s\n", PQgetvalue(res, i, 0),
			    PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), x, y, z,
			    PQgetvalue(res, i, 5), PQgetvalue(res, i, 8));
	}
	if (cli_json)
		cli_print_json(arr);
	else if (PQntuples(res) == 0)
		printf("No statements for %s: run 'passerelle reconcile --peer SPACE"
		    " --month %s'.\n", month, month);
	cJSON_Delete(arr);
	PQclear(res);
	return 0;
}

static void
reconcile_audit(PGconn *conn, const char *action, const char *subject,
    const char *detail)
{
	const char *params[3] = { action, subject, detail };

	(void)db_exec(conn, "insert into audit (actor, action, subject, detail)"
	    " values ('cli', $1, $2, $3)", 3, params);
}

/* Sets the status of the statements of peer and month (one currency or all). */
static int
reconcile_set_status(const struct reconcile_args *a, const char *status)
{
	struct cli_session s;
	const char *params[5] = { a->peer, a->month, a->currency, status, a->note };
	char subject[128];
	PGresult *res;
	int n;

	cli_session_open(&s, 0);
	res = db_query(s.conn, "update statements set status = $4, status_at = now(),"
	    " status_by = 'cli', note = coalesce($5, note)"
	    " where peer = $1 and month = $2 and ($3::text is null or currency = $3)"
	    " returning currency, held_lines", 5, params);
	if (res == NULL) {
		cli_session_close(&s);
		return cli_fail("cannot change the statement");
	}
	n = PQntuples(res);
	snprintf(subject, sizeof(subject), "%s %s", a->peer, a->month);
	if (n > 0)
		reconcile_audit(s.conn, strcmp(status, "agreed") == 0 ? "statement.agree" :
		    "statement.dispute", subject, a->note);
	for (int i = 0; i < n && !cli_json; i++) {
		int held = atoi(PQgetvalue(res, i, 1));

		printf("statement %s %s %s: %s", a->peer, a->month, PQgetvalue(res, i, 0),
		    status);
		if (held > 0 && strcmp(status, "agreed") == 0)
			printf(" (%d held-back line%s stay out of the totals)", held,
			    held == 1 ? "" : "s");
		printf("\n");
	}
	if (cli_json && n > 0)
		reconcile_show_stored(&s, a);
	PQclear(res);
	cli_session_close(&s);
	if (n == 0)
		return cli_fail("no statement with %s for %s%s%s: run 'passerelle reconcile"
		    " --peer %s --month %s' first", a->peer, a->month,
		    a->currency != NULL ? " in " : "", a->currency != NULL ? a->currency : "",
		    a->peer, a->month);
	return 0;
}

int
reconcile_cmd_agree(int argc, char **argv)
{
	struct reconcile_args a = { 0 };
	const struct cli_opt opts[] = {
		{ "peer", true, &a.peer, NULL },
		{ "month", true, &a.month, NULL },
		{ "currency", true, &a.currency, NULL },
		{ "note", true, &a.note, NULL },
		{ NULL, false, NULL, NULL },
	};

	if (cli_parse_options(argc, argv, opts) != argc)
		cli_die_usage("reconcile agree takes --peer SPACE --month YYYY-MM");
	reconcile_check_args(&a, "reconcile agree");
	return reconcile_set_status(&a, "agreed");
}

/* Marks one line disputed (or withdraws the dispute) and updates the totals. */
static int
reconcile_dispute_line(const struct reconcile_args *a, const char *visit_id)
{
	struct cli_session s;
	const char *params[4] = { a->peer, a->month, visit_id, a->note };
	char subject[128];
	PGresult *res;
	int r = 1;

	cli_session_open(&s, 0);
	if (db_begin(s.conn) < 0)
		goto out;
	res = db_query(s.conn, "select 1 from statement_lines l join statements s"
	    " on s.id = l.statement_id where s.peer = $1 and s.month = $2"
	    " and l.visit_id = $3::uuid", 3, params);
	if (res == NULL)
		goto rollback;
	if (PQntuples(res) == 0) {
		PQclear(res);
		db_rollback(s.conn);
		r = cli_fail("visit %s is not in the statement with %s for %s", visit_id,
		    a->peer, a->month);
		goto out;
	}
	PQclear(res);
	if (a->withdraw) {
		const char *p2[2] = { a->peer, visit_id };

		if (db_exec(s.conn, "delete from reconcile_disputes where peer = $1"
		    " and visit_id = $2::uuid", 2, p2) < 0)
			goto rollback;
	} else {
		const char *p3[3] = { a->peer, visit_id, a->note };

		if (db_exec(s.conn, "insert into reconcile_disputes (peer, visit_id, note,"
		    " disputed_by) values ($1, $2::uuid, $3, 'cli') on conflict (peer,"
		    " visit_id) do update set note = excluded.note, disputed_at = now()",
		    3, p3) < 0)
			goto rollback;
	}
	if (db_exec(s.conn, "update statement_lines l set disputed_here = $4::text is not null,"
	    " note_here = $4 from statements s where s.id = l.statement_id"
	    " and s.peer = $1 and s.month = $2 and l.visit_id = $3::uuid", 4, params) < 0)
		goto rollback;
	{
		const char *p3[3] = { a->peer, a->month, "cli" };

		if (db_exec(s.conn, reconcile_refresh_sql, 3, p3) < 0)
			goto rollback;
	}
	snprintf(subject, sizeof(subject), "%s %s %s", a->peer, a->month, visit_id);
	reconcile_audit(s.conn, a->withdraw ? "statement.line.undispute" :
	    "statement.line.dispute", subject, a->note);
	if (db_commit(s.conn) < 0)
		goto rollback;
	if (!cli_json)
		printf("visit %s %s; the totals are updated (agree the statement again"
		    " if it was agreed)\n", visit_id, a->withdraw ? "no longer disputed" :
		    "disputed: held back from the totals");
	r = cli_json ? reconcile_show_stored(&s, a) : 0;
	goto out;
rollback:
	db_rollback(s.conn);
	r = cli_fail("cannot record the dispute");
out:
	cli_session_close(&s);
	return r;
}

int
reconcile_cmd_dispute(int argc, char **argv)
{
	struct reconcile_args a = { 0 };
	const struct cli_opt opts[] = {
		{ "peer", true, &a.peer, NULL },
		{ "month", true, &a.month, NULL },
		{ "currency", true, &a.currency, NULL },
		{ "note", true, &a.note, NULL },
		{ "withdraw", false, NULL, &a.withdraw },
		{ NULL, false, NULL, NULL },
	};
	int i = cli_parse_options(argc, argv, opts);

	reconcile_check_args(&a, "reconcile dispute");
	if (argc - i > 1)
		cli_die_usage("reconcile dispute takes at most one visit id");
	if (a.note != NULL && (a.note[0] == '\0' || strlen(a.note) > RECONCILE_MAX_NOTE))
		cli_die_usage("--note must be 1 to %d bytes", RECONCILE_MAX_NOTE);
	if (argc - i == 1) {
		if (!visit_id_valid(argv[i]))
			cli_die_usage("'%s' is not a visit id (a lower-case UUID)", argv[i]);
		if (a.withdraw)
			a.note = NULL;
		else if (a.note == NULL)
			cli_die_usage("a dispute needs --note saying why");
		return reconcile_dispute_line(&a, argv[i]);
	}
	if (a.withdraw)
		cli_die_usage("--withdraw takes the visit id of a disputed line");
	if (a.note == NULL)
		cli_die_usage("a dispute needs --note saying why");
	return reconcile_set_status(&a, "disputed");
}

int
reconcile_statement_csv(struct node *node, PGconn *conn, const char *peer,
    const char *month, char **ret_csv)
{
	cJSON *st = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (reconcile_load(node, conn, peer, month, &st) < 0 || st == NULL)
		return -ENOENT;
	f = open_memstream(&text, &len);
	if (f == NULL) {
		cJSON_Delete(st);
		return -ENOMEM;
	}
	reconcile_print_csv(f, st);
	fclose(f);
	cJSON_Delete(st);
	*ret_csv = text;
	return 0;
}
