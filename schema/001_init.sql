-- 001_init: members and passes (home side), visits as host and as home,
-- staff accounts, the outbox of messages owed to peers, and the audit trail.
-- All times are timestamptz in UTC; money will be integer cents.

-- Our members.  Their name and e-mail never leave this database: peers only
-- ever see the pseudonym (the pass's "sub") and the short display name.
create table members (
	id		bigserial primary key,
	pseudonym	text not null unique,
	display_name	text not null,
	full_name	text not null,
	email		text,
	plan		text not null check (plan in ('monthly', 'tickets')),
	valid_until	date,
	tickets		integer not null default 0 check (tickets >= 0),
	status		text not null default 'active'
			check (status in ('active', 'suspended')),
	created_at	timestamptz not null default now()
);

-- Every change of a ticket balance; members.tickets is always their sum.
create table ticket_movements (
	id		bigserial primary key,
	member_id	bigint not null references members (id),
	delta		integer not null,
	reason		text not null check (reason in ('initial', 'topup', 'visit')),
	visit_id	uuid,
	actor		text not null,
	at		timestamptz not null default now()
);
-- One visit never debits twice, whatever the retries.
create unique index ticket_movements_one_debit
	on ticket_movements (visit_id) where reason = 'visit';

create table passes (
	jti		text primary key,
	member_id	bigint not null references members (id),
	kid		text not null,
	issued_at	timestamptz not null,
	expires_at	timestamptz not null,
	revoked_at	timestamptz
);
create index passes_member on passes (member_id);

-- Visits of our members, as their home (at a peer or here).  The stored
-- response is replayed byte for byte when the host retries the same visit.
create table home_visits (
	visit_id	uuid primary key,
	host		text not null,
	member_id	bigint not null references members (id),
	jti		text not null,
	decision	text not null check (decision in ('admit', 'refuse')),
	reason_code	text,
	request_hash	text not null,
	response	text not null,
	authorized_at	timestamptz not null default now(),
	checked_out_at	timestamptz,
	units		integer
);
-- A member is checked in at one place at a time.
create unique index home_visits_one_open on home_visits (member_id)
	where decision = 'admit' and checked_out_at is null;
create index home_visits_host on home_visits (host, authorized_at);

-- Visits at this space, as host.  The display name is kept only while the
-- visit is open.
create table host_visits (
	visit_id	uuid primary key,
	home		text not null,
	pseudonym	text not null,
	display_name	text,
	plan		text,
	jti		text not null,
	status		text not null
			check (status in ('pending', 'open', 'closed', 'refused')),
	reason_code	text,
	reason		text,
	receipt		text,
	tickets_left	integer,
	checked_in_at	timestamptz not null default now(),
	checked_out_at	timestamptz,
	units		integer
);
create index host_visits_open on host_visits (checked_in_at) where status = 'open';
create index host_visits_home on host_visits (home, checked_in_at);

create table staff (
	id		bigserial primary key,
	name		text not null unique,
	role		text not null check (role in ('concierge', 'manager', 'admin')),
	token_hash	text not null unique,
	password_hash	text,
	created_at	timestamptz not null default now()
);

-- Messages owed to peers, written in the transaction that made them due and
-- delivered by background workers (claimed with FOR UPDATE SKIP LOCKED).
create table outbox (
	id		bigserial primary key,
	peer		text not null,
	kind		text not null,
	visit_id	uuid,
	payload		text not null,
	attempts	integer not null default 0,
	next_attempt_at	timestamptz not null default now(),
	last_error	text,
	created_at	timestamptz not null default now(),
	delivered_at	timestamptz,
	failed_at	timestamptz	-- refused for good by the peer (4xx)
);
create index outbox_due on outbox (next_attempt_at)
	where delivered_at is null and failed_at is null;

create table audit (
	id		bigserial primary key,
	at		timestamptz not null default now(),
	actor		text not null,
	action		text not null,
	subject		text,
	detail		text
);
