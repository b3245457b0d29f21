#!/bin/sh
# notify-wake.sh: what NOTIFY sends, as a client listening with psql sees
# it.
#
# 1. dwa_wake, no daemon running: one INSERT ... SELECT of 50 tasks sends
#    exactly one, and so does one statement of 50 dwa.submit calls; two
#    inserts in two transactions send two.
# 2. dwa_events, one dwad running: a task it completes sends
#    {"task_id": N, "event": "completed"} once; a pipeline sends
#    step_succeeded for each step, then completed; a failing step sends
#    step_failed, then failed, with the errors; an external worker's
#    dwa.progress sends progress with {"progress": 45, "data": ...};
#    cancel and retry send cancelled and retried; 30 tasks run by the
#    daemon send 30 completed events, one per task.
#
# PostgreSQL itself folds identical notifications (same channel and
# payload) of one transaction: "exactly one dwa_wake" holds against a
# wake-up per row with varying payloads, or per transaction of a batch,
# not against a per-row trigger sending the same empty payload.
#
# The listener is one psql session fed "LISTEN ..." and then "SELECT 1;"
# every 50 ms through a FIFO, which makes it print each notification as
# it arrives.  A test-only NOTIFY dwa_test 'MARK' (sent after what is
# counted, and delivered after it: notifications arrive in commit order)
# delimits what belongs to each check.
. "$(dirname "$0")/../lib/harness.sh"
plan 17

db_setup
sql "INSERT INTO dwa.task_types (name, executor) VALUES ('nw.work', 'worker'),
    ('nw.idle', 'worker')" >/dev/null || bail "cannot register types"

mkfifo "$T_TMP/listen.in" || bail "mkfifo failed"
(
	echo "LISTEN dwa_wake; LISTEN dwa_events; LISTEN dwa_test;"
	while [ -d "$T_TMP" ] && [ ! -f "$T_TMP/stop" ]; do
		echo "SELECT 1;"
		sleep 0.05
	done
) >"$T_TMP/listen.in" &
T_PIDS="$T_PIDS $!"
psql -X -q -A -t <"$T_TMP/listen.in" >"$T_TMP/notes.log" 2>&1 &
T_PIDS="$T_PIDS $!"
wait_until 10 grep -q '^1$' "$T_TMP/notes.log" || bail "the listener did not start"

# mark NAME: send the marker NAME and wait until the listener has it.
mark() {
	sql "NOTIFY dwa_test, '$1'" >/dev/null
	wait_until 10 grep -q "\"dwa_test\" with payload \"$1\"" "$T_TMP/notes.log" ||
	    bail "marker $1 never arrived"
}
# notes CHANNEL FROM TO [TASK]: the payloads on CHANNEL between markers
# FROM and TO, one a line; with TASK, only the JSON events of that task,
# keys sorted, without spaces.
notes() {
	python3 - "$T_TMP/notes.log" "$@" <<'EOF'
import json, re, sys
path, channel, start, end = sys.argv[1:5]
task = sys.argv[5] if len(sys.argv) > 5 else None
rx = re.compile(r'^Asynchronous notification "([^"]*)"(?: with payload "(.*)")?'
                r' received from server process with PID \d+\.$')
on = False
for line in open(path, encoding="utf-8", errors="replace"):
    m = rx.match(line.rstrip("\n"))
    if not m:
        continue
    ch, payload = m.group(1), m.group(2) or ""
    if ch == "dwa_test":
        on = (on or payload == start) and payload != end
        continue
    if not on or ch != channel:
        continue
    if task is None:
        print(payload)
        continue
    try:
        ev = json.loads(payload)
    except ValueError:
        print("not JSON: " + payload)
        continue
    if str(ev.get("task_id")) == task:
        print(json.dumps(ev, sort_keys=True, separators=(",", ":")))
EOF
}
nnotes() { notes "$@" | wc -l | tr -d ' '; }
# events TASK [all]: the events of TASK between e0 and e1, separated by
# '|'; without all, not 'running' and 'step_started', which dwad sends
# only for runs still going 20 ms after their claim.
events() {
	if [ "${2:-}" = all ]; then
		notes dwa_events e0 e1 "$1"
	else
		notes dwa_events e0 e1 "$1" | grep -v '"event":"\(running\|step_started\)"'
	fi | tr '\n' '|' | sed 's/|$//'
}

# --- 1. dwa_wake ------------------------------------------------------------------------

mark w0
sql "INSERT INTO dwa.tasks (type, payload)
    SELECT 'nw.idle', jsonb_build_object('n', g) FROM generate_series(1, 50) g" >/dev/null
mark w1
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task = 'nw.idle' AND status = 'ready'")" 50 \
    "one INSERT ... SELECT stored 50 tasks, each with its ready step"
is "$(nnotes dwa_wake w0 w1)" 1 "and sent exactly one dwa_wake"
is "$(notes dwa_wake w0 w1)" "" "with an empty payload"

sql "SELECT count(dwa.submit('{\"type\": \"nw.idle\"}'::jsonb)) FROM generate_series(1, 50)" \
    >/dev/null
mark w2
is "$(nnotes dwa_wake w1 w2)" 1 "one statement of 50 dwa.submit calls sent exactly one dwa_wake"

sql "INSERT INTO dwa.tasks (type) VALUES ('nw.idle')" >/dev/null
sql "INSERT INTO dwa.tasks (type) VALUES ('nw.idle')" >/dev/null
mark w3
is "$(nnotes dwa_wake w2 w3)" 2 "two inserts in two transactions sent two"

