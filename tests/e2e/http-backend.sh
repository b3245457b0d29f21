#!/bin/sh
# http-backend.sh: the http executor against the reference backend server
# (contrib/backends/server.py) on loopback, with the test handlers of
# tests/e2e/backend/handlers.py: the request body and the bearer token,
# plain and enveloped results, every failure class of the protocol,
# Retry-After pausing the backend for everyone, NDJSON streaming progress
# and events, a hanging server hitting the backend's timeout while other
# steps go on, cancellation closing the connection, a missing backend,
# MODAL_URL/RAY_URL at start, and a backend's concurrency cap.
. "$(dirname "$0")/../lib/harness.sh"
plan 41

db_setup

# be_start NAME [ARGS...]: a backend server on a free port; sets PORT_NAME.
be_start() {
	local name=$1
	shift
	python3 "$top_srcdir/contrib/backends/server.py" --host 127.0.0.1 --port 0 \
	    --module "$top_srcdir/tests/e2e/backend/handlers.py" "$@" \
	    >"$T_TMP/$name.out" 2>"$T_TMP/$name.log" &
	T_PIDS="$T_PIDS $!"
	wait_until 10 grep -q "listening on" "$T_TMP/$name.out" || return 1
	eval "PORT_$name=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$T_TMP/$name.out")"
}
DWA_BACKEND_TOKEN=s3cret-t0ken be_start b1 || bail "backend b1 did not start"
be_start b2 || bail "backend b2 did not start"
U1="http://127.0.0.1:$PORT_b1"
U2="http://127.0.0.1:$PORT_b2"

sql "SELECT dwa.backend_set('local', '$U1', 'LOCAL_TOKEN', '10 s');
     SELECT dwa.backend_set('notoken', '$U1');
     SELECT dwa.backend_set('slow', '$U1', 'LOCAL_TOKEN', '1 s');
     SELECT dwa.backend_set('rl', '$U1', 'LOCAL_TOKEN');
     SELECT dwa.backend_set('other', '$U2');
     INSERT INTO dwa.task_types (name, executor, backend)
     SELECT t, 'http', 'local' FROM unnest(ARRAY['t.echo', 't.envelope', 't.fail',
         't.status', 't.sleep', 't.stream', 't.whoami']) t;
     INSERT INTO dwa.task_types (name, executor) VALUES ('t.nobackend', 'http')" >/dev/null ||
	bail "cannot register the backends and types"

LOCAL_TOKEN=s3cret-t0ken MODAL_URL="$U2/modal" MODAL_TOKEN=m0dal-t0ken RAY_URL="$U2" \
	dwad_start d1 --concurrency 32 || bail "dwad d1 did not start"
R1='{"attempts": 1}'
R2='{"attempts": 2, "backoff": {"initialMs": 100}}'
col() { sql "SELECT $2 FROM dwa.tasks WHERE id = $1"; }
stepcol() { sql "SELECT $2 FROM dwa.steps WHERE task_id = $1"; }

# --- the request, the token, plain and enveloped results --------------------
who=$(submit '{"type": "t.whoami", "payload": {"q": [1, 2]}}')
wait_until 10 task_done "$who"
is "$(task_status "$who")" completed "a backend step completes"
is "$(col "$who" "result ->> 'authorization'")" "Bearer s3cret-t0ken" \
	"the bearer token of the backend's variable is sent"
is "$(col "$who" "(result ->> 'body')::jsonb - 'runId'")" \
	"{\"type\": \"t.whoami\", \"input\": {\"q\": [1, 2]}, \"stepId\": \"0\", \"taskId\": $who, \"attempt\": 1}" \
	"the body is {type, input, taskId, stepId, attempt, runId}"
is "$(col "$who" "(result ->> 'body')::jsonb ->> 'runId' = (SELECT run_id::text FROM dwa.steps WHERE task_id = $who)
    AND result #>> '{headers,x-dwa-run-id}' = (SELECT run_id::text FROM dwa.steps WHERE task_id = $who)")" t \
	"with the run id, also in X-DWA-Run-Id"
grep -q "s3cret-t0ken" "$T_TMP/d1.log"
ok $(( ! $? )) "the token is never logged"
is "$(sql "SELECT count(*) FROM dwa.backends WHERE row_to_json(backends)::text LIKE '%t0ken%'")" 0 \
	"nor stored: dwa.backends holds only the variable's name"

echo1=$(submit '{"type": "t.echo", "payload": {"a": "b"}}')
env1=$(submit '{"type": "t.envelope", "payload": {"n": 5}}')
wait_until 10 task_done "$echo1"
wait_until 10 task_done "$env1"
is "$(col "$echo1" "status || ' ' || result::text")" 'completed {"a": "b"}' "a plain 2xx answer is the result"
is "$(col "$env1" "status || ' ' || result::text")" 'completed {"n": 5}' \
	"a success envelope's data is the result"

