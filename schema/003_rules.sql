-- 003_rules: plans, terms between spaces, the host's house rules, and what a
-- visit freezes of them (the rate) so that later changes rewrite nothing.

-- Plans at home.  A monthly plan runs from valid_from to valid_until and may
-- cap the half-days its member spends at other spaces each month.
alter table members add column valid_from date;
alter table members add column roam_cap integer check (roam_cap >= 0);

-- Terms with each peer space, as host (its members here) and as home (ours
-- there).  A peer without a row gets the defaults of passerelle.conf [terms].
create table peer_terms (
	peer			text primary key,
	host_accept		boolean not null,
	host_rate_cents		integer not null check (host_rate_cents >= 0),
	currency		char(3) not null,
	host_monthly_cap	integer check (host_monthly_cap >= 0),
	host_offline_allowance	integer not null default 0
				check (host_offline_allowance >= 0),
	home_allow_roaming	boolean not null,
	home_ticket_per_unit	boolean not null,
	updated_at		timestamptz not null default now(),
	updated_by		text not null
);

-- The host's house rules: opening hours per weekday (ISO: 1 Monday .. 7
-- Sunday; no row: closed that day), closures, and settings (capacity).
create table house_hours (
	weekday		smallint primary key check (weekday between 1 and 7),
	opens		time not null,
	closes		time not null check (closes > opens)
);
create table house_closures (
	day		date primary key,
	reason		text not null default ''
);
create table house_settings (
	name		text primary key,
	value		text not null,
	updated_at	timestamptz not null default now(),
	updated_by	text not null
);

-- What a visit freezes: the host's rate, and on the home side the rate the
-- host announced and any units the ticket book could not cover.
alter table host_visits add column rate_cents integer;
alter table host_visits add column currency char(3);
alter table home_visits add column rate_cents integer;
alter table home_visits add column currency char(3);
alter table home_visits add column unpaid_units integer not null default 0;
alter table ticket_movements drop constraint ticket_movements_reason_check;
alter table ticket_movements add constraint ticket_movements_reason_check
	check (reason in ('initial', 'topup', 'visit', 'visit_unit', 'correction'));

-- Revocation lists published by our peers (GET /federation/v1/revocations),
-- kept for the moments their node cannot be reached.
create table peer_revocations (
	home		text not null,
	jti		text not null,
	fetched_at	timestamptz not null default now(),
	primary key (home, jti)
);
-- Extra units of one visit are debited once, whatever the repeats.
create unique index ticket_movements_one_unit_debit
	on ticket_movements (visit_id) where reason = 'visit_unit';
