-- 011_history_indexes: what runs per request or in the node's rounds finds
-- its rows by an index, and the month's pages read the month, not every
-- visit ever made.  Measured on 350,000 visits on each side (35 months),
-- 40,000 members, 390,000 ticket movements.
--
-- The months: the visit-history and statement pages select a month of all
-- peers, which the indexes led by the peer could not bound (every entry of
-- host_visits_visitor and home_visits_host_month was read: 14-18 ms warm,
-- 70-120 ms cold, growing with history).  Led by the time, the same two
-- indexes serve these pages and the ledger (one peer's month: its entries
-- are picked out in the index), with no index more to maintain.
drop index host_visits_home;
create index host_visits_month on host_visits (checked_in_at, home);
drop index home_visits_host_month;
create index home_visits_month
	on home_visits ((coalesce(checked_in_at, authorized_at)), host);

-- The provisional admissions a home has yet to confirm (counted at each
-- check-in while the home cannot be reached, against the offline
-- allowance) and the disputed ones (`visit list --disputed`): a sequential
-- scan of every visit, 200 ms.  Few rows match; only they are indexed.
create index host_visits_provisional on host_visits (home)
	where reason_code = 'provisional' and confirmed_at is null;

-- A member's ticket balance as the sum of their movements (member page,
-- top-up, pass issue, plan and status changes, history): each was a
-- sequential scan of every movement, 20-40 ms.  (The members list, which
-- ran that scan once per member, now sums all movements in one pass.)
create index ticket_movements_member on ticket_movements (member_id);

-- A member named by e-mail (or id, or pseudonym) on the member page: the
-- e-mail branch made every lookup a sequential scan of the members.
create index members_email on members (lower(email));

-- The revocation list each peer fetches every directory_refresh: the
-- revoked passes still valid, read from the index alone (their rows lie
-- scattered over the table), not every pass ever issued (1,100 pages).
create index passes_revoked on passes (expires_at, jti)
	where revoked_at is not null;
