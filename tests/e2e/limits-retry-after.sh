#!/bin/sh
# limits-retry-after.sh: an external worker fails a step of backend "api"
# with dwa.fail(..., retryable => true, retry_after => '2 s'): the key
# backend:api is paused for 2 s, and until then no step of that backend
# starts, neither one the worker claims in a loop nor one two daemons
# could run, while steps of no backend go on; then they all start, the
# daemons within a second, and the failed step runs again with its
# attempt count unchanged.
. "$(dirname "$0")/../lib/harness.sh"
plan 13

db_setup
sql "INSERT INTO dwa.task_types (name, executor, backend) VALUES ('t.rl', 'worker', 'api')" \
    >/dev/null || bail "cannot register type t.rl"
dwad_start d1 --concurrency 8 || bail "dwad d1 did not start"
dwad_start d2 --concurrency 8 || bail "dwad d2 did not start"

A=$(submit '{"type": "t.rl"}')
wait_until 5 sql_true "SELECT count(*) = 1 FROM dwa.steps WHERE task_id = $A AND status = 'ready'"
R=$(sql "SELECT run_id FROM dwa.claim('w1', ARRAY['t.rl'], 1)")
is "$(sql "SELECT status || ' ' || attempt FROM dwa.steps WHERE task_id = $A")" "running 1" \
    "the worker claims the step of backend api (attempt 1)"

OUT=$(sql "SELECT dwa.fail($R, 'rate limited', retryable => true, retry_after => '2 s'), now()")
is "${OUT%%|*}" t "it fails the run with a retry-after of 2 s"
FAILED_AT=${OUT#*|}
# Everything else is submitted at once, right after the failure.
FIRST=$(sql "SELECT min(id) FROM (
    SELECT dwa.submit('{\"type\": \"t.rl\"}') AS id FROM generate_series(1, 4)
    UNION ALL SELECT dwa.submit('{\"type\": \"noop\", \"backend\": \"api\"}') FROM generate_series(1, 4)
    UNION ALL SELECT dwa.submit('{\"type\": \"noop\"}') FROM generate_series(1, 3)) t")

# From now on the worker claims t.rl steps every 50 ms and completes them
# at once; the time of each claim it tries goes to $T_TMP/w1.tries.
(
	while [ ! -f "$T_TMP/stop" ]; do
		date +%s.%N >>"$T_TMP/w1.tries"
		for r in $(sql "SELECT run_id FROM dwa.claim('w1', ARRAY['t.rl'], 5)" |
		    grep -E '^[0-9]+$'); do
			sql "SELECT dwa.complete($r, '{}')" >/dev/null
		done
		sleep 0.05
	done
) &
T_PIDS="$T_PIDS $!"

is "$(sql "SELECT status || ' ' || attempt || ' ' || (run_after >= '$FAILED_AT'::timestamptz + interval '2 s')
    FROM dwa.steps WHERE task_id = $A")" "ready 0 true" \
    "the failed step is ready again, its attempt not spent, not before the 2 s"
PAUSED=$(sql "SELECT paused_until FROM dwa.limits WHERE key = 'backend:api'")
is "$(sql "SELECT '$PAUSED'::timestamptz - '$FAILED_AT'::timestamptz BETWEEN interval '2 s'
    AND interval '2.1 s'")" t "the failure paused backend:api for 2 s ($PAUSED)"

all_done() {
	sql_true "SELECT count(*) = 0 FROM dwa.tasks WHERE (id = $A OR id >= $FIRST)
	    AND status NOT IN ('completed', 'failed', 'cancelled')"
}
wait_until 15 all_done
touch "$T_TMP/stop"
# Claims the worker tried at least 200 ms before the pause ended.
TRIES=$(awk -v end="$(sql "SELECT extract(epoch FROM '$PAUSED'::timestamptz) - 0.2")" \
    '$1 < end { n++ } END { print n + 0 }' "$T_TMP/w1.tries")

is "$(sql "SELECT count(*) FROM dwa.tasks WHERE (id = $A OR id >= $FIRST) AND status = 'completed'")" \
    12 "all 12 tasks complete"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE (task_id = $A OR task_id >= $FIRST)
    AND backend = 'api'")" 9 "nine of their steps have backend api (5 t.rl, 4 noop)"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE (task_id = $A OR task_id >= $FIRST)
    AND backend = 'api' AND started_at < '$PAUSED'")" 0 \
    "no step of backend api started before the pause ended"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST AND backend IS NULL
    AND finished_at < '$PAUSED'")" 3 "the steps of no backend ran during the pause"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST AND task = 't.rl'
    AND worker_id = (SELECT id FROM dwa.workers WHERE kind = 'sql' AND name = 'w1')")" 4 \
    "the worker claimed the t.rl steps, after the pause"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST AND task = 'noop'
    AND backend = 'api' AND worker_id IN (SELECT id FROM dwa.workers WHERE kind = 'daemon')")" 4 \
    "the daemons ran the noop steps of backend api, after the pause"
is "$(sql "SELECT max(started_at) < '$PAUSED'::timestamptz + interval '1 s' FROM dwa.steps
    WHERE task_id >= $FIRST AND task = 'noop' AND backend = 'api'")" t \
    "the daemons started them within a second of the pause's end"
is "$(sql "SELECT status || ' ' || attempt || ' ' || (started_at >= '$PAUSED') FROM dwa.steps
    WHERE task_id = $A")" "succeeded 1 true" \
    "the failed step ran again after the pause, as attempt 1: the count is unchanged"
ok $([ "$TRIES" -ge 1 ] && echo 0 || echo 1) \
    "the worker tried meanwhile, in vain ($TRIES claims during the pause)"

diag "pause ended $PAUSED; starts of backend api: $(sql "SELECT string_agg(to_char(started_at, 'HH24:MI:SS.MS'), ' '
    ORDER BY started_at) FROM dwa.steps WHERE (task_id = $A OR task_id >= $FIRST) AND backend = 'api'")"
