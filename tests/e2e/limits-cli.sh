#!/bin/sh
# limits-cli.sh: dwa limits against a real database, with no daemon: the
# table (SQL column names, one row a key, running and waiting counts, a
# pause while it lasts), --json, set in each form (a set replaces the
# key's caps), every rejection with its message and exit code and nothing
# stored, delete, and --help of each form.  A shell plays the worker
# through dwa.claim and dwa.fail.
. "$(dirname "$0")/../lib/harness.sh"

db_setup
plan 83

sql "INSERT INTO dwa.task_types (name) VALUES ('cli.lim')" >/dev/null ||
    bail "cannot register type cli.lim"

# stored: every limit row as one line, to compare before and after.
stored() {
	sql "SELECT coalesce(string_agg(concat_ws(' ', key, max_concurrency, rate,
	    per, burst, paused_until), '; ' ORDER BY key), '(none)') FROM dwa.limits"
}
# row KEY: the table line of KEY: key, max_concurrency, rate, burst, then
# running and waiting (the other columns vary or hold spaces).
row() {
	printf '%s\n' "$OUT" | awk -v k="$1" '$1 == k { print $1, $2, $3, $4, $(NF - 1), $NF }'
}
# field KEY N: column N (1 = key) of KEY's table line.
field() { printf '%s\n' "$OUT" | awk -v k="$1" -v n="$2" '$1 == k { print $n }'; }

HEADER='key +max_concurrency +rate +burst +tokens +paused_until +running +waiting'

# --- the empty list -------------------------------------------------------------

run "$DWA" limits
is "$RC:$ERR" "0:" "limits exits 0 with no limits"
like "$OUT" "^$HEADER\$" "its header uses the SQL column names"
is "$(printf '%s\n' "$OUT" | wc -l | tr -d ' ')" 1 "and there are no rows"
run "$DWA" limits --json
is "$(json "$OUT" "j ->> 'count', jsonb_array_length(j -> 'limits')")" "0|0" \
    "limits --json with no limits: count 0, limits []"

# --- set, in each form --------------------------------------------------------------

run "$DWA" limits set type:cli.lim --concurrency 2
is "$RC:$OUT:$ERR" "0::" "set --concurrency exits 0 and prints nothing"
is "$(sql "SELECT concat_ws(' ', max_concurrency, rate, per, burst) FROM dwa.limits
    WHERE key = 'type:cli.lim'")" "2" "it stores the cap alone"

run "$DWA" limits set key:openai --rate 60/min --burst 10
is "$RC:$OUT:$ERR" "0::" "set --rate N/min --burst exits 0"
is "$(sql "SELECT concat_ws(' ', max_concurrency, rate, per, burst) FROM dwa.limits
    WHERE key = 'key:openai'")" "60 00:01:00 10" "it stores rate 60 per minute, burst 10"

run "$DWA" limits set queue:cli-q --rate 10/5s
is "$RC:$ERR" "0:" "set --rate N/<duration> exits 0"
is "$(sql "SELECT concat_ws(' ', rate, per, burst) FROM dwa.limits WHERE key = 'queue:cli-q'")" \
    "10 00:00:05" "it stores rate 10 per 5 seconds"

run "$DWA" limits set backend:cli-api --concurrency 3 --rate 2/s
is "$RC:$ERR" "0:" "set --concurrency --rate exits 0"
is "$(sql "SELECT concat_ws(' ', max_concurrency, rate, per) FROM dwa.limits
    WHERE key = 'backend:cli-api'")" "3 2 00:00:01" "it stores both"

run "$DWA" limits set -r 1/h type:cli.lim
is "$RC:$ERR" "0:" "set with the short option before KEY exits 0"
is "$(sql "SELECT concat_ws(' ', coalesce(max_concurrency::text, 'none'), rate, per)
    FROM dwa.limits WHERE key = 'type:cli.lim'")" "none 1 01:00:00" \
    "a second set replaces the key's caps: the concurrency cap is gone"

run "$DWA" limits set key:openai --rate 30/min --burst 5 --concurrency 4
[ "$RC" = 0 ] || diag "set: $RC $ERR"
is "$(sql "SELECT concat_ws(' ', max_concurrency, rate, per, burst) FROM dwa.limits
    WHERE key = 'key:openai'")" "4 30 00:01:00 5" "set with all three options"
is "$(sql "SELECT count(*) FROM dwa.limits")" 4 "four keys are stored"

# --- the table: running, waiting, tokens, a pause -----------------------------------------

