-- 016_visit_ticket_per_unit: whether a visit's units after the first cost a
-- ticket each is frozen with the visit, as its rate is.
--
-- The home read it from its terms with the host when the check-out arrived,
-- so a manager's change to the terms while visits were open (or while their
-- completions waited in a host's outbox) changed what those earlier visits
-- cost their members, against 003_rules.sql's promise that later changes
-- to the terms rewrite nothing.  Visits recorded before this migration keep
-- null, and their check-outs read the terms as before.
alter table home_visits add column ticket_per_unit boolean;
