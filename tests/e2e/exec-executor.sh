#!/bin/sh
# exec-executor.sh: task types served by local programs (tests/e2e/exec/).
# Success with the input on stdin and a private work directory, streamed
# progress, transient (75) and permanent exit codes with the stderr tail,
# a line that is not JSON, a missing or non-executable program (the daemon
# lives on), a timeout and a cancel that kill the whole process group
# (SIGKILL after SIGTERM is ignored), 200 concurrent runs without leaking
# descriptors or zombies, and --keep-workdirs.
. "$(dirname "$0")/../lib/harness.sh"
plan 55

P="$top_srcdir/tests/e2e/exec"
M=$$	# unique sleep durations, so pgrep finds only our processes
db_setup

printf '#!/bin/sh\necho "{}"\n' >"$T_TMP/notexec.sh"
chmod 644 "$T_TMP/notexec.sh"
# register NAME ARGV...: an exec task type.
register() {
	local name=$1 argv="" a
	shift
	for a in "$@"; do
		argv="$argv${argv:+, }'$(printf '%s' "$a" | sed "s/'/''/g")'"
	done
	sql "INSERT INTO dwa.task_types (name, executor, command)
	     VALUES ('$name', 'exec', ARRAY[$argv])" || bail "cannot register $name"
}
register t.ok "$P/ok.sh"
register t.progress "$P/progress.sh" "$T_TMP/progress.flag"
register t.exit75 "$P/exit.sh" 75
register t.exit3 "$P/exit.sh" 3
register t.flaky "$P/flaky.sh" "$T_TMP/flaky.state"
register t.badjson "$P/badjson.sh"
register t.missing /nonexistent/dwa-missing-prog
register t.notexec "$T_TMP/notexec.sh"
register t.timeout "$P/sleeper.sh" "31.$M"
register t.timeout_hard "$P/sleeper.sh" "32.$M" ignore-term
register t.cancel "$P/sleeper.sh" "33.$M"
register t.short "$P/short.sh" 1

export DWA_WORKDIR="$T_TMP/work"
mkdir -p "$DWA_WORKDIR"
dwad_start d1 --concurrency 200 || bail "dwad d1 did not start"
D1=$(dwad_pid d1)

dead() { case $(ps -o stat= -p "$1" 2>/dev/null) in ''|Z*) return 0 ;; esac; return 1; }
gone() { ! pgrep -f "$1" >/dev/null 2>&1; }
running() { pgrep -f "$1" >/dev/null 2>&1; }
col() { sql "SELECT $2 FROM dwa.steps WHERE task_id = $1 AND item_index IS NULL"; }
R1='{"attempts": 1}'
R2='{"attempts": 2, "backoff": {"initialMs": 100}}'

# Everything but the burst runs at once.
ok1=$(submit '{"type": "t.ok", "payload": {"n": 7, "s": "a b"}}')
ok2=$(submit '{"type": "t.ok", "payload": {"n": 8}}')
prog=$(submit '{"type": "t.progress"}')
e75=$(submit '{"type": "t.exit75", "retry": '"$R2"'}')
e3=$(submit '{"type": "t.exit3", "retry": '"$R2"'}')
flaky=$(submit '{"type": "t.flaky", "retry": '"$R2"'}')
bad=$(submit '{"type": "t.badjson", "retry": '"$R2"'}')
miss=$(submit '{"type": "t.missing", "retry": '"$R2"'}')
noex=$(submit '{"type": "t.notexec", "retry": '"$R2"'}')
tmo=$(submit '{"type": "t.timeout", "timeout": "1s", "retry": '"$R1"'}')
tmoh=$(submit '{"type": "t.timeout_hard", "timeout": "1s", "retry": '"$R1"'}')
canc=$(submit '{"type": "t.cancel", "retry": '"$R1"'}')