A=$(submit '{"type": "cli.lim"}')
B=$(submit '{"type": "cli.lim"}')
C=$(submit '{"type": "cli.lim", "queue": "cli-q"}')
run "$DWA" limits
is "$RC" 0 "limits exits 0"
like "$(printf '%s\n' "$OUT" | head -n 1)" "^$HEADER\$" "the header comes first"
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" \
    "backend:cli-api key:openai queue:cli-q type:cli.lim " "one row per key, in key order"
is "$(row backend:cli-api)" "backend:cli-api 3 2/s - 0 0" \
    "a cap and a rate per second show as 3 and 2/s; nothing runs or waits"
is "$(row key:openai)" "key:openai 4 30/min 5 0 0" "a rate per minute shows as 30/min"
is "$(row queue:cli-q)" "queue:cli-q - 10/5s - 0 1" \
    "a rate per 5 s shows as 10/5s, and the queue's ready step waits"
is "$(row type:cli.lim)" "type:cli.lim - 1/h - 0 3" \
    "a rate per hour shows as 1/h; the type's three ready steps wait"
is "$(field key:openai 5)" 5 "a full bucket shows its burst as tokens"

R=$(sql "SELECT run_id FROM dwa.claim('w1', ARRAY['cli.lim'], 3)")
is "$(printf '%s\n' "$R" | grep -c .)" 1 \
    "dwa.claim admits one step: the type's bucket (1/h) holds one token"
run "$DWA" limits
is "$(row type:cli.lim)" "type:cli.lim - 1/h - 1 2" "limits shows it running, two waiting"
like "$(field type:cli.lim 5)" '^0(\.0[0-9]*)?$' "and the bucket empty"
is "$(field type:cli.lim 6)" - "no pause is shown"

is "$(sql "SELECT dwa.fail($R, 'rate limited', retryable => true, retry_after => '1 h')")" t \
    "the worker fails the run with a retry-after of an hour"
run "$DWA" limits
like "$(field type:cli.lim 6)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' "limits shows the type paused"
is "$(printf '%s\n' "$OUT" | awk '$1 == "type:cli.lim" { print $(NF - 1), $NF }')" "0 3" \
    "with nothing running and three steps waiting"
is "$(sql "SELECT date_trunc('minute', paused_until - now()) FROM dwa.limits
    WHERE key = 'type:cli.lim'")" "00:59:00" "paused for the hour the worker named"

# --- --json ----------------------------------------------------------------------

run "$DWA" limits --json
is "$RC:$ERR" "0:" "limits --json exits 0"
is "$(json "$OUT" "j ->> 'count', jsonb_array_length(j -> 'limits'),
    (SELECT string_agg(e ->> 'key', ',') FROM jsonb_array_elements(j -> 'limits') e)")" \
    "4|4|backend:cli-api,key:openai,queue:cli-q,type:cli.lim" "count and the keys, in order"
is "$(json "$OUT" "(SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(j -> 'limits' -> 0) k)")" \
    "burst,key,maxConcurrency,pausedUntil,rate,running,tokens,waiting" \
    "each limit has the camelCase fields"
is "$(json "$OUT" "j -> 'limits' -> 1 -> 'maxConcurrency', j -> 'limits' -> 1 ->> 'rate',
    j -> 'limits' -> 1 -> 'burst', j -> 'limits' -> 1 -> 'tokens'")" "4|30/min|5|5" \
    "key:openai: maxConcurrency 4, rate \"30/min\", burst 5, tokens 5"
is "$(json "$OUT" "jsonb_typeof(j -> 'limits' -> 3 -> 'pausedUntil'),
    j -> 'limits' -> 3 -> 'running', j -> 'limits' -> 3 -> 'waiting',
    jsonb_typeof(j -> 'limits' -> 0 -> 'pausedUntil')")" "string|0|3|null" \
    "type:cli.lim: pausedUntil set, running 0, waiting 3; the others have none"

# --- rejections: message, exit code, nothing stored ------------------------------------

