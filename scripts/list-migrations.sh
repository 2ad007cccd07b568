#!/bin/sh
# Lists the SQL migrations in the order they are applied (meson reads this).
cd "$(dirname "$0")/.." && ls schema/[0-9]*.sql | sort