# --- success, input on stdin, work directory -------------------------------
wait_until 10 task_done "$ok1"
is "$(task_status "$ok1")" completed "a program exiting 0 completes its task"
is "$(sql "SELECT result #>> '{input,n}' || '/' || (result #>> '{input,s}') FROM dwa.tasks WHERE id = $ok1")" \
	"7/a b" "it got the input on stdin; {\"result\": X} is the output"
wd1=$(sql "SELECT result ->> 'cwd' FROM dwa.tasks WHERE id = $ok1")
like "$wd1" "^$DWA_WORKDIR/." "it ran in a work directory under DWA_WORKDIR"
wait_until 10 task_done "$ok2"
wd2=$(sql "SELECT result ->> 'cwd' FROM dwa.tasks WHERE id = $ok2")
[ -n "$wd2" ] && [ "$wd1" != "$wd2" ]
ok $? "each run has its own work directory ($wd1, $wd2)"
wait_until 5 test ! -e "$wd1"
ok $? "the work directory is removed after success"
is "$(sql "SELECT r ->> 'run' = s.run_id::text AND r ->> 'task' = '$ok1'
    AND r ->> 'step' = '0' AND r ->> 'attempt' = '1' AND r ->> 'item' = 'unset'
    FROM dwa.tasks t, dwa.steps s, LATERAL (SELECT t.result -> 'env') e(r)
    WHERE t.id = $ok1 AND s.task_id = t.id")" t \
	"its environment names the run, task, step and attempt (no DWA_ITEM_INDEX)"
