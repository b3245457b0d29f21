#!/bin/sh
# serve-types.sh: dwad --types PATTERN,... serves only the matching task
# types, so daemons on different machines can split the work by type.
. "$(dirname "$0")/../lib/harness.sh"
plan 6

db_setup
dwad_start sleeper --types 'sleep' || bail "dwad sleeper did not start"
dwad_start texter --types 'echo,text.*' || bail "dwad texter did not start"

s=$(submit '{"type": "sleep", "payload": {"ms": 50}}')
e=$(submit '{"type": "echo", "payload": {"x": 1}}')
c=$(submit '{"type": "text.chunk", "payload": {"text": "abcdef", "size": 2}}')
n=$(submit '{"type": "noop"}')
for id in "$s" "$e" "$c"; do
	wait_until 10 task_done "$id"
done
worker() {
	sql "SELECT w.name FROM dwa.steps s JOIN dwa.workers w ON w.id = s.worker_id WHERE s.task_id = $1"
}
is "$(worker "$s")" sleeper "sleep ran on the daemon serving sleep"
is "$(worker "$e")" texter "echo ran on the daemon serving echo,text.*"
is "$(worker "$c")" texter "a glob matches text.chunk"
sleep 1.2
is "$(task_status "$n")" queued "noop, which no daemon serves, waits"
out=$("$DWAD" --types ',' 2>&1); rc=$?
is "$rc" 2 "--types with no pattern is a usage error"
like "$out" "names no type pattern" "and says so"
