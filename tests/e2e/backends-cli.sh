#!/bin/sh
# backends-cli.sh: dwa backends against a real database, with no daemon:
# set with every option and the table it shows (the token variable's name,
# never a token), a set that replaces all the settings, --json, the
# concurrency cap kept as the limit backend:NAME, every rejection with its
# message and exit code and nothing stored, delete, and --help of each
# form.  A shell plays the worker through dwa.claim, so a step runs on a
# backend.
. "$(dirname "$0")/../lib/harness.sh"

db_setup
plan 81

sql "INSERT INTO dwa.task_types (name) VALUES ('cli.bk')" >/dev/null ||
    bail "cannot register type cli.bk"

# stored: every backend row as one line, to compare before and after.
stored() {
	sql "SELECT coalesce(string_agg(concat_ws(' ', name, url, token_env,
	    timeout, max_concurrency), '; ' ORDER BY name), '(none)') FROM dwa.backends"
}
# row NAME: the table line of NAME, its columns one space apart.
row() { printf '%s\n' "$OUT" | awk -v k="$1" '$1 == k { $1 = $1; print }'; }
# limit KEY: the max_concurrency of limit KEY, or "none" without one.
limit() {
	sql "SELECT coalesce((SELECT coalesce(max_concurrency::text, 'null')
	    FROM dwa.limits WHERE key = '$1'), 'none')"
}

HEADER='name +url +token_env +timeout +max_concurrency +running'

# --- the empty list -------------------------------------------------------------

run "$DWA" backends
is "$RC:$ERR" "0:" "backends exits 0 with no backends"
like "$OUT" "^$HEADER\$" "its header uses the SQL column names"
is "$(printf '%s\n' "$OUT" | wc -l | tr -d ' ')" 1 "and there are no rows"
run "$DWA" backends --json
is "$(json "$OUT" "j ->> 'count', jsonb_array_length(j -> 'backends')")" "0|0" \
    "backends --json with no backends: count 0, backends []"

# --- set --------------------------------------------------------------------------

MODAL_TOKEN=s3cret-value
export MODAL_TOKEN
run "$DWA" backends set modal https://acme--infer.modal.run/v1 \
    --token-env MODAL_TOKEN --timeout 90s --concurrency 4
is "$RC:$OUT:$ERR" "0::" "set with every option exits 0 and prints nothing"
is "$(stored)" "modal https://acme--infer.modal.run/v1 MODAL_TOKEN 00:01:30 4" \
    "it stores the URL, the variable's name, the timeout and the cap"
is "$(limit backend:modal)" 4 "the cap is the limit backend:modal"

run "$DWA" backends set ray http://ray-head:8000 -T 500ms
is "$RC:$ERR" "0:" "set with the short --timeout exits 0"
is "$(sql "SELECT concat_ws(' ', url, coalesce(token_env, 'none'), timeout,
    coalesce(max_concurrency::text, 'none')) FROM dwa.backends WHERE name = 'ray'")" \
    "http://ray-head:8000 none 00:00:00.5 none" "it stores 500 ms and no token or cap"
is "$(limit backend:ray)" none "a backend without a cap has no limit"

run "$DWA" backends set -t RAY_TOKEN -c 2 local http://127.0.0.1:9/run
is "$RC:$ERR" "0:" "set with the options before NAME and URL exits 0"
is "$(sql "SELECT concat_ws(' ', token_env, timeout, max_concurrency) FROM dwa.backends
    WHERE name = 'local'")" "RAY_TOKEN 00:05:00 2" "a set without --timeout takes 5 minutes"
is "$(sql "SELECT count(*) FROM dwa.backends")" 3 "three backends are stored"

# --- the table: a step running on a backend ------------------------------------------

A=$(submit '{"type": "cli.bk", "backend": "modal"}')
B=$(submit '{"type": "cli.bk", "backend": "modal"}')
R=$(sql "SELECT run_id FROM dwa.claim('w1', ARRAY['cli.bk'], 1)")
like "$R" '^[0-9]+$' "a worker claims one step on modal"

run "$DWA" backends
is "$RC:$ERR" "0:" "backends exits 0"
like "$(printf '%s\n' "$OUT" | head -n 1)" "^$HEADER\$" "the header comes first"
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" \
    "local modal ray " "one row per backend, in name order"
is "$(row modal)" "modal https://acme--infer.modal.run/v1 MODAL_TOKEN 90s 4 1" \
    "modal: its URL, the variable's name, 90s, cap 4 and the step running"
