-- 014_unanalyzed_when_empty: a migration gathers statistics only for a
-- table that holds rows.
--
-- ANALYZE records an empty table as known to be empty (reltuples 0, where a
-- table never analyzed has -1), and PostgreSQL then plans a sequential scan
-- of it for as long as a statement stays prepared, whatever the table grows
-- to.  012 analyzed the four tables it rewrote; on a new node, whose
-- migrations run on empty tables, the home then read every visit it held at
-- each check-in, until autovacuum analyzed home_visits (a minute or more of
-- traffic; a benchmark's whole run).  012 now leaves that to this function,
-- which later migrations can call too.
create function analyze_unless_empty(variadic tables regclass[])
returns void language plpgsql as $$
declare
	t regclass;
	nonempty boolean;
begin
	foreach t in array tables loop
		execute format('select exists (select from %s)', t) into nonempty;
		if nonempty then
			execute format('analyze %s', t);
		end if;
	end loop;
end
$$;

-- What 012's rewrites dropped (the statistics of plan, status, tickets,
-- roam_cap, reason, decision, and of the expression index members_email).
select analyze_unless_empty('members', 'ticket_movements', 'home_visits',
	'host_visits');
