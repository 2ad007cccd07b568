-- 012_vocabulary_domains: the closed vocabularies of the tables every
-- check-in writes are domains, not CHECK constraints.
--
-- PostgreSQL reads a table's CHECK constraints from their stored text and
-- plans them again in every statement that writes the table (ExecRelCheck),
-- all of them, whatever columns the statement sets: eight per federated
-- check-in, 4.4 % of the PostgreSQL time (2.6 % of the machine's).  A
-- domain's constraint is planned once per session (the type cache) and
-- checked only where a value of the type is written.  Same rules, same
-- values, same text for the node.
create domain member_plan as text check (value in ('monthly', 'tickets'));
create domain member_status as text check (value in ('active', 'suspended'));
create domain natural_count as integer check (value >= 0);
alter table members
	drop constraint members_plan_check,
	drop constraint members_status_check,
	drop constraint members_tickets_check,
	drop constraint members_roam_cap_check,
	alter column plan type member_plan,
	alter column status type member_status,
	alter column tickets type natural_count,
	alter column roam_cap type natural_count;

create domain movement_reason as text check (value in ('initial', 'topup',
	'visit', 'visit_unit', 'refund', 'correction'));
alter table ticket_movements
	drop constraint ticket_movements_reason_check,
	alter column reason type movement_reason;

create domain visit_decision as text check (value in ('admit', 'refuse'));
alter table home_visits
	drop constraint home_visits_decision_check,
	alter column decision type visit_decision;

create domain visit_status as text
	check (value in ('pending', 'open', 'closed', 'refused'));
alter table host_visits
	drop constraint host_visits_status_check,
	alter column status type visit_status;

-- Each ALTER COLUMN TYPE above rewrote its table and dropped the column's
-- statistics (pg_statistic rows of plan, status, tickets, roam_cap, reason,
-- decision; and those of the rebuilt expression index members_email).  A
-- rewrite counts as no modification, so autovacuum would not gather them
-- again until a tenth of each table had changed: 014 gathers them, for the
-- tables that hold rows.
