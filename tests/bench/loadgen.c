/*
 * loadgen.c - the benchmark's load generator: libcurl's multi interface,
 * N keep-alive connections, a warm-up, then a measured window of fixed
 * length.  It prints the throughput, the latency percentiles and the errors,
 * and a JSON line for scripts (--json).
 *
 * One request is a *chain*: a primary request, and optionally a follow-up on
 * the same connection once the primary succeeded (a check-out after a
 * check-in, a completion after an authorization).  Both are measured as
 * their own figures.  Templates (URL, body, headers) may hold placeholders:
 *
 *   {token}     the chain's line of the --tokens file (a pass, a visit id)
 *   {uuid}      a fresh lower-case UUID, the same for the whole chain
 *   {visit_id}  (follow-up only) the "visit_id" string of the primary's answer
 *   {now}       the current UTC time, RFC 3339
 *
 * Each line of the tokens file is used once, and the run ends when they are
 * all used (a check-in debits a ticket and keeps the member checked in);
 * with --reuse-tokens a chain gives its token back when it ends, so that a
 * small pool of members can check in and out for as long as the run lasts.
 *
 * Only completions that started after the warm-up and ended inside the
 * window count.  When the window closes no new chain starts; the chains in
 * flight are finished (so that no member stays checked in) but not counted.
 *
 * Not here: setting up the federation (run.sh, federation.sh), minting
 * members (mint.c).  It is single-threaded on purpose: one core of load
 * against one core of server on a two-core machine is the same for every
 * target, nginx included.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

#include "bench.h"

#define LOADGEN_MAX_BODY (1024 * 1024)	/* largest answer kept, in bytes */
#define LOADGEN_MAX_SAMPLES (50 * 1000 * 1000)
#define LOADGEN_MAX_HEADERS 32
#define LOADGEN_MAX_CONCURRENCY 4096
#define LOADGEN_DRAIN_SECONDS 30
#define LOADGEN_ERROR_SAMPLES 3

/* ------------------------------------------------------------ options */

struct request_template {
	const char *url;
	const char *method;
	char *body;
	const char *headers[LOADGEN_MAX_HEADERS];
	int nheaders;
	const char *expect;	/* the answer must contain this */
};

struct options {
	struct request_template req, then;
	bool has_then;
	const char *then_if;	/* follow-up only when the answer holds this */
	const char *tokens_file;
	bool reuse_tokens;
	const char *save_file;	/* "visit_id" of every expected primary answer */
	const char *save_field;
	const char *cert, *key, *cacert;
	const char *label;
	int concurrency;
	double warmup, duration;
	long long max_requests;	/* chains started, warm-up included; 0: no bound */
	long timeout_ms;
	bool json;
	bool verbose;
};

/* ------------------------------------------------------------ figures */

struct figures {
	const char *name;
	uint32_t *samples;	/* latencies in microseconds, counted ones only */
	size_t n, cap;
	long long transport_errors, http_errors, unexpected;
	long long uncounted;	/* warm-up and drain */
	char error_samples[LOADGEN_ERROR_SAMPLES][240];
	int nerror_samples;
};

static void
figures_add(struct figures *f, uint32_t us)
{
	if (f->n == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 65536;
		uint32_t *s;

		if (ncap > LOADGEN_MAX_SAMPLES)
			return;
		s = realloc(f->samples, ncap * sizeof(*s));
		if (s == NULL)
			return;
		f->samples = s;
		f->cap = ncap;
	}
	f->samples[f->n++] = us;
}

