#!/bin/sh
# retention.sh: dwad --retention deletes tasks finished longer ago than
# the given age, in batches, with their steps; young and unfinished tasks
# stay; a bad --retention is refused.
. "$(dirname "$0")/../lib/harness.sh"
plan 6

db_setup
dwad_start d1 --retention 2s || bail "dwad did not start"
sql "SELECT count(dwa.submit('{\"type\": \"noop\"}'::jsonb)) FROM generate_series(1, 300)" >/dev/null
long=$(submit '{"type": "sleep", "payload": {"ms": 12000}}')
wait_until 15 sql_true "SELECT count(*) = 300 FROM dwa.tasks WHERE type = 'noop' AND status = 'completed'"
ok $? "300 tasks complete"
sleep 0.5
young=$(submit '{"type": "noop"}')
wait_until 20 sql_true "SELECT count(*) = 0 FROM dwa.tasks WHERE type = 'noop' AND id <> $young"
ok $? "they are pruned once finished more than 2 s ago"
is "$(sql "SELECT count(*) FROM dwa.steps s WHERE NOT EXISTS (SELECT 1 FROM dwa.tasks t WHERE t.id = s.task_id)")" 0 \
	"with their steps"
is "$(task_status "$long")" running "a running task stays"
grep -q "retention: pruned" "$T_TMP/d1.log"
ok $? "dwad logs what it pruned"
run "$DWAD" --retention 10ms
like "$ERR" "--retention: must be at least 1000 ms" "a retention under 1 s is refused"
