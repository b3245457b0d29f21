#!/bin/sh
# effects-retry.sh: a failing receiver gets the delivery again with growing
# gaps (the effect's backoff) and the same delivery id, until it answers;
# one that always fails leaves the row dead after the effect's attempts,
# the last error kept, and 'dwa outbox retry' delivers it; a 429 with
# Retry-After holds the next attempt back at least that long.
#
# The three run at once, each with its own receiver; a background watcher
# turns a receiver to 200 after its Nth request, so the checks below may
# take their time.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 21

db_setup
receiver_start ra 500
receiver_start rb 500
receiver_start rc 429:2
dwad_start d1 || bail "dwad d1 did not start"

# hook_task URL RETRY: a task whose onSuccess is a webhook to URL with
# effect retry policy RETRY; prints its id.
hook_task() {
	submit '{"type": "noop", "onSuccess": [{"$event": "webhook", "url": "'"$1"'",
	    "retry": '"$2"'}]}'
}
# switch_after NAME N MODE: in the background, set receiver NAME to MODE
# as soon as it has recorded N requests.
switch_after() {
	(wait_until 25 has_recorded "$1" "$2" && receiver_mode "$1" "$3") &
	T_PIDS="$T_PIDS $!"
}
# gaps NAME: the gaps in seconds between successive requests, one per line.
gaps() {
	recorded "$1" True "r['time']" | awk 'NR > 1 { printf "%.3f\n", $1 - prev } { prev = $1 }'
}
# modes NAME: how each request was answered, on one line.
modes() { recorded "$1" True "r['mode']" | tr '\n' ' '; }
# row TASK COLUMNS: the task's outbox row, as text.
row() { sql "SELECT $2 FROM dwa.outbox WHERE task_id = $1"; }

# Backoff after failed attempt k: 250 * 4^(k-1) ms, at most 4000, times a
# jitter in [0.5, 1]: 125-250 ms, 0.5-1 s, then 2-4 s.  The dispatcher
# may look for due rows only once a second, so a gap can be up to a
# second longer than its backoff; these steps stay apart even so.
A=$(hook_task "$(receiver_url ra)/a" \
    '{"attempts": 6, "backoff": {"initialMs": 250, "factor": 4, "maxMs": 4000}}')
B=$(hook_task "$(receiver_url rb)/b" \
    '{"attempts": 3, "backoff": {"initialMs": 200, "factor": 2, "maxMs": 2000}}')
C=$(hook_task "$(receiver_url rc)/c" \
    '{"attempts": 10, "backoff": {"initialMs": 100, "factor": 2, "maxMs": 1000}}')
switch_after ra 3 200
switch_after rc 2 200

# --- 500 three times, then 200 ------------------------------------------------

wait_until 20 outbox_settled "$A" 1
is "$(row "$A" "status || ' ' || coalesce(last_error, '-')")" "delivered -" \
    "a delivery failing with 500 is delivered once the receiver answers 200"
N=$(nrecorded ra)
ok $([ "$N" -ge 4 ] && echo 0 || echo 1) "after being tried again and again ($N requests)"
is "$(row "$A" attempts)" "$N" "attempts counts every request"
is "$(modes ra)" \
    "$(i=1; while [ $i -lt "$N" ]; do printf '500 '; i=$((i + 1)); done)200 " \
    "every request but the last was answered 500"
same "$(recorded ra True "r['headers'].get('x-dwa-delivery')" | sort -u)" \
    "$(row "$A" delivery_id)" "every attempt carries the same X-DWA-Delivery, the row's delivery_id"
is "$(recorded ra True "r['body']" | sort -u | wc -l | tr -d ' ')" 1 "and the same body"
is "$(gaps ra | awk '{ k = NR; b = 250 * 4 ^ (k - 1); if (b > 4000) b = 4000
	if ($1 < b / 2000 - 0.02) bad = bad " gap " k " " $1 "s < " b / 2000 "s;"
	if ($1 > b / 1000 + 1.3) bad = bad " gap " k " " $1 "s > " b / 1000 + 1.3 "s;" }
	END { print (NR >= 3 && bad == "") ? "ok" : "bad:" bad " (" NR " gaps)" }')" ok \
    "each gap follows the jittered backoff (0.125-0.25 s, 0.5-1 s, 2-4 s, plus at most a poll)"
FIRST=$(gaps ra | head -n 1)
LAST=$(gaps ra | tail -n 1)
is "$(awk -v a="$FIRST" -v b="$LAST" 'BEGIN { print (b >= 1.98 && b > a) ? "grew" : "did not grow" }')" grew \
    "the gaps grow ($(gaps ra | tr '\n' ' ')s)"

# --- always 500, attempts 3: dead ---------------------------------------------

wait_until 15 outbox_settled "$B" 1
is "$(row "$B" "status || ' ' || attempts")" "dead 3" "always failing, the row is dead after its 3 attempts"
like "$(row "$B" last_error)" 500 "the last error is kept and names the status 500"
is "$(nrecorded rb)" 3 "the receiver got exactly 3 requests"
same "$(recorded rb True "r['headers'].get('x-dwa-delivery')" | sort -u)" \
    "$(row "$B" delivery_id)" "all with the same delivery id"

receiver_mode rb 200
"$DWA" outbox retry "$(row "$B" id)"
is "$?" 0 "dwa outbox retry re-queues it"
wait_until 15 outbox_settled "$B" 1
is "$(row "$B" "status || ' ' || attempts || ' ' || coalesce(last_error, '-')")" "delivered 1 -" \
    "it is then delivered at its first new attempt, last_error cleared"
is "$(nrecorded rb)" 4 "with one more request"
same "$(recorded rb True "r['headers'].get('x-dwa-delivery')" | sort -u)" \
    "$(row "$B" delivery_id)" "still with the same delivery id"

# --- 429 with Retry-After: 2, twice, then 200 -----------------------------------

wait_until 20 outbox_settled "$C" 1
N=$(nrecorded rc)
is "$(row "$C" "status || ' ' || attempts")" "delivered $N" \
    "after 429s the delivery gets through ($N requests)"
is "$(modes rc | sed 's/^\(429:2 \)\{2,\}200 $/ok/')" ok "the first ones were answered 429 with Retry-After: 2"
is "$(gaps rc | awk '$1 < 1.98 { bad = bad " " $1 } END { print bad == "" ? "ok" : "too soon:" bad }')" ok \
    "no attempt came sooner than 2 s after a 429 (backoff alone: 0.1 s; gaps $(gaps rc | tr '\n' ' ')s)"
same "$(recorded rc True "r['headers'].get('x-dwa-delivery')" | sort -u)" \
    "$(row "$C" delivery_id)" "the same delivery id every time"

is "$(sql "SELECT count(*) FROM dwa.outbox WHERE status <> 'delivered'")" 0 "nothing is left undelivered"

if [ "$T_FAILED" != 0 ]; then
	diag "dwa.outbox:"
	sql "SELECT id, task_id, status, attempts, next_attempt_at, last_error FROM dwa.outbox ORDER BY id" |
	    sed 's/^/#   /'
	for r in ra rb rc; do
		diag "$r: gaps $(gaps $r | tr '\n' ' '); modes $(modes $r)"
	done
fi
