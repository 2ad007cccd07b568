/*
 * revocation.c - publishing our revoked passes, keeping our peers'.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "log.h"
#include "revocation.h"
#include "util.h"

#define REVOCATION_TYP "revocations"
#define REVOCATION_MAX 100000

int
revocation_publish(struct node *node, PGconn *conn, char **ret_token)
{
	PGresult *res;
	cJSON *o, *list;
	int r;

	res = db_query(conn, "select jti from passes where revoked_at is not null"
	    " and expires_at > now() order by jti", 0, NULL);
	if (res == NULL)
		return -EIO;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "iss", node_space_id(node));
	cJSON_AddNumberToObject(o, "iat", (double)util_now());
	list = cJSON_AddArrayToObject(o, "jti");
	for (int i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(list, cJSON_CreateString(PQgetvalue(res, i, 0)));
	PQclear(res);
	r = node_sign(node, REVOCATION_TYP, o, ret_token);
	cJSON_Delete(o);
	return r;
}

/* Verifies a peer's list and replaces what we hold for it. */
static int
revocation_store(struct node *node, PGconn *conn, const char *peer, const char *token)
{
	cJSON *o = NULL;
	const cJSON *iss, *list, *j;
	int r, n = 0;

	r = node_verify_signed(node, token, REVOCATION_TYP, peer, &o);
	if (r < 0)
		goto out;
	r = -EBADMSG;
	iss = cJSON_GetObjectItemCaseSensitive(o, "iss");
	list = cJSON_GetObjectItemCaseSensitive(o, "jti");
	if (!cJSON_IsString(iss) || strcmp(iss->valuestring, peer) != 0 ||
	    !cJSON_IsArray(list) || cJSON_GetArraySize(list) > REVOCATION_MAX)
		goto out;
	r = -EIO;
	if (db_begin(conn) < 0)
		goto out;
	{
		const char *params[1] = { peer };

		if (db_exec(conn, "delete from peer_revocations where home = $1", 1,
		    params) < 0)
			goto rollback;
	}
	cJSON_ArrayForEach(j, list) {
		const char *params[2] = { peer, cJSON_IsString(j) ? j->valuestring : "" };

		if (!cJSON_IsString(j) || strlen(j->valuestring) > 64)
			continue;
		if (db_exec(conn, "insert into peer_revocations (home, jti) values ($1, $2)"
		    " on conflict do nothing", 2, params) < 0)
			goto rollback;
		n++;
	}
	if (db_commit(conn) < 0)
		goto rollback;
	log_debug("revocations of %s: %d passes", peer, n);
	r = 0;
	goto out;
rollback:
	db_rollback(conn);
out:
	if (r < 0 && r != -EIO)
		log_warnx("revocation list from %s refused: it does not verify", peer);
	cJSON_Delete(o);
	return r;
}

int
revocation_fetch_all(struct node *node, PGconn *conn, struct peer_client *pc,
    int *ret_fetched)
{
	struct node_directory *nd = node_directory_get(node);
	char **peers = NULL;
	size_t n = 0;
	int fetched = 0;

	if (nd == NULL)
		return -ENOENT;
	/* The ids are copied: the directory may change during the calls. */
	peers = calloc(directory_count(nd->dir) + 1, sizeof(*peers));
	for (size_t i = 0; peers != NULL && i < directory_count(nd->dir); i++) {
		const char *id = directory_space_at(nd->dir, i)->id;

		if (strcmp(id, node_space_id(node)) != 0)
			peers[n++] = strdup(id);
	}
	node_directory_put(node, nd);
	for (size_t i = 0; i < n; i++) {
		struct peer_response resp;

		if (peers[i] != NULL && peer_call(pc, peers[i], "GET",
		    "/federation/v1/revocations", NULL, NULL, 5000, &resp) == 0 &&
		    resp.status == 200 &&
		    revocation_store(node, conn, peers[i], resp.body) == 0)
			fetched++;
		peer_response_clear(&resp);
		free(peers[i]);
	}
	free(peers);
	*ret_fetched = fetched;
	return 0;
}
