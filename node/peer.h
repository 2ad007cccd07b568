/*
 * peer.h - calls to other nodes' federation faces, over mutual TLS (libcurl).
 *
 * A peer client belongs to one thread and keeps its connections open between
 * calls: a new mTLS connection costs milliseconds of CPU, a reused one tens
 * of microseconds.  The peer's URL and the pin of its certificate's key come
 * from the directory; our client certificate is the node certificate.
 */
#ifndef PASSERELLE_PEER_H
#define PASSERELLE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "node.h"

#define PEER_MAX_RESPONSE (16 * 1024 * 1024)

struct peer_client;

struct peer_response {
	long status;		/* HTTP status, 0 when no answer came */
	char *body;		/* NUL-terminated, malloc'ed */
	size_t len;
	int64_t directory_serial; /* what the peer advertised, 0 if nothing */
	bool reused;		/* the call went over an existing connection */
	char error[256];	/* why no answer came */
};

int peer_client_new(struct peer_client **ret, struct node *node);
void peer_client_free(struct peer_client *pc);

/*
 * Sends method path (with a JSON body for POST) to space_id and waits at most
 * timeout_ms.  Returns 0 when the peer answered (any HTTP status), or a
 * negative code when it could not be reached, with the reason in ret->error.
 * Extra headers (e.g. "Idempotency-Key: ...") may be given, NULL-terminated.
 */
int peer_call(struct peer_client *pc, const char *space_id, const char *method,
    const char *path, const char *body, const char *const *headers,
    long timeout_ms, struct peer_response *ret);

void peer_response_clear(struct peer_response *resp);

/*
 * GETs a published document (the coordinator's directory) from an https://,
 * http:// or file:// URL.  The transport is checked the ordinary way (system
 * CAs for https): what is fetched must carry its own signature.
 */
int peer_fetch_url(struct peer_client *pc, const char *url, long timeout_ms,
    struct peer_response *ret);

/*
 * Peer health, like RADIUS proxies' status checks: after consecutive
 * failures a peer is "down" and is not called again (check-ins go straight
 * to the offline terms, the outbox waits) until its backoff has passed and a
 * cheap probe (GET /federation/v1/ping) succeeds.  peer_call() reports every
 * outcome itself.  peer_is_down() is cheap and thread-safe.
 */
bool peer_is_down(const char *space_id);
/* Whether the last call (or calls) to the peer failed. */
bool peer_is_failing(const char *space_id);
/*
 * A peer called us, so it is alive: its failures are forgotten.  True when
 * it had failures (what waits for it in the outbox can be sent now).
 */
bool peer_mark_alive(const char *space_id);
/*
 * Probes a peer that is down and due for a probe: true when it is up now.
 * The couriers follow the backoff; the front desk (desk) may probe once a
 * second, since a member is waiting.
 */
bool peer_probe(struct peer_client *pc, const char *space_id, bool desk);

/* Counters since start, for metrics and benchmarks. */
void peer_stats(uint64_t *ret_calls, uint64_t *ret_new_connections);

#endif
