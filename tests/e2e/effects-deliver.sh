#!/bin/sh
# effects-deliver.sh: each kind of effect reaches a real receiver with the
# right method, headers and body: webhooks (custom and default body, the
# delivery id, the HMAC signature checked with the secret), slack, discord
# and email notifications, invalidations, follow-up tasks with their parent,
# and toasts/emits/redirects stored in dwa.events.  A missing setting gives
# a dead row naming the variable while dwad keeps running; 'dwa outbox'
# lists it and 'dwa outbox retry' delivers it once the variable is set.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 61

db_setup
receiver_start r
smtp_start mail
R=$(receiver_url r)

SECRET='test-secret-42'
export DWA_WEBHOOK_SECRET="$SECRET"
export DWA_DISCORD_WEBHOOK_URL="$R/discord"
export DWA_SMTP_URL="smtp://127.0.0.1:$PORT_mail"
export DWA_SMTP_FROM="dwa-test@localhost"
export DWA_INVALIDATE_URL="$R/cache"
unset DWA_SLACK_WEBHOOK_URL
dwad_start d1 || bail "dwad d1 did not start"

# at PATH EXPR: EXPR of the requests to PATH (see 'recorded').
at() { recorded r "r['path'] == '$1'" "$2"; }
# sig_ok PATH: "ok" when each request to PATH is signed with the secret.
sig_ok() {
	at "$1" "('ok' if r['headers'].get('x-dwa-signature') == 'sha256=' +
	    hmac.new(b'$SECRET', r['body'].encode('utf-8'),
	    hashlib.sha256).hexdigest() else 'bad signature %s' %
	    r['headers'].get('x-dwa-signature'))"
}
# delivery_of TASK WHERE: the delivery id of the task's outbox row matching WHERE.
delivery_of() {
	sql "SELECT delivery_id FROM dwa.outbox WHERE task_id = $1 AND $2"
}

# --- onSuccess: every kind at once ------------------------------------------

A=$(submit '{"type": "echo", "payload": {"name": "clip-7", "n": 3},
  "onSuccess": [
    {"$event": "webhook", "url": "'"$R"'/custom/{{task.id}}", "method": "PUT",
     "headers": {"X-Test": "yes {{payload.name}}"},
     "body": {"id": "{{task.id}}", "n": "{{result.n}}", "text": "done {{payload.name}} é"}},
    {"$event": "webhook", "url": "'"$R"'/default"},
    {"$event": "notify", "channel": "discord", "message": "task {{task.id}} done: {{result.name}}"},
    {"$event": "notify", "channel": "email", "to": "ops@example.com",
     "subject": "done {{task.id}}", "message": "hello\n.a line with a leading dot\nbye"},
    {"$event": "invalidate", "path": "/tasks/{{task.id}}"},
    {"$event": "toast", "text": "Done {{task.id}}", "variant": "success"},
    {"$event": "emit", "event": "finished", "data": "{{result.n}}"},
    {"$event": "redirect", "url": "/tasks/{{task.id}}"},
    {"$event": "enqueue", "task": {"type": "echo", "payload": {"from": "{{task.id}}"}}}
  ]}')
like "$A" '^[0-9]+$' "the task with every kind of effect is accepted"
wait_until 15 task_done "$A"
is "$(task_status "$A")" completed "the task completes"
wait_until 15 outbox_settled "$A" 6
ok $? "its 6 outbox rows settle (webhook x2, notify x2, invalidate, enqueue)"
is "$(sql "SELECT string_agg(event || ':' || status, ' ' ORDER BY event, status)
    FROM dwa.outbox WHERE task_id = $A")" \
    "enqueue:delivered invalidate:delivered notify:delivered notify:delivered webhook:delivered webhook:delivered" \
    "all of them are delivered"
is "$(sql "SELECT count(*) FROM dwa.outbox WHERE task_id = $A AND hook <> 'onSuccess'")" 0 \
    "every row is marked hook onSuccess"

# The custom webhook.
is "$(nrecorded r "r['path'] == '/custom/$A'")" 1 "the custom webhook arrived once, at its rendered url"
is "$(at "/custom/$A" "r['method']")" PUT "with its method"
is "$(at "/custom/$A" "r['headers'].get('x-test')")" "yes clip-7" "with its rendered header"
like "$(at "/custom/$A" "r['headers'].get('content-type')")" '^application/json' \
    "with Content-Type application/json"
is "$(at "/custom/$A" "b(r)")" "{\"id\": $A, \"n\": 3, \"text\": \"done clip-7 é\"}" \
    "with its rendered body, whole-string templates keeping their JSON type"
same "$(at "/custom/$A" "r['headers'].get('x-dwa-delivery')")" \
    "$(delivery_of "$A" "effect ->> 'url' LIKE '%/custom/%'")" \
    "X-DWA-Delivery is the row's delivery_id"
is "$(sig_ok "/custom/$A")" ok "X-DWA-Signature is the HMAC-SHA256 of the exact body under the secret"

