/*
 * house.c - opening hours, closures and seats of the host space.
 *
 * Times are compared in the space's time zone by PostgreSQL itself
 * (`now() at time zone TZ`), so daylight saving is PostgreSQL's business.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "house.h"
#include "util.h"

static const char *const house_days[] = { "", "mon", "tue", "wed", "thu", "fri",
	"sat", "sun" };
static const char *const house_day_names[] = { "", "Mon", "Tue", "Wed", "Thu",
	"Fri", "Sat", "Sun" };

int
house_weekday_parse(const char *s)
{
	for (int i = 1; i <= 7; i++)
		if (strcmp(s, house_days[i]) == 0)
			return i;
	return -EINVAL;
}

int
house_hours_text(PGconn *conn, char *out, size_t len)
{
	PGresult *res;
	char ranges[8][16];
	size_t n = 0;

	out[0] = '\0';
	for (int d = 1; d <= 7; d++)
		ranges[d][0] = '\0';
	res = db_query(conn, "select weekday, to_char(opens, 'HH24:MI') || '-' ||"
	    " to_char(closes, 'HH24:MI') from house_hours", 0, NULL);
	if (res == NULL)
		return -EIO;
	for (int i = 0; i < PQntuples(res); i++) {
		int d = atoi(PQgetvalue(res, i, 0));

		if (d >= 1 && d <= 7)
			util_strlcpy(ranges[d], PQgetvalue(res, i, 1), sizeof(ranges[d]));
	}
	PQclear(res);
	/* Consecutive days with the same hours read as one span: Mon-Fri. */
	for (int d = 1; d <= 7; ) {
		int e = d;

		if (ranges[d][0] == '\0') {
			d++;
			continue;
		}
		while (e < 7 && strcmp(ranges[e + 1], ranges[d]) == 0)
			e++;
		if (e > d)
			n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s-%s %s",
			    n > 0 ? ", " : "", house_day_names[d], house_day_names[e],
			    ranges[d]);
		else
			n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s %s",
			    n > 0 ? ", " : "", house_day_names[d], ranges[d]);
		d = e + 1;
	}
	return 0;
}

int
house_open_from_row(PGconn *conn, PGresult *res, int row, int col, char *reason,
    size_t len)
{
	char hours[256];

	if (!PQgetisnull(res, row, col + 1)) {
		const char *why = PQgetvalue(res, row, col + 1);

		snprintf(reason, len, "The space is closed today%s%s%s.",
		    why[0] ? " (" : "", why, why[0] ? ")" : "");
		return 1;
	}
	if (strcmp(PQgetvalue(res, row, col), "0") == 0)
		return 0; /* no hours set: always open */
	if (strcmp(PQgetvalue(res, row, col + 2), "t") == 0 &&
	    strcmp(PQgetvalue(res, row, col + 3), "t") == 0)
		return 0;
	if (house_hours_text(conn, hours, sizeof(hours)) < 0)
		return -EIO;
	snprintf(reason, len, "The space is closed now; opening hours: %s.", hours);
	return 1;
}

int
house_capacity(PGconn *conn, int *ret)
{
	PGresult *res = db_query(conn, "select value from house_settings"
	    " where name = 'capacity'", 0, NULL);

	if (res == NULL)
		return -EIO;
	*ret = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : -1;
	PQclear(res);
	return 0;
}

static int
house_audit(PGconn *conn, const char *actor, const char *action, const char *subject,
    const char *detail)
{
	const char *params[4] = { actor, action, subject, detail };

	return db_exec(conn, "insert into audit (actor, action, subject, detail)"
	    " values ($1, $2, $3, $4)", 4, params);
}

int
house_set_hours(PGconn *conn, int weekday, const char *opens, const char *closes,
    const char *actor, char *err, size_t errlen)
{
	char wd[8], detail[64];
	int r;

	if (weekday < 1 || weekday > 7) {
		snprintf(err, errlen, "weekday must be mon, tue, wed, thu, fri, sat or sun");
		return -EINVAL;
	}
	snprintf(wd, sizeof(wd), "%d", weekday);
	if (db_begin(conn) < 0)
		goto db_error;
	if (opens == NULL) {
		const char *params[1] = { wd };

		r = db_exec(conn, "delete from house_hours where weekday = $1", 1, params);
		snprintf(detail, sizeof(detail), "closed");
	} else {
		const char *params[3] = { wd, opens, closes };

		db_expect(SQLSTATE_BAD_DATETIME " " SQLSTATE_CHECK_VIOLATION);
		r = db_exec(conn, "insert into house_hours (weekday, opens, closes)"
		    " values ($1, $2::time, $3::time) on conflict (weekday) do update"
		    " set opens = $2::time, closes = $3::time", 3, params);
		db_expect(NULL);
		if (r < 0) {
			db_rollback(conn);
			snprintf(err, errlen, "hours must be HH:MM, opening before closing"
			    " (not %s-%s)", opens, closes);
			return -EINVAL;
		}
		snprintf(detail, sizeof(detail), "%.16s-%.16s", opens, closes);
	}
	if (r < 0 || house_audit(conn, actor, "house.hours", house_days[weekday],
	    detail) < 0 || db_commit(conn) < 0) {
		db_rollback(conn);
		goto db_error;
	}
	return 0;
db_error:
	snprintf(err, errlen, "database error");
	return -EIO;
}

