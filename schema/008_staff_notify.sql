-- 008_staff_notify: a node's workers keep the staff tokens they have looked
-- up (node/staff.c); any change to the staff table tells them to forget,
-- as soon as the change commits.
create function staff_changed() returns trigger language plpgsql as $$
begin
	perform pg_notify('passerelle_staff', '');
	return null;
end
$$;
create trigger staff_changed after insert or update or delete or truncate
	on staff for each statement execute function staff_changed();
