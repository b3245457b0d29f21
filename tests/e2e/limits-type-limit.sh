#!/bin/sh
# limits-type-limit.sh: per-daemon type limits and limits changed while
# running.
#
# 1. dwad --concurrency 8 --type-limit sleep=1 runs 6 sleep steps of
#    300 ms one at a time, while 6 echo steps still run meanwhile.
# 2. Patterns are globs and repeatable: --type-limit 'data.*=1'
#    --type-limit 'sl*=1' caps sleep the same way; data.* steps still run.
# 3. N > 1, beside another limit: --type-limit 'audio.*=4' --type-limit
#    'video.*=1' runs 12 audio.* steps (two types, 300 ms each) at most 4
#    at once, and exactly 4 at some point, while the video.* steps run
#    one at a time beside them.
# 4. With two daemons and no type limit, type:sleep --concurrency 1 on a
#    running backlog, then 3: within a second 3 run at once; back to 1:
#    once the 3 running ones are done, one runs at a time.
. "$(dirname "$0")/../lib/harness.sh"
plan 17

db_setup

# maxover STEPS [AT [SLACK]]: the most steps of STEPS (a condition on
# dwa.steps) running at once, looked at each start of a step of STEPS that
# meets AT (a condition on a.started_at); a step still running counts as
# running.  With SLACK (an interval), a step counts as running only until
# SLACK before its recorded end: a daemon records the ends of runs in
# batches, on a connection of its own, while it claims the next steps, so
# a per-daemon limit (held in the daemon, not in the database) may show
# an end recorded a little after the next start.  Cases 1 to 3 (limits
# of one daemon) use a slack far below the 300 ms a step takes; case 4
# (limits in the database, which count a step until its end is recorded)
# uses none.
maxover() {
	sql "WITH s AS (SELECT started_at, coalesce(finished_at, 'infinity') AS finished_at
	     FROM dwa.steps WHERE ($1) AND started_at IS NOT NULL)
	    SELECT coalesce(max((SELECT count(*) FROM s b WHERE b.started_at <= a.started_at
	     AND b.finished_at - interval '${3:-0}' > a.started_at)), 0) FROM s a WHERE ${2:-true}"
}
# submit_n N JSON: submit N tasks; prints the first id.
submit_n() {
	sql "SELECT min(id) FROM (SELECT dwa.submit('$2') AS id FROM generate_series(1, $1)) t"
}
# done_from ID: true once every task from ID on has finished.
done_from() {
	sql_true "SELECT count(*) = 0 FROM dwa.tasks WHERE id >= $1
	    AND status NOT IN ('completed', 'failed', 'cancelled')"
}
# stop NAME: SIGTERM a daemon and wait for it.
stop() {
	kill -TERM "$(dwad_pid "$1")"
	wait "$(dwad_pid "$1")" 2>/dev/null
}

# --- 1. --type-limit sleep=1 ------------------------------------------------------------

dwad_start d1 --concurrency 8 --type-limit sleep=1 || bail "dwad d1 did not start"
P1=$(submit_n 6 '{"type": "sleep", "payload": {"ms": 300}}')
submit_n 6 '{"type": "echo", "payload": {"x": 1}}' >/dev/null
wait_until 15 done_from "$P1"
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id >= $P1 AND status = 'completed'")" 12 \
    "sleep=1: the 6 sleep and 6 echo tasks complete"
is "$(maxover "task_id >= $P1 AND task = 'sleep'" true '100 ms')" 1 \
    "the daemon never ran more than 1 sleep step at once"
diag "without slack: $(maxover "task_id >= $P1 AND task = 'sleep'")"
is "$(sql "SELECT (SELECT max(finished_at) FROM dwa.steps WHERE task_id >= $P1 AND task = 'echo')
    < (SELECT max(started_at) FROM dwa.steps WHERE task_id >= $P1 AND task = 'sleep')")" t \
    "the echo steps ran meanwhile, before the last sleep step started"
stop d1

# --- 2. glob patterns, repeated -------------------------------------------------------------

dwad_start d2 --concurrency 8 --type-limit 'data.*=1' --type-limit 'sl*=1' ||
    bail "dwad d2 did not start"
P2=$(submit_n 6 '{"type": "sleep", "payload": {"ms": 300}}')
submit_n 6 '{"type": "echo", "payload": {"x": 1}}' >/dev/null
submit_n 4 '{"type": "data.aggregate", "payload": {"x": 1}}' >/dev/null
wait_until 15 done_from "$P2"
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id >= $P2 AND status = 'completed'")" 16 \
    "'data.*=1' 'sl*=1': the sleep, echo and data.aggregate tasks complete"
is "$(maxover "task_id >= $P2 AND task = 'sleep'" true '100 ms')" 1 \
    "the glob sl* held sleep to 1 at once"
diag "without slack: $(maxover "task_id >= $P2 AND task = 'sleep'")"
is "$(sql "SELECT (SELECT max(finished_at) FROM dwa.steps WHERE task_id >= $P2 AND task <> 'sleep')
    < (SELECT max(started_at) FROM dwa.steps WHERE task_id >= $P2 AND task = 'sleep')")" t \
    "the echo and data.aggregate steps ran meanwhile"
stop d2

# --- 3. N > 1: 'audio.*=4' beside 'video.*=1' ------------------------------------------

# Program types that sleep 300 ms (tests/e2e/exec/sleeper.sh).
sql "INSERT INTO dwa.task_types (name, executor, command)
    SELECT name, 'exec', ARRAY['$top_srcdir/tests/e2e/exec/sleeper.sh', '0.3']
      FROM unnest(ARRAY['audio.mix', 'audio.norm', 'video.cut']) name" >/dev/null ||
    bail "cannot register the audio and video types"
