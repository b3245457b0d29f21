#!/bin/sh
# backends-reference.sh: the reference HTTP backend (contrib/backends) on its
# own, no database: its reference task types, plain answers, envelopes and
# raw statuses, failures with their statuses and messages, NDJSON streams
# that arrive line by line, the bearer token, bad requests, /health, /tasks,
# concurrency and keep-alive; and that the Modal and Ray apps compile.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/e2e/backend/backend.sh"
plan 56

export PYTHONDONTWRITEBYTECODE=1
CLIENT="python3 $top_srcdir/tests/e2e/backend/client.py"
unset DWA_BACKEND_TOKEN
export DWA_TEST_CALLS="$T_TMP/calls"

backend_start b1 || bail "backend did not start"
U=$(backend_url b1)
like "$(cat "$T_TMP/b1.out")" '^listening on 127\.0\.0\.1:[1-9][0-9]*$' \
	"with --port 0 it prints the port it bound"

# post TYPE INPUT EXPR...: POST {"type", "input"} to / and print EXPRs.
post() {
	local type=$1 input=$2 n
	shift 2
	n=$#
	while [ "$n" -gt 0 ]; do
		set -- "$@" --expr "$1"
		shift
		n=$((n - 1))
	done
	$CLIENT "$U/" --data "{\"type\": \"$type\", \"input\": $input, \"taskId\": 7,
	    \"stepId\": \"s\", \"attempt\": 1, \"runId\": 11}" "$@"
}

# --- health and the catalogue ----------------------------------------------
is "$($CLIENT "$U/health" --get --expr s --expr t)" '200
{"status": "ok"}' "GET /health"
is "$($CLIENT "$U/tasks" --get --expr "[x['name'] for x in b['tasks'] if not x['name'].startswith('t.')]")" \
	'["embed.text","image.describe","text.chat","text.summarize"]' "GET /tasks lists the reference types"
is "$($CLIENT "$U/tasks" --get --expr "[(x['tags'],x['streaming'],bool(x['description'])) for x in b['tasks'] if x['name'] in ('text.chat','t.echo')]")" \
	'[[["test"],false,true],[["text","chat"],true,true]]' \
	"with their tags, whether they stream, a description; and the --module ones"
like "$($CLIENT "$U/tasks" --get --expr "[x['description'] for x in b['tasks'] if x['name']=='text.chat'][0]")" \
	"rule-based.*no model" "text.chat says it is rule-based"

# --- reference task types --------------------------------------------------
text="The engine stores every task in PostgreSQL. Steps run on daemons that lease them. \
The weather was pleasant. A daemon that dies loses its lease, and another daemon runs the step. \
Lunch was soup."
is "$(post text.summarize "{\"text\": \"$text\", \"sentences\": 2}" s "b['sentences']" "b['count']")" \
	'200
["The engine stores every task in PostgreSQL.","A daemon that dies loses its lease, and another daemon runs the step."]
5' "text.summarize keeps the sentences of the frequent words, in order"
is "$(post text.summarize '{"text": 42}' s "b['error']['code']" "b['error']['message']")" \
	'422
PERMANENT_ERROR
input.text must be a string' "text.summarize: bad input is permanent and names the field"

is "$(post embed.text '{"text": "durable tasks on postgres"}' s "b['dim']" "len(b['embedding'])" \
	"round(sum(x*x for x in b['embedding']),4)")" '200
64
64
1.0' "embed.text: 64 numbers of unit length"
e1=$(post embed.text '{"text": "durable tasks on postgres"}' "b['embedding']")
e2=$(post embed.text '{"texts": ["durable tasks on postgres", "lunch was soup"]}' "b['embeddings'][0]")
e3=$(post embed.text '{"texts": ["durable tasks on postgres", "lunch was soup"]}' "b['embeddings'][1]")
ok $([ "$e1" = "$e2" ] && [ "$e1" != "$e3" ]; echo $?) \
	"the same text gives the same vector, another text another one"
is "$(post embed.text '{"text": "x", "dim": 4}' s "b['error']['message']")" '422
input.dim must be between 8 and 4096' "embed.text: a bad dim is refused"

is "$(post text.chat '{"prompt": "hello there"}' s "h['content-type']" \
	"''.join(x['data']['text'] for x in b if x.get('event')=='delta')==b[-1]['result']['reply']" \
	"b[-1]['result']['model']" "[x['progress'] for x in b if 'progress' in x][-1]")" '200
