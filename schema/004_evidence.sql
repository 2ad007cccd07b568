-- 004_evidence: the host's signed completion of each visit (JWS typ
-- "completion", the host's pass-signing key), kept by both sides beside the
-- home's receipt, so that each visit's record can be checked by the host, the
-- home, and anyone holding the directory.
alter table host_visits add column completion text;
alter table home_visits add column completion text;
alter table home_visits add column checked_in_at timestamptz;
