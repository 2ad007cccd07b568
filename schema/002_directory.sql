-- 002_directory: the directories this node has accepted, and the coordinator
-- keys it has learnt to trust from them.  The newest row is the directory in
-- force; it is replaced only by a higher serial that verifies, inserted in
-- one transaction, so a crash leaves the previous one whole.

create table directories (
	serial		bigint primary key,
	token		text not null,
	source		text not null,
	expires_at	timestamptz not null,
	accepted_at	timestamptz not null default now()
);

-- Keys announced by a directory that verified (the old key vouches for the
-- new one); with the configured key, they may sign later directories.
create table coordinator_keys (
	kid		text primary key,
	x		text not null,
	announced_in	bigint not null references directories (serial),
	learnt_at	timestamptz not null default now()
);
