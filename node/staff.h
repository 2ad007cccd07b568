/*
 * staff.h - staff accounts of the local face: concierge, manager, admin.
 *
 * `staff add` prints a random bearer token once; only its SHA-256 is stored
 * (a 256-bit random token needs no slow hash, unlike a password).
 */
#ifndef PASSERELLE_STAFF_H
#define PASSERELLE_STAFF_H

#include <stddef.h>

#include <libpq-fe.h>

enum staff_role {
	STAFF_NONE = 0,
	STAFF_CONCIERGE,
	STAFF_MANAGER,
	STAFF_ADMIN,
};

int staff_role_parse(const char *s, enum staff_role *ret);
const char *staff_role_name(enum staff_role role);

/* Creates an account; ret_token (at least 64 bytes) gets its bearer token. */
int staff_add(PGconn *conn, const char *name, enum staff_role role,
    char *ret_token, size_t tokenlen, char *err, size_t errlen);

/*
 * Checks an "Authorization: Bearer TOKEN" header value: 0 with the role and
 * name, -EACCES when it names no account.
 */
int staff_authenticate(PGconn *conn, const char *authorization,
    enum staff_role *ret_role, char *ret_name, size_t namelen);

#endif
