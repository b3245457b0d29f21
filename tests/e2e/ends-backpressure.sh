#!/bin/sh
# ends-backpressure.sh: dwad stops claiming while 8,192 ends of runs wait
# to be recorded.  A run's slot is free once it ends, before its end is
# committed; here a lock on dwa.tasks holds the batches of ends back while
# claims go on, and dwad must not claim the whole backlog into memory.
# Once the lock goes, every task completes.
. "$(dirname "$0")/../lib/harness.sh"
plan 4

db_setup
sql "INSERT INTO dwa.tasks (type) SELECT 'noop' FROM generate_series(1, 12000)" >/dev/null

# Ends update their task rows: a SHARE lock holds them back, not claims.
psql -X -q -v ON_ERROR_STOP=1 >"$T_TMP/locker.log" 2>&1 <<'SQL' &
BEGIN;
LOCK TABLE dwa.tasks IN SHARE MODE;
SELECT pg_sleep(120);
COMMIT;
SQL
T_PIDS="$T_PIDS $!"
wait_until 10 sql_true "SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE c.relname = 'tasks' AND l.mode = 'ShareLock' AND l.granted"
ok $? "a session holds dwa.tasks in SHARE mode"

dwad_start d1 --concurrency 64 --batch 64 || bail "dwad did not start"
claimed() { sql "SELECT count(*) FROM dwa.steps WHERE status = 'running'"; }
wait_until 30 sql_true "SELECT count(*) >= 8192 FROM dwa.steps WHERE status = 'running'"
ok $? "dwad claims while its ends wait, up to 8,192 of them"
sleep 2
n=$(claimed)
# 8,191 waiting, one more claim of 64, and 64 runs of the last one going.
ok "$([ "$n" -le 8320 ] && echo 0 || echo 1)" "then stops claiming (steps claimed: $n of 12,000)"

sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" \
    >/dev/null
wait_until 60 sql_true "SELECT count(*) = 12000 FROM dwa.tasks WHERE status = 'completed'"
ok $? "once the lock goes, all 12,000 tasks complete"