is "$(row ray)" "ray http://ray-head:8000 - 500ms - 0" \
    "ray: no variable, 500ms, no cap, nothing running"
is "$(row local)" "local http://127.0.0.1:9/run RAY_TOKEN 5m 2 0" "local: 5m"
case $OUT in
*s3cret*) ok 1 "the table never shows the token" ;;
*) ok 0 "the table never shows the token" ;;
esac

run "$DWA" limits
is "$(printf '%s\n' "$OUT" | awk '$1 == "backend:modal" { print $1, $2, $(NF - 1), $NF }')" \
    "backend:modal 4 1 1" "dwa limits shows the cap of modal: one running, one waiting"

# --- --json ----------------------------------------------------------------------

run "$DWA" backends --json
is "$RC:$ERR" "0:" "backends --json exits 0"
is "$(json "$OUT" "j ->> 'count', jsonb_array_length(j -> 'backends'),
    (SELECT string_agg(e ->> 'name', ',') FROM jsonb_array_elements(j -> 'backends') e)")" \
    "3|3|local,modal,ray" "count and the names, in order"
is "$(json "$OUT" "(SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(j -> 'backends' -> 0) k)")" \
    "maxConcurrency,name,running,timeoutMs,tokenEnv,url" "each backend has the camelCase fields"
is "$(json "$OUT" "j -> 'backends' -> 1 ->> 'url', j -> 'backends' -> 1 ->> 'tokenEnv',
    j -> 'backends' -> 1 -> 'timeoutMs', j -> 'backends' -> 1 -> 'maxConcurrency',
    j -> 'backends' -> 1 -> 'running'")" \
    "https://acme--infer.modal.run/v1|MODAL_TOKEN|90000|4|1" \
    "modal: url, tokenEnv, timeoutMs 90000, maxConcurrency 4, running 1"
is "$(json "$OUT" "jsonb_typeof(j -> 'backends' -> 2 -> 'tokenEnv'),
    j -> 'backends' -> 2 -> 'timeoutMs', jsonb_typeof(j -> 'backends' -> 2 -> 'maxConcurrency')")" \
    "null|500|null" "ray: tokenEnv null, timeoutMs 500, maxConcurrency null"
case $OUT in
*s3cret*) ok 1 "the JSON never shows the token" ;;
*) ok 0 "the JSON never shows the token" ;;
esac

# --- set again replaces every setting ------------------------------------------------

run "$DWA" backends set modal https://acme--infer-v2.modal.run --timeout 2m
is "$RC:$ERR" "0:" "a second set of modal exits 0"
is "$(sql "SELECT concat_ws(' ', url, coalesce(token_env, 'none'), timeout,
    coalesce(max_concurrency::text, 'none')) FROM dwa.backends WHERE name = 'modal'")" \
    "https://acme--infer-v2.modal.run none 00:02:00 none" \
    "it replaces the settings: new URL and timeout, the variable and the cap are gone"
is "$(limit backend:modal)" none "and the limit backend:modal goes with the cap"
run "$DWA" backends set modal https://acme--infer-v2.modal.run --concurrency 3 \
    --token-env MODAL_TOKEN
is "$RC:$(limit backend:modal)" "0:3" "a set with --concurrency 3 makes the limit again"
run "$DWA" limits
like "$OUT" '^backend:modal +3 ' "dwa limits shows it"
run "$DWA" backends
is "$(row modal)" "modal https://acme--infer-v2.modal.run MODAL_TOKEN 5m 3 1" \
    "backends shows it, with the timeout back to 5m: a set without --timeout"

# --- rejections: message, exit code, nothing stored ------------------------------------

BEFORE=$(stored)
LIMITS=$(sql "SELECT string_agg(key || ' ' || coalesce(max_concurrency::text, '-'), '; '
    ORDER BY key) FROM dwa.limits")
run "$DWA" backends set bad ftp://files.example.com --concurrency 2
is "$RC:$OUT" "1:" "a URL that is not http(s) exits 1"
is "$ERR" "dwa: backends: url: must be an http:// or https:// URL (field: url)" \
    "and the message names the field"
run "$DWA" backends set bad 'http://a b'
is "$RC" 1 "a URL with a space exits 1"
like "$ERR" '^dwa: backends: url: ' "and the message names the field"
run "$DWA" backends set bad http://x --concurrency 0
is "$RC" 1 "a zero concurrency exits 1"
is "$ERR" "dwa: backends: max_concurrency: must be at least 1 (field: max_concurrency)" \
    "and the message names the field"