application/x-ndjson
true
rule-based
100.0' "text.chat streams its reply as delta events, the whole reply last"
like "$(post text.chat '{"messages": [{"role": "user", "content": "how do leases expire?"}]}' \
	"b[-1]['result']['reply']")" "^You asked about .*leases.*rule-based" \
	"text.chat answers the last user message by rule"
is "$(post text.chat '{"messages": []}' s "b['error']['message']")" '422
input.messages has no user message with a string content' "text.chat: no user message is refused"

convert -size 40x20 xc:'#ff0000' "$T_TMP/red.png" 2>/dev/null &&
    convert -size 10x30 xc:'#202020' "$T_TMP/dark.jpg" 2>/dev/null ||
    bail "ImageMagick's convert cannot make test images"
is "$(post image.describe "{\"path\": \"$T_TMP/red.png\"}" s "[b['width'],b['height'],b['format'],b['color'],b['brightness']]" \
	"b['description']")" '200
[40,20,"png","#ff0000",0.213]
a dark, mostly red landscape PNG image, 40x20' \
	"image.describe: size, format, mean colour, brightness of a PNG"
is "$(post image.describe "{\"path\": \"$T_TMP/dark.jpg\"}" "[b['width'],b['height'],b['format'],b['color']]" \
	"b['description']")" '[10,30,"jpeg","#202020"]
a dark, black portrait JPEG image, 10x30' "and of a JPEG"
python3 -m http.server --bind 127.0.0.1 --directory "$T_TMP" 0 >"$T_TMP/files.out" 2>&1 &
T_PIDS="$T_PIDS $!"
wait_until 10 grep -q 'port [0-9]' "$T_TMP/files.out"
fport=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$T_TMP/files.out" | head -n 1)
is "$(post image.describe "{\"url\": \"http://127.0.0.1:$fport/red.png\"}" "b['color']")" '#ff0000' \
	"image.describe fetches input.url"
is "$(post image.describe "{\"path\": \"$T_TMP/none.png\"}" s "b['error']['message']")" "422
input.path: no such file: $T_TMP/none.png" "image.describe: a missing file is permanent"
printf 'not an image' >"$T_TMP/bad.png"
like "$(post image.describe "{\"path\": \"$T_TMP/bad.png\"}" "str(s)+' '+b['error']['message']")" \
	"^422 image\.describe: identify: .*improper image header .*bad\.png" "a file that is no image: identify's message"

# --- plain answers, envelopes, raw statuses --------------------------------
is "$(post t.echo '{"a": [1, "x"]}' s "h['content-type']" t)" '200
application/json
{"a":[1,"x"]}' "a plain result is the body, as JSON"
is "$(post t.echo '{"status": "success", "data": 1}' b)" '{"data":{"data":1,"status":"success"},"status":"success"}' \
	"a result that reads like an envelope is sent inside one"
is "$($CLIENT "$U/t.echo" --data '{"input": {"q": 1}}' --expr b)" '{"q":1}' \
	"POST /TYPE routes by the path"
is "$($CLIENT "$U/t.echo" --data '{"type": "t.fail", "input": {"q": 2}}' --expr b)" '{"q":2}' \
	"the path wins over the body's type"
is "$(post t.envelope '{"a": 1}' s t)" '200
{"status":"success","data":{"a":1}}' "t.envelope: a success envelope"
is "$(post t.status '{"status": 429, "retryAfter": 3, "body": "slow down"}' s "h['retry-after']" t)" '429
3
slow down' "t.status: a raw status, Retry-After and body"
is "$(post t.status '{"status": 502, "body": {"x": 1}}' s "h['content-type']" b)" '502
application/json
{"x":1}' "a raw JSON body"

# --- failures ----------------------------------------------------------------
is "$(post t.fail '{"kind": "transient", "message": "gpu busy", "retryAfterMs": 1500}' s "h['retry-after']" t)" '503
2
{"status":"failure","error":{"code":"TRANSIENT_ERROR","message":"gpu busy","retryAfterMs":1500}}' "TransientError: 503, a transient envelope, Retry-After rounded up to seconds"
is "$(post t.fail '{"kind": "transient"}' s "'retry-after' in h" "b['error']")" '503
false
{"code":"TRANSIENT_ERROR","message":"t.fail: transient failure"}' "no Retry-After when none was given"
is "$(post t.fail '{"kind": "permanent", "message": "bad clip"}' s t)" '422
{"status":"failure","error":{"code":"PERMANENT_ERROR","message":"bad clip"}}' "PermanentError: 422 and a permanent envelope"
is "$(post t.crash '{}' s "b['error']")" '500
{"code":"TRANSIENT_ERROR","message":"RuntimeError: t.crash: boom"}' \
	"any other exception: 500, transient, with its type and message"
