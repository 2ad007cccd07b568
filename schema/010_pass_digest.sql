-- 010_pass_digest: the home knows its own passes by their SHA-256.
--
-- A pass presented to its home (a peer's authorization, a check-in at
-- home) is compared with the token as issued, a hash and a lookup, instead
-- of its Ed25519 signature being checked (the one costly step of the home's
-- decision).  Passes issued before this have no digest: their signature is
-- checked, as is that of any token whose digest differs.
alter table passes add column digest bytea;
