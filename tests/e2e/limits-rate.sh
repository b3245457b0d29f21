#!/bin/sh
# limits-rate.sh: under type:noop --rate 10/s --burst 1, three daemons
# and two external SQL workers (claim, complete, in a loop) with a backlog
# of 200 noop tasks start between 45 and 55 steps in the 5 s from the
# first start: one token at once, then one every 100 ms.  The daemons
# wait for the next token instead of claiming in a loop: dwa._claim is
# called a bounded number of times (track_functions), the SQL workers'
# calls left out.
#
# Then the rate changes while the backlog runs: to 1/min, starts stop;
# back to 10/s, they resume within a second (the change wakes the
# daemons, which were waiting up to a minute for a token); to 1/h, no
# more starts after a second.
. "$(dirname "$0")/../lib/harness.sh"
plan 12

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

# sql_worker NAME: claim up to 2 noop steps, complete them at once; when
# there was nothing, wait 10 ms.  Until $T_TMP/stop exists.  Each call of
# dwa.claim adds a line to $T_TMP/NAME.calls.
sql_worker() {
	local runs r
	while [ ! -f "$T_TMP/stop" ]; do
		echo >>"$T_TMP/$1.calls"
		runs=$(sql "SELECT run_id FROM dwa.claim('$1', ARRAY['noop'], 2)" |
		    grep -E '^[0-9]+$')
		if [ -z "$runs" ]; then
			sleep 0.01
			continue
		fi
		echo "claimed $(echo $runs)" >>"$T_TMP/$1.log"
		for r in $runs; do
			sql "SELECT dwa.complete($r, '{}')" >>"$T_TMP/$1.log"
		done
	done
}
sql_worker w1 &
T_PIDS="$T_PIDS $!"
sql_worker w2 &
T_PIDS="$T_PIDS $!"
# sql_calls: how often the SQL workers called dwa.claim so far.
sql_calls() { cat "$T_TMP/w1.calls" "$T_TMP/w2.calls" 2>/dev/null | wc -l | tr -d ' '; }

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
C1=$(claims)
S1=$(sql_calls)
n=$(sql "SELECT count(DISTINCT s.worker_id) FROM dwa.steps s JOIN dwa.workers w
    ON w.id = s.worker_id WHERE s.task_id >= $FIRST AND w.kind = 'daemon'")
ok $([ "$n" -ge 2 ] && echo 0 || echo 1) "the daemons shared the starts ($n of 3 started steps)"
DC=$((C1 - C0 - S1))
ok $([ $DC -lt 1500 ] && echo 0 || echo 1) \
    "the daemons waited for tokens rather than spinning: $DC claims in about 6 s (SQL workers: $S1)"

diag "gaps between starts (ms), the first 20: $(sql "SELECT string_agg(g::text, ' ') FROM
    (SELECT (extract(epoch FROM started_at - lag(started_at) OVER (ORDER BY started_at)) * 1000)::int AS g
     FROM dwa.steps WHERE task_id >= $FIRST AND started_at IS NOT NULL ORDER BY started_at LIMIT 21) x
     WHERE g IS NOT NULL")"

# --- the rate changed while running -----------------------------------------------------

# starts FROM TO: steps of the backlog started in [FROM, TO) (timestamps).
starts() {
	sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST
	    AND started_at >= '$1'::timestamptz AND started_at < '$2'::timestamptz"
}
# after T SECONDS: wait until the database clock is SECONDS past T.
after() { wait_until $(($2 + 10)) sql_true "SELECT now() >= '$1'::timestamptz + interval '$2 s'"; }
plus() { sql "SELECT '$1'::timestamptz + interval '$2 s'"; }

# The backlog still runs at 10/s.  1/min: the bucket holds what it had,
# at most the burst of 1, and then nothing comes for a minute.
T1=$(sql "SELECT now()")
"$DWA" limits set type:noop --rate 1/min --burst 1 || bail "dwa limits set failed"
after "$T1" 3
T2=$(sql "SELECT now()")
"$DWA" limits set type:noop --rate 10/s --burst 1 || bail "dwa limits set failed"
after "$T2" 2
T3=$(sql "SELECT now()")
"$DWA" limits set type:noop --rate 1/h --burst 1 || bail "dwa limits set failed"
after "$T3" 4
touch "$T_TMP/stop"

N=$(starts "$(plus "$T1" 1)" "$T2")
ok $([ "$N" -le 1 ] && echo 0 || echo 1) \
    "set to 1/min while running: at most 1 start from a second after the change on ($N in 2 s)"
DT=$(sql "SELECT coalesce(extract(epoch FROM min(started_at) - '$T2'::timestamptz)::text, 'never')
    FROM dwa.steps WHERE task_id >= $FIRST AND started_at >= '$T2'")
ok $(sql "SELECT CASE WHEN '$DT' <> 'never' AND '$DT'::float8 < 1 THEN 0 ELSE 1 END") \
    "set back to 10/s: starts resumed within a second (after $DT s)"
N=$(starts "$T2" "$(plus "$T2" 2)")
ok $([ "$N" -ge 12 ] && [ "$N" -le 24 ] && echo 0 || echo 1) \
    "and ran at about 10/s: 12 to 24 starts in the 2 s after the change ($N)"
N=$(starts "$T3" "$(plus "$T3" 1)")
ok $([ "$N" -le 2 ] && echo 0 || echo 1) \
    "set to 1/h: at most the token in hand (1, give or take one) in the second after the change ($N)"
is "$(starts "$(plus "$T3" 1)" "$(plus "$T3" 4)")" 0 "and no start at all in the 3 s after that"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST AND status = 'ready'")" \
    "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST AND started_at IS NULL")" \
    "what did not start waits, ready"
diag "starts per 500 ms from the change to 1/min on: $(sql "SELECT string_agg(n::text, ' ' ORDER BY b)
    FROM (SELECT b, (SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST
      AND started_at >= '$T1'::timestamptz + b * interval '0.5 s'
      AND started_at < '$T1'::timestamptz + (b + 1) * interval '0.5 s') AS n
     FROM generate_series(0, 19) b) x"); changes at 0, $(sql "SELECT round(extract(epoch FROM
    '$T2'::timestamptz - '$T1'), 2) || ' and ' || round(extract(epoch FROM '$T3'::timestamptz - '$T1'), 2)") s"
diag "steps started by the SQL workers and by the daemons: $(sql "SELECT
    string_agg(w.kind || ' ' || n, ', ' ORDER BY w.kind) FROM (SELECT w.kind, count(*) AS n
    FROM dwa.steps s JOIN dwa.workers w ON w.id = s.worker_id WHERE s.task_id >= $FIRST
    GROUP BY w.kind) w")"
