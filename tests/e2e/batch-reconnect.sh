#!/bin/sh
# batch-reconnect.sh: a claim batch one of whose runs was cancelled is no
# longer renewed whole, but its other run is.  When dwad's work connection
# is cut, dwad registers again under a new id and renews that run: the
# reaper, seeing the old id's session gone, must leave it alone, and end
# nothing that its daemon still renews.
. "$(dirname "$0")/../lib/harness.sh"
plan 8

db_setup
# The reaper is called by hand below, once the runs are adopted.
dwad_start d1 --reap 1h || bail "dwad d1 did not start"
w1=$(sql "SELECT id FROM dwa.workers WHERE name = 'd1'")

ids=$(sql "INSERT INTO dwa.tasks (type, payload)
           VALUES ('sleep', '{\"ms\": 4000}'), ('sleep', '{\"ms\": 4000}') RETURNING id")
a=$(echo "$ids" | sed -n 1p)
b=$(echo "$ids" | sed -n 2p)
wait_until 10 sql_true "SELECT count(*) = 2 FROM dwa.steps WHERE task_id IN ($a, $b) AND status = 'running'" ||
	bail "the steps never started"
is "$(sql "SELECT count(*) FROM dwa.claims c JOIN dwa.steps s ON s.run_id = ANY (c.run_ids)
            WHERE s.task_id IN ($a, $b)")|$(sql "SELECT count(*) FROM dwa.claims")" "2|1" \
	"both runs are of one claim batch"

is "$(sql "SELECT dwa.cancel($a)")" t "one of the two tasks is cancelled"
wait_until 5 log_contains d1 "task $a step .*task cancelled: stopping"
ok $? "dwad stops its run"

sql "SELECT pg_terminate_backend(l.pid) FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.classid = dwa._lock_class()::oid
        AND l.objid = $w1 AND l.objsubid = 2 AND l.granted" >/dev/null
wait_until 10 log_contains d1 "registered again as worker"
ok $? "its work connection cut, dwad registers again"
w2=$(sql "SELECT id FROM dwa.workers WHERE name = 'd1' AND id <> $w1")
wait_until 5 sql_true "SELECT worker_id = $w2 FROM dwa.steps WHERE task_id = $b"
ok $? "and renews the run it still holds under its new id"

is "$(sql "SELECT dwa._reap()")" 0 "the reaper ends nothing"
is "$(sql "SELECT status || ' ' || attempt FROM dwa.steps WHERE task_id = $b")" "running 1" \
	"the run goes on"
wait_until 10 task_done "$b"
is "$(sql "SELECT t.status || ' ' || s.attempt FROM dwa.tasks t JOIN dwa.steps s ON s.task_id = t.id
            WHERE t.id = $b")" "completed 1" "and completes its task at the first attempt"
