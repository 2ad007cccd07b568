-- 015_visits_under_way: the host's answer to a check-in is written without
-- touching an index (a HOT update).
--
-- The host writes a visitor's row twice: pending before it asks the home,
-- then the home's answer.  The answer changed `status` (pending -> open),
-- which the index of the visits under way (host_visits_unfinished) is
-- keyed and conditioned on, and `checked_in_at`, which three indexes hold:
-- PostgreSQL added an entry to each of the row's five indexes, 921 bytes
-- of WAL and 14 buffers per check-in.  A visit under way is now marked by
-- a column of its own, the same for a pending and an open visit; the
-- answer keeps the pending row's time (when the desk scanned the pass);
-- and a page keeps room for the row's new version.  Only a refusal, a
-- check-out or an interrupted check-in, which end a visit, write indexes.
--
-- under_way = (status in ('pending', 'open')) is kept by the statements
-- that set a visit's status (node/visit.c; by hand too, as
-- tests/bench/run.sh does), and checked by the tests, not by a CHECK: PostgreSQL parses and plans a table's CHECK
-- constraints at every statement that writes it, about 10 us each, which
-- took two thirds of what this saves (pg_stat_statements: the pending
-- insert 39 -> 49 us, the answer 55 -> 37 us with it; 27 us without).
alter table host_visits add column under_way boolean not null default false;
update host_visits set under_way = true where status in ('pending', 'open');
drop index host_visits_unfinished;
create index host_visits_under_way on host_visits (checked_in_at) where under_way;
alter table host_visits set (fillfactor = 80);
select analyze_unless_empty('host_visits');
