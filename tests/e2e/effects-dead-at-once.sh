#!/bin/sh
# effects-dead-at-once.sh: deliveries that cannot succeed are dead at their
# first attempt, whatever their retry policy, with a last_error saying why,
# while dwad keeps running: an email, discord or invalidate effect whose
# setting (DWA_SMTP_URL, DWA_DISCORD_WEBHOOK_URL, DWA_INVALIDATE_URL) is
# missing; a webhook URL libcurl rejects (bad format, port out of range,
# a scheme other than http or https, rendered from a template or not);
# settings holding such a URL, or an SMTP URL that is not smtp(s).  A
# network error, by contrast, is retried.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 19

db_setup
receiver_start r
R=$(receiver_url r)
unset DWA_SMTP_URL DWA_DISCORD_WEBHOOK_URL DWA_INVALIDATE_URL DWA_SLACK_WEBHOOK_URL
dwad_start d1 || bail "dwad d1 did not start"

RETRY='"retry": {"attempts": 4, "backoff": {"initialMs": 50, "maxMs": 100}}'
# row TASK INDEX: "status attempts/max_attempts last_error" of the task's
# onSuccess effect INDEX.
row() {
	sql "SELECT status || ' ' || attempts || '/' || max_attempts || ' ' || coalesce(last_error, '-')
	     FROM dwa.outbox WHERE task_id = $1 AND effect_index = $2"
}

# --- missing settings ---------------------------------------------------------

A=$(submit '{"type": "echo", "payload": {},
  "onSuccess": [
    {"$event": "notify", "channel": "email", "to": "ops@example.com", "message": "m", '"$RETRY"'},
    {"$event": "notify", "channel": "discord", "message": "m", '"$RETRY"'},
    {"$event": "invalidate", "path": "/x", '"$RETRY"'}]}')
wait_until 20 outbox_settled "$A" 3
is "$(row "$A" 0)" "dead 1/4 set DWA_SMTP_URL to deliver email notifications" \
    "email without DWA_SMTP_URL: dead at the first attempt, naming the variable"
is "$(row "$A" 1)" "dead 1/4 set DWA_DISCORD_WEBHOOK_URL to deliver discord notifications" \
    "discord without DWA_DISCORD_WEBHOOK_URL: the same"
is "$(row "$A" 2)" "dead 1/4 set DWA_INVALIDATE_URL to deliver cache invalidations" \
    "invalidate without DWA_INVALIDATE_URL: the same"

# --- malformed webhook URLs ----------------------------------------------------

B=$(submit '{"type": "echo", "payload": {"u": "gopher://127.0.0.1/x"},
  "onSuccess": [
    {"$event": "webhook", "url": "http://exa mple.com/x", '"$RETRY"'},
    {"$event": "webhook", "url": "http://127.0.0.1:99999/x", '"$RETRY"'},
    {"$event": "webhook", "url": "ftp://127.0.0.1/x", '"$RETRY"'},
    {"$event": "webhook", "url": "{{payload.u}}", '"$RETRY"'},
    {"$event": "webhook", "url": "http://127.0.0.1:1/refused", '"$RETRY"'},
    {"$event": "webhook", "url": "'"$R"'/fine"}]}')
wait_until 20 outbox_settled "$B" 6
is "$(row "$B" 0)" "dead 1/4 url: URL using bad/illegal format or missing URL (Bad hostname)" \
    "a URL with a space in its host: dead at once, with libcurl's message"
is "$(row "$B" 1)" \
    "dead 1/4 url: URL using bad/illegal format or missing URL (Port number was not a decimal number between 0 and 65535)" \
    "a port out of range: the same"
is "$(row "$B" 2)" "dead 1/4 url: Protocol \"ftp\" not supported (use http or https)" \
    "an ftp URL: dead at once, naming the scheme"
is "$(row "$B" 3)" "dead 1/4 url: Protocol \"gopher\" not supported (use http or https)" \
    "a URL rendered from a template: checked the same way"
like "$(row "$B" 4)" "^dead 4/4 .*(Failed to connect|Couldn't connect|Connection refused)" \
    "a refused connection is a network error: retried until its attempts are spent"
is "$(row "$B" 5)" "delivered 1/10 -" "a good webhook of the same task is delivered"
is "$(nrecorded r)" 1 "the receiver got only that one"
proc_gone "$(dwad_pid d1)"
ok $((! $?)) "dwad d1 keeps running"

# --- settings holding unusable URLs --------------------------------------------

kill -TERM "$(dwad_pid d1)"
wait_until 15 proc_gone "$(dwad_pid d1)"
ok $? "dwad d1 stops"
export DWA_SMTP_URL="$R/mail"
export DWA_SLACK_WEBHOOK_URL="http://hooks example.com/x"
export DWA_DISCORD_WEBHOOK_URL="smtp://127.0.0.1:25"
export DWA_INVALIDATE_URL="http://127.0.0.1:99999"
dwad_start d2 || bail "dwad d2 did not start"
C=$(submit '{"type": "echo", "payload": {},
  "onSuccess": [
    {"$event": "notify", "channel": "email", "to": "ops@example.com", "message": "m", '"$RETRY"'},
    {"$event": "notify", "channel": "slack", "message": "m", '"$RETRY"'},
    {"$event": "notify", "channel": "discord", "message": "m", '"$RETRY"'},
    {"$event": "invalidate", "path": "/x", '"$RETRY"'}]}')
wait_until 20 outbox_settled "$C" 4
is "$(row "$C" 0)" "dead 1/4 DWA_SMTP_URL: Protocol \"http\" not supported (use smtp or smtps)" \
    "an http URL in DWA_SMTP_URL: dead at once, naming the variable"
is "$(row "$C" 1)" \
    "dead 1/4 DWA_SLACK_WEBHOOK_URL: URL using bad/illegal format or missing URL (Bad hostname)" \
    "a malformed DWA_SLACK_WEBHOOK_URL: the same"
is "$(row "$C" 2)" "dead 1/4 DWA_DISCORD_WEBHOOK_URL: Protocol \"smtp\" not supported (use http or https)" \
    "an smtp URL in DWA_DISCORD_WEBHOOK_URL: the same"
is "$(row "$C" 3)" \
    "dead 1/4 DWA_INVALIDATE_URL + path: URL using bad/illegal format or missing URL (Port number was not a decimal number between 0 and 65535)" \
    "a bad port in DWA_INVALIDATE_URL: the same"
is "$(sql "SELECT count(*) FROM dwa.outbox WHERE last_error LIKE '%hooks example%'
    OR last_error LIKE '%127.0.0.1:99999%' OR last_error LIKE '%/mail%'")" 0 \
    "no message quotes a setting's URL (it may hold a secret)"
is "$(nrecorded r)" 1 "the receiver got nothing more"
proc_gone "$(dwad_pid d2)"
ok $((! $?)) "dwad d2 keeps running"

if [ "$T_FAILED" != 0 ]; then
	diag "dwa.outbox:"
	sql "SELECT id, task_id, effect_index, event, status, attempts, last_error FROM dwa.outbox ORDER BY id" |
	    sed 's/^/#   /'
fi