# --- failures ----------------------------------------------------------------
tf=$(submit "{\"type\": \"t.fail\", \"payload\": {\"kind\": \"transient\", \"message\": \"gpu busy\"}, \"retry\": $R2}")
pf=$(submit "{\"type\": \"t.fail\", \"payload\": {\"kind\": \"permanent\", \"message\": \"bad image\"}, \"retry\": $R2}")
s500=$(submit "{\"type\": \"t.status\", \"payload\": {\"status\": 500, \"body\": \"kaput\"}, \"retry\": $R2}")
s404=$(submit "{\"type\": \"t.status\", \"payload\": {\"status\": 404, \"body\": \"no such route\"}, \"retry\": $R2}")
s400=$(submit "{\"type\": \"t.status\", \"payload\": {\"status\": 400, \"body\": {\"status\": \"failure\",
  \"error\": {\"code\": \"PERMANENT_ERROR\", \"message\": \"input.url is missing\"}}}, \"retry\": $R2}")
nt=$(submit "{\"type\": \"t.echo\", \"backend\": \"notoken\", \"payload\": {}, \"retry\": $R2}")
nb=$(submit "{\"type\": \"t.echo\", \"backend\": \"nowhere\", \"payload\": {}, \"retry\": $R2}")
nn=$(submit "{\"type\": \"t.nobackend\", \"retry\": $R2}")
for t in $tf $pf $s500 $s404 $s400 $nt $nb $nn; do wait_until 15 task_done "$t"; done
is "$(stepcol "$tf" "status || ' ' || attempt || ' ' || error")" "failed 2 HTTP 503: gpu busy (after 2 attempts)" \
	"a TransientError is retried, then fails with its message"
is "$(stepcol "$pf" "status || ' ' || attempt || ' ' || error")" "failed 1 HTTP 422: bad image" \
	"a PermanentError fails at once"
is "$(stepcol "$s500" "status || ' ' || attempt || ' ' || error")" "failed 2 HTTP 500: kaput (after 2 attempts)" \
	"a 500 is transient"
is "$(stepcol "$s404" "status || ' ' || attempt || ' ' || error")" "failed 1 HTTP 404: no such route" \
	"a 404 is permanent"
is "$(stepcol "$s400" "status || ' ' || attempt || ' ' || error")" "failed 1 HTTP 400: input.url is missing" \
	"a 400's failure envelope gives the message"
is "$(stepcol "$nt" "status || ' ' || attempt || ' ' || error")" "failed 1 HTTP 401: unauthorized: missing or wrong bearer token" \
	"a backend without its token gets a 401: permanent"
like "$(stepcol "$nb" "status || ' ' || attempt || ' ' || error")" '^failed 1 no backend "nowhere" in dwa.backends' \
	"a backend that is not defined fails at once, naming it"
like "$(stepcol "$nn" "status || ' ' || attempt || ' ' || error")" '^failed 1 .*names none' \
	"a type with no backend at all fails at once, saying so"

# --- 429 + Retry-After pauses the backend for everyone ------------------------
rl=$(submit "{\"type\": \"t.status\", \"backend\": \"rl\", \"payload\": {\"status\": 429, \"retryAfter\": 3}, \"retry\": $R2}")
wait_until 10 sql_true "SELECT paused_until IS NOT NULL FROM dwa.limits WHERE key = 'backend:rl'"
ok $? "a 429 with Retry-After: 3 pauses the key backend:rl"
PAUSED=$(sql "SELECT paused_until FROM dwa.limits WHERE key = 'backend:rl'")
is "$(sql "SELECT '$PAUSED'::timestamptz - now() BETWEEN interval '1.5 s' AND interval '3.1 s'")" t \
	"for about 3 s"
is "$(stepcol "$rl" "status || ' ' || attempt || ' ' || (run_after >= '$PAUSED'::timestamptz - interval '10 ms')")" \
	"ready 0 true" "the step waits for it without spending an attempt"
after=$(submit '{"type": "t.echo", "backend": "rl", "payload": {"later": true}}')
wait_until 10 task_done "$after"
is "$(stepcol "$after" "started_at >= '$PAUSED'")" t \
	"another step of that backend starts only once the pause is over"
sql "SELECT dwa.cancel($rl)" >/dev/null

# --- NDJSON streaming ---------------------------------------------------------
st=$(submit '{"type": "t.stream", "payload": {"gapMs": 700}}')
wait_until 10 sql_true "SELECT progress = 25 AND status = 'running' FROM dwa.steps WHERE task_id = $st"
ok $? "streamed progress reaches the step while it runs"
wait_until 10 sql_true "SELECT count(*) = 1 FROM dwa.events WHERE task_id = $st AND event = 'partial'"
ok $? "a streamed event is recorded in dwa.events while it runs"
is "$(sql "SELECT payload::text FROM dwa.events WHERE task_id = $st AND event = 'partial'")" \
	'{"n": 1}' "with its data"
wait_until 10 task_done "$st"
is "$(col "$st" "status || ' ' || result::text")" 'completed {"done": true}' \
	"the stream's last line is the result"