# --- 2. dwa_events ----------------------------------------------------------------------

# The idle tasks are for nobody: cancel them before a daemon looks.
sql "SELECT count(dwa.cancel(id)) FROM dwa.tasks WHERE type = 'nw.idle'" >/dev/null
mark e0
dwad_start d1 --concurrency 4 || bail "dwad d1 did not start"

A=$(submit '{"type": "noop"}')
B=$(submit '{"type": "nw.flow", "steps": [{"id": "a", "task": "echo", "input": {"x": 1}},
    {"id": "b", "task": "echo"}]}')
C=$(submit '{"type": "fail", "payload": {"message": "nope"}, "retry": {"attempts": 1}}')
D=$(submit '{"type": "sleep", "payload": {"ms": 300}}')
wait_until 20 sql_true "SELECT count(*) = 4 FROM dwa.tasks WHERE id IN ($A, $B, $C, $D)
    AND status IN ('completed', 'failed')"
is "$(task_status "$A") $(task_status "$B") $(task_status "$C")" "completed completed failed" \
    "dwad ran the three tasks"

# An external worker reports progress; the task is then completed.
W=$(submit '{"type": "nw.work"}')
R=$(sql "SELECT run_id FROM dwa.claim('nw-worker', ARRAY['nw.work'], 1)")
sql "SELECT dwa.progress($R, 45, '{\"frame\": 120}')" >/dev/null
sql "SELECT dwa.complete($R, '{}')" >/dev/null
# Cancel and retry.
X=$(submit '{"type": "nw.work"}')
sql "SELECT dwa.cancel($X)" >/dev/null
sql "SELECT dwa.retry($X)" >/dev/null
mark e1

is "$(events "$A")" "{\"event\":\"completed\",\"task_id\":$A}" \
    "a task completed by dwad: one event, {\"task_id\": $A, \"event\": \"completed\"}"
is "$(events "$B")" "{\"event\":\"step_succeeded\",\"step_id\":\"a\",\"task_id\":$B}|{\"event\":\"step_succeeded\",\"step_id\":\"b\",\"task_id\":$B}|{\"event\":\"completed\",\"task_id\":$B}" \
    "a pipeline: step_succeeded a, step_succeeded b, then completed"
is "$(events "$C")" "{\"data\":\"nope\",\"event\":\"step_failed\",\"step_id\":\"0\",\"task_id\":$C}|{\"data\":\"step \\\"0\\\": nope\",\"event\":\"failed\",\"task_id\":$C}" \
    "a failing step: step_failed with its error, then failed with the task's"
is "$(events "$D" all)" "{\"event\":\"running\",\"task_id\":$D}|{\"event\":\"step_started\",\"step_id\":\"0\",\"task_id\":$D}|{\"event\":\"completed\",\"task_id\":$D}" \
    "a run of 300 ms: running and step_started (20 ms after the claim), then completed"
is "$(events "$W" all)" "{\"event\":\"running\",\"task_id\":$W}|{\"event\":\"step_started\",\"step_id\":\"0\",\"task_id\":$W}|{\"data\":{\"data\":{\"frame\":120},\"progress\":45},\"event\":\"progress\",\"step_id\":\"0\",\"task_id\":$W}|{\"event\":\"completed\",\"task_id\":$W}" \
    "an external worker: running and step_started at the claim, progress with {\"progress\": 45, \"data\": ...}, then completed"
is "$(events "$X")" "{\"event\":\"cancelled\",\"task_id\":$X}|{\"event\":\"retried\",\"task_id\":$X}" \
    "cancel, then retry: cancelled, retried"
is "$(notes dwa_events e0 e1 | python3 -c 'import json, sys
bad = 0
for l in sys.stdin:
    try:
        e = json.loads(l)
        bad += not (isinstance(e.get("task_id"), int) and isinstance(e.get("event"), str))
    except ValueError:
        bad += 1
print(bad)')" 0 "every dwa_events payload is a JSON object with a numeric task_id and an event"

# A bulk of tasks run by the daemon: one completed event each.
mark e2
FIRST=$(sql "SELECT min(id) FROM (SELECT dwa.submit('{\"type\": \"noop\"}') AS id
    FROM generate_series(1, 30)) t")
wait_until 20 sql_true "SELECT count(*) = 0 FROM dwa.tasks WHERE id >= $FIRST
    AND status <> 'completed'"
mark e3
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id >= $FIRST AND status = 'completed'")" 30 \
    "dwad completed 30 more tasks"
n=$(notes dwa_events e2 e3 | python3 -c 'import json, sys
done = [json.loads(l)["task_id"] for l in sys.stdin if json.loads(l)["event"] == "completed"]
print(len(done), len(set(done)), all(t >= int(sys.argv[1]) for t in done))' "$FIRST")
is "$n" "30 30 True" "30 completed events, one for each of those tasks"

# --- 3. the listener itself ---------------------------------------------------------------

sql "SELECT pg_notify('dwa_wake', 'n' || g) FROM generate_series(1, 3) g" >/dev/null
mark e4
is "$(notes dwa_wake e3 e4 | grep -c '^n[123]$')" 3 \
    "(the listener: it reports distinct notifications of one statement one by one)"
touch "$T_TMP/stop"
is "$(grep -c '^psql:\|ERROR' "$T_TMP/notes.log")" 0 "(the listener: its session had no error)"
