/*
 * house.h - the host's house rules: opening hours per weekday and closures,
 * in the space's time zone, and the number of seats.
 *
 * With no opening hours set at all, the space is open at any time (a node
 * that has not been told its hours refuses nobody for them).
 */
#ifndef PASSERELLE_HOUSE_H
#define PASSERELLE_HOUSE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "config.h"

/*
 * Is the space open now?  For statements that read it with other things in
 * one round trip: HOUSE_OPEN_COLUMNS, with `l.t` the local time (now() at
 * the space's time zone) and `house_hours h` joined on its weekday as in
 * HOUSE_OPEN_FROM; then house_open_from_row() reads them from column col:
 * 0 open, 1 closed (reason says when it opens, with the hours), <0 a
 * database error (reading the hours for the reason).
 */
#define HOUSE_OPEN_COLUMNS "(select count(*) from house_hours)," \
    " (select reason from house_closures where day = l.t::date)," \
    " h.opens is not null, l.t::time >= h.opens and l.t::time < h.closes"
#define HOUSE_OPEN_NCOLUMNS 4
#define HOUSE_OPEN_FROM "l left join house_hours h" \
    " on h.weekday = extract(isodow from l.t)"
int house_open_from_row(PGconn *conn, PGresult *res, int row, int col,
    char *reason, size_t len);
/* The capacity as a column (NULL when none is set). */
#define HOUSE_CAPACITY_COLUMN \
    "(select value from house_settings where name = 'capacity')"

/* Seats: *ret is -1 when no capacity is set. */
int house_capacity(PGconn *conn, int *ret);

/* Sets a weekday's hours (1 Monday .. 7 Sunday); opens NULL: closed that day. */
int house_set_hours(PGconn *conn, int weekday, const char *opens, const char *closes,
    const char *actor, char *err, size_t errlen);
/* Adds (reason not NULL) or removes a closure on day (YYYY-MM-DD). */
int house_set_closure(PGconn *conn, const char *day, const char *reason,
    const char *actor, char *err, size_t errlen);
/* Sets the seats (-1: no limit). */
int house_set_capacity(PGconn *conn, int capacity, const char *actor);

/* The rules as JSON: hours by weekday, closures to come, capacity. */
cJSON *house_json(PGconn *conn);

/* "Mon-Fri 09:00-19:00, Sat 10:00-13:00" (empty when no hours are set). */
int house_hours_text(PGconn *conn, char *out, size_t len);

/*
 * Open visits whose day has closed: a JSON array of {"visit_id", "at"} with
 * "at" the closing time (RFC 3339 UTC), for the automatic check-out.
 */
int house_overdue_visits(const struct config *cfg, PGconn *conn, cJSON **ret);

/* Weekday names: "mon".."sun" to 1..7, or -EINVAL. */
int house_weekday_parse(const char *s);

#endif
