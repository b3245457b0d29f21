#!/bin/sh
# watch-tty.sh: dwa watch on a terminal and off one, while an external
# worker (this script, through dwa.claim, dwa.progress, dwa.complete and
# dwa.fail) decides exactly when the step runs, how far it got and how it
# ends.
#
# 1. Under a pseudo-terminal (script(1), else python3's pty module) watch
#    draws the task and its step with a progress bar, "[#####.....]  45%"
#    at 45, redraws the picture in place (cursor up) at 80, and exits 0
#    once the task completed; a failed task ends it with 1 and the error.
# 2. Without a terminal it prints plain lines, no escape sequences, and
#    exits 0 once the task completed.
. "$(dirname "$0")/../lib/harness.sh"
plan 18

db_setup
sql "INSERT INTO dwa.task_types (name, executor) VALUES ('tty.work', 'worker'),
    ('tty.fail', 'worker'), ('tty.plain', 'worker'), ('tty.each', 'worker')" >/dev/null ||
    bail "cannot register types"

# claim TYPE: claim the ready step of TYPE; its run id goes to
# $T_TMP/run.TYPE.  Fails while there is none (for wait_until).
claim() {
	local r
	r=$(sql "SELECT run_id FROM dwa.claim('tty-worker', ARRAY['$1'], 1)")
	[ -n "$r" ] && echo "$r" >"$T_TMP/run.$1"
}
run_of() { cat "$T_TMP/run.$1"; }
# on_tty COMMAND: run a shell command line on a pseudo-terminal; its
# exit status is the command's.
on_tty() {
	if command -v script >/dev/null 2>&1; then
		script -qfec "$1" /dev/null </dev/null
	else
		python3 -c 'import os, pty, sys
sys.exit(os.waitstatus_to_exitcode(pty.spawn(["sh", "-c", sys.argv[1]])))' "$1" </dev/null
	fi
}
# gone PID: true once the process has exited (a zombie counts).
gone() {
	case $(ps -o stat= -p "$1" 2>/dev/null) in
	""|Z*) return 0 ;;
	esac
	return 1
}
# shows FILE REGEX: the output so far, escapes made visible, matches.
shows() { cat -v "$1" | grep -Eq -- "$2"; }
# A bar as watch draws it: the regex of "[#####.....]  45%".
BAR45='\[#####\.\.\.\.\.\]  45%'
BAR80='\[########\.\.\]  80%'

# --- 1. on a terminal ---------------------------------------------------------------

ID=$(submit '{"type": "tty.work"}')
wait_until 10 claim tty.work || bail "cannot claim the tty.work step"
sql "SELECT dwa.progress($(run_of tty.work), 45)" >/dev/null
on_tty "'$DWA' watch $ID --interval 100ms" >"$T_TMP/tty.out" 2>&1 &
W=$!
T_PIDS="$T_PIDS $W"

wait_until 10 shows "$T_TMP/tty.out" "  0 +running +$BAR45"
ok $? "on a terminal, the running step is drawn with its bar: [#####.....]  45%"
shows "$T_TMP/tty.out" "\\^M\\^\\[\\[Ktask $ID tty.work  running +$BAR45"
ok $? "the task line has the type, the state and the task's bar"
shows "$T_TMP/tty.out" "step 0 running"
ok $(( ! $? )) "no plain lines on a terminal"

sql "SELECT dwa.progress($(run_of tty.work), 80)" >/dev/null
wait_until 10 shows "$T_TMP/tty.out" "  0 +running +$BAR80"
ok $? "more progress redraws the bar: [########..]  80%"
# The second picture starts by moving the cursor up over the first (two
# lines: the task and its step), then rewrites each line; the step's line
# may show 80 % a picture before the task's does, so wait for that too.
wait_until 10 shows "$T_TMP/tty.out" "\\^\\[\\[2A\\^M\\^\\[\\[Ktask $ID tty.work  running +$BAR80"
ok $? "the picture is redrawn in place (cursor up 2, then the lines again)"

