#!/bin/sh
# cli.sh: the task commands of dwa (submit, status, list, cancel, retry,
# watch) against a real database, with no daemon: a background shell plays
# the worker through dwa.claim, dwa.progress, dwa.complete and dwa.fail.
#
# Each scenario uses its own task type (registered below for external
# workers), so a claim can only ever take the step it means to.
. "$(dirname "$0")/../lib/harness.sh"

db_setup
plan 97

sql "INSERT INTO dwa.task_types (name) VALUES ('cli.ok'), ('cli.fail'),
    ('cli.watch'), ('cli.idle')" >/dev/null || bail "cannot register types"

ntasks() { sql "SELECT count(*) FROM dwa.tasks"; }
# claim TYPE: claim one ready step of TYPE as worker w1; its run id goes
# to $T_TMP/run.TYPE.  Fails while there is none (for wait_until).
claim() {
	local r
	r=$(sql "SELECT run_id FROM dwa.claim('w1', ARRAY['$1'], 1)")
	[ -n "$r" ] && echo "$r" >"$T_TMP/run.$1"
}
run_of() { cat "$T_TMP/run.$1"; }

# --- submit ---------------------------------------------------------------

cat >"$T_TMP/echo.json" <<'EOF'
{ "type": "echo", "payload": { "a": 1, "big": 123456789012345678901234567890 } }
EOF
run "$DWA" submit "$T_TMP/echo.json"
is "$RC" 0 "submit FILE exits 0"
like "$OUT" '^[0-9]+$' "submit prints the task id"
ECHO_ID=$OUT
is "$(sql "SELECT type || ' ' || status || ' ' || (payload ->> 'big')
    FROM dwa.tasks WHERE id = '$ECHO_ID'")" \
    "echo queued 123456789012345678901234567890" \
    "the printed id is the stored task, its numbers kept to the last digit"

run sh -c "echo '{\"type\": \"cli.idle\", \"queue\": \"cli-q\"}' | '$DWA' submit -"
is "$RC" 0 "submit - reads the definition from stdin"
Q_ID=$OUT
is "$(sql "SELECT queue FROM dwa.tasks WHERE id = '$Q_ID'")" "cli-q" \
    "the stdin task is stored with its queue"

run "$DWA" submit --quiet "$T_TMP/echo.json"
is "$RC:$OUT:$(sql "SELECT count(*) FROM dwa.tasks WHERE type = 'echo'")" \
    "0::2" "submit --quiet stores the task and prints nothing"

# Rejections: the message, the exit code, and nothing stored.
N=$(ntasks)
printf '{\n  "type": "echo",\n  "payload": { "a": 1 },\n}\n' >"$T_TMP/bad.json"
run "$DWA" submit "$T_TMP/bad.json"
is "$RC" 1 "malformed JSON exits 1"
like "$ERR" "^dwa: submit: $T_TMP/bad.json:4:1: malformed JSON: " \
    "malformed JSON is reported with file, line and column"
is "$(ntasks)" "$N" "malformed JSON stores nothing"

echo '{"type": "nope"}' >"$T_TMP/nope.json"
run "$DWA" submit "$T_TMP/nope.json"
is "$RC" 1 "an unknown task type exits 1"
is "$ERR" 'dwa: submit: type: unknown task type "nope" (field: type); hint: register it in dwa.task_types, or give the task "steps" of registered types' \
    "an unknown task type is reported with the field and the hint"
is "$(ntasks)" "$N" "an unknown task type stores nothing"

echo '{"type": "flow", "steps": [{"id": "a", "task": "echo", "dependsOn": ["x"]}]}' \
    >"$T_TMP/dep.json"
run "$DWA" submit "$T_TMP/dep.json"
is "$RC" 1 "an invalid step exits 1"
like "$ERR" '^dwa: submit: .*"x"' "an invalid step is reported by name"
is "$(ntasks)" "$N" "an invalid step stores nothing"

run "$DWA" submit "$T_TMP/missing.json"
is "$RC:$ERR" \
    "1:dwa: submit: cannot read $T_TMP/missing.json: No such file or directory" \
    "a missing file exits 1 and says why"
is "$(ntasks)" "$N" "a missing file stores nothing"

run sh -c "printf '  \n' | '$DWA' submit -"
is "$RC:$ERR" "1:dwa: submit: <stdin>: empty, expected a task definition (JSON)" \
    "empty input exits 1 and says so"

