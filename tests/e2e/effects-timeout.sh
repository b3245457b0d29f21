#!/bin/sh
# effects-timeout.sh: a webhook whose receiver answers slower than the
# effect's timeout is given up at the timeout and retried, the timeout
# error kept in last_error while it waits and when its attempts are
# spent; a receiver that answers in time gets it delivered.  (Timeouts are
# kept within 100 ms and 60 s: see tests/unit/t-outbox.c.)
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 10

db_setup
receiver_start r hang
R=$(receiver_url r)
dwad_start d1 || bail "dwad d1 did not start"

ID=$(submit '{"type": "noop", "onSuccess": [{"$event": "webhook", "url": "'"$R"'/slow",
    "timeout": "500ms", "retry": {"attempts": 2, "backoff": {"initialMs": 6000, "factor": 1}}}]}')
like "$ID" '^[0-9]+$' "a task with a 500 ms webhook timeout is accepted"
is "$(sql "SELECT effect ->> 'timeoutMs' FROM dwa.outbox WHERE task_id = $ID")" 500 \
    "the row carries the timeout in ms"
# waiting: the row is back to pending after its first attempt.
waiting() {
	sql_true "SELECT status = 'pending' AND attempts = 1 FROM dwa.outbox WHERE task_id = $ID"
}
wait_until 15 waiting
ok $? "after the first attempt the row is pending again, to be retried"
like "$(sql "SELECT last_error FROM dwa.outbox WHERE task_id = $ID")" \
    "^Operation timed out after [0-9]+ milliseconds" "its last_error is the timeout"
is "$(sql "SELECT next_attempt_at > now() FROM dwa.outbox WHERE task_id = $ID")" t \
    "its next attempt is scheduled after the backoff (3-6 s)"
is "$(nrecorded r)" 1 "the receiver got one request"

wait_until 30 outbox_settled "$ID" 1
is "$(sql "SELECT status || ' ' || attempts FROM dwa.outbox WHERE task_id = $ID")" "dead 2" \
    "the second attempt times out too: the row is dead after its 2 attempts"
like "$(sql "SELECT last_error FROM dwa.outbox WHERE task_id = $ID")" \
    "^Operation timed out after [0-9]+ milliseconds" "the timeout error is kept"
is "$(recorded r True "r['headers'].get('x-dwa-delivery')" | sort -u | wc -l | tr -d ' '):$(nrecorded r)" \
    "1:2" "the receiver got it twice, with one delivery id"

receiver_mode r 200
F=$(submit '{"type": "noop", "onSuccess": [{"$event": "webhook", "url": "'"$R"'/fast",
    "timeout": "500ms"}]}')
wait_until 15 outbox_settled "$F" 1
is "$(sql "SELECT status || ' ' || attempts FROM dwa.outbox WHERE task_id = $F")" "delivered 1" \
    "a receiver answering in time gets it at the first attempt"

if [ "$T_FAILED" != 0 ]; then
	diag "dwa.outbox:"
	sql "SELECT id, task_id, status, attempts, next_attempt_at, last_error FROM dwa.outbox ORDER BY id" |
	    sed 's/^/#   /'
fi
