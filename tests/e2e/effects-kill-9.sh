#!/bin/sh
# effects-kill-9.sh: kill -9 of the daemon delivering an effect while the
# receiver holds the request open: another daemon delivers it, with the
# same delivery id (a duplicate is allowed, a loss is not).
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 9

db_setup
receiver_start r hang
dwad_start d1 || bail "dwad d1 did not start"
D1_WORKER=$(sql "SELECT id FROM dwa.workers WHERE name = 'd1'")

ID=$(submit '{"type": "noop", "onSuccess": [{"$event": "webhook",
    "url": "'"$(receiver_url r)"'/k", "timeout": "20s"}]}')
wait_until 15 has_recorded r 1
ok $? "d1 sends the webhook; the receiver holds it open"
is "$(sql "SELECT status || ' ' || attempts || ' ' || (worker_id = '$D1_WORKER')
    FROM dwa.outbox WHERE task_id = $ID")" "delivering 1 true" \
    "the row is delivering, taken by d1"

kill -KILL "$(dwad_pid d1)"
wait_until 5 proc_gone "$(dwad_pid d1)"
ok $? "d1 is killed mid-request"
receiver_mode r 200
dwad_start d2 --reap 200ms || bail "dwad d2 did not start"

wait_until 10 outbox_settled "$ID" 1
is "$(sql "SELECT status || ' ' || attempts FROM dwa.outbox WHERE task_id = $ID")" "delivered 2" \
    "d2 delivers it, at the second attempt (the lease is far from over)"
N=$(nrecorded r)
is "$N" 2 "the receiver saw it twice"
is "$(recorded r True "r['mode']" | tr '\n' ' ')" "hang 200 " "first held open, then answered"
same "$(recorded r True "r['headers'].get('x-dwa-delivery')" | sort -u)" \
    "$(sql "SELECT delivery_id FROM dwa.outbox WHERE task_id = $ID")" \
    "both times with the same X-DWA-Delivery, the row's delivery_id"
is "$(recorded r True "r['method'] + ' ' + r['path'] + ' ' + r['body']" | sort -u | wc -l | tr -d ' ')" 1 \
    "and the same request"
is "$(sql "SELECT worker_id = (SELECT id FROM dwa.workers WHERE name = 'd2')
    FROM dwa.outbox WHERE task_id = $ID")" t "the row was last claimed by d2"

if [ "$T_FAILED" != 0 ]; then
	diag "dwa.outbox:"
	sql "SELECT id, task_id, status, attempts, worker_id, lease_until, last_error FROM dwa.outbox ORDER BY id" |
	    sed 's/^/#   /'
fi