run "$DWA" submit
is "$RC" 2 "submit without FILE is a usage error (exit 2)"
like "$ERR" '^usage: dwa submit FILE' "submit without FILE prints the usage"
run "$DWA" submit --bogus "$T_TMP/echo.json"
is "$RC" 2 "submit with an unknown option exits 2"
like "$ERR" '^usage: dwa submit' "submit with an unknown option prints the usage"
run "$DWA" submit --timeout 1s "$T_TMP/echo.json"
is "$RC:$OUT" "2:" "submit --timeout without --wait is a usage error"
run "$DWA" submit --wait --timeout soon "$T_TMP/echo.json"
is "$RC" 2 "submit --timeout with a bad duration is a usage error"
is "$(ntasks)" "$N" "usage errors store nothing"

# --- submit --wait ----------------------------------------------------------

echo '{"type": "cli.ok"}' >"$T_TMP/ok.json"
(
	wait_until 10 claim cli.ok || exit 1
	sql "SELECT dwa.progress($(run_of cli.ok), 45)" >/dev/null
	sql "SELECT dwa.complete($(run_of cli.ok), '{\"x\": 1}')" >/dev/null
) &
run "$DWA" submit --wait --timeout 10s "$T_TMP/ok.json"
wait
is "$RC" 0 "submit --wait exits 0 once the worker completed the task"
OK_ID=$(echo "$OUT" | head -n 1)
is "$(echo "$OUT" | tail -n 1)" "task $OK_ID completed" \
    "submit --wait prints the id, then the final status"
is "$(sql "SELECT status || ' ' || result::text FROM dwa.tasks WHERE id = '$OK_ID'")" \
    'completed {"x": 1}' "the task waited for holds the worker's result"

echo '{"type": "cli.fail"}' >"$T_TMP/fail.json"
(
	wait_until 10 claim cli.fail || exit 1
	sql "SELECT dwa.fail($(run_of cli.fail), 'boom', retryable => false)" >/dev/null
) &
run "$DWA" submit --wait --timeout 10s "$T_TMP/fail.json"
wait
FAIL_ID=$OUT
is "$RC" 1 "submit --wait exits 1 when the task failed"
is "$ERR" "dwa: submit: task $FAIL_ID failed: step \"0\": boom" \
    "submit --wait puts the task's error on stderr"

run "$DWA" submit --wait --timeout 300ms "$T_TMP/ok.json"
TO_ID=$(echo "$OUT" | head -n 1)
is "$RC" 1 "submit --wait exits 1 when --timeout elapsed"
like "$ERR" "^dwa: submit: task $TO_ID is still queued after --timeout 300ms" \
    "the timeout is reported with the task's state"

# --- status -----------------------------------------------------------------

cat >"$T_TMP/flow.json" <<'EOF'
{ "type": "flow", "queue": "cli-flow",
  "steps": [ { "id": "a", "task": "echo" }, { "id": "frames", "task": "echo" } ] }
EOF
FLOW_ID=$("$DWA" submit "$T_TMP/flow.json")
run "$DWA" status "$FLOW_ID"
is "$RC" 0 "status exits 0"
like "$OUT" "^id +$FLOW_ID\$" "status shows the id"
like "$OUT" '^type +flow$' "status shows the type"
like "$OUT" '^status +queued$' "status shows the state"
like "$OUT" '^progress +0$' "status shows the progress"
like "$OUT" '^step_id +task +status +attempt +item_index +started_at +finished_at +error$' \
    "the step table's header uses the SQL column names"
like "$OUT" '^a +echo +ready +0 +- ' "status shows the first step, ready"
like "$OUT" '^frames +echo +waiting +0 +- ' "status shows the second step, waiting"

run "$DWA" status "$OK_ID"
like "$OUT" '^result +\{"x": 1\}$' "status shows the result of a completed task"
like "$OUT" '^finished_at +[0-9]{4}-' "status shows when the task finished"
run "$DWA" status "$FAIL_ID"
like "$OUT" '^error +step "0": boom$' "status shows the error of a failed task"

run "$DWA" status --json "$FLOW_ID"
is "$RC" 0 "status --json exits 0"
is "$(json "$OUT" "j ->> 'taskId', j ->> 'type', j ->> 'status', j ->> 'progress',
    j -> 'steps' -> 1 ->> 'stepId', j -> 'steps' -> 1 ->> 'status',
    j ? 'result', j ? 'error'")" "$FLOW_ID|flow|queued|0|frames|waiting|t|t" \
    "status --json prints the SPEC's fields, steps included"

run "$DWA" status 999999
is "$RC:$ERR" "1:dwa: status: task 999999 not found" \
    "status of an unknown task exits 1"
run "$DWA" status abc
is "$RC" 2 "status of a non-numeric id is a usage error"
like "$ERR" '^dwa: status: "abc" is not a task id' "the bad id is named"
run "$DWA" status
is "$RC" 2 "status without ID is a usage error"

