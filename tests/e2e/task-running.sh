#!/bin/sh
# task-running.sh: when a task run by dwad becomes running.  dwad's claims
# leave the task row alone; the end of a run, or 20 ms after the claim for
# a run still going, marks it (dwa._tasks_started), with the step's
# started_at as its own.
#
# 1. A sleep task of 2 s: running while its step runs, started when the
#    step started.
# 2. A task whose only run fails transiently and waits 60 s for its retry:
#    running meanwhile, not queued.
# 3. Noop tasks, ended within the claim's 20 ms: completed, started when
#    their steps started, not when they ended.
# 4. An external worker's dwa.claim marks the task at once.
. "$(dirname "$0")/../lib/harness.sh"
plan 8

db_setup
dwad_start d1 --concurrency 8 || bail "dwad did not start"

# --- 1. a long run --------------------------------------------------------------

a=$(submit '{"type": "sleep", "payload": {"ms": 2000}}')
wait_until 10 step_is "$a" 0 running || bail "task $a never started"
wait_until 2 sql_true "SELECT status = 'running' FROM dwa.tasks WHERE id = $a"
is "$(task_status "$a")" running "a task whose step runs is running"
is "$(sql "SELECT t.started_at = s.started_at FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id
    WHERE t.id = $a")" t "its started_at is its step's"

# --- 2. waiting for a retry -----------------------------------------------------

b=$(submit '{"type": "fail", "payload": {"message": "flaky", "transient": true},
    "retry": {"attempts": 3, "backoff": {"initialMs": 60000, "maxMs": 60000}}}')
wait_until 10 sql_true "SELECT attempt = 1 AND status = 'ready' FROM dwa.steps WHERE task_id = $b" ||
	bail "task $b did not fail its first attempt"
is "$(task_status "$b")" running "a task waiting for the retry of its only step is running"
is "$(sql "SELECT t.started_at IS NOT NULL AND t.started_at = s.started_at
    FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id WHERE t.id = $b")" t \
    "... started when its step's first attempt started"

# --- 3. short runs --------------------------------------------------------------

first=$(sql "SELECT min(id) FROM (SELECT dwa.submit('{\"type\": \"noop\"}') AS id
    FROM generate_series(1, 50)) t")
wait_until 15 sql_true "SELECT count(*) = 50 FROM dwa.tasks WHERE id >= $first AND status = 'completed'"
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id >= $first AND status = 'completed'")" 50 \
    "50 noop tasks complete"
is "$(sql "SELECT count(*) FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id
    WHERE t.id >= $first AND t.started_at = s.started_at AND t.started_at < t.finished_at")" 50 \
    "each started when its step started, before it finished"

# --- 4. an external worker --------------------------------------------------------

sql "INSERT INTO dwa.task_types (name, executor) VALUES ('ext.job', 'worker')" >/dev/null
c=$(submit '{"type": "ext.job"}')
run_id=$(sql "SELECT run_id FROM dwa.claim('w1', ARRAY['ext.job'], 1)")
is "$(task_status "$c")" running "dwa.claim marks the task running at once"
sql "SELECT dwa.complete($run_id, '{}')" >/dev/null
is "$(task_status "$c")" completed "and dwa.complete completes it"
