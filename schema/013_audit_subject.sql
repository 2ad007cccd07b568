-- 013_audit_subject: `member history` reads one member's entries of the
-- audit trail, not the whole trail (107 ms at 300,000 entries).  The trail
-- grows with what staff do, not with visits: one index entry per action.
create index audit_subject on audit (subject);
