#!/bin/sh
# limits-rate.sh: under type:noop --rate 10/s --burst 1, three daemons
# with a backlog of 200 noop tasks start between 45 and 55 steps in the
# 5 s from the first start: one token at once, then one every 100 ms.
# The daemons wait for the next token instead of claiming in a loop:
# dwa._claim is called a bounded number of times (track_functions).
. "$(dirname "$0")/../lib/harness.sh"
plan 6

db_setup
sql "ALTER DATABASE \"$T_DB\" SET track_functions = 'pl'" >/dev/null ||
    bail "cannot turn on track_functions"
"$DWA" limits set type:noop --rate 10/s --burst 1 || bail "dwa limits set failed"

dwad_start d1 --concurrency 8 || bail "dwad d1 did not start"
dwad_start d2 --concurrency 8 || bail "dwad d2 did not start"
dwad_start d3 --concurrency 8 || bail "dwad d3 did not start"

# claims: how often dwa._claim ran, as the statistics have it so far.
claims() {
	sql "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions
	    WHERE schemaname = 'dwa' AND funcname = '_claim'"
}
C0=$(claims)

FIRST=$(sql "SELECT min(id) FROM (SELECT dwa.submit('{\"type\": \"noop\"}') AS id
    FROM generate_series(1, 200)) t")
wait_until 5 sql_true "SELECT count(*) > 0 FROM dwa.steps WHERE task_id >= $FIRST
    AND started_at IS NOT NULL" || bail "no step started within 5 s"
START=$(sql "SELECT min(started_at) FROM dwa.steps WHERE task_id >= $FIRST")
# Past the window, and a little more for the statistics to be reported.
wait_until 15 sql_true "SELECT now() > '$START'::timestamptz + interval '6.2 s'"

N=$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST
    AND started_at >= '$START' AND started_at < '$START'::timestamptz + interval '5 s'")
ok $([ "$N" -ge 45 ] && [ "$N" -le 55 ] && echo 0 || echo 1) \
    "between 45 and 55 steps started in the 5 s from the first start ($N)"
N1=$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST
    AND started_at >= '$START' AND started_at < '$START'::timestamptz + interval '1 s'")
ok $([ "$N1" -ge 9 ] && [ "$N1" -le 12 ] && echo 0 || echo 1) \
    "the burst of 1 allowed no rush: 9 to 12 started in the first second ($N1)"
# No second in the window started more than the bucket allows.
MAXS=$(sql "SELECT max((SELECT count(*) FROM dwa.steps b WHERE b.task_id >= $FIRST
    AND b.started_at >= a.started_at AND b.started_at < a.started_at + interval '1 s'))
    FROM dwa.steps a WHERE a.task_id >= $FIRST AND a.started_at IS NOT NULL")
ok $([ "$MAXS" -le 12 ] && echo 0 || echo 1) \
    "no 1 s span saw more starts than the bucket allows, 1 + 10, give or take one ($MAXS)"
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id >= $FIRST AND status = 'failed'")" 0 \
    "no task failed"
n=$(sql "SELECT count(DISTINCT worker_id) FROM dwa.steps WHERE task_id >= $FIRST
    AND started_at IS NOT NULL")
ok $([ "$n" -ge 2 ] && echo 0 || echo 1) "the daemons shared the starts ($n of 3 started steps)"
C1=$(claims)
ok $([ $((C1 - C0)) -lt 1500 ] && echo 0 || echo 1) \
    "the daemons waited for tokens rather than spinning: $((C1 - C0)) claims in about 6 s"

diag "gaps between starts (ms), the first 20: $(sql "SELECT string_agg(g::text, ' ') FROM
    (SELECT (extract(epoch FROM started_at - lag(started_at) OVER (ORDER BY started_at)) * 1000)::int AS g
     FROM dwa.steps WHERE task_id >= $FIRST AND started_at IS NOT NULL ORDER BY started_at LIMIT 21) x
     WHERE g IS NOT NULL")"