# The default body: the task summary.
is "$(nrecorded r "r['path'] == '/default'")" 1 "the default webhook arrived once"
is "$(at /default "r['method']")" POST "with method POST by default"
is "$(at /default "sorted(b(r))")" \
    '["error", "hook", "progress", "queue", "result", "status", "taskId", "type"]' \
    "its body is the task summary"
is "$(at /default "[b(r)[k] for k in ('taskId', 'type', 'status', 'queue', 'hook', 'result', 'error')]")" \
    "[$A, \"echo\", \"completed\", \"default\", \"onSuccess\", {\"n\": 3, \"name\": \"clip-7\"}, null]" \
    "with the task's id, type, status, queue, hook, result and error"
same "$(at /default "r['headers'].get('x-dwa-delivery')")" \
    "$(delivery_of "$A" "effect ->> 'url' LIKE '%/default'")" \
    "its X-DWA-Delivery is its own row's delivery_id"
is "$(sig_ok /default)" ok "its signature checks out too"

# discord
is "$(nrecorded r "r['path'] == '/discord'")" 1 "the discord notification arrived once"
is "$(at /discord "r['method'] + ' ' + json.dumps(b(r), ensure_ascii=False)")" \
    "POST {\"content\": \"task $A done: clip-7\"}" \
    "as a POST of {\"content\": message} to DWA_DISCORD_WEBHOOK_URL"

# email
is "$(nrecorded mail)" 1 "one email reached the SMTP sink"
is "$(recorded mail True "r['from']")" dwa-test@localhost "MAIL FROM is DWA_SMTP_FROM"
is "$(recorded mail True "r['to']")" '["ops@example.com"]' "RCPT TO is the effect's to"
is "$(recorded mail True "bool(re.search(r'(?mi)^Subject: done $A\$', r['data']))")" true \
    "the Subject header is the rendered subject"
is "$(recorded mail True "bool(re.search(r'(?mi)^To: .*ops@example\.com', r['data']))")" true \
    "the To header names the recipient"
same "$(recorded mail True "(re.search(r'(?mi)^X-DWA-Delivery: *(\S+)', r['data']) or [0, '-'])[1]")" \
    "$(delivery_of "$A" "effect ->> 'channel' = 'email'")" \
    "the X-DWA-Delivery header is the row's delivery_id"
is "$(recorded mail True "repr(r['data'].split('\n\n', 1)[-1].rstrip('\n'))")" \
    "'hello\\n.a line with a leading dot\\nbye'" \
    "the body is the message, a line starting with a dot intact"

# invalidate
is "$(nrecorded r "r['path'] == '/cache/tasks/$A'")" 1 \
    "the invalidation went to DWA_INVALIDATE_URL + path"
is "$(at "/cache/tasks/$A" "r['method']")" POST "as a POST"
same "$(at "/cache/tasks/$A" "r['headers'].get('x-dwa-delivery')")" \
    "$(delivery_of "$A" "event = 'invalidate'")" "with its X-DWA-Delivery"

# toast, emit, redirect: stored in dwa.events, no outbox row.
is "$(sql "SELECT payload ->> 'text' || ' ' || (payload ->> 'variant')
    FROM dwa.events WHERE task_id = $A AND event = 'toast'")" "Done $A success" \
    "the toast is stored in dwa.events, rendered"
is "$(sql "SELECT (payload ->> 'event') || ' ' || jsonb_typeof(payload -> 'data') || ' ' || (payload ->> 'data')
    FROM dwa.events WHERE task_id = $A AND event = 'emit'")" "finished number 3" \
    "the emit is stored, its whole-string template kept a number"
is "$(sql "SELECT payload ->> 'url' FROM dwa.events WHERE task_id = $A AND event = 'redirect'")" \
    "/tasks/$A" "the redirect is stored"
is "$(sql "SELECT count(*) FROM dwa.events WHERE task_id = $A
    AND event IN ('toast', 'emit', 'redirect') AND payload ? '\$event'")" 0 \
    "their payloads are the effects without \$event"
is "$(sql "SELECT count(*) FROM dwa.outbox WHERE task_id = $A
    AND event IN ('toast', 'emit', 'redirect')")" 0 "and they have no outbox row"

# enqueue: the follow-up exists once, with its parent, and runs.
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE parent_id = $A")" 1 \
    "exactly one follow-up task has parent_id = the task"
CHILD=$(sql "SELECT min(id) FROM dwa.tasks WHERE parent_id = $A")
same "$(sql "SELECT effect ->> 'taskId' FROM dwa.outbox WHERE task_id = $A AND event = 'enqueue'")" \
    "$CHILD" "the enqueue row names the follow-up's id"
wait_until 15 task_done "$CHILD"
is "$(sql "SELECT status || ' ' || (result ->> 'from') FROM dwa.tasks WHERE id = '$CHILD'")" \
    "completed $A" "the follow-up runs with its rendered payload"

# --- onPending and onError --------------------------------------------------

B=$(submit '{"type": "fail", "payload": {"message": "boom"},
  "onPending": [{"$event": "webhook", "url": "'"$R"'/pending/{{task.id}}",
                 "body": {"status": "{{task.status}}"}}],
  "onError": [{"$event": "webhook", "url": "'"$R"'/error",
               "body": {"id": "{{task.id}}", "error": "{{error}}"}}]}')
