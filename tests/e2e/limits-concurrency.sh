#!/bin/sh
# limits-concurrency.sh: three daemons (8 slots each) and two SQL workers
# race on 40 sleep steps under type:sleep --concurrency 2: measured from
# the steps' start and finish times, never more than 2 run at once (and at
# some point exactly 2), and every task completes.
#
# The SQL workers are background shell loops: claim up to 2 sleep steps
# through dwa.claim, hold them ~200 ms, complete them.
. "$(dirname "$0")/../lib/harness.sh"
plan 5

db_setup
"$DWA" limits set type:sleep --concurrency 2 || bail "dwa limits set failed"

dwad_start d1 --concurrency 8 || bail "dwad d1 did not start"
dwad_start d2 --concurrency 8 || bail "dwad d2 did not start"
dwad_start d3 --concurrency 8 || bail "dwad d3 did not start"

# sql_worker NAME: claim, hold ~200 ms, complete; until $T_TMP/stop exists.
# Each claim that got runs is logged to $T_TMP/NAME.log.
sql_worker() {
	local runs r
	while [ ! -f "$T_TMP/stop" ]; do
		runs=$(sql "SELECT run_id FROM dwa.claim('$1', ARRAY['sleep'], 2)" |
		    grep -E '^[0-9]+$')
		if [ -z "$runs" ]; then
			sleep 0.01
			continue
		fi
		echo "claimed $(echo $runs)" >>"$T_TMP/$1.log"
		sleep 0.2
		for r in $runs; do
			sql "SELECT dwa.complete($r, '{}')" >>"$T_TMP/$1.log"
		done
	done
}
sql_worker w1 &
T_PIDS="$T_PIDS $!"
sql_worker w2 &
T_PIDS="$T_PIDS $!"

FIRST=$(sql "SELECT min(id) FROM (SELECT dwa.submit('{\"type\": \"sleep\",
    \"payload\": {\"ms\": 200}}') AS id FROM generate_series(1, 40)) t")
all_done() {
	sql_true "SELECT count(*) = 40 FROM dwa.tasks WHERE id >= $FIRST
	    AND status IN ('completed', 'failed', 'cancelled')"
}
wait_until 25 all_done
touch "$T_TMP/stop"

is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id >= $FIRST AND status = 'completed'")" 40 \
    "all 40 tasks complete"

# The most steps running at any start instant (a step runs from its
# started_at to its finished_at).
maxc=$(sql "WITH s AS (SELECT started_at, finished_at FROM dwa.steps
	 WHERE task_id >= $FIRST AND task = 'sleep')
	SELECT max((SELECT count(*) FROM s b
	 WHERE b.started_at <= a.started_at AND b.finished_at > a.started_at)) FROM s a")
is "$maxc" 2 "never more than 2 sleep steps ran at once, and at some point exactly 2"

is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST AND attempt <> 1")" 0 \
    "every step ran once (no lease lost, no retry)"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST
    AND (limit_keys IS NULL OR NOT limit_keys @> ARRAY['type:sleep'])")" 0 \
    "every step was admitted under type:sleep (limit_keys)"
is "$(sql "SELECT running || ' ' || waiting FROM dwa.limit_stats WHERE key = 'type:sleep'")" \
    "0 0" "afterwards nothing runs or waits under type:sleep"

diag "steps per claimer: $(sql "SELECT string_agg(w.name || '=' || n, ' ' ORDER BY w.name)
    FROM (SELECT worker_id, count(*) AS n FROM dwa.steps WHERE task_id >= $FIRST
    GROUP BY worker_id) c JOIN dwa.workers w ON w.id = c.worker_id")"
diag "span: $(sql "SELECT max(finished_at) - min(started_at) FROM dwa.steps WHERE task_id >= $FIRST")"
if [ "$T_FAILED" != 0 ]; then
	diag "the same count, overlaps shorter than 25 ms left out: $(sql "WITH s AS (SELECT
	    started_at, finished_at FROM dwa.steps WHERE task_id >= $FIRST AND task = 'sleep')
	    SELECT max((SELECT count(*) FROM s b WHERE b.started_at <= a.started_at
	     AND b.finished_at > a.started_at + interval '25 ms')) FROM s a")"
	diag "overlaps above 2 (id@worker start-finish):"
	sql "WITH s AS (SELECT id, worker_id, started_at, finished_at FROM dwa.steps
	     WHERE task_id >= $FIRST AND task = 'sleep')
	    SELECT a.id, a.worker_id, a.started_at, (SELECT string_agg(b.id || '@' || b.worker_id
	     || ' ' || b.started_at::time || '-' || b.finished_at::time, ', ') FROM s b
	     WHERE b.started_at <= a.started_at AND b.finished_at > a.started_at)
	    FROM s a WHERE (SELECT count(*) FROM s b WHERE b.started_at <= a.started_at
	     AND b.finished_at > a.started_at) > 2" | sed 's/^/#   /'
fi
