#!/bin/sh
# effects-progress.sh: onProgress is coalesced: an external SQL worker
# reports progress 100 times (1 to 100) within a second, and the receiver
# gets at most 2 deliveries, the last one carrying the last value.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 9

db_setup
receiver_start r
sql "INSERT INTO dwa.task_types (name, executor) VALUES ('t.progress', 'worker')" >/dev/null ||
    bail "cannot register t.progress"
dwad_start d1 || bail "dwad d1 did not start"

ID=$(submit '{"type": "t.progress", "payload": {"clip": 7},
  "onProgress": [{"$event": "webhook", "url": "'"$(receiver_url r)"'/p",
                  "body": {"id": "{{task.id}}", "progress": "{{progress}}"}}]}')
like "$ID" '^[0-9]+$' "the task is accepted"
RUN=$(sql "SELECT run_id FROM dwa.claim('w1', ARRAY['t.progress'], 1)")
like "$RUN" '^[0-9]+$' "an external worker claims it"

# 100 reports, each its own transaction, as fast as one session goes.
i=1
while [ $i -le 100 ]; do
	echo "SELECT dwa.progress($RUN, $i);"
	i=$((i + 1))
done >"$T_TMP/progress.sql"
T0=$(date +%s%N)
psql -X -A -t -q -v ON_ERROR_STOP=1 -f "$T_TMP/progress.sql" >"$T_TMP/progress.out" 2>&1
RC=$?
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
is "$RC:$(grep -c '^t$' "$T_TMP/progress.out")" "0:100" "100 progress reports are accepted"
ok $([ "$MS" -lt 1000 ] && echo 0 || echo 1) "within one second (${MS} ms)"
# The task's progress follows (a running task shows at most 99).
P=$(sql "SELECT progress FROM dwa.tasks WHERE id = $ID")
ok $([ "$P" -ge 99 ] 2>/dev/null && echo 0 || echo 1) "the task's progress follows the reports ($P)"

wait_until 15 outbox_settled "$ID" 1
N=$(nrecorded r)
ok $([ "$N" -ge 1 ] && [ "$N" -le 2 ] && echo 0 || echo 1) \
    "the receiver got at most 2 deliveries ($N)"
is "$(sql "SELECT count(*) FROM dwa.outbox WHERE task_id = $ID AND hook = 'onProgress'
    AND status = 'delivered'")" "$N" "one delivered onProgress row per delivery"
is "$(recorded r True "b(r)['progress']" | tail -n 1)" "$P" "the last one carries the last value ($P)"

# The task ends: completion is not a progress report, no more onProgress.
sql "SELECT dwa.complete($RUN, '{}')" >/dev/null
is "$(sql "SELECT t.status || ' ' || (SELECT count(*) FROM dwa.outbox o
    WHERE o.task_id = t.id AND o.hook = 'onProgress') FROM dwa.tasks t WHERE t.id = $ID")" \
    "completed $N" "completing the task adds no onProgress delivery"

if [ "$T_FAILED" != 0 ]; then
	diag "dwa.outbox:"
	sql "SELECT id, status, attempts, created_at, next_attempt_at, effect -> 'body' FROM dwa.outbox
	    WHERE task_id = $ID ORDER BY id" | sed 's/^/#   /'
fi