static void
figures_note_error(struct figures *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
figures_note_error(struct figures *f, const char *fmt, ...)
{
	va_list ap;

	if (f->nerror_samples >= LOADGEN_ERROR_SAMPLES)
		return;
	va_start(ap, fmt);
	vsnprintf(f->error_samples[f->nerror_samples++], sizeof(f->error_samples[0]),
	    fmt, ap);
	va_end(ap);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile, in milliseconds. */
static double
figures_pct(const struct figures *f, double p)
{
	size_t i;

	if (f->n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)f->n + 0.999999);
	if (i == 0)
		i = 1;
	if (i > f->n)
		i = f->n;
	return f->samples[i - 1] / 1000.0;
}

static long long
figures_errors(const struct figures *f)
{
	return f->transport_errors + f->http_errors + f->unexpected;
}

/* ------------------------------------------------------------ utilities */

static uint64_t rng_state;

static uint64_t
rng_next(void)
{
	/* xorshift64*: ids only need to be unique, not secret. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static void
rng_seed(void)
{
	FILE *f = fopen("/dev/urandom", "rb");

	if (f == NULL || fread(&rng_state, sizeof(rng_state), 1, f) != 1)
		rng_state = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
	if (f != NULL)
		fclose(f);
	if (rng_state == 0)
		rng_state = 0x9E3779B97F4A7C15ULL;
}

static void
make_uuid(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = rng_next(), b = rng_next();
	uint8_t bytes[16];
	int j = 0;

	memcpy(bytes, &a, 8);
	memcpy(bytes + 8, &b, 8);
	bytes[6] = (uint8_t)((bytes[6] & 0x0f) | 0x40);
	bytes[8] = (uint8_t)((bytes[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[bytes[i] >> 4];
		out[j++] = hex[bytes[i] & 15];
	}
	out[j] = '\0';
}

static char *
read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			if (ret_len != NULL)
				*ret_len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* ------------------------------------------------------------ tokens */

/* A ring of line indexes: taken from the head, given back at the tail. */
struct tokens {
	char *text;	/* the file, cut into lines in place */
	char **lines;
	size_t nlines;
	size_t *ring;
	size_t head, count;
	bool exhausted;
};

static int
tokens_load(struct tokens *t, const char *path)
{
	size_t len = 0, cap = 0;
	char *text = read_file(path, &len), *p, *save = NULL;

	if (text == NULL)
		return -errno;
	t->text = text;
	for (p = strtok_r(text, "\r\n", &save); p != NULL; p = strtok_r(NULL, "\r\n", &save)) {
		if (p[0] == '\0')
			continue;
		if (t->nlines == cap) {
			char **nl;

			cap = cap ? cap * 2 : 1024;
			nl = realloc(t->lines, cap * sizeof(*nl));
			if (nl == NULL)
				return -ENOMEM;
			t->lines = nl;
		}
		t->lines[t->nlines++] = p;
	}
	if (t->nlines == 0)
		return -ENODATA;
	t->ring = calloc(t->nlines, sizeof(*t->ring));
	if (t->ring == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->nlines; i++)
		t->ring[i] = i;
	t->count = t->nlines;
	return 0;
}

static long
tokens_take(struct tokens *t)
{
	size_t i;

	if (t->count == 0) {
		t->exhausted = true;
		return -1;
	}
	i = t->ring[t->head];
	t->head = (t->head + 1) % t->nlines;
	t->count--;
	return (long)i;
}

static void
tokens_give_back(struct tokens *t, long i)
{
	if (i < 0)
		return;
	t->ring[(t->head + t->count) % t->nlines] = (size_t)i;
	t->count++;
}

/* ------------------------------------------------------------ templates */

struct chain_ctx {
	const char *token;
	char uuid[37];
	char visit_id[64];
};

/* Expands the placeholders of tpl; the result is malloc'ed. */
static char *
expand(const char *tpl, const struct chain_ctx *c)
{
	size_t cap = strlen(tpl) + 256, len = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	for (const char *p = tpl; *p != '\0';) {
		const char *val = NULL;
		char nowbuf[32];
		size_t skip = 0, vlen;

		if (*p == '{') {
			if (strncmp(p, "{token}", 7) == 0) {
				val = c->token != NULL ? c->token : "";
				skip = 7;
			} else if (strncmp(p, "{uuid}", 6) == 0) {
				val = c->uuid;
				skip = 6;
			} else if (strncmp(p, "{visit_id}", 10) == 0) {
				val = c->visit_id;
				skip = 10;
			} else if (strncmp(p, "{now}", 5) == 0) {
				time_t t = time(NULL);
				struct tm tm;

				gmtime_r(&t, &tm);
				strftime(nowbuf, sizeof(nowbuf), "%Y-%m-%dT%H:%M:%SZ", &tm);
				val = nowbuf;
				skip = 5;
			}
		}
		if (val == NULL) {
			val = p;
			vlen = 1;
			skip = 1;
		} else {
			vlen = strlen(val);
		}
		if (len + vlen + 1 > cap) {
			char *n;

			cap = (len + vlen + 1) * 2;
			n = realloc(out, cap);
			if (n == NULL) {
				free(out);
				return NULL;
			}
			out = n;
		}
		memcpy(out + len, val, vlen);
		len += vlen;
		p += skip;
	}
	out[len] = '\0';
	return out;
}

/* Finds the string "field":"value" in a JSON answer (no full parse needed). */
static bool
json_string_field(const char *body, const char *field, char *out, size_t outlen)
{
	char key[80];
	const char *p, *end;

	snprintf(key, sizeof(key), "\"%s\":\"", field);
	p = strstr(body, key);
	if (p == NULL)
		return false;
	p += strlen(key);
	end = strchr(p, '"');
	if (end == NULL || (size_t)(end - p) >= outlen)
		return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

/* ------------------------------------------------------------ the run */

enum stage { STAGE_PRIMARY, STAGE_THEN };

struct slot {
	CURL *easy;
	struct curl_slist *headers;
	char *url, *body;
	char *resp;
	size_t resp_len;
	bool resp_truncated;
	enum stage stage;
	struct chain_ctx ctx;
	long token;
	double started;
	bool busy;
};

struct run {
	struct options *o;
	CURLM *multi;
	struct slot *slots;
	struct tokens tokens;
	bool has_tokens;
	FILE *save;
	struct figures primary, then;
	double t0, warm_end, end, last_counted;
	long long started_chains;
	long long connections, connections_measured;
	bool stopping;
	int busy;
};

static size_t
slot_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct slot *s = arg;
	size_t n = size * nmemb;

	if (s->resp_len + n > LOADGEN_MAX_BODY) {
		s->resp_truncated = true;
		return n;
	}
	memcpy(s->resp + s->resp_len, data, n);
	s->resp_len += n;
	s->resp[s->resp_len] = '\0';
	return n;
}

static int
slot_start(struct run *r, struct slot *s, enum stage stage)
{
	const struct request_template *t = stage == STAGE_PRIMARY ? &r->o->req : &r->o->then;
	const struct options *o = r->o;

	curl_slist_free_all(s->headers);
	s->headers = NULL;
	free(s->url);
	free(s->body);
	s->body = NULL;
	s->url = expand(t->url, &s->ctx);
	if (s->url == NULL)
		return -ENOMEM;
	for (int i = 0; i < t->nheaders; i++) {
		char *h = expand(t->headers[i], &s->ctx);

		if (h == NULL)
			return -ENOMEM;
		s->headers = curl_slist_append(s->headers, h);
		free(h);
	}
	/* No "Expect: 100-continue" round trip for larger bodies. */
	s->headers = curl_slist_append(s->headers, "Expect:");

	curl_easy_reset(s->easy);	/* keeps the connection */
	curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
	/* Straight to the server: never through a proxy the environment names. */
	curl_easy_setopt(s->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, slot_write_cb);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
	if (o->cacert != NULL) {
		curl_easy_setopt(s->easy, CURLOPT_CAINFO, o->cacert);
		curl_easy_setopt(s->easy, CURLOPT_CAPATH, NULL);
	}
	if (o->cert != NULL)
		curl_easy_setopt(s->easy, CURLOPT_SSLCERT, o->cert);
	if (o->key != NULL)
		curl_easy_setopt(s->easy, CURLOPT_SSLKEY, o->key);
	if (t->body != NULL) {
		s->body = expand(t->body, &s->ctx);
		if (s->body == NULL)
			return -ENOMEM;
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
	}
	if (t->method != NULL && strcmp(t->method, "GET") == 0 && t->body == NULL)
		curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
	else if (t->method != NULL && strcmp(t->method, "POST") == 0 && t->body == NULL) {
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (t->method != NULL && strcmp(t->method, "GET") != 0 &&
	    strcmp(t->method, "POST") != 0)
		curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, t->method);

	s->resp_len = 0;
	s->resp[0] = '\0';
	s->resp_truncated = false;
	s->stage = stage;
	s->started = bench_now_s();
	s->busy = true;
	if (curl_multi_add_handle(r->multi, s->easy) != CURLM_OK)
		return -EIO;
	r->busy++;
	return 0;
}

/* Starts a new chain on s, if the run allows one. */
static void
chain_start(struct run *r, struct slot *s)
{
	double t = bench_now_s();

	if (r->stopping || t >= r->end ||
	    (r->o->max_requests > 0 && r->started_chains >= r->o->max_requests)) {
		r->stopping = true;
		return;
	}
	s->token = -1;
	s->ctx.token = NULL;
	if (r->has_tokens) {
		s->token = tokens_take(&r->tokens);
		if (s->token < 0) {
			r->stopping = true;
			return;
		}
		s->ctx.token = r->tokens.lines[s->token];
	}
	make_uuid(s->ctx.uuid);
	s->ctx.visit_id[0] = '\0';
	r->started_chains++;
	if (slot_start(r, s, STAGE_PRIMARY) < 0) {
		fprintf(stderr, "loadgen: cannot start a request (out of memory?)\n");
		r->stopping = true;
	}
}

static void
chain_end(struct run *r, struct slot *s, bool token_clean)
{
	if (r->has_tokens && r->o->reuse_tokens && token_clean)
		tokens_give_back(&r->tokens, s->token);
	s->token = -1;
	chain_start(r, s);
}

/* One transfer of s finished with code cc. */
static void
slot_done(struct run *r, struct slot *s, CURLcode cc)
{
	const struct options *o = r->o;
	const struct request_template *t = s->stage == STAGE_PRIMARY ? &o->req : &o->then;
	struct figures *f = s->stage == STAGE_PRIMARY ? &r->primary : &r->then;
	double done = bench_now_s();
	bool counted = s->started >= r->warm_end && done <= r->end;
	bool ok = false;
	long status = 0, connects = 0;

	curl_multi_remove_handle(r->multi, s->easy);
	s->busy = false;
	r->busy--;
	curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
	r->connections += connects;
	if (done > r->warm_end && done <= r->end)
		r->connections_measured += connects;
	if (cc != CURLE_OK) {
		if (counted)
			f->transport_errors++;
		figures_note_error(f, "%s: %s", s->url, curl_easy_strerror(cc));
	} else {
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status < 200 || status > 299) {
			if (counted)
				f->http_errors++;
			figures_note_error(f, "%s: HTTP %ld: %.160s", s->url, status, s->resp);
		} else if (t->expect != NULL && strstr(s->resp, t->expect) == NULL) {
			if (counted)
				f->unexpected++;
			figures_note_error(f, "%s: answer without '%s': %.160s", s->url,
			    t->expect, s->resp);
		} else {
			ok = true;
		}
	}
	if (counted) {
		figures_add(f, (uint32_t)((done - s->started) * 1e6));
		if (done > r->last_counted)
			r->last_counted = done;
	} else {
		f->uncounted++;
	}
	if (o->verbose)
		fprintf(stderr, "%s %ld %.300s\n", s->url, status, s->resp);

	if (s->stage == STAGE_PRIMARY) {
		if (ok && r->save != NULL) {
			char v[128];

			if (json_string_field(s->resp, o->save_field, v, sizeof(v)))
				fprintf(r->save, "%s\n", v);
		}
		if (ok && o->has_then && (o->then_if == NULL || strstr(s->resp, o->then_if))) {
			json_string_field(s->resp, "visit_id", s->ctx.visit_id,
			    sizeof(s->ctx.visit_id));
			if (slot_start(r, s, STAGE_THEN) < 0) {
				fprintf(stderr, "loadgen: cannot start a follow-up\n");
				r->stopping = true;
			}
			return;
		}
		/* No follow-up: a refused check-in leaves nothing open. */
		chain_end(r, s, ok || status == 200);
		return;
	}
	chain_end(r, s, ok);
}

static int
run_loop(struct run *r)
{
	int c = r->o->concurrency;

	r->t0 = bench_now_s();
	r->warm_end = r->t0 + r->o->warmup;
	r->end = r->warm_end + r->o->duration;
	for (int i = 0; i < c && !r->stopping; i++)
		chain_start(r, &r->slots[i]);
	while (r->busy > 0) {
		CURLMsg *m;
		int running = 0, left = 0;
		double t = bench_now_s();

		if (t >= r->end)
			r->stopping = true;
		if (t > r->end + LOADGEN_DRAIN_SECONDS) {
			fprintf(stderr, "loadgen: %d requests still running %d s after the"
			    " end; giving up on them\n", r->busy, LOADGEN_DRAIN_SECONDS);
			break;
		}
		if (curl_multi_perform(r->multi, &running) != CURLM_OK)
			return -EIO;
		while ((m = curl_multi_info_read(r->multi, &left)) != NULL) {
			struct slot *s = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			slot_done(r, s, m->data.result);
		}
		if (r->busy > 0)
			curl_multi_poll(r->multi, NULL, 0, 50, NULL);
	}
	return 0;
}

/* ------------------------------------------------------------ output */

static double
measured_window(const struct run *r)
{
	double end = r->last_counted > 0 && r->last_counted < r->end ? r->last_counted : r->end;
	double w = end - r->warm_end;

	/* A run cut short (tokens or --max-requests) is measured to its last answer. */
	return w > 0 ? w : 0;
}

static void
print_figures(FILE *out, const struct figures *f, double window)
{
	fprintf(out, "%-8s %9zu req  %9.1f/s  latency ms p50 %.2f  p95 %.2f  p99 %.2f"
	    "  max %.2f  errors %lld (transport %lld, http %lld, unexpected %lld)\n",
	    f->name, f->n, window > 0 ? (double)f->n / window : 0, figures_pct(f, 50),
	    figures_pct(f, 95), figures_pct(f, 99), figures_pct(f, 100),
	    figures_errors(f), f->transport_errors, f->http_errors, f->unexpected);
	for (int i = 0; i < f->nerror_samples; i++)
		fprintf(out, "         e.g. %s\n", f->error_samples[i]);
}

static void
json_figures(FILE *out, const struct figures *f, double window)
{
	fprintf(out, "{\"count\":%zu,\"rate\":%.1f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,"
	    "\"p99_ms\":%.3f,\"max_ms\":%.3f,\"errors\":%lld,\"transport_errors\":%lld,"
	    "\"http_errors\":%lld,\"unexpected\":%lld,\"uncounted\":%lld,"
	    "\"completed\":%lld}",
	    f->n, window > 0 ? (double)f->n / window : 0, figures_pct(f, 50),
	    figures_pct(f, 95), figures_pct(f, 99), figures_pct(f, 100),
	    figures_errors(f), f->transport_errors, f->http_errors, f->unexpected,
	    f->uncounted, (long long)f->n + f->uncounted);
}

static void
report(struct run *r)
{
	const struct options *o = r->o;
	double window = measured_window(r);
	FILE *text = o->json ? stderr : stdout;

	/* qsort() must not be handed NULL, even for no element. */
	if (r->primary.n > 0)
		qsort(r->primary.samples, r->primary.n, sizeof(uint32_t), cmp_u32);
	if (r->then.n > 0)
		qsort(r->then.samples, r->then.n, sizeof(uint32_t), cmp_u32);
	fprintf(text, "%s: %s, concurrency %d, warm-up %.1f s, measured %.2f s%s\n",
	    o->label, o->req.url, o->concurrency, o->warmup, window,
	    r->has_tokens && r->tokens.exhausted ? " (tokens used up)" :
	    o->max_requests > 0 && r->started_chains >= o->max_requests ?
	    " (--max-requests reached)" : "");
	print_figures(text, &r->primary, window);
	if (o->has_then)
		print_figures(text, &r->then, window);
	fprintf(text, "connections opened: %lld (%lld inside the measured window)\n",
	    r->connections, r->connections_measured);
	if (o->json) {
		struct rusage ru;
		double cpu = 0;

		/* The generator's own CPU, warm-up and drain included. */
		if (getrusage(RUSAGE_SELF, &ru) == 0)
			cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
		fprintf(stdout, "{\"label\":\"%s\",\"concurrency\":%d,\"warmup_s\":%.1f,"
		    "\"window_s\":%.3f,\"wall_s\":%.3f,\"loadgen_cpu_s\":%.3f,"
		    "\"chains\":%lld,\"tokens_exhausted\":%s,"
		    "\"connections\":%lld,\"connections_measured\":%lld,\"primary\":",
		    o->label, o->concurrency, o->warmup, window, bench_now_s() - r->t0, cpu,
		    r->started_chains, r->has_tokens && r->tokens.exhausted ? "true" : "false",
		    r->connections, r->connections_measured);
		json_figures(stdout, &r->primary, window);
		if (o->has_then) {
			fputs(",\"then\":", stdout);
			json_figures(stdout, &r->then, window);
		}
		fputs("}\n", stdout);
	}
}

/* ------------------------------------------------------------ main */

static void
usage(FILE *out)
{
	fputs("usage: loadgen --url URL [options]\n"
	    "  --url URL, --method M, --body TEXT, --body-file F, --header H (repeatable)\n"
	    "  --expect TEXT          count an answer without TEXT as an error\n"
	    "  --tokens FILE          one token per line, {token} in templates\n"
	    "  --reuse-tokens         give a token back when its chain ends\n"
	    "  --then-url URL, --then-method M, --then-body TEXT, --then-header H,\n"
	    "  --then-expect TEXT     a follow-up on the same connection\n"
	    "  --then-if TEXT         follow up only answers holding TEXT\n"
	    "  --save FILE [--save-field NAME]  write NAME (visit_id) of each good answer\n"
	    "  --cert F --key F --cacert F      client certificate and trust (mTLS)\n"
	    "  --concurrency N (1), --warmup S (2), --duration S (10),\n"
	    "  --max-requests N (chains, warm-up included), --timeout-ms MS (10000)\n"
	    "  --label NAME, --json, --verbose\n"
	    "placeholders: {token} {uuid} {visit_id} {now}\n", out);
}

static int
parse_args(int argc, char **argv, struct options *o)
{
	enum {
		O_URL = 256, O_METHOD, O_BODY, O_BODY_FILE, O_HEADER, O_EXPECT, O_TOKENS,
		O_REUSE, O_THEN_URL, O_THEN_METHOD, O_THEN_BODY, O_THEN_HEADER,
		O_THEN_EXPECT, O_THEN_IF, O_SAVE, O_SAVE_FIELD, O_CERT, O_KEY, O_CACERT,
		O_CONC, O_WARMUP, O_DURATION, O_MAX, O_TIMEOUT, O_LABEL, O_JSON,
		O_VERBOSE, O_HELP,
	};
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, O_URL },
		{ "method", required_argument, NULL, O_METHOD },
		{ "body", required_argument, NULL, O_BODY },
		{ "body-file", required_argument, NULL, O_BODY_FILE },
		{ "header", required_argument, NULL, O_HEADER },
		{ "expect", required_argument, NULL, O_EXPECT },
		{ "tokens", required_argument, NULL, O_TOKENS },
		{ "reuse-tokens", no_argument, NULL, O_REUSE },
		{ "then-url", required_argument, NULL, O_THEN_URL },
		{ "then-method", required_argument, NULL, O_THEN_METHOD },
		{ "then-body", required_argument, NULL, O_THEN_BODY },
		{ "then-header", required_argument, NULL, O_THEN_HEADER },
		{ "then-expect", required_argument, NULL, O_THEN_EXPECT },
		{ "then-if", required_argument, NULL, O_THEN_IF },
		{ "save", required_argument, NULL, O_SAVE },
		{ "save-field", required_argument, NULL, O_SAVE_FIELD },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "cacert", required_argument, NULL, O_CACERT },
		{ "concurrency", required_argument, NULL, O_CONC },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "max-requests", required_argument, NULL, O_MAX },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "label", required_argument, NULL, O_LABEL },
		{ "json", no_argument, NULL, O_JSON },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	o->concurrency = 1;
	o->warmup = 2;
	o->duration = 10;
	o->timeout_ms = 10000;
	o->label = "requests";
	o->save_field = "visit_id";
	o->req.method = NULL;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case O_URL: o->req.url = optarg; break;
		case O_METHOD: o->req.method = optarg; break;
		case O_BODY: o->req.body = strdup(optarg); break;
		case O_BODY_FILE:
			o->req.body = read_file(optarg, NULL);
			if (o->req.body == NULL) {
				fprintf(stderr, "loadgen: cannot read %s\n", optarg);
				return -1;
			}
			break;
		case O_HEADER:
		case O_THEN_HEADER: {
			struct request_template *t = ch == O_HEADER ? &o->req : &o->then;

			if (t->nheaders >= LOADGEN_MAX_HEADERS) {
				fprintf(stderr, "loadgen: at most %d headers\n", LOADGEN_MAX_HEADERS);
				return -1;
			}
			t->headers[t->nheaders++] = optarg;
			break;
		}
		case O_EXPECT: o->req.expect = optarg; break;
		case O_TOKENS: o->tokens_file = optarg; break;
		case O_REUSE: o->reuse_tokens = true; break;
		case O_THEN_URL: o->then.url = optarg; o->has_then = true; break;
		case O_THEN_METHOD: o->then.method = optarg; break;
		case O_THEN_BODY: o->then.body = strdup(optarg); break;
		case O_THEN_EXPECT: o->then.expect = optarg; break;
		case O_THEN_IF: o->then_if = optarg; break;
		case O_SAVE: o->save_file = optarg; break;
		case O_SAVE_FIELD: o->save_field = optarg; break;
		case O_CERT: o->cert = optarg; break;
		case O_KEY: o->key = optarg; break;
		case O_CACERT: o->cacert = optarg; break;
		case O_CONC: o->concurrency = atoi(optarg); break;
		case O_WARMUP: o->warmup = atof(optarg); break;
		case O_DURATION: o->duration = atof(optarg); break;
		case O_MAX: o->max_requests = atoll(optarg); break;
		case O_TIMEOUT: o->timeout_ms = atol(optarg); break;
		case O_LABEL: o->label = optarg; break;
		case O_JSON: o->json = true; break;
		case O_VERBOSE: o->verbose = true; break;
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || o->req.url == NULL) {
		usage(stderr);
		return -1;
	}
	if (o->concurrency < 1 || o->concurrency > LOADGEN_MAX_CONCURRENCY ||
	    o->warmup < 0 || o->duration <= 0 || o->timeout_ms < 1 ||
	    o->max_requests < 0) {
		fprintf(stderr, "loadgen: concurrency 1..%d, warm-up >= 0, duration > 0\n",
		    LOADGEN_MAX_CONCURRENCY);
		return -1;
	}
	if (o->req.method == NULL)
		o->req.method = o->req.body != NULL ? "POST" : "GET";
	if (o->has_then && o->then.method == NULL)
		o->then.method = o->then.body != NULL ? "POST" : "GET";
	return 0;
}

