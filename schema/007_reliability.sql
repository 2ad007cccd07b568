-- 007_reliability: what lets a visit survive a peer that is down, a crash
-- or a retry (the "never lose a visit" issue).

-- A provisional admission (the home could not be asked) is confirmed or
-- disputed when the home's answer arrives through the outbox.
alter table host_visits add column confirmed_at timestamptz;
alter table host_visits add column disputed_at timestamptz;

-- A visit the host gave up on (the home may or may not have decided) is
-- voided at the home: closed with no unit, and its ticket given back.
alter table ticket_movements drop constraint ticket_movements_reason_check;
alter table ticket_movements add constraint ticket_movements_reason_check
	check (reason in ('initial', 'topup', 'visit', 'visit_unit', 'refund',
	    'correction'));
create unique index ticket_movements_one_refund
	on ticket_movements (visit_id) where reason = 'refund';

-- Federation POSTs by idempotency key: a repeat of the same request gets
-- the stored answer byte for byte; the same key with another body, 409.
create table idempotency_keys (
	caller		text not null,
	key		text not null,
	request_hash	text not null,
	status		integer not null,
	response	text not null,
	repeats		integer not null default 0,
	created_at	timestamptz not null default now(),
	primary key (caller, key)
);

-- Messages for one member are delivered in order (an authorization before
-- the completion of the same visit, a visit's completion before the next
-- visit's authorization): the claim skips a message while an earlier one for
-- the same peer and member waits.
alter table outbox add column member text;
create index outbox_member on outbox (peer, member, id)
	where delivered_at is null and failed_at is null;