like "$(cat "$T_TMP/b1.log")" 'RuntimeError: t.crash: boom' "and its traceback is logged"

# --- streams -------------------------------------------------------------------
is "$(post t.stream '{"gapMs": 400}' s "h['content-type']" "h.get('transfer-encoding')" t \
	"ms[-1]-ms[0]>=1000" "ms[0]<300")" '200
application/x-ndjson
chunked
{"progress":25}
{"event":"partial","data":{"n":1}}
{"progress":75}
{"result":{"done":true}}

true
true' "a generator streams NDJSON line by line: the first line long before the last"
is "$(post t.stream '{"fail": "transient", "retryAfterMs": 700}' s t)" '200
{"progress":25}
{"event":"partial","data":{"n":1}}
{"status":"failure","error":{"code":"TRANSIENT_ERROR","message":"t.stream: failed after the event","retryAfterMs":700}}' "a failure in a stream is its last line, an envelope"
is "$(post t.progress '{"gapMs": 400}' "h['content-type']" t "ms[-1]-ms[0]>=300")" 'application/x-ndjson
{"progress":50}
{"result":{"ok":true}}

true' "a plain handler that reports progress streams too"

# --- requests as received ----------------------------------------------------
is "$($CLIENT "$U/" --token s3cret --data '{"type": "t.whoami", "input": {"k": "é"}}' \
	--expr "b['authorization']" --expr "b['body']" --expr "b['headers']['content-type']")" \
	'Bearer s3cret
{"type": "t.whoami", "input": {"k": "é"}}
application/json' "t.whoami: the Authorization header and the body as received"
is "$(post t.whoami '{}' "b['authorization']")" 'null' "no token, no Authorization"
: >"$DWA_TEST_CALLS"
post t.count '{}' b >/dev/null
$CLIENT "$U/" --data '{"type": "t.count", "runId": 12, "taskId": 7, "stepId": "e", "attempt": 2,
    "itemIndex": 3}' >/dev/null
is "$(cat "$DWA_TEST_CALLS")" '{"runId":11,"taskId":7,"stepId":"s","attempt":1,"itemIndex":null}
{"runId":12,"taskId":7,"stepId":"e","attempt":2,"itemIndex":3}' "t.count records each call"

# --- bad requests --------------------------------------------------------------
is "$(post no.such '{}' s "b['error']")" '404
{"code":"PERMANENT_ERROR","message":"unknown task type \"no.such\""}' "an unknown type: 404, permanent"
is "$($CLIENT "$U/" --data '{"type": ' --expr s --expr "b['error']['message']")" '400
bad request: body is not JSON: Expecting value: line 1 column 10 (char 9)' "bad JSON: 400 with the parser's message"
is "$($CLIENT "$U/" --data '[1]' --expr s --expr "b['error']['message']")" '400
bad request: body must be a JSON object' "a body that is no object: 400"
is "$($CLIENT "$U/" --data '{"input": {}}' --expr s --expr "b['error']['message']")" '400
bad request: body has no type' "a body without a type: 400"
is "$($CLIENT "$U/nowhere" --get --expr s)" 404 "GET of another path: 404"

# --- the token -------------------------------------------------------------
DWA_BACKEND_TOKEN=s3cret backend_start b2 || bail "backend b2 did not start"
U2=$(backend_url b2)
is "$($CLIENT "$U2/" --data '{"type": "t.echo", "input": 1}' --expr s --expr "h.get('www-authenticate')" --expr t)" '401
Bearer
{"status":"failure","error":{"code":"PERMANENT_ERROR","message":"unauthorized: missing or wrong bearer token"}}' "with DWA_BACKEND_TOKEN set, no token: 401 and a permanent envelope"
is "$($CLIENT "$U2/" --token wrong --data '{"type": "t.echo", "input": 1}' --expr s)" 401 "a wrong token: 401"
is "$($CLIENT "$U2/" --token s3cret --data '{"type": "t.echo", "input": 1}' --expr s --expr t)" '200
1' "the right token: the answer"
is "$($CLIENT "$U2/tasks" --get --expr s)/$($CLIENT "$U2/tasks" --get --token s3cret --expr s)/$($CLIENT "$U2/health" --get --expr s)" \
	401/200/200 "/tasks wants the token, /health does not"

