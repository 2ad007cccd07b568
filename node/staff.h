/*
 * staff.h - staff accounts of the local face: concierge, manager, admin.
 *
 * `staff add` prints a random bearer token once; only its SHA-256 is stored
 * (a 256-bit random token needs no slow hash, unlike a password).  `staff
 * token` replaces a leaked one the same way.  `staff passwd` gives an
 * account a password for the web page (Argon2id).
 */
#ifndef PASSERELLE_STAFF_H
#define PASSERELLE_STAFF_H

#include <stddef.h>

#include <cjson/cJSON.h>
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
 * Every account, by name: an array of {name, role, created_at, password_set}.
 * Neither hash ever leaves this file.
 */
int staff_list(PGconn *conn, cJSON **ret);

/*
 * Deletes an account, and with it its web sessions (the schema cascades);
 * the actor is written in the audit trail.  0 with the role it had,
 * -ENOENT (no such account) or -EIO.
 */
int staff_remove(PGconn *conn, const char *name, const char *actor,
    enum staff_role *ret_role, char *err, size_t errlen);

/*
 * Gives an account a new bearer token (ret_token, at least 64 bytes); the
 * old one is refused as soon as the node's workers hear of the change
 * (staff.c).  0 with the account's role, -ENOENT or -EIO.
 */
int staff_replace_token(PGconn *conn, const char *name, const char *actor,
    enum staff_role *ret_role, char *ret_token, size_t tokenlen, char *err,
    size_t errlen);

/*
 * Checks an "Authorization: Bearer TOKEN" header value: 0 with the role and
 * name, -EACCES when it names no account.
 */
int staff_authenticate(PGconn *conn, const char *authorization,
    enum staff_role *ret_role, char *ret_name, size_t namelen);

/*
 * Passwords for the web page's sign-in, hashed with Argon2id (libsodium's
 * crypto_pwhash_str, interactive limits: 64 MiB and a few tenths of a
 * second each).  staff_set_password: 0, -ENOENT (no such account), -EINVAL
 * (too short or too long), -EIO.
 */
#define STAFF_PASSWORD_MIN 10
#define STAFF_PASSWORD_MAX 1024
int staff_set_password(PGconn *conn, const char *name, const char *password,
    char *err, size_t errlen);

/*
 * Checks a name and password: 0 with the account's id, role and name;
 * -EACCES for an unknown name, an account without a password or a wrong
 * password (all three cost the same time); -EIO.
 */
int staff_check_password(PGconn *conn, const char *name, const char *password,
    long long *ret_id, enum staff_role *ret_role, char *ret_name, size_t namelen);

#endif
