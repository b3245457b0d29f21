#!/bin/sh
# effects-outbox-cli.sh: 'dwa outbox retry' on a dead row whose templates
# failed to render renders it again from the task: while the value is
# still missing it exits 1 saying so and the row stays dead (nothing is
# sent, least of all the raw definition); once the task has the value the
# rendered effect is delivered.  Usage errors of 'dwa outbox' exit 2 with
# a message and the synopsis, and change nothing.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 39

db_setup
receiver_start r
R=$(receiver_url r)
unset DWA_SLACK_WEBHOOK_URL
dwad_start d1 || bail "dwad d1 did not start"

# --- retry of a row whose templates failed ------------------------------------

A=$(submit '{"type": "echo", "payload": {"who": "ann"},
  "onSuccess": [{"$event": "webhook", "url": "'"$R"'/rf/{{task.id}}", "body": {"x": "{{result.nope}}"}},
                {"$event": "webhook", "url": "'"$R"'/ok/{{task.id}}"}]}')
wait_until 15 outbox_settled "$A" 2
ROW=$(sql "SELECT id FROM dwa.outbox WHERE task_id = $A AND effect_index = 0")
state() {
	sql "SELECT status || ' ' || attempts || ' ' || (effect ->> 'url') || ' ' || last_error
	     FROM dwa.outbox WHERE id = $ROW"
}
BEFORE=$(state)
is "$BEFORE" "dead 0 $R/rf/{{task.id}} onSuccess[0]: template \"{{result.nope}}\" has no value" \
    "a webhook whose template has no value is a dead row, never attempted, as written"
is "$(nrecorded r "r['path'] == '/ok/$A'")" 1 "the task's other webhook is delivered"

run "$DWA" outbox retry "$ROW"
is "$RC" 1 "dwa outbox retry of it exits 1 while the value is still missing"
is "$(printf '%s\n' "$ERR" | head -n 1)" \
    "dwa: outbox: outbox row $ROW cannot be rendered from task $A: onSuccess[0]: template \"{{result.nope}}\" has no value; hint: the row stays dead; the effect is rendered from the task's payload, result and error as they are now" \
    "saying why, and that the row stays dead"
is "$OUT" "" "printing nothing on stdout"
is "$(state)" "$BEFORE" "the row is unchanged"

# Something delivered after the refused retry shows the dispatcher had
# its chance to send the row, had it been re-queued.
B=$(submit '{"type": "echo", "payload": {}, "onSuccess": [{"$event": "webhook", "url": "'"$R"'/mark"}]}')
wait_until 15 outbox_settled "$B" 1
is "$(nrecorded r "r['path'].startswith('/rf/') or '{' in r['path'] or '%7B' in r['path'].upper()")" 0 \
    "nothing went to the receiver: not the raw definition, not anything"

sql "UPDATE dwa.tasks SET result = result || '{\"nope\": 5}' WHERE id = $A" >/dev/null
run "$DWA" outbox retry "$ROW"
is "$RC:$OUT:$ERR" "0::" "once the task has the value, dwa outbox retry exits 0 and prints nothing"
wait_until 15 outbox_settled "$A" 2
is "$(sql "SELECT status || ' ' || attempts || ' ' || (effect ->> 'url') FROM dwa.outbox WHERE id = $ROW")" \
    "delivered 1 $R/rf/$A" "the row is rendered from the task and delivered"
is "$(recorded r "r['path'].startswith('/rf/')" "r['path'] + ' ' + r['body']")" \
    "/rf/$A {\"x\":5}" "the receiver got the rendered request, once"
same "$(recorded r "r['path'].startswith('/rf/')" "r['headers'].get('x-dwa-delivery')")" \
    "$(sql "SELECT delivery_id FROM dwa.outbox WHERE id = $ROW")" "with the row's delivery id"

# --- usage errors ------------------------------------------------------------

C=$(submit '{"type": "echo", "payload": {}, "onSuccess": [{"$event": "notify", "channel": "slack", "message": "m"}]}')
wait_until 15 outbox_settled "$C" 1
DEAD=$(sql "SELECT id FROM dwa.outbox WHERE task_id = $C")
SNAP="SELECT string_agg(id || ' ' || status || ' ' || attempts || ' ' || next_attempt_at, ', ' ORDER BY id)
    FROM dwa.outbox"
STORED=$(sql "$SNAP")
like "$(sql "SELECT status FROM dwa.outbox WHERE id = $DEAD")" '^dead$' "a dead row to aim at (slack without its URL)"

USAGE='usage: dwa outbox [--status S] [--task ID] [--limit N] [--json]'
# usage_error MESSAGE ARGS...: dwa outbox ARGS exits 2, prints MESSAGE
# then the synopsis on stderr, nothing on stdout.
usage_error() {
	local msg=$1
	shift
	run "$DWA" outbox "$@"
	is "$RC|$OUT|$(printf '%s\n' "$ERR" | head -n 2 | tr '\n' '|')" "2||$msg|$USAGE|" \
	    "dwa outbox $*: exit 2, $msg"
}
usage_error 'dwa: outbox: --status: "bogus" is not an outbox state (pending, delivering, delivered or dead)' \
    --status bogus
