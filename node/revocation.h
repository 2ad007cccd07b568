/*
 * revocation.h - revoked passes, published by their home and kept by hosts.
 *
 * The home signs the list of its revoked passes that have not expired yet
 * (JWS typ "revocations", its pass-signing key): {"iss", "iat", "jti": [...]}.
 * Hosts fetch each peer's list and keep the last one that verified, for the
 * moments when that peer cannot be asked.
 */
#ifndef PASSERELLE_REVOCATION_H
#define PASSERELLE_REVOCATION_H

#include <libpq-fe.h>

#include "node.h"
#include "peer.h"

/* The signed list of our revoked passes (malloc'ed). */
int revocation_publish(struct node *node, PGconn *conn, char **ret_token);

/*
 * Fetches every peer's list (GET /federation/v1/revocations), verifies it
 * and replaces what we hold for that peer; *ret_fetched counts the lists.
 */
int revocation_fetch_all(struct node *node, PGconn *conn, struct peer_client *pc,
    int *ret_fetched);

#endif
