#!/bin/sh
# queue-vacuum.sh: dwad vacuums dwa.ready, dwa.claims and dwa.runs after
# every --vacuum-every steps it claimed (so that claims do not walk the
# entries of rows they deleted); never with --vacuum-every 0; a role that
# may not vacuum them says so once and runs its steps all the same; a bad
# --vacuum-every is refused.
. "$(dirname "$0")/../lib/harness.sh"
plan 10

db_setup

# vacuums TABLE: how many times TABLE was vacuumed other than by autovacuum.
vacuums() {
	sql "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'dwa.$1'::regclass"
}
# run_noops N: submit N noop tasks and wait until none is left undone.
run_noops() {
	sql "INSERT INTO dwa.tasks (type) SELECT 'noop' FROM generate_series(1, $1)" >/dev/null
	wait_until 30 sql_true "SELECT count(*) = 0 FROM dwa.tasks WHERE status <> 'completed'"
}

# stop NAME: stop daemon NAME and wait until it is gone.
stop() {
	kill -TERM "$(dwad_pid "$1")"
	wait_until 10 sh -c "! kill -0 $(dwad_pid "$1") 2>/dev/null"
}

# Never: the threshold is 0.
dwad_start d0 --vacuum-every 0 --batch 16 || bail "dwad did not start"
run_noops 300
ok $? "with --vacuum-every 0, 300 tasks complete"
is "$(vacuums ready)/$(vacuums claims)/$(vacuums runs)" 0/0/0 "and dwad vacuumed no queue table"
stop d0

# Every 50 steps claimed, at most once a second.
dwad_start d1 --vacuum-every 50 --batch 16 || bail "dwad did not start"
run_noops 300
ok $? "with --vacuum-every 50, 300 tasks complete"
wait_until 5 sql_true "SELECT count(*) = 3 FROM pg_stat_user_tables
    WHERE relid IN ('dwa.ready'::regclass, 'dwa.claims'::regclass, 'dwa.runs'::regclass)
      AND vacuum_count > 0"
ok $? "and dwad vacuumed dwa.ready, dwa.claims and dwa.runs"
stop d1

# A role with every privilege of DWA's that owns neither the tables nor
# the database: no vacuum, one line in the log, the steps run.
ROLE="dwa_vac_$$"
sql "CREATE ROLE $ROLE LOGIN IN ROLE dwa_admin" >/dev/null || bail "cannot create role $ROLE"
before=$(vacuums ready)
DWAD_URL="postgresql:///$PGDATABASE?host=$PGHOST&port=$PGPORT&user=$ROLE"
dwad_start d2 -v --db "$DWAD_URL" --vacuum-every 50 --batch 16 || bail "dwad did not start"
run_noops 300
ok $? "as a role that may not vacuum them, 300 tasks complete"
is "$(vacuums ready)" "$before" "and dwa.ready was not vacuumed"
is "$(grep -c "queue vacuum: off, role $ROLE may not vacuum dwa.ready" "$T_TMP/d2.log")" 1 \
	"dwad says so once"
# Logged at debug level (-vv), a VACUUM tried would have been refused.
grep -q "can vacuum it" "$T_TMP/d2.log"
ok $((! $?)) "and tries no VACUUM"
stop d2
sql "DROP OWNED BY $ROLE; DROP ROLE $ROLE" >/dev/null

run "$DWAD" --vacuum-every -1
like "$ERR" "--vacuum-every: -1 is out of range" "a negative --vacuum-every is refused"
run "$DWAD" --vacuum-every lots
is "$RC" 2 "so is one that is not a number (exit 2)"
