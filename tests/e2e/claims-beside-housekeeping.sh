#!/bin/sh
# claims-beside-housekeeping.sh: dwad's claims never wait behind its
# housekeeping.
#
# dwad holds five sessions: claims, two for the ends of runs, housekeeping
# (the reaper, the registry reload, retention, effect deliveries) and
# LISTEN.  Here a session holds an exclusive lock on dwa.backends, so that
# the registry reload (every 5 s) waits for it on the housekeeping session;
# tasks inserted meanwhile must still start at once, woken by NOTIFY, and
# the reload must still be waiting when they have completed.  Then the lock
# goes, the reload completes, and `dwa migrate` replaces every function
# under the running daemon: its prepared claim is planned again and tasks
# keep running.
. "$(dirname "$0")/../lib/harness.sh"
plan 7

db_setup
dwad_start d1 --concurrency 4 || bail "dwad did not start"

# five_sessions: dwad holds five sessions on this test's database.
five_sessions() {
	sql_true "SELECT count(*) = 5 FROM pg_stat_activity WHERE application_name = 'dwad'
	    AND datname = current_database()"
}
wait_until 10 five_sessions
ok $? "dwad holds five sessions: claims, two for ends, housekeeping, LISTEN"

# The lock, held by a session of its own until it is terminated.
psql -X -q -v ON_ERROR_STOP=1 >"$T_TMP/locker.log" 2>&1 <<'EOF' &
BEGIN;
LOCK TABLE dwa.backends IN ACCESS EXCLUSIVE MODE;
SELECT pg_sleep(120);
COMMIT;
EOF
T_PIDS="$T_PIDS $!"
# reload_waits: dwad's registry reload waits for the lock.
reload_waits() {
	sql_true "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'dwad'
	    AND datname = current_database() AND wait_event_type = 'Lock'
	    AND query LIKE '%FROM dwa.backends%'"
}
wait_until 15 reload_waits
ok $? "the registry reload waits for the lock on dwa.backends"

FIRST=$(sql "SELECT coalesce(max(id), 0) FROM dwa.tasks")
for i in 1 2 3 4 5 6 7 8 9 10; do
	sql "INSERT INTO dwa.tasks (type, payload) VALUES ('echo', '{\"i\": $i}')" >/dev/null
	sleep 0.05
done
wait_until 10 sql_true "SELECT count(*) = 10 FROM dwa.tasks WHERE id > $FIRST
    AND status = 'completed'"
ok $? "meanwhile, 10 tasks inserted one at a time all completed"
is "$(sql "SELECT max(s.started_at - t.created_at) < interval '500 ms' FROM dwa.tasks t
    JOIN dwa.steps s ON s.task_id = t.id WHERE t.id > $FIRST")" t \
    "each started within 500 ms of its insert (woken by NOTIFY, not held up by the reload)"
reload_waits
ok $? "and the reload was still waiting when they had"

sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" \
    >/dev/null
# reload_done: no session of dwad waits for a lock.
reload_done() {
	sql_true "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'dwad'
	    AND datname = current_database() AND wait_event_type = 'Lock'"
}
wait_until 10 reload_done
ok $? "once the lock is gone, the reload completes"

# Every function replaced under the running daemon: its prepared claim
# and batch of ends are planned again.
"$DWA" migrate --quiet || bail "dwa migrate failed"
A=$(submit '{"type": "echo", "payload": {"after": "migrate"}}')
wait_until 10 task_done "$A"
is "$(task_status "$A")" completed "after dwa migrate under the running dwad, a task completes"
