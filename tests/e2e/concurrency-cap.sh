#!/bin/sh
# concurrency-cap.sh: dwad --concurrency N is the most steps one daemon
# runs at once, and its bad forms are usage errors.
#
# 1. One dwad --concurrency 3 and 12 sleep tasks of 300 ms: measured from
#    the steps' started_at and finished_at, at most 3 ran at once, and at
#    some point exactly 3; all 12 complete.
# 2. --concurrency 0, -1, abc and --type-limit without '=' or with a
#    count that is not a number exit 2 naming the option, and start
#    nothing.
. "$(dirname "$0")/../lib/harness.sh"
plan 17

db_setup

# --- 1. --concurrency 3 -------------------------------------------------------

dwad_start d1 --concurrency 3 || bail "dwad d1 did not start"
FIRST=$(sql "SELECT min(id) FROM (SELECT dwa.submit('{\"type\": \"sleep\",
    \"payload\": {\"ms\": 300}}') AS id FROM generate_series(1, 12)) t")
all_done() {
	sql_true "SELECT count(*) = 12 FROM dwa.tasks WHERE id >= $FIRST
	    AND status IN ('completed', 'failed', 'cancelled')"
}
wait_until 30 all_done
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id >= $FIRST AND status = 'completed'")" 12 \
    "--concurrency 3: the 12 sleep tasks complete"
# overlap SLACK: the most steps running at any start instant, a step
# running from its started_at to SLACK before its finished_at.  The
# daemon counts a slot free as soon as a run ends, and records the end on
# a connection of its own while it claims the next steps on another: the
# claim's timestamp may come a few milliseconds before the recorded end
# of the run whose slot it took.  A fourth step at once would overlap the
# others by most of its 300 ms, far more than the 100 ms of slack.
overlap() {
	sql "WITH s AS (SELECT started_at, finished_at FROM dwa.steps WHERE task_id >= $FIRST)
	    SELECT max((SELECT count(*) FROM s b WHERE b.started_at <= a.started_at
	     AND b.finished_at - interval '$1' > a.started_at)) FROM s a"
}
is "$(overlap '100 ms')" 3 "never more than 3 steps ran at once, and at some point exactly 3"
diag "without slack: $(overlap 0) at once"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $FIRST AND attempt <> 1")" 0 \
    "every step ran once"
is "$(sql "SELECT concurrency FROM dwa.workers WHERE name = 'd1'")" 3 \
    "dwa.workers records the daemon's concurrency"
diag "starts-ends: $(sql "SELECT string_agg(to_char(started_at, 'SS.MS') || '-'
    || to_char(finished_at, 'SS.MS'), ' ' ORDER BY started_at)
    FROM dwa.steps WHERE task_id >= $FIRST")"

# --- 2. usage errors --------------------------------------------------------------

# bad ARGS... : dwad with a bad option: exits 2 at once, saying why on
# stderr, and registers nothing.
NW=$(sql "SELECT count(*) FROM dwa.workers")
bad() {
	run timeout 10 "$DWAD" --name bad "$@"
}
for v in 0 -1 abc; do
	bad --concurrency "$v"
	is "$RC" 2 "--concurrency $v exits 2"
	like "$ERR" "^dwad: --concurrency: .*$v" "--concurrency $v: the message names the option and the value"
done
bad -c 0
is "$RC:$ERR" "2:dwad: --concurrency: 0 is out of range (1 to 100000)" \
    "-c 0 says the range"
bad --type-limit sleep
is "$RC" 2 "--type-limit without '=' exits 2"
like "$ERR" "^dwad: --type-limit: \"sleep\" is not PATTERN=N" \
    "--type-limit without '=': the message names the option and the form"
bad --type-limit 'sleep=x'
is "$RC" 2 "--type-limit PAT=x exits 2"
like "$ERR" '^dwad: --type-limit: "x" is not a number' \
    "--type-limit PAT=x: the message names the option and the value"
bad --type-limit 'sleep=0'
is "$RC:$ERR" "2:dwad: --type-limit: 0 is out of range (1 to 100000)" \
    "--type-limit PAT=0 exits 2 and says the range"
is "$(sql "SELECT count(*) FROM dwa.workers")" "$NW" "the bad invocations registered no daemon"