int
house_set_closure(PGconn *conn, const char *day, const char *reason,
    const char *actor, char *err, size_t errlen)
{
	int r;

	if (db_begin(conn) < 0)
		goto db_error;
	db_expect(SQLSTATE_BAD_DATETIME);
	if (reason != NULL) {
		const char *params[2] = { day, reason };

		r = db_exec(conn, "insert into house_closures (day, reason) values"
		    " ($1::date, $2) on conflict (day) do update set reason = $2", 2, params);
	} else {
		const char *params[1] = { day };

		r = db_exec(conn, "delete from house_closures where day = $1::date", 1,
		    params);
	}
	db_expect(NULL);
	if (r < 0) {
		db_rollback(conn);
		snprintf(err, errlen, "'%s' is not a date (YYYY-MM-DD)", day);
		return -EINVAL;
	}
	if (house_audit(conn, actor, reason != NULL ? "house.close" : "house.reopen",
	    day, reason) < 0 || db_commit(conn) < 0) {
		db_rollback(conn);
		goto db_error;
	}
	return 0;
db_error:
	snprintf(err, errlen, "database error");
	return -EIO;
}

int
house_set_capacity(PGconn *conn, int capacity, const char *actor)
{
	char v[16];
	const char *params[2] = { v, actor };
	int r;

	snprintf(v, sizeof(v), "%d", capacity);
	if (db_begin(conn) < 0)
		return -EIO;
	if (capacity < 0)
		r = db_exec(conn, "delete from house_settings where name = 'capacity'", 0, NULL);
	else
		r = db_exec(conn, "insert into house_settings (name, value, updated_by)"
		    " values ('capacity', $1, $2) on conflict (name) do update"
		    " set value = $1, updated_by = $2, updated_at = now()", 2, params);
	if (r < 0 || house_audit(conn, actor, "house.capacity", "capacity", v) < 0 ||
	    db_commit(conn) < 0) {
		db_rollback(conn);
		return -EIO;
	}
	return 0;
}

cJSON *
house_json(PGconn *conn)
{
	cJSON *o = cJSON_CreateObject(), *hours, *closures;
	PGresult *res;
	int cap = -1;
	char text[256] = "";

	hours = cJSON_AddObjectToObject(o, "hours");
	res = db_query(conn, "select weekday, to_char(opens, 'HH24:MI') || '-' ||"
	    " to_char(closes, 'HH24:MI') from house_hours order by weekday", 0, NULL);
	for (int i = 0; res != NULL && i < PQntuples(res); i++) {
		int d = atoi(PQgetvalue(res, i, 0));

		if (d >= 1 && d <= 7)
			cJSON_AddStringToObject(hours, house_days[d], PQgetvalue(res, i, 1));
	}
	PQclear(res);
	house_hours_text(conn, text, sizeof(text));
	cJSON_AddStringToObject(o, "hours_text", text[0] ? text : "always open");
	closures = cJSON_AddArrayToObject(o, "closures");
	res = db_query(conn, "select day::text, reason from house_closures"
	    " where day >= current_date - 1 order by day", 0, NULL);
	for (int i = 0; res != NULL && i < PQntuples(res); i++) {
		cJSON *c = cJSON_CreateObject();

		cJSON_AddStringToObject(c, "day", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(c, "reason", PQgetvalue(res, i, 1));
		cJSON_AddItemToArray(closures, c);
	}
	PQclear(res);
	house_capacity(conn, &cap);
	if (cap >= 0)
		cJSON_AddNumberToObject(o, "capacity", cap);
	else
		cJSON_AddNullToObject(o, "capacity");
	return o;
}

int
house_overdue_visits(const struct config *cfg, PGconn *conn, cJSON **ret)
{
	const char *params[1] = { cfg->timezone };
	PGresult *res;
	cJSON *a;

	/*
	 * The closing time of the day a visit began, in the space's time
	 * zone: a visit still open after it is checked out at that time.
	 */
	res = db_query(conn,
	    "select v.visit_id, to_char((((v.checked_in_at at time zone $1)::date"
	    "   + h.closes) at time zone $1) at time zone 'UTC',"
	    "   'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	    " from host_visits v join house_hours h"
	    "  on h.weekday = extract(isodow from v.checked_in_at at time zone $1)"
	    " where v.under_way and v.status = 'open'"
	    "  and now() >= ((v.checked_in_at at time zone $1)::date + h.closes)"
	    "   at time zone $1"
	    " order by v.checked_in_at limit 1000", 1, params);
	if (res == NULL)
		return -EIO;
	a = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "visit_id", PQgetvalue(res, i, 0));
		cJSON_AddStringToObject(o, "at", PQgetvalue(res, i, 1));
		cJSON_AddItemToArray(a, o);
	}
	PQclear(res);
	*ret = a;
	return 0;
}