wait_until 15 task_done "$B"
is "$(task_status "$B")" failed "the failing task fails"
wait_until 15 outbox_settled "$B" 2
is "$(sql "SELECT string_agg(hook || ':' || status, ' ' ORDER BY hook) FROM dwa.outbox
    WHERE task_id = $B")" "onError:delivered onPending:delivered" \
    "onPending and onError are delivered"
is "$(at "/pending/$B" "b(r)")" '{"status": "queued"}' "onPending fired when the task was accepted"
is "$(at /error "b(r)['id']")" "$B" "onError carries the task id"
like "$(at /error "b(r)['error']")" boom "and {{error}}"

# --- a missing setting ------------------------------------------------------

C=$(submit '{"type": "echo", "payload": {},
  "onSuccess": [{"$event": "notify", "channel": "slack", "message": "hello slack {{task.id}}"}]}')
wait_until 15 outbox_settled "$C" 1
SLACK=$(sql "SELECT id FROM dwa.outbox WHERE task_id = $C")
is "$(sql "SELECT status || ' ' || attempts FROM dwa.outbox WHERE id = '$SLACK'")" "dead 1" \
    "without DWA_SLACK_WEBHOOK_URL the slack notification is dead at once"
like "$(sql "SELECT last_error FROM dwa.outbox WHERE id = '$SLACK'")" DWA_SLACK_WEBHOOK_URL \
    "its last_error names the variable to set"
proc_gone "$(dwad_pid d1)"
ok $((! $?)) "dwad keeps running"
D=$(submit '{"type": "echo", "payload": {},
  "onSuccess": [{"$event": "webhook", "url": "'"$R"'/after"}]}')
wait_until 15 outbox_settled "$D" 1
is "$(nrecorded r "r['path'] == '/after'")" 1 "and goes on delivering"

run "$DWA" outbox --status dead
is "$RC" 0 "dwa outbox --status dead exits 0"
like "$(printf '%s\n' "$OUT" | head -n 1)" \
    '^id +task_id +hook +event +status +attempts +next_attempt_at +last_error +delivered_at$' \
    "it prints a header of the SQL column names"
like "$(printf '%s\n' "$OUT" | sed 1d | tr '\n' ';')" \
    "^$SLACK +$C +onSuccess +notify +dead +1 .*DWA_SLACK_WEBHOOK_URL.*;\$" \
    "and the dead row, only it"
run "$DWA" outbox --task "$A" --json
is "$(printf '%s' "$OUT" | python3 -c 'import json, sys
d = json.load(sys.stdin)
print(d["count"], sorted({x["status"] for x in d["deliveries"]}), sorted({x["taskId"] for x in d["deliveries"]}))')" \
    "6 ['delivered'] [$A]" "dwa outbox --task ID --json lists that task's rows"

DELIVERED=$(sql "SELECT id FROM dwa.outbox WHERE task_id = $D")
run "$DWA" outbox retry "$DELIVERED"
is "$RC" 1 "retry of a delivered row exits 1"
like "$ERR" "^dwa: outbox: .*only dead rows can be retried" "saying only dead rows can be retried"
run "$DWA" outbox retry 99999999
is "$RC" 1 "retry of an unknown row exits 1"
like "$ERR" "^dwa: outbox: outbox row 99999999 not found" "saying the row is not found"

# Set the variable, re-queue, restart dwad: delivered.
kill -TERM "$(dwad_pid d1)"
wait_until 15 proc_gone "$(dwad_pid d1)"
ok $? "dwad d1 stops on SIGTERM"
export DWA_SLACK_WEBHOOK_URL="$R/slack"
run "$DWA" outbox retry "$SLACK"
is "$RC:$OUT:$ERR" "0::" "dwa outbox retry ID exits 0 and prints nothing"
is "$(sql "SELECT status || ' ' || attempts || ' ' || (next_attempt_at <= now())
    FROM dwa.outbox WHERE id = $SLACK")" "pending 0 true" "the row is pending again, attempts reset, due now"
dwad_start d2 || bail "dwad d2 did not start"
wait_until 15 outbox_settled "$C" 1
is "$(sql "SELECT status || ' ' || attempts || ' ' || coalesce(last_error, '-')
    FROM dwa.outbox WHERE id = $SLACK")" "delivered 1 -" "it is delivered, last_error cleared"
is "$(nrecorded r "r['path'] == '/slack'")" 1 "slack got it once"
is "$(at /slack "r['method'] + ' ' + json.dumps(b(r), ensure_ascii=False)")" \
    "POST {\"text\": \"hello slack $C\"}" "as a POST of {\"text\": message} to DWA_SLACK_WEBHOOK_URL"

if [ "$T_FAILED" != 0 ]; then
	diag "dwa.outbox:"
	sql "SELECT id, task_id, hook, event, status, attempts, last_error FROM dwa.outbox ORDER BY id" |
	    sed 's/^/#   /'
fi