td1=$(sql "SELECT result #>> '{env,dir}' FROM dwa.tasks WHERE id = $ok1")
is "$td1" "$DWA_WORKDIR/task-$ok1" "DWA_TASK_DIR is the task's directory under DWA_WORKDIR"
fe=$(submit '{"type": "fe", "steps": [{"id": "each", "task": "t.ok", "forEach": [10, 20]}]}')
wait_until 10 task_done "$fe"
is "$(sql "SELECT string_agg((output #>> '{env,item}') || ':' || (output #>> '{input}'), ' ' ORDER BY item_index)
    FROM dwa.steps WHERE task_id = $fe AND item_index IS NOT NULL")" "0:10 1:20" \
	"a forEach element's program gets DWA_ITEM_INDEX"

# --- streamed progress -----------------------------------------------------
wait_until 10 sql_true "SELECT progress = 40 FROM dwa.steps WHERE task_id = $prog"
ok $? "{\"progress\": 40} reaches the running step"
is "$(task_status "$prog")/$(sql "SELECT progress FROM dwa.tasks WHERE id = $prog")" running/40 \
	"and the task's progress, while it runs"
touch "$T_TMP/progress.flag"
wait_until 10 task_done "$prog"
is "$(task_status "$prog")" completed "the progress task completes"
is "$(sql "SELECT result FROM dwa.tasks WHERE id = $prog")" '{"b": 2}' \
	"without {\"result\"}, the last object is the output (progress and events are not)"
is "$(sql "SELECT step_id || ' ' || event || ' ' || payload::text FROM dwa.events WHERE task_id = $prog")" \
	'0 note {"x": 1}' "a streamed {\"event\", \"data\"} line is stored in dwa.events"

# --- exit codes ------------------------------------------------------------
wait_until 10 task_done "$e75"
is "$(task_status "$e75")/$(col "$e75" "status || '/' || attempt")" failed/failed/2 \
	"exit 75 is transient: retried, failed after 2 attempts"
like "$(col "$e75" error)" "exit status 75" "the error says exit status 75"
wait_until 10 task_done "$e3"
is "$(task_status "$e3")/$(col "$e3" "status || '/' || attempt")" failed/failed/1 \
	"exit 3 is permanent: not retried"
err=$(col "$e3" error)
like "$err" "exit status 3" "the error says exit status 3"
like "$err" "LAST-MARKER-3" "the error holds the stderr tail"
case $err in *FIRST-MARKER*) r=1 ;; *) r=0 ;; esac
[ $r = 0 ] && [ ${#err} -le 4700 ]
ok $? "only the last 4 KiB of stderr (error is ${#err} chars)"
wait_until 10 task_done "$flaky"
is "$(task_status "$flaky")/$(col "$flaky" attempt)" completed/2 \
	"a transient failure then success completes on the 2nd attempt"
is "$(sql "SELECT result FROM dwa.tasks WHERE id = $flaky")" '"second"' "with the 2nd run's output"

# --- bad output, bad programs ----------------------------------------------
wait_until 10 task_done "$bad"
is "$(task_status "$bad")/$(col "$bad" "status || '/' || attempt")" failed/failed/1 \
	"a stdout line that is not JSON fails the step permanently"
like "$(col "$bad" error)" "not a JSON object" "with 'not a JSON object'"
wait_until 10 task_done "$miss"
is "$(task_status "$miss")/$(col "$miss" "status || '/' || attempt")" failed/failed/1 \
	"a missing program fails the step permanently"
like "$(col "$miss" error)" "dwa-missing-prog" "the error names the program"
wait_until 10 task_done "$noex"
is "$(task_status "$noex")/$(col "$noex" "status || '/' || attempt")" failed/failed/1 \
	"a program that is not executable fails the step permanently"
like "$(col "$noex" error)" "notexec\.sh" "the error names the program"
kill -0 "$D1"
ok $? "dwad is still running"

# --- timeout ---------------------------------------------------------------
wait_until 10 task_done "$tmo"
is "$(task_status "$tmo")/$(col "$tmo" status)" failed/failed "a run past its timeout fails"
like "$(col "$tmo" error)" "timed out" "with 'timed out'"
secs=$(col "$tmo" "round(extract(epoch FROM finished_at - started_at), 1)")
like "$secs" '^(0\.[5-9]|1\.[0-9]|2\.[0-4])' "it was stopped by SIGTERM about 1 s after start (${secs}s)"
wait_until 3 gone "31\.$M"
ok $? "no process of its group remains (sleep 31.$M)"
wait_until 12 task_done "$tmoh"
is "$(task_status "$tmoh")/$(col "$tmoh" status)" failed/failed "a run ignoring SIGTERM fails too"
like "$(col "$tmoh" error)" "timed out" "with 'timed out'"
wait_until 5 gone "32\.$M"
ok $? "no process of its group remains (sleep 32.$M)"
secs=$(col "$tmoh" "round(extract(epoch FROM finished_at - started_at), 1)")
like "$secs" '^(2\.[5-9]|[3-5]\.)' "SIGKILL followed SIGTERM about 2 s later (the run ended ${secs}s after start)"
secs=$(col "$tmoh" "round(extract(epoch FROM finished_at - started_at), 1)")
like "$secs" '^(2\.[5-9]|[3-5]\.)' \
	"the run ended only once its process had exited (step finished ${secs}s after start)"

# --- cancel ----------------------------------------------------------------
wait_until 10 running "33\.$M"
ok $? "the cancel test's program is running"
sql "SELECT dwa.cancel($canc)" >/dev/null
wait_until 5 gone "33\.$M"
ok $? "dwa.cancel kills the process group within 5 s"
wait_until 5 task_done "$canc"
is "$(task_status "$canc")/$(col "$canc" status)" cancelled/cancelled "the task and step are cancelled"
kill -0 "$D1"
ok $? "dwad is still running"

# --- 200 at once -------------------------------------------------------------
nfd() { ls "/proc/$D1/fd" | wc -l; }
nchild() { ps --ppid "$D1" -o pid= | wc -l; }
nzombie() { ps --ppid "$D1" -o stat= | grep -c Z; }
at_least() { [ "$($1)" -ge "$2" ]; }
fd_near() { local n; n=$(nfd); [ "$n" -ge $(($1 - 2)) ] && [ "$n" -le $(($1 + 2)) ]; }
nwd() { find "$DWA_WORKDIR" -mindepth 1 -maxdepth 1 -name 'run-*' | wc -l; }
# Directories of completed tasks still there.
ndone() {
	ids=$(find "$DWA_WORKDIR" -mindepth 1 -maxdepth 1 -name 'task-*' | sed 's/.*task-//' | tr '\n' ',')
	sql "SELECT count(*) FROM dwa.tasks WHERE id = ANY ('{${ids%,}}'::bigint[]) AND status = 'completed'"
}
wait_until 5 sql_true "SELECT count(*) = 0 FROM dwa.steps WHERE status IN ('ready', 'running')"
fd0=$(nfd)
wd0=$(nwd)
diag "work directories left by failed runs: $(ls "$DWA_WORKDIR" | tr '\n' ' ')"
t0=$(date +%s)
sql "SELECT count(dwa.submit('{\"type\": \"t.short\"}'::jsonb)) FROM generate_series(1, 200)" >/dev/null
wait_until 15 at_least nchild 100
ok $? "at least 100 programs run at once (--concurrency 200)"
wait_until 30 sql_true "SELECT count(*) = 200 FROM dwa.tasks WHERE type = 't.short' AND status = 'completed'"
ok $? "200 concurrent runs complete"
diag "$(sql "SELECT status, count(*) FROM dwa.tasks WHERE type = 't.short' GROUP BY 1")"
diag "burst took $(( $(date +%s) - t0 )) s"
wait_until 5 fd_near "$fd0"
ok $? "dwad's descriptors are back to $fd0 (now $(nfd))"
wait_until 3 test "$(nzombie)" = 0
ok $? "no zombie children (now $(nzombie))"
is "$(nchild)" 0 "no child left at all"
is "$(nwd)" "$wd0" "the 200 successful runs left no work directory"
none_done() { [ "$(ndone)" = 0 ]; }
wait_until 15 none_done
ok $? "the directories of completed tasks are removed ($(ndone) left)"
ok $([ ! -e "$td1" ] && echo 0 || echo 1) "the directory of a completed task is removed"

# --- --keep-workdirs -------------------------------------------------------
kill -TERM "$D1"
wait_until 15 dead "$D1"
r=$?
wait "$D1" 2>/dev/null
ok $r "d1 stops on SIGTERM"
dwad_start d2 --keep-workdirs || bail "dwad d2 did not start"
ok3=$(submit '{"type": "t.ok", "payload": {"n": 9}}')
wait_until 10 task_done "$ok3"
is "$(task_status "$ok3")" completed "the run under d2 completes"
wd3=$(sql "SELECT result ->> 'cwd' FROM dwa.tasks WHERE id = $ok3")
[ -n "$wd3" ] && [ -f "$wd3/scratch" ]
ok $? "with --keep-workdirs the work directory is kept ($wd3)"

# --- a program that cannot be started ----------------------------------------
# A work directory that cannot be made (DWA_WORKDIR under a plain file)
# fails the step, transiently, and the daemon goes on.
D2=$(dwad_pid d2)
kill -TERM "$D2"
wait_until 15 dead "$D2"
: >"$T_TMP/plainfile"
DWA_WORKDIR="$T_TMP/plainfile/work" dwad_start d3 || bail "dwad d3 did not start"
nowd=$(submit "{\"type\": \"t.ok\", \"retry\": $R2}")
wait_until 10 task_done "$nowd"
is "$(col "$nowd" "status || '/' || attempt")" failed/2 \
	"a work directory that cannot be made fails the step, as a transient failure"
like "$(col "$nowd" error)" "cannot make the work directory $T_TMP/plainfile/work/run-[0-9]+: Not a directory" \
	"saying why"
kill -0 "$(dwad_pid d3)"
ok $? "the daemon goes on"
