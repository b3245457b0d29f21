#!/bin/sh
# sighup-reopens-log.sh: with --log-file, SIGHUP reopens the file, so a
# rotated log continues in a new file; the daemon keeps running.
. "$(dirname "$0")/../lib/harness.sh"
plan 5

db_setup
log="$T_TMP/d1.log"
"$DWAD" --name d1 --log-file "$log" &
pid=$!
T_PIDS="$T_PIDS $pid"
wait_until 20 log_contains d1 "ready" || bail "dwad did not start"
mv "$log" "$log.1"
kill -HUP "$pid"
wait_until 10 test -f "$log"
ok $? "SIGHUP created a new log file"
wait_until 5 log_contains d1 "log reopened"
ok $? "which says it was reopened"
id=$(submit '{"type": "echo", "payload": {"after": "rotation"}}')
wait_until 10 task_done "$id"
is "$(task_status "$id")" completed "the daemon still runs tasks"
wait_until 5 log_contains d1 "run .* task $id step 0: succeeded"
ok $? "and logs them in the new file"
grep -q "run .* task $id" "$log.1"
ok $((! $?)) "not in the rotated one"