BEFORE=$(stored)
run "$DWA" limits set type:cli.x --concurrency -1
is "$RC" 1 "a negative concurrency exits 1"
like "$ERR" '^dwa: limits: max_concurrency: must be at least 1' "and the message names the field"
run "$DWA" limits set type:cli.x --concurrency 0
is "$RC" 1 "a zero concurrency exits 1"
like "$ERR" '^dwa: limits: max_concurrency: must be at least 1' "and the message names the field"
run "$DWA" limits set type:cli.x --rate -5/s
is "$RC" 1 "a negative rate exits 1"
like "$ERR" '^dwa: limits: rate: ' "and the message names the field"
run "$DWA" limits set type:cli.x --rate 0/min
is "$RC" 1 "a zero rate exits 1"
like "$ERR" '^dwa: limits: rate: ' "and the message names the field"
run "$DWA" limits set type:cli.x --rate 10/0s
is "$RC" 1 "a zero interval exits 1"
like "$ERR" '^dwa: limits: rate: ' "and the message names the field"
run "$DWA" limits set type:cli.x --rate 10/fortnight
is "$RC" 1 "an unknown unit exits 1"
like "$ERR" '^dwa: limits: rate: unknown unit "fortnight" \(use s, min, h, d or a duration like 5s\)' \
    "and the message names the unit and the ones to use"
run "$DWA" limits set type:cli.x --rate 10/s --burst -2
is "$RC" 1 "a negative burst exits 1"
like "$ERR" '^dwa: limits: burst: ' "and the message names the field"
run "$DWA" limits set type:cli.x --burst 3
is "$RC" 1 "a burst without a rate exits 1"
like "$ERR" '^dwa: limits: burst: ' "and the message names the field"
run "$DWA" limits set cli.x --concurrency 1
is "$RC:$ERR" \
    "1:dwa: limits: key: must look like queue:NAME, type:NAME, backend:NAME or key:NAME (field: key)" \
    "a key without a kind exits 1 and says what a key looks like"
run "$DWA" limits set color:red --concurrency 1
is "$RC" 1 "a key of an unknown kind exits 1"
like "$ERR" '^dwa: limits: key: must look like ' "and says what a key looks like"
run "$DWA" limits set type: --concurrency 1
is "$RC" 1 "a key with an empty name exits 1"
is "$(stored)" "$BEFORE" "the rejected limits stored nothing"

run "$DWA" limits set type:cli.x
is "$RC" 2 "set without an option is a usage error (exit 2)"
like "$ERR" '^dwa: limits: set: give at least one of --concurrency, --rate and --burst' \
    "and says which options there are"
like "$ERR" 'usage: dwa limits set KEY' "with the synopsis"
run "$DWA" limits set --concurrency 2
is "$RC" 2 "set without KEY is a usage error"
run "$DWA" limits set type:cli.x --concurrency two
is "$RC" 2 "a concurrency that is not a number is a usage error"
like "$ERR" '^dwa: limits: --concurrency: "two" is not a number' "and names the option"
run "$DWA" limits set type:cli.x --bogus 1
is "$RC" 2 "an unknown option of set is a usage error"
run "$DWA" limits --json set type:cli.x --concurrency 1
is "$RC" 2 "set takes no --json"
run "$DWA" limits frobnicate
is "$RC" 2 "an unknown form is a usage error"
is "$(stored)" "$BEFORE" "the usage errors stored nothing"

# --- delete ---------------------------------------------------------------------

run "$DWA" limits delete queue:cli-q
is "$RC:$OUT:$ERR" "0::" "delete exits 0 and prints nothing"
is "$(sql "SELECT count(*) FROM dwa.limits WHERE key = 'queue:cli-q'")" 0 "the row is gone"
run "$DWA" limits
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" \
    "backend:cli-api key:openai type:cli.lim " "limits no longer lists it"
run "$DWA" limits delete queue:cli-q
is "$RC:$ERR" "1:dwa: limits: limit queue:cli-q not found" \
    "deleting a key that has no limit exits 1"
run "$DWA" limits delete
is "$RC" 2 "delete without KEY is a usage error"
run "$DWA" limits delete a b
is "$RC" 2 "delete with two keys is a usage error"
is "$(sql "SELECT count(*) FROM dwa.limits")" 3 "the other limits are kept"

# --- --help ------------------------------------------------------------------------

run "$DWA" limits --help
is "$RC:$ERR" "0:" "limits --help exits 0"
like "$OUT" '^usage: dwa limits \[--json\]' "it shows the synopsis"
like "$OUT" 'dwa limits set KEY \[--concurrency N\] \[--rate N/UNIT\] \[--burst N\]' \
    "of each form"
run "$DWA" limits set --help
is "$RC" 0 "limits set --help exits 0"
like "$OUT" '^usage: dwa limits set KEY' "it shows set's synopsis"
like "$OUT" '--rate N/UNIT' "and its options"
run "$DWA" limits delete -h
is "$RC:$(printf '%s\n' "$OUT" | head -n 1)" "0:usage: dwa limits delete KEY" \
    "limits delete -h shows delete's synopsis"
like "$("$DWA" --help)" '^  limits ' "dwa --help lists the command"
