#!/bin/sh
# kill-9-resumes.sh: kill -9 of dwad in the middle of a DAG; a second dwad
# takes the running step back within seconds (its owner's session is gone,
# long before the 30 s lease ends) and finishes the task without running
# the finished steps again.
. "$(dirname "$0")/../lib/harness.sh"
plan 10

db_setup
dwad_start d1 || bail "dwad d1 did not start"

id=$(submit '{"type": "pipeline", "steps": [
    {"id": "first", "task": "sleep", "input": {"ms": 100}},
    {"id": "long", "task": "sleep", "input": {"ms": 2500}},
    {"id": "last", "task": "echo", "input": {"done": "{{steps.long.ms}}"}}
  ]}')
wait_until 10 step_is "$id" long running || bail "step long never started"
d1=$(sql "SELECT id FROM dwa.workers WHERE name = 'd1'")
is "$(sql "SELECT count(*) FROM dwa.claims c JOIN dwa.steps s ON s.run_id = ANY (c.run_ids)
            WHERE s.task_id = $id AND s.step_id = 'long' AND c.worker_id = $d1")" 1 \
	"the running step's run is in a claim batch of d1"
kill -KILL "$(dwad_pid d1)"
killed_at=$(sql "SELECT clock_timestamp()")
dwad_start d2 --reap 200ms || bail "dwad d2 did not start"

wait_until 5 sql_true "SELECT status = 'running' AND attempt = 2 FROM dwa.steps WHERE task_id = $id AND step_id = 'long'"
ok $? "the killed run is taken over within 5 s (lease is 30 s)"
wait_until 20 task_done "$id"
is "$(task_status "$id")" completed "the task completes"
is "$(sql "SELECT attempt FROM dwa.steps WHERE task_id = $id AND step_id = 'first'")" 1 \
	"the finished step did not run again"
is "$(sql "SELECT attempt FROM dwa.steps WHERE task_id = $id AND step_id = 'long'")" 2 \
	"the interrupted step ran a second time"
is "$(sql "SELECT attempt FROM dwa.steps WHERE task_id = $id AND step_id = 'last'")" 1 \
	"the last step ran once"
is "$(sql "SELECT result ->> 'done' FROM dwa.tasks WHERE id = $id")" 2500 "with the right input"
is "$(sql "SELECT count(*) FROM dwa.workers WHERE name = 'd1'")" 0 "the dead daemon is unregistered"
is "$(sql "SELECT count(*) FROM dwa.claims WHERE worker_id = $d1")" 0 "and its batch rows are gone"
log_contains d2 "requeued 1 run"
ok $? "d2 logged the requeue"
diag "killed at $killed_at"