int
main(int argc, char **argv)
{
	struct options o;
	struct run r;
	long long errors;
	int rc = 1;

	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	r.o = &o;
	r.primary.name = o.has_then ? "primary" : o.label;
	r.then.name = "then";
	rng_seed();
	if (o.tokens_file != NULL) {
		int e = tokens_load(&r.tokens, o.tokens_file);

		if (e < 0) {
			fprintf(stderr, "loadgen: tokens %s: %s\n", o.tokens_file,
			    e == -ENODATA ? "no lines" : strerror(-e));
			return 2;
		}
		r.has_tokens = true;
		if (!o.reuse_tokens && r.tokens.nlines < (size_t)o.concurrency)
			fprintf(stderr, "loadgen: warning: %zu tokens for %d connections\n",
			    r.tokens.nlines, o.concurrency);
	}
	if (o.save_file != NULL && (r.save = fopen(o.save_file, "w")) == NULL) {
		fprintf(stderr, "loadgen: cannot write %s: %s\n", o.save_file, strerror(errno));
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	r.multi = curl_multi_init();
	r.slots = calloc((size_t)o.concurrency, sizeof(*r.slots));
	if (r.multi == NULL || r.slots == NULL)
		goto out;
	/* One connection per slot, HTTP/1.1, kept alive between requests. */
	curl_multi_setopt(r.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, (long)o.concurrency * 2);
	for (int i = 0; i < o.concurrency; i++) {
		r.slots[i].easy = curl_easy_init();
		r.slots[i].resp = malloc(LOADGEN_MAX_BODY + 1);
		r.slots[i].token = -1;
		if (r.slots[i].easy == NULL || r.slots[i].resp == NULL)
			goto out;
	}
	if (run_loop(&r) < 0) {
		fprintf(stderr, "loadgen: curl multi failed\n");
		goto out;
	}
	report(&r);
	errors = figures_errors(&r.primary) + figures_errors(&r.then);
	rc = errors == 0 && r.primary.n > 0 ? 0 : 1;
out:
	if (r.save != NULL && fclose(r.save) != 0)
		rc = 1;
	for (int i = 0; r.slots != NULL && i < o.concurrency; i++) {
		if (r.slots[i].busy)
			curl_multi_remove_handle(r.multi, r.slots[i].easy);
		curl_easy_cleanup(r.slots[i].easy);
		curl_slist_free_all(r.slots[i].headers);
		free(r.slots[i].url);
		free(r.slots[i].body);
		free(r.slots[i].resp);
	}
	free(r.slots);
	if (r.multi != NULL)
		curl_multi_cleanup(r.multi);
	curl_global_cleanup();
	free(r.primary.samples);
	free(r.then.samples);
	free(r.tokens.text);
	free(r.tokens.lines);
	free(r.tokens.ring);
	free(o.req.body);
	free(o.then.body);
	return rc;
}