# --- cancel and retry ---------------------------------------------------------

run "$DWA" cancel "$FLOW_ID"
is "$RC:$OUT:$ERR" "0::" "cancel exits 0 and prints nothing"
run "$DWA" status "$FLOW_ID"
like "$OUT" '^status +cancelled$' "status then shows the task cancelled"
is "$(sql "SELECT string_agg(status, ',' ORDER BY step_index) FROM dwa.task_steps
    WHERE task_id = $FLOW_ID")" "cancelled,cancelled" "its steps are cancelled too"
run "$DWA" cancel "$FLOW_ID"
is "$RC:$ERR" "1:dwa: cancel: task $FLOW_ID is already cancelled" \
    "cancelling a finished task exits 1 and says how it ended"
run "$DWA" cancel "$OK_ID"
is "$RC:$ERR" "1:dwa: cancel: task $OK_ID is already completed" \
    "cancelling a completed task exits 1"
run "$DWA" cancel 999999
is "$RC:$ERR" "1:dwa: cancel: task 999999 not found" "cancel of an unknown task exits 1"
run "$DWA" cancel 12x
is "$RC" 2 "cancel of a bad id is a usage error"

# list --status, before retry puts the flow back.
run "$DWA" list --status cancelled
is "$RC" 0 "list --status exits 0"
is "$(echo "$OUT" | awk 'NR > 1 { print $1 ":" $4 }' | tr '\n' ' ')" \
    "$FLOW_ID:cancelled " "list --status cancelled lists only the cancelled task"

run "$DWA" retry "$FLOW_ID"
is "$RC:$OUT:$ERR" "0::" "retry exits 0 and prints nothing"
is "$(sql "SELECT t.status || ' ' || string_agg(s.status, ',' ORDER BY s.step_index)
    FROM dwa.tasks t JOIN dwa.task_steps s ON s.task_id = t.id
    WHERE t.id = $FLOW_ID GROUP BY t.status")" "queued ready,waiting" \
    "retry of a cancelled task puts it back in the queue"
run "$DWA" retry "$FLOW_ID"
is "$RC:$ERR" \
    "1:dwa: retry: task $FLOW_ID is queued: only failed or cancelled tasks can be retried" \
    "retry of a queued task exits 1 with the reason"
run "$DWA" retry 999999
is "$RC:$ERR" "1:dwa: retry: task 999999 not found" "retry of an unknown task exits 1"

# --- list -----------------------------------------------------------------

run "$DWA" list
is "$RC" 0 "list exits 0"
like "$(echo "$OUT" | head -n 1)" '^id +type +queue +status +progress +created_at$' \
    "the list header uses the SQL column names"
is "$(echo "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" \
    "$(sql "SELECT id FROM dwa.tasks ORDER BY id DESC" | tr '\n' ' ')" \
    "list shows every task, newest first"
run "$DWA" list --queue cli-q
is "$(echo "$OUT" | awk 'NR > 1 { print $1 ":" $2 ":" $3 }')" "$Q_ID:cli.idle:cli-q" \
    "list --queue shows only that queue's tasks"
run "$DWA" list --status queued --queue cli-flow
is "$(echo "$OUT" | awk 'NR > 1 { print $1 }')" "$FLOW_ID" \
    "list --status and --queue combine"
run "$DWA" list --limit 2
is "$(echo "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" \
    "$(sql "SELECT id FROM dwa.tasks ORDER BY id DESC LIMIT 2" | tr '\n' ' ')" \
    "list --limit caps the rows"
run "$DWA" list --json --queue cli-q
is "$(json "$OUT" "j ->> 'queue', j ->> 'count', j -> 'tasks' -> 0 ->> 'taskId',
    j -> 'tasks' -> 0 ->> 'status'")" "cli-q|1|$Q_ID|queued" \
    "list --json prints queue, count and tasks"

N=$(ntasks)
run "$DWA" list --status done
is "$RC" 2 "list --status with an unknown state exits 2"
like "$ERR" 'dwa: list: --status: "done" is not a task state \(queued, running, completed, failed or cancelled\)' \
    "the unknown state is named with the valid ones"
run "$DWA" list --limit 0
is "$RC" 2 "list --limit 0 exits 2"
like "$ERR" '^dwa: list: --limit: 0 is out of range \(1 to 10000\)' \
    "the bad limit is named with the valid range"
is "$(ntasks)" "$N" "list's usage errors store nothing"

# --- watch -----------------------------------------------------------------

cat >"$T_TMP/watch.json" <<'EOF'
{ "type": "video", "steps": [ { "id": "fetch", "task": "cli.watch" },
                              { "id": "frames", "task": "cli.watch" } ] }