sql "SELECT dwa.complete($(run_of tty.work), '{\"done\": true}')" >/dev/null
wait_until 10 gone "$W"
ok $? "watch ends once the task completed"
wait "$W"
is "$?" 0 "on a terminal, watch exits 0 for a completed task"
shows "$T_TMP/tty.out" "task $ID tty.work  completed"
ok $? "the last picture says the task completed"
shows "$T_TMP/tty.out" "  0 +succeeded"
ok $? "and that its step succeeded"

F=$(submit '{"type": "tty.fail"}')
wait_until 10 claim tty.fail || bail "cannot claim the tty.fail step"
sql "SELECT dwa.progress($(run_of tty.fail), 45)" >/dev/null
on_tty "'$DWA' watch $F --interval 100ms" >"$T_TMP/tty-fail.out" 2>&1 &
WF=$!
T_PIDS="$T_PIDS $WF"
wait_until 10 shows "$T_TMP/tty-fail.out" "  0 +running +$BAR45"
ok $? "a second watch draws its bar"
sql "SELECT dwa.fail($(run_of tty.fail), 'model not found', retryable => false)" >/dev/null
wait_until 10 gone "$WF"
wait "$WF"
is "$?" 1 "on a terminal, watch exits 1 for a failed task"
shows "$T_TMP/tty-fail.out" "task $F tty.fail  failed: step \"0\": model not found"
ok $? "the last picture has the task's error"

# A forEach of 20,000 elements, whose rows are made in chunks: its line
# counts the elements done out of all of them, not out of the rows made.
E=$(sql "SELECT dwa.submit(jsonb_build_object('type', 'each', 'steps', jsonb_build_array(
    jsonb_build_object('id', 'e', 'task', 'tty.each',
        'forEach', (SELECT jsonb_agg(g) FROM generate_series(1, 20000) g)))))")
sql "SELECT count(dwa.complete(run_id, '{}')) FROM dwa.claim('tty-worker', ARRAY['tty.each'], 10)" \
    >/dev/null
on_tty "'$DWA' watch $E --interval 100ms" >"$T_TMP/tty-each.out" 2>&1 &
WE=$!
T_PIDS="$T_PIDS $WE"
wait_until 10 shows "$T_TMP/tty-each.out" "  e +running +\[\.+\]   0%  10/20000"
ok $? "a large forEach's line counts its elements done out of all 20,000: 10/20000"
sql "SELECT dwa.cancel($E)" >/dev/null
wait_until 10 gone "$WE"

# --- 2. without a terminal -----------------------------------------------------------------

P=$(submit '{"type": "tty.plain"}')
wait_until 10 claim tty.plain || bail "cannot claim the tty.plain step"
sql "SELECT dwa.progress($(run_of tty.plain), 45)" >/dev/null
"$DWA" watch "$P" --interval 100ms >"$T_TMP/plain.out" 2>&1 &
WP=$!
T_PIDS="$T_PIDS $WP"
wait_until 10 grep -q "^step 0 running 45%$" "$T_TMP/plain.out"
ok $? "without a terminal, the step's progress is a plain line: step 0 running 45%"
grep -q "^task $P running 45%$" "$T_TMP/plain.out"
ok $? "and the task's: task $P running 45%"
sql "SELECT dwa.complete($(run_of tty.plain), '{}')" >/dev/null
wait_until 10 gone "$WP"
wait "$WP"
is "$?" 0 "without a terminal, watch exits 0 for a completed task"
is "$(tail -n 2 "$T_TMP/plain.out" | tr '\n' '|')" "step 0 succeeded|task $P completed|" \
    "the last lines are the step's and the task's final states"
is "$(grep -c "$(printf '\033')" "$T_TMP/plain.out")$(grep -c '\[[#.]*\]' "$T_TMP/plain.out")" \
    00 "no escape sequences and no bars off a terminal"

if [ "$T_FAILED" != 0 ]; then
	for f in tty tty-fail tty-each plain; do
		diag "--- $f.out (escapes made visible)"
		cat -v "$T_TMP/$f.out" | tail -n 40 | sed 's/^/# /'
	done
fi
