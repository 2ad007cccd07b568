-- 005_reconcile: month-end statements with each peer (reconcile.c) and the
-- disputes that managers raise on their lines.
--
-- A statement is one peer, one month (UTC, on the visits' check-in times)
-- and one currency.  Its lines are rewritten by every `passerelle
-- reconcile`; its totals and digest are computed from them in SQL, so they
-- can never drift apart.  Only an agreed statement counts in a settlement.

create table statements (
	id			bigserial primary key,
	peer			text not null,
	month			text not null check (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
	currency		char(3) not null,
	status			text not null default 'open'
				check (status in ('open', 'agreed', 'disputed')),
	-- What the peer owes us (its members here) and what we owe it (our
	-- members there), over the lines that are not held back.
	receivable_cents	bigint not null default 0,
	receivable_units	integer not null default 0,
	receivable_visits	integer not null default 0,
	payable_cents		bigint not null default 0,
	payable_units		integer not null default 0,
	payable_visits		integer not null default 0,
	lines			integer not null default 0,
	held_lines		integer not null default 0,
	held_cents		bigint not null default 0,
	digest			text not null default '',
	note			text,
	reconciled_at		timestamptz not null default now(),
	status_at		timestamptz not null default now(),
	status_by		text not null,
	unique (peer, month, currency)
);

-- One visit as both sides see it.  "here" is this node's record, "there"
-- the peer's; a line is held back from the totals when the two do not
-- match, when the visit is provisional, or when either side disputes it.
create table statement_lines (
	statement_id	bigint not null references statements (id) on delete cascade,
	visit_id	uuid not null,
	direction	text not null check (direction in ('receivable', 'payable')),
	member		text not null,
	checked_in_at	timestamptz,
	checked_out_at	timestamptz,
	units_here	integer,
	units_there	integer,
	rate_here	integer,
	rate_there	integer,
	currency_here	char(3),
	currency_there	char(3),
	amount_cents	bigint not null,
	result		text not null check (result in ('matched', 'only_here',
			    'only_there', 'units_differ', 'rate_differs',
			    'evidence_missing', 'evidence_invalid', 'open')),
	detail		text not null default '',
	provisional	boolean not null default false,
	disputed_here	boolean not null default false,
	disputed_there	boolean not null default false,
	note_here	text,
	note_there	text,
	held		boolean generated always as (result <> 'matched' or provisional
			    or disputed_here or disputed_there) stored,
	primary key (statement_id, visit_id, direction)
);

-- Lines our managers dispute, kept apart from the lines (which every
-- reconciliation rewrites) and told to the peer in our ledger.
create table reconcile_disputes (
	peer		text not null,
	visit_id	uuid not null,
	note		text not null,
	disputed_by	text not null,
	disputed_at	timestamptz not null default now(),
	primary key (peer, visit_id)
);

-- The ledger selects a peer's visits of a month on the check-in time; at
-- home that time arrives with the completion (before it, the
-- authorization's time stands in).
create index home_visits_host_month
	on home_visits (host, (coalesce(checked_in_at, authorized_at)));