run "$DWA" backends set bad http://x --concurrency -3
is "$RC" 1 "a negative concurrency exits 1"
run "$DWA" backends set bad http://x --timeout 0s
is "$RC" 1 "a zero timeout exits 1"
like "$ERR" '^dwa: backends: timeout: must be more than 0 and at most 1 day' \
    "and the message names the field"
run "$DWA" backends set bad http://x --timeout 2d
is "$RC" 1 "a timeout over a day exits 1"
run "$DWA" backends set bad http://x --timeout 99999999999999s
is "$RC:$ERR" "1:dwa: backends: timeout: must be more than 0 and at most 1 day (field: timeout)" \
    "a timeout too long for an interval gets the same message"
run "$DWA" backends set bad http://x --token-env 'MY-TOKEN'
is "$RC" 1 "a token variable that is no variable name exits 1"
like "$ERR" '^dwa: backends: token_env: must be the name of an environment variable' \
    "and the message says what it must be"
run "$DWA" backends set 'bad name' http://x
is "$RC" 1 "a name with a space exits 1"
like "$ERR" '^dwa: backends: name: ' "and the message names the field"
is "$(stored)" "$BEFORE" "the rejected backends stored nothing"

run "$DWA" backends set bad http://x --timeout soon
is "$RC" 2 "a timeout that is not a duration is a usage error (exit 2)"
like "$ERR" '^dwa: backends: --timeout: "soon" is not a duration' "and names the option"
like "$ERR" 'usage: dwa backends set NAME URL' "with the synopsis"
run "$DWA" backends set bad http://x --timeout -5s
is "$RC" 2 "a negative timeout is a usage error"
run "$DWA" backends set bad http://x --concurrency two
is "$RC" 2 "a concurrency that is not a number is a usage error"
like "$ERR" '^dwa: backends: --concurrency: "two" is not a number' "and names the option"
run "$DWA" backends set bad
is "$RC" 2 "set without URL is a usage error"
like "$ERR" '^dwa: backends: set: missing URL' "and says what is missing"
run "$DWA" backends set
is "$RC" 2 "set without NAME is a usage error"
run "$DWA" backends set bad http://x extra
is "$RC" 2 "set with a third argument is a usage error"
run "$DWA" backends set bad http://x --bogus 1
is "$RC" 2 "an unknown option of set is a usage error"
run "$DWA" backends --json set bad http://x
is "$RC" 2 "set takes no --json"
run "$DWA" backends frobnicate
is "$RC" 2 "an unknown form is a usage error"
is "$(stored)" "$BEFORE" "the usage errors stored nothing"
is "$(sql "SELECT string_agg(key || ' ' || coalesce(max_concurrency::text, '-'), '; '
    ORDER BY key) FROM dwa.limits")" "$LIMITS" "and changed no limit"

# --- delete ---------------------------------------------------------------------

run "$DWA" backends delete local
is "$RC:$OUT:$ERR" "0::" "delete exits 0 and prints nothing"
is "$(sql "SELECT count(*) FROM dwa.backends WHERE name = 'local'")" 0 "the row is gone"
is "$(limit backend:local)" none "and so is its limit"
run "$DWA" backends
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" \
    "modal ray " "backends no longer lists it"
run "$DWA" backends delete local
is "$RC:$OUT:$ERR" "1::dwa: backends: backend local not found" \
    "deleting a backend that does not exist exits 1"
run "$DWA" backends delete
is "$RC" 2 "delete without NAME is a usage error"
run "$DWA" backends delete a b
is "$RC" 2 "delete with two names is a usage error"
is "$(sql "SELECT count(*) FROM dwa.backends")" 2 "the other backends are kept"

# --- --help ------------------------------------------------------------------------

run "$DWA" backends --help
is "$RC:$ERR" "0:" "backends --help exits 0"
like "$OUT" '^usage: dwa backends \[--json\]' "it shows the synopsis"
like "$OUT" 'dwa backends set NAME URL \[--token-env VAR\] \[--timeout DUR\]' "of each form"
run "$DWA" backends set --help
is "$RC" 0 "backends set --help exits 0"
like "$OUT" '^usage: dwa backends set NAME URL' "it shows set's synopsis"
like "$OUT" '--concurrency N' "and its options"
run "$DWA" backends delete -h
is "$RC:$(printf '%s\n' "$OUT" | head -n 1)" "0:usage: dwa backends delete NAME" \
    "backends delete -h shows delete's synopsis"
like "$("$DWA" --help)" '^  backends ' "dwa --help lists the command"
