/*
 * mint.c - makes N members of a home space and a signed pass for each, fast
 * enough for a benchmark (tens of thousands in seconds), and writes the
 * passes to a file, one per line, for the load generator.
 *
 * The members are real rows of the home's database, written with the same
 * columns as member_add() (a ticket book with an 'initial' ledger row that
 * keeps members.tickets equal to the sum of its movements), and the passes
 * are recorded in `passes` and signed with the home's own pass key (its key
 * file, read with key_load_private) through pass_sign(), as `passerelle pass
 * issue` does.  Only the batching differs:
 * one statement per few thousand members instead of a transaction each.
 *
 * Usage: bench_mint -c HOME.conf --count N --out FILE [--tickets T]
 * The home's database must exist and be migrated (start the node first).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "db.h"
#include "key.h"
#include "log.h"
#include "node.h"
#include "pass.h"
#include "util.h"

#define MINT_BATCH 5000

static const char mint_sql[] =
    "with m as (insert into members (pseudonym, display_name, full_name, plan, tickets)"
    "   select u.p, u.d, 'Bench visitor ' || u.d, 'tickets', $3::int"
    "   from unnest($1::text[], $2::text[]) as u(p, d)"
    "   returning id, pseudonym),"
    " mv as (insert into ticket_movements (member_id, delta, reason, actor)"
    "   select id, $3::int, 'initial', 'bench:mint' from m)"
    " insert into passes (jti, member_id, kid, issued_at, expires_at, digest)"
    "   select j.jti, m.id, $5, to_timestamp($6), to_timestamp($7), decode(j.d, 'hex')"
    "   from m join unnest($1::text[], $4::text[], $8::text[]) as j(p, jti, d)"
    "   on j.p = m.pseudonym";

/* Appends s to an array literal being built ("{" first, "}" added last). */
static int
mint_append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 5 > *cap) {
		size_t ncap = (*len + n + 5) * 2;
		char *nb = realloc(*buf, ncap);

		if (nb == NULL)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	if (*len > 1)
		(*buf)[(*len)++] = ',';
	(*buf)[(*len)++] = '"';
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[(*len)++] = '"';
	(*buf)[*len] = '\0';
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "out", required_argument, NULL, 'o' },
		{ "tickets", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL, *out_path = NULL;
	long count = 0, tickets = 1000000;
	struct config *cfg = NULL;
	struct node *node = NULL;
	PGconn *conn = NULL;
	FILE *out = NULL;
	uint8_t sk[KEY_SECRET_LEN], pk[KEY_PUBLIC_LEN];
	char err[512];
	int ch, rc = 1;

	while ((ch = getopt_long(argc, argv, "c:n:o:t:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': conf = optarg; break;
		case 'n': count = atol(optarg); break;
		case 'o': out_path = optarg; break;
		case 't': tickets = atol(optarg); break;
		default:
			fprintf(stderr, "usage: bench_mint -c CONF --count N --out FILE [--tickets T]\n");
			return 2;
		}
	}
	if (conf == NULL || out_path == NULL || count <= 0 || tickets <= 0 ||
	    tickets > 1000000000) {
		fprintf(stderr, "usage: bench_mint -c CONF --count N --out FILE [--tickets T]\n");
		return 2;
	}
	log_init(LOG_LEVEL_WARN, "bench_mint");
	if (config_load(conf, stderr, &cfg) < 0)
		return 1;
	/* The home's own key file, as the node loads it. */
	if (key_load_private(cfg->pass_key, sk, pk) < 0) {
		fprintf(stderr, "bench_mint: cannot load the pass key %s\n", cfg->pass_key);
		goto out;
	}
	if (node_open(&node, cfg, NODE_NEED_DATABASE, err, sizeof(err)) < 0 ||
	    node_db_connect(node, &conn, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_mint: %s\n", err);
		goto out;
	}
	out = fopen(out_path, "w");
	if (out == NULL) {
		fprintf(stderr, "bench_mint: %s: %s\n", out_path, strerror(errno));
		goto out;
	}
	for (long done = 0; done < count;) {
		long n = count - done < MINT_BATCH ? count - done : MINT_BATCH;
		char *subs = NULL, *names = NULL, *jtis = NULL, *digests = NULL;
		size_t sl = 0, sc = 0, nl = 0, nc = 0, jl = 0, jc = 0, dl = 0, dc = 0;
		char tickets_s[16], iat_s[32], exp_s[32], digest[65];
		int64_t iat = util_now();
		const char *params[8];
		int r = 0;

		/* Arrays as "{...}" literals: opened here, closed below. */
		subs = strdup("{");
		names = strdup("{");
		jtis = strdup("{");
		digests = strdup("{");
		sl = nl = jl = dl = 1;
		sc = nc = jc = dc = 2;
		for (long i = 0; i < n && r == 0 && subs && names && jtis && digests; i++) {
			struct pass_claims c;
			char *token = NULL;

			memset(&c, 0, sizeof(c));
			util_strlcpy(c.iss, node_space_id(node), sizeof(c.iss));
			util_random_token(c.sub, 9);
			snprintf(c.name, sizeof(c.name), "B.%06ld", done + i);
			util_strlcpy(c.plan, "tickets", sizeof(c.plan));
			util_strlcpy(c.kid, cfg->pass_kid, sizeof(c.kid));
			util_random_token(c.jti, 9);
			c.iat = iat;
			c.nbf = iat;
			c.exp = iat + cfg->pass_lifetime;
			if (pass_sign(&c, sk, &token) < 0) {
				r = -EIO;
				break;
			}
			fprintf(out, "%s\n", token);
			pass_digest(token, digest);
			free(token);
			r = mint_append(&subs, &sl, &sc, c.sub);
			if (r == 0)
				r = mint_append(&names, &nl, &nc, c.name);
			if (r == 0)
				r = mint_append(&jtis, &jl, &jc, c.jti);
			if (r == 0)
				r = mint_append(&digests, &dl, &dc, digest);
		}
		if (r == 0 && subs && names && jtis && digests) {
			strcat(subs, "}");
			strcat(names, "}");
			strcat(jtis, "}");
			strcat(digests, "}");
			snprintf(tickets_s, sizeof(tickets_s), "%ld", tickets);
			snprintf(iat_s, sizeof(iat_s), "%lld", (long long)iat);
			snprintf(exp_s, sizeof(exp_s), "%lld",
			    (long long)(iat + cfg->pass_lifetime));
			params[0] = subs;
			params[1] = names;
			params[2] = tickets_s;
			params[3] = jtis;
			params[4] = cfg->pass_kid;
			params[5] = iat_s;
			params[6] = exp_s;
			params[7] = digests;
			r = db_exec(conn, mint_sql, 8, params);
		} else if (r == 0) {
			r = -ENOMEM;
		}
		free(subs);
		free(names);
		free(jtis);
		free(digests);
		if (r < 0) {
			fprintf(stderr, "bench_mint: cannot mint (%s)\n", db_last_sqlstate());
			goto out;
		}
		done += n;
	}
	if (fclose(out) != 0) {
		out = NULL;
		fprintf(stderr, "bench_mint: %s: %s\n", out_path, strerror(errno));
		goto out;
	}
	out = NULL;
	printf("minted %ld members of %s with %ld tickets each; passes in %s\n", count,
	    node_space_id(node), tickets, out_path);
	rc = 0;
out:
	if (out != NULL)
		fclose(out);
	if (conn != NULL)
		PQfinish(conn);
	node_close(node);
	config_free(cfg);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}
