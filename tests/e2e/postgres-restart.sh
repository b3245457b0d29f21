#!/bin/sh
# postgres-restart.sh: PostgreSQL restarts under a running dwad: it
# reconnects with backoff, listens again, and loses nothing.
. "$(dirname "$0")/../lib/harness.sh"
plan 6

db_setup --own-cluster
dwad_start d1 --concurrency 4 || bail "dwad did not start"

a=$(submit '{"type": "sleep", "payload": {"ms": 1500}}')
wait_until 10 step_is "$a" 0 running || bail "task $a never started"
pg_stop fast
sleep 0.5
pg_ctl_start
wait_until 20 log_contains d1 "db listen: connected (server" 
wait_until 20 sh -c "[ \$(grep -c 'db work: connected' '$T_TMP/d1.log') -ge 2 ]"
ok $? "dwad reconnected its work connection"
like "$(grep -c 'db listen: connected' "$T_TMP/d1.log")" '^[2-9]' "and its listen connection"

b=$(submit '{"type": "echo", "payload": {"after": "restart"}}')
wait_until 15 task_done "$b"
is "$(task_status "$b")" completed "a task submitted after the restart completes (wake-up after re-LISTEN)"
wait_until 40 task_done "$a"
is "$(task_status "$a")" completed "the task running across the restart completes"
log_contains d1 "connection lost"
ok $? "the loss was logged"
kill -0 "$(dwad_pid d1)"
ok $? "dwad is still running"
