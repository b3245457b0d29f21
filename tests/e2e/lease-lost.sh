#!/bin/sh
# lease-lost.sh: a daemon that hangs (SIGSTOP) keeps its session, so its
# step is reclaimed only when the lease ends; when it wakes up, its late
# completion is refused and changes nothing.
. "$(dirname "$0")/../lib/harness.sh"
plan 7

db_setup
dwad_start d1 --lease 2s || bail "dwad d1 did not start"
id=$(submit '{"type": "sleep", "payload": {"ms": 1500}}')
wait_until 10 step_is "$id" 0 running || bail "the step never started"
first_run=$(sql "SELECT run_id FROM dwa.steps WHERE task_id = $id")
kill -STOP "$(dwad_pid d1)"
stopped=$(date +%s%N)
dwad_start d2 --reap 200ms --lease 2s || bail "dwad d2 did not start"

wait_until 10 sql_true "SELECT attempt = 2 FROM dwa.steps WHERE task_id = $id"
ok $? "the step is claimed again"
took=$(( ($(date +%s%N) - stopped) / 1000000 ))
[ "$took" -ge 1500 ]
ok $? "but only once the lease ran out (${took} ms after the hang)"
second_run=$(sql "SELECT run_id FROM dwa.steps WHERE task_id = $id")
[ "$second_run" != "$first_run" ]
ok $? "with a new run id"
kill -CONT "$(dwad_pid d1)"
wait_until 15 task_done "$id"
is "$(task_status "$id")" completed "the task completes"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id = $id AND run_id = $second_run")" 1 \
	"the second run's completion is the one recorded"
wait_until 5 log_contains d1 "lease lost\|refused"
ok $? "the hung daemon learned it lost the run"
is "$(sql "SELECT dwa.complete($first_run, '{}')")" f "a late complete() on the old run id is refused"
