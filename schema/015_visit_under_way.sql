-- 015_visit_under_way: a check-in's final write at the host stays on its
-- row's page (a HOT update) instead of adding an entry to every index.
--
-- The host writes a visit twice as it checks in: the pending row before
-- the home is asked, then the home's answer into it.  The second write
-- changed `status` (pending to open), which host_visits_unfinished
-- indexed, and `checked_in_at` (set again to the time of the answer), which
-- three indexes hold: PostgreSQL then wrote a new entry into each of the
-- five indexes, 928 bytes of WAL and 14 buffers per check-in.  The visits
-- under way are now indexed by a column that is the same for a pending and
-- an open visit, the check-in time is the time the pass was scanned (the
-- pending row's), and the table keeps room on each page for the answer.
alter table host_visits add column under_way boolean
	generated always as (status in ('pending', 'open')) stored;
drop index host_visits_unfinished;
create index host_visits_under_way on host_visits (checked_in_at)
	where under_way;
alter table host_visits set (fillfactor = 70);

-- The new column's statistics (without them the planner takes half of the
-- visits for visits under way).
select analyze_unless_empty('host_visits');