dwad_start d5 --concurrency 8 --types 'audio.*,video.*' --type-limit 'audio.*=4' \
    --type-limit 'video.*=1' || bail "dwad d5 did not start"
P5=$(submit_n 6 '{"type": "audio.mix"}')
submit_n 4 '{"type": "video.cut"}' >/dev/null
submit_n 6 '{"type": "audio.norm"}' >/dev/null
wait_until 30 done_from "$P5"
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id >= $P5 AND status = 'completed'")" 16 \
    "'audio.*=4' 'video.*=1': the 12 audio and 4 video tasks complete"
# The steps take 300 ms: a fifth audio step at once would overlap the
# others far longer than the 150 ms of slack.
is "$(maxover "task_id >= $P5 AND task LIKE 'audio.%'" true '150 ms')" 4 \
    "at most 4 audio.* steps (of both types) ran at once, and at some point exactly 4"
is "$(maxover "task_id >= $P5 AND task LIKE 'video.%'" true '150 ms')" 1 \
    "the video.* steps ran one at a time"
is "$(sql "SELECT count(*) > 0 FROM dwa.steps v JOIN dwa.steps a ON a.task_id >= $P5
    AND a.task LIKE 'audio.%' AND a.started_at <= v.started_at AND a.finished_at > v.started_at
    WHERE v.task_id >= $P5 AND v.task = 'video.cut'")" t \
    "the video.* steps ran beside the audio.* ones, not after them"
ok $([ "$(maxover "task_id >= $P5" true '150 ms')" -le 5 ] && echo 0 || echo 1) \
    "never more than 4 + 1 steps at once"
diag "the same counts without slack (audio, video, all): $(maxover "task_id >= $P5
    AND task LIKE 'audio.%'") $(maxover "task_id >= $P5 AND task LIKE 'video.%'") $(maxover \
    "task_id >= $P5")"
diag "phase 3 (a: audio, v: video): $(sql "SELECT string_agg(left(split_part(task, '.', 1), 1)
    || to_char(started_at, 'SS.MS') || '-' || to_char(finished_at, 'SS.MS'), ' '
    ORDER BY started_at) FROM dwa.steps WHERE task_id >= $P5")"
stop d5

# --- 4. limits changed while running ------------------------------------------------------

"$DWA" limits set type:sleep --concurrency 1 || bail "dwa limits set failed"
dwad_start d3 --concurrency 8 || bail "dwad d3 did not start"
dwad_start d4 --concurrency 8 || bail "dwad d4 did not start"
P3=$(submit_n 30 '{"type": "sleep", "payload": {"ms": 300}}')
wait_until 10 sql_true "SELECT count(*) >= 2 FROM dwa.steps WHERE task_id >= $P3
    AND status = 'succeeded'"
T1=$(sql "SELECT now()")
"$DWA" limits set type:sleep --concurrency 3 || bail "dwa limits set failed"
wait_until 5 sql_true "SELECT now() > '$T1'::timestamptz + interval '1.5 s'"
T2=$(sql "SELECT now()")
"$DWA" limits set type:sleep --concurrency 1 || bail "dwa limits set failed"
wait_until 5 sql_true "SELECT now() > '$T2'::timestamptz + interval '1.5 s'"

S3="task_id >= $P3"
is "$(maxover "$S3" "a.started_at < '$T1'")" 1 "under --concurrency 1, one sleep step ran at a time"
is "$(maxover "$S3" "a.started_at >= '$T1' AND a.started_at < '$T2'")" 3 \
    "set to 3 while running, 3 ran at once (and never more)"
DT=$(sql "SELECT extract(epoch FROM min(a.started_at) - '$T1'::timestamptz)
    FROM dwa.steps a WHERE a.task_id >= $P3 AND a.started_at >= '$T1'
    AND (SELECT count(*) FROM dwa.steps b WHERE b.task_id >= $P3
     AND b.started_at <= a.started_at
     AND coalesce(b.finished_at, 'infinity') > a.started_at) = 3")
is "$(sql "SELECT coalesce($DT::float8 < 1, false)" 2>/dev/null)" t \
    "3 ran at once within a second of the change (after ${DT:-never} s)"
is "$(maxover "$S3" "a.started_at >= '$T2'::timestamptz + interval '0.5 s'")" 1 \
    "set back to 1: once the running ones ended, one ran at a time"
N=$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $P3
    AND started_at >= '$T2'::timestamptz + interval '0.5 s'")
ok $([ "$N" -ge 2 ] && echo 0 || echo 1) "and steps kept starting after that ($N)"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id >= $P3 AND status = 'failed'")" 0 \
    "no step failed"
diag "daemons that ran phase 4 steps: $(sql "SELECT count(DISTINCT worker_id) FROM dwa.steps
    WHERE task_id >= $P3 AND started_at IS NOT NULL")"

diag "phase 4 starts: $(sql "SELECT string_agg(to_char(started_at, 'SS.MS') || '-'
    || coalesce(to_char(finished_at, 'SS.MS'), '...'), ' ' ORDER BY started_at)
    FROM dwa.steps WHERE task_id >= $P3 AND started_at IS NOT NULL"); T1 $(sql "SELECT
    to_char('$T1'::timestamptz, 'SS.MS')"), T2 $(sql "SELECT to_char('$T2'::timestamptz, 'SS.MS')")"
