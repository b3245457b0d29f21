#!/bin/sh
# pgtap-run.sh FILE.sql: run one pgTAP file against a fresh, migrated
# database and print its TAP (for Automake's TAP driver).
. "$(dirname "$0")/harness.sh"
db_setup
psql -X -q -c 'CREATE EXTENSION IF NOT EXISTS pgtap' >/dev/null 2>&1 ||
	bail "pgTAP is not installed: apt-get install postgresql-15-pgtap"
psql -X -q -A -t -v ON_ERROR_STOP=1 -f "$1" 2>&1
rc=$?
[ $rc = 0 ] || T_FAILED=1
exit $rc