EOF
W_ID=$("$DWA" submit "$T_TMP/watch.json")
"$DWA" watch "$W_ID" --interval 100ms >"$T_TMP/watch.out" 2>"$T_TMP/watch.err" &
W_PID=$!
T_PIDS="$T_PIDS $W_PID"
# The worker moves on only once watch has shown each state.
wait_until 10 grep -q "^task $W_ID queued 0%" "$T_TMP/watch.out"
ok $? "watch prints the task's state first"
wait_until 10 claim cli.watch
sql "SELECT dwa.complete($(run_of cli.watch), '{\"n\": 3}')" >/dev/null
wait_until 10 grep -q "^step fetch succeeded" "$T_TMP/watch.out"
ok $? "watch prints a step that succeeded"
wait_until 10 claim cli.watch
sql "SELECT dwa.progress($(run_of cli.watch), 45)" >/dev/null
wait_until 10 grep -q "^step frames running 45%" "$T_TMP/watch.out"
ok $? "watch prints a running step's progress"
sql "SELECT dwa.complete($(run_of cli.watch), '{\"frames\": []}')" >/dev/null
wait "$W_PID"
is "$?" 0 "watch exits 0 when the task completes"
is "$(tail -n 2 "$T_TMP/watch.out" | tr '\n' '|')" \
    "step frames succeeded|task $W_ID completed|" \
    "watch ends with the last step and the task's final state"
is "$(sort "$T_TMP/watch.out" | uniq -d)" "" "watch prints a line only when something changed"

# A quiet watch blocks: little CPU over a second, then cancel ends it.
"$DWA" watch "$Q_ID" >"$T_TMP/idle.out" 2>&1 &
I_PID=$!
T_PIDS="$T_PIDS $I_PID"
wait_until 10 grep -q "^task $Q_ID queued" "$T_TMP/idle.out"
sleep 1
ticks=$(awk '{ print $14 + $15 }' "/proc/$I_PID/stat" 2>/dev/null || echo 0)
ok $([ "$ticks" -lt 20 ] && echo 0 || echo 1) "a waiting watch does not busy-loop ($ticks ticks)"
"$DWA" cancel "$Q_ID"
wait "$I_PID"
is "$?:$(tail -n 1 "$T_TMP/idle.out")" "1:task $Q_ID cancelled" \
    "watch exits 1 when the task is cancelled"

run "$DWA" watch "$FAIL_ID"
is "$RC:$(echo "$OUT" | tail -n 1)" "1:task $FAIL_ID failed: step \"0\": boom" \
    "watch of a failed task exits 1 with its error"
run "$DWA" watch 999999
is "$RC:$ERR" "1:dwa: watch: task 999999 not found" "watch of an unknown task exits 1"
run "$DWA" watch "$W_ID" --interval 0
is "$RC" 2 "watch --interval 0 is a usage error"

if command -v script >/dev/null 2>&1; then
	script -qec "'$DWA' watch $W_ID" /dev/null </dev/null >"$T_TMP/tty.out" 2>&1
	tty_rc=$?
	like "$(cat -v "$T_TMP/tty.out")" "task $W_ID video  completed" \
	    "on a terminal watch draws the task line"
	like "$(cat -v "$T_TMP/tty.out")" '\^\[\[K  frames +succeeded' \
	    "on a terminal watch redraws a line per step"
	is "$tty_rc" 0 "on a terminal watch exits 0 for a completed task"
else
	echo "ok $((T_N + 1)) # skip script(1) not installed"
	echo "ok $((T_N + 2)) # skip script(1) not installed"
	echo "ok $((T_N + 3)) # skip script(1) not installed"
	T_N=$((T_N + 3))
fi

# --- every command ----------------------------------------------------------

for cmd in submit status list cancel retry watch; do
	run "$DWA" "$cmd" --help
	is "$RC:$(echo "$OUT" | head -n 1 | cut -d' ' -f1-3)" "0:usage: dwa $cmd" \
	    "$cmd --help prints the usage on stdout and exits 0"
done
bad=""
for cmd in status list cancel retry watch; do
	run "$DWA" "$cmd" --bogus 1
	case "$RC:$ERR" in
	2:*"usage: dwa $cmd"*) ;;
	*) bad="$bad $cmd($RC)" ;;
	esac
done
is "$bad" "" "an unknown option is a usage error (exit 2) for every command"
run "$DWA" list --db "postgresql:///nonexistent_db_$$?host=$PGHOST&port=$PGPORT"
is "$RC" 1 "every command takes --db (a bad one fails with exit 1)"
like "$ERR" '^dwa: list: cannot connect to the database: .*; set DATABASE_URL or --db$' \
    "a failed connection names the fix"
