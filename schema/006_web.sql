-- 006_web: the web page of the local face: staff sessions (cookies), the
-- failed sign-ins that slow the next ones down, and the passes a manager
-- issued on the page with the links their members open on a phone.

-- A signed-in staff member.  Only the SHA-256 of the cookie's value is
-- kept; the CSRF token is sent back by the page on every change.
create table web_sessions (
	id_hash		text primary key,
	staff_id	bigint not null references staff (id) on delete cascade,
	csrf_token	text not null,
	remote		text not null,
	created_at	timestamptz not null default now(),
	last_seen_at	timestamptz not null default now(),
	expires_at	timestamptz not null
);
create index web_sessions_staff on web_sessions (staff_id);
create index web_sessions_expiry on web_sessions (expires_at);

-- Failed sign-ins, counted per account name and per client address: each
-- failure past the first few doubles the wait before the next attempt.
create table web_signin_failures (
	scope		text not null check (scope in ('account', 'address')),
	key		text not null,
	failures	integer not null,
	last_failure_at	timestamptz not null default now(),
	next_attempt_at	timestamptz not null default now(),
	primary key (scope, key)
);

-- A pass issued through the local face: its token is kept so that the
-- manager's page and the member's link can show its QR code again.  The
-- member's link is a random secret of which only the SHA-256 is kept; it
-- expires with the pass and dies with it (or when a new link replaces it).
create table web_pass_links (
	jti		text primary key references passes (jti),
	token		text not null,
	link_hash	text unique,
	link_expires_at	timestamptz,
	link_revoked_at	timestamptz,
	created_at	timestamptz not null default now()
);