# --- concurrency, keep-alive, a client that goes away ---------------------
start=$(date +%s%N)
pids=""
for i in 1 2 3 4; do
	post t.sleep '{"seconds": 1}' s >"$T_TMP/sleep$i" &
	pids="$pids $!"
done
wait $pids
took=$(( ($(date +%s%N) - start) / 1000000 ))
is "$(cat "$T_TMP"/sleep1 "$T_TMP"/sleep2 "$T_TMP"/sleep3 "$T_TMP"/sleep4 | tr '\n' ' ')" '200 200 200 200 ' \
	"four 1 s requests at once all answer"
# One after the other they take 4 s; at once about 1 s, more on a busy
# machine (four Python clients start too).
ok $([ "$took" -lt 3500 ]; echo $?) "in parallel (${took} ms, under 3,500)"
is "$($CLIENT "$U/" --data '{"type": "t.stream"}' --repeat 3 --expr "[x[0] for x in r]" --expr "[x[3][-1] for x in r]")" \
	'[200,200,200]
[{"result":{"done":true}},{"result":{"done":true}},{"result":{"done":true}}]' \
	"three streams one after the other on one connection"
is "$($CLIENT "$U/" --data '{"type": "t.echo", "input": 5}' --header 'Expect: 100-continue' --expr s --expr t)" '200
5' "a request with Expect: 100-continue"
python3 - "${U##*:}" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
body = b'{"type": "t.stream", "input": {"gapMs": 300}}'
s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
s.recv(100)
s.close()
EOF
wait_until 10 grep -q 'client went away' "$T_TMP/b1.log"
ok $? "a client that goes away mid-stream is noticed"
is "$($CLIENT "$U/health" --get --expr s)" 200 "a client that goes away mid-stream leaves the server serving"

# --- the ASGI front end of the Modal and Ray apps ---------------------------
apy=""
for py in python3 /usr/bin/python3; do
	if "$py" -c 'import starlette, uvicorn' 2>/dev/null; then
		apy=$py
		break
	fi
done
if [ -n "$apy" ]; then
	"$apy" "$top_srcdir/tests/e2e/backend/asgi_serve.py" "$top_srcdir/tests/e2e/backend/handlers.py" \
	    >"$T_TMP/asgi.out" 2>"$T_TMP/asgi.log" &
	T_PIDS="$T_PIDS $!"
	wait_until 10 grep -q '^listening on ' "$T_TMP/asgi.out"
	UA=http://127.0.0.1:$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$T_TMP/asgi.out")
	is "$($CLIENT "$UA/t.echo" --data '{"input": [1]}' --expr s --expr b)/$($CLIENT "$UA/" \
	    --data '{"type": "t.fail", "input": {"retryAfterMs": 900}}' --expr s --expr "h['retry-after']" --expr b)" \
	    '200
[1]/503
1
{"error":{"code":"TRANSIENT_ERROR","message":"t.fail: transient failure","retryAfterMs":900},"status":"failure"}' \
	    "the ASGI front answers as server.py does"
	is "$($CLIENT "$UA/" --data '{"type": "t.stream", "input": {"gapMs": 300}}' --expr "h['content-type']" \
	    --expr "b[-1]" --expr "ms[-1]-ms[0]>=700")" 'application/x-ndjson
{"result":{"done":true}}
true' "and streams line by line"
else
	for d in "the ASGI front answers as server.py does" "and streams line by line"; do
		T_N=$((T_N + 1))
		echo "ok $T_N # skip no starlette and uvicorn ($d)"
	done
fi

# --- start-up errors, the other front ends ---------------------------------
run python3 "$top_srcdir/contrib/backends/server.py" --port 0 --module "$T_TMP/none.py"
is "$RC" 1 "a missing --module: exit 1"
like "$ERR" "^server.py: cannot load $T_TMP/none.py: .*No such file" "naming the file"
for f in modal_app ray_app dwa_backend reference_tasks server; do
	python3 -c "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')" \
	    "$top_srcdir/contrib/backends/$f.py" 2>&1 || echo "$f does not compile"
done >"$T_TMP/compile"
is "$(cat "$T_TMP/compile")" "" "the Modal and Ray apps and the server compile"
