-- 009_visitor_indexes: what a check-in and the node's rounds look for is
-- found by an index, not by reading every visit.
--
-- The home counts a roaming member's half-days this month (members.roam_cap)
-- and the host counts a visitor's (peer_terms.host_monthly_cap) at every
-- check-in.  Both were found through an index on the month alone
-- (home_visits_host, host_visits_home): every visit of the month was read,
-- 9 ms at the home and 76 ms at the host with 20,000 visits in the month.
-- home_visits_host served nothing else (the ledger uses
-- home_visits_host_month) and goes.
drop index home_visits_host;
create index home_visits_member on home_visits (member_id, authorized_at);
create index host_visits_visitor on host_visits (pseudonym, checked_in_at);

-- A ticket's debit rewrites the member's row at every check-in: room on
-- its page keeps the new version there (a HOT update, no index entries).
alter table members set (fillfactor = 90);

-- The visits under way: the open ones (the desk's list, the seats, closing
-- time) and the pending ones (a check-in interrupted, looked for every
-- 5 s), which were read by scanning every visit ever made.
drop index host_visits_open;
create index host_visits_unfinished on host_visits (status, checked_in_at)
	where status in ('pending', 'open');
