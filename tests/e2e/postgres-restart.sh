#!/bin/sh
# postgres-restart.sh: PostgreSQL restarts under a running dwad: it
# reconnects with backoff, listens again, and loses nothing.
#
# The daemon polls only every 60 s (--poll 60s), so that a task inserted
# once everything is quiet again starts within seconds only if the
# dwa_wake NOTIFY reached it: only if it ran LISTEN again after the
# reconnect.
. "$(dirname "$0")/../lib/harness.sh"
plan 9

db_setup --own-cluster
dwad_start d1 --concurrency 4 --poll 60s || bail "dwad did not start"

# listening: true once dwad's listen session has sent its last LISTEN
# (dwa_outbox, after dwa_wake and dwa_cancel) and is idle.
listening() {
	sql_true "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'dwad'
	    AND query = 'LISTEN dwa_outbox' AND state = 'idle'"
}
# started_within TASK SECONDS: the task's step started at most SECONDS
# after the task was inserted (database clock).
started_within() {
	sql_true "SELECT s.started_at - t.created_at < interval '$2 s'
	    FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id WHERE t.id = $1"
}

wait_until 10 listening || bail "dwad does not listen"
w=$(submit '{"type": "echo", "payload": {"before": "restart"}}')
wait_until 15 task_done "$w"
is "$(task_status "$w"):$(started_within "$w" 3 && echo fast)" completed:fast \
    "before the restart, a task inserted while dwad is idle starts at once (NOTIFY, not the 60 s poll)"

a=$(submit '{"type": "sleep", "payload": {"ms": 1500}}')
wait_until 10 step_is "$a" 0 running || bail "task $a never started"
pg_stop fast
sleep 0.5
pg_ctl_start
# Each connection logs "connected" once at start and once more after it
# reconnects; they reconnect independently, in no set order.
wait_until 20 sh -c "[ \$(grep -c 'db work: connected' '$T_TMP/d1.log') -ge 2 ]"
ok $? "dwad reconnected its work connection"
wait_until 20 sh -c "[ \$(grep -c 'db listen: connected' '$T_TMP/d1.log') -ge 2 ]"
like "$(grep -c 'db listen: connected' "$T_TMP/d1.log")" '^[2-9]' "and its listen connection"

b=$(submit '{"type": "echo", "payload": {"after": "restart"}}')
wait_until 15 task_done "$b"
is "$(task_status "$b")" completed "a task submitted after the restart completes"
wait_until 40 task_done "$a"
is "$(task_status "$a")" completed "the task running across the restart completes"

# Quiet again: nothing runs, the listen session is back, and the look
# dwad takes after each reconnect is over.  Only NOTIFY can start c soon.
wait_until 20 listening
ok $? "dwad's listen session ran LISTEN again after the restart"
wait_until 10 sql_true "SELECT count(*) = 0 FROM dwa.steps WHERE status IN ('ready', 'running')"
T0=$(sql "SELECT now()")
wait_until 5 sql_true "SELECT now() > '$T0'::timestamptz + interval '1 s'"
c=$(submit '{"type": "echo", "payload": {"after": "quiet"}}')
wait_until 15 task_done "$c"
is "$(task_status "$c"):$(started_within "$c" 3 && echo fast)" completed:fast \
    "after the restart, a task inserted into a quiet system starts within 3 s (the re-LISTEN woke dwad; it polls every 60 s)"
diag "c started $(sql "SELECT s.started_at - t.created_at FROM dwa.tasks t
    JOIN dwa.steps s ON s.task_id = t.id WHERE t.id = $c") after its insert"

log_contains d1 "connection lost"
ok $? "the loss was logged"
kill -0 "$(dwad_pid d1)"
ok $? "dwad is still running"
