#!/bin/sh
# sigterm-drains.sh: SIGTERM stops claiming, lets runs finish for --grace,
# then releases the rest (ready again, attempt not spent) and exits 0.
. "$(dirname "$0")/../lib/harness.sh"
plan 8

db_setup
dwad_start d1 --grace 700ms || bail "dwad did not start"
short=$(submit '{"type": "sleep", "payload": {"ms": 300}}')
long=$(submit '{"type": "sleep", "payload": {"ms": 5000}}')
wait_until 10 step_is "$long" 0 running || bail "the long task never started"
wait_until 10 sql_true "SELECT status IN ('running', 'succeeded') FROM dwa.steps WHERE task_id = $short"
pid=$(dwad_pid d1)
kill -TERM "$pid"
late=$(submit '{"type": "echo", "payload": {}}')
wait_until 10 sh -c "! kill -0 $pid 2>/dev/null"
ok $? "dwad exits after the grace period"
wait "$pid"
is "$?" 0 "with status 0"
is "$(task_status "$short")" completed "a run shorter than the grace period finished"
is "$(step_status "$long" 0)" ready "the long run was released: ready again"
is "$(sql "SELECT attempt FROM dwa.steps WHERE task_id = $long")" 0 "without spending an attempt"
is "$(task_status "$late")" queued "nothing was claimed after SIGTERM"
log_contains d1 "drain: no more claims"
ok $? "the drain was logged"
dwad_start d2 || bail "dwad d2 did not start"
wait_until 15 task_done "$long"
is "$(task_status "$long")" completed "another daemon finishes the released task"