usage_error 'dwa: outbox: --status: "DEAD" is not an outbox state (pending, delivering, delivered or dead)' \
    --status DEAD
usage_error "dwa: outbox: unexpected argument 'extra'" extra
usage_error "dwa: outbox: unexpected argument 'extra'" --status dead extra
usage_error "dwa: outbox: unexpected argument 'list'" list
usage_error 'dwa: outbox: --task: "x" is not a task id' --task x
usage_error 'dwa: outbox: --limit: 0 is out of range (1 to 10000)' --limit 0
usage_error 'dwa: outbox: retry: missing outbox row ID' retry
usage_error 'dwa: outbox: retry: "abc" is not an outbox row id' retry abc
usage_error 'dwa: outbox: retry: "0" is not an outbox row id' retry 0
usage_error "dwa: outbox: retry: \"${DEAD}x\" is not an outbox row id" retry "${DEAD}x"
usage_error 'dwa: outbox: retry: "99999999999999999999" is not an outbox row id' retry 99999999999999999999
usage_error "dwa: outbox: retry: unexpected argument '$DEAD'" retry "$DEAD" "$DEAD"
usage_error "dwa: outbox: retry: unexpected argument 'now'" retry "$DEAD" now
usage_error 'dwa: outbox: retry: takes no --status, --task, --limit or --json' --json retry "$DEAD"
usage_error 'dwa: outbox: retry: takes no --status, --task, --limit or --json' retry "$DEAD" --status dead
run "$DWA" outbox retry -5
is "$RC|$OUT|$(printf '%s\n' "$ERR" | sed -n 2p)" "2||$USAGE" "dwa outbox retry -5: exit 2, the synopsis"
like "$(printf '%s\n' "$ERR" | head -n 1)" "invalid option -- '5'\$" "naming the unknown option"
run "$DWA" outbox --bogus
is "$RC|$OUT|$(printf '%s\n' "$ERR" | sed -n 2p)" "2||$USAGE" "dwa outbox --bogus: exit 2, the synopsis"
like "$(printf '%s\n' "$ERR" | head -n 1)" "unrecognized option '--bogus'\$" "naming the unknown option"
is "$(sql "$SNAP")" "$STORED" "after all that, no outbox row changed"
is "$(sql "SELECT status || ' ' || attempts FROM dwa.outbox WHERE id = $DEAD")" "dead 1" \
    "the dead row aimed at is still dead"
run "$DWA" outbox retry "$DEAD"
is "$RC:$OUT:$ERR" "0::" "while dwa outbox retry with its id alone re-queues it"

# --- one task's deliveries, whatever the statistics say -------------------------

# Statistics taken while the outbox was empty (its rows set aside, rows
# made and taken away, analyzed; its rows back), then 20,000 delivered rows
# of other tasks: listing one task's reads its rows, not all of them.
sql "ALTER TABLE dwa.outbox SET (autovacuum_enabled = off);
     CREATE TABLE public.kept AS SELECT * FROM dwa.outbox;
     DELETE FROM dwa.outbox;
     INSERT INTO dwa.outbox (task_id, hook, event, effect, status)
     SELECT 800000 + g, 'onSuccess', 'webhook', '{}', 'delivered' FROM generate_series(1, 5000) g;
     DELETE FROM dwa.outbox;
     ANALYZE dwa.outbox;
     INSERT INTO dwa.outbox OVERRIDING SYSTEM VALUE SELECT * FROM public.kept;
     INSERT INTO dwa.outbox (task_id, hook, event, effect, status)
     SELECT 900000 + g, 'onSuccess', 'webhook', '{}', 'delivered' FROM generate_series(1, 20000) g" \
    >/dev/null
is "$(sql "SELECT reltuples FROM pg_class WHERE oid = 'dwa.outbox'::regclass")" 0 \
    "the statistics say the outbox is empty"

# reads: rows, index entries of dwa.outbox read so far (as flushed by
# sessions that ended).
reads() {
	sql "SELECT (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes
	              WHERE relid = 'dwa.outbox'::regclass)
	          + (SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables
	              WHERE relid = 'dwa.outbox'::regclass)"
}
R0=$(reads)
reads_moved() { [ "$(reads)" != "$R0" ]; }
run "$DWA" outbox --task "$A" --status delivered --json
is "$RC:$(printf '%s\n' "$OUT" | python3 -c 'import json, sys
d = json.load(sys.stdin)
print(d["count"], sorted({(r["taskId"], r["status"]) for r in d["deliveries"]}))')" \
    "0:2 [($A, 'delivered')]" "dwa outbox --task ID --status delivered lists the task's 2 delivered rows"
wait_until 5 reads_moved
R1=$(reads)
ok $(( R1 - R0 >= 1000 )) \
    "reading fewer than 1,000 rows and index entries of the outbox ($(( R1 - R0 ))), not 20,000"

proc_gone "$(dwad_pid d1)"
ok $((! $?)) "dwad keeps running"

if [ "$T_FAILED" != 0 ]; then
	diag "dwa.outbox:"
	sql "SELECT id, task_id, effect_index, status, attempts, effect ->> 'url', last_error
	    FROM dwa.outbox ORDER BY id" | sed 's/^/#   /'
fi