stf=$(submit '{"type": "t.stream", "payload": {"fail": "permanent"}}')
wait_until 10 task_done "$stf"
is "$(stepcol "$stf" "status || ' ' || error")" "failed t.stream: failed after the event" \
	"a failure envelope at the end of a stream fails the step"

# --- a hanging backend, a slow one --------------------------------------------
hang=$(submit "{\"type\": \"t.sleep\", \"backend\": \"slow\", \"payload\": {\"seconds\": 30}, \"retry\": $R1}")
slow=$(submit '{"type": "t.sleep", "payload": {"seconds": 3}}')
sleep 0.3
t0=$(date +%s%N)
quick=""
for i in 1 2 3 4 5; do quick="$quick $(submit "{\"type\": \"t.echo\", \"payload\": {\"i\": $i}}")"; done
for t in $quick; do wait_until 10 task_done "$t"; done
t1=$(date +%s%N)
is "$(task_status "$slow")" running "a slow backend step is still running"
ok $([ $(( (t1 - t0) / 1000000 )) -lt 2000 ] && echo 0 || echo 1) \
	"while 5 other steps completed ($(( (t1 - t0) / 1000000 )) ms)"
wait_until 10 task_done "$hang"
is "$(stepcol "$hang" "status || ' ' || (finished_at - started_at < interval '3 s')")" "failed true" \
	"a hanging backend hits the backend's 1 s timeout"
like "$(stepcol "$hang" error)" "[Tt]imeout|timed out" "the error says it timed out"
wait_until 10 task_done "$slow"
is "$(col "$slow" "status || ' ' || ((result ->> 'slept')::numeric = 3)")" 'completed true' "the slow step completes"

# --- cancellation closes the connection ----------------------------------------
# Established TCP connections to backend b2 (its own port: nothing else
# talks to it).
conns() {
	awk -v p="$(printf ':%04X' "$PORT_b2")" '$3 ~ p"$" && $4 == "01" { n++ } END { print n + 0 }' \
	    /proc/net/tcp
}
can=$(submit '{"type": "t.sleep", "backend": "other", "payload": {"seconds": 30}}')
wait_until 10 sql_true "SELECT status = 'running' FROM dwa.steps WHERE task_id = $can"
wait_until 5 test "$(conns)" -ge 1
ok $? "a request is in flight to the backend ($(conns) connection)"
sql "SELECT dwa.cancel($can)" >/dev/null
wait_until 5 test "$(conns)" = 0
ok $? "cancelling the task closes it at once"
like "$(grep "task $can " "$T_TMP/d1.log" | tail -1)" "task cancelled: stopping" "dwad says so"

# --- backends from the environment --------------------------------------------
is "$(sql "SELECT string_agg(name || ' ' || url || ' ' || coalesce(token_env, '-'), ', ' ORDER BY name)
    FROM dwa.backends WHERE name IN ('modal', 'ray')")" \
	"modal $U2/modal MODAL_TOKEN, ray $U2 -" "MODAL_URL/MODAL_TOKEN and RAY_URL define modal and ray"
run env MODAL_URL="ftp://nowhere" "$DWAD" --name bad
is "$RC" 1 "a bad MODAL_URL stops dwad at start"
like "$ERR" "MODAL_URL: url: must be an http:// or https:// URL" "with a message naming the variable"

# --- a backend's concurrency cap ------------------------------------------------
sql "SELECT dwa.backend_set('local', '$U1', 'LOCAL_TOKEN', '10 s', 2)" >/dev/null
is "$(sql "SELECT max_concurrency FROM dwa.limits WHERE key = 'backend:local'")" 2 \
	"a backend's max_concurrency caps its limit key"
sql "SELECT count(dwa.submit('{\"type\": \"t.sleep\", \"payload\": {\"seconds\": 0.4}}'::jsonb)) FROM generate_series(1, 6)" >/dev/null
wait_until 20 sql_true "SELECT count(*) = 0 FROM dwa.tasks WHERE type = 't.sleep' AND status IN ('queued', 'running')"
ok $? "six steps under the cap complete"
is "$(sql "SELECT max(n) FROM (SELECT (SELECT count(*) FROM dwa.steps b WHERE b.task = 't.sleep'
    AND b.backend = 'local' AND b.started_at <= a.started_at AND b.finished_at > a.started_at) AS n
    FROM dwa.steps a WHERE a.task = 't.sleep' AND a.backend = 'local' AND a.started_at > now() - interval '1 min'
      AND (a.input ->> 'seconds')::numeric < 1) x")" 2 \
	"never more than 2 ran at once on the backend"
sql "SELECT dwa.backend_set('local', '$U1', 'LOCAL_TOKEN', '10 s')" >/dev/null
is "$(sql "SELECT count(*) FROM dwa.limits WHERE key = 'backend:local'")" 0 \
	"removing the cap removes the key"

kill -0 "$(dwad_pid d1)"
ok $? "dwad is still running"
