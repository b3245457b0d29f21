#!/bin/sh
# http-request.sh: the http.request built-in against a local receiver:
# method, headers and body sent; status, headers and body returned (JSON
# parsed); 4xx is an answer, 5xx and refused connections are transient;
# a 429's Retry-After delays the retry; bad input fails at once.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 14

db_setup
receiver_start r1 || bail "receiver did not start"
url=$(receiver_url r1)
dwad_start d1 || bail "dwad did not start"

col() { sql "SELECT $2 FROM dwa.tasks WHERE id = $1"; }

receiver_mode r1 200
post=$(submit "{\"type\": \"http.request\", \"payload\": {\"url\": \"$url/hook?x=1\",
  \"method\": \"PUT\", \"headers\": {\"X-Test\": \"yes\"}, \"body\": {\"n\": 42}}}")
wait_until 10 task_done "$post"
is "$(task_status "$post")" completed "a PUT with a JSON body completes"
is "$(col "$post" "result ->> 'status'")" 200 "its output holds the status"
like "$(col "$post" "result -> 'headers' ->> 'content-type'")" "json" "and the answer's headers"
like "$(col "$post" "jsonb_typeof(result -> 'body')")" "object" "a JSON answer is parsed"
is "$(recorded r1 "r['path'] == '/hook?x=1'" "r['method'] + ' ' + r['headers'].get('x-test', '') + ' ' + r['body']")" \
	'PUT yes {"n":42}' "the receiver got the method, the header and the body"

receiver_mode r1 404
nf=$(submit "{\"type\": \"http.request\", \"payload\": {\"url\": \"$url/missing\"}}")
wait_until 10 task_done "$nf"
is "$(task_status "$nf")/$(col "$nf" "result ->> 'status'")" completed/404 "a 404 is an answer, not a failure"

receiver_mode r1 500
se=$(submit "{\"type\": \"http.request\", \"payload\": {\"url\": \"$url/boom\"},
  \"retry\": {\"attempts\": 2, \"backoff\": {\"initialMs\": 100}}}")
wait_until 15 task_done "$se"
is "$(task_status "$se")/$(sql "SELECT attempt FROM dwa.steps WHERE task_id = $se")" failed/2 \
	"a 500 is transient: retried, then failed"
like "$(col "$se" error)" "HTTP 500" "the error names the status"

receiver_mode r1 429:2
rl=$(submit "{\"type\": \"http.request\", \"payload\": {\"url\": \"$url/limited\"},
  \"retry\": {\"attempts\": 2, \"backoff\": {\"initialMs\": 100}}}")
wait_until 10 sql_true "SELECT status = 'ready' AND error LIKE 'HTTP 429%' FROM dwa.steps WHERE task_id = $rl"
ok $? "a 429 puts the step back to ready"
is "$(sql "SELECT attempt || ' ' || (run_after > now() + interval '1 second') FROM dwa.steps WHERE task_id = $rl")" \
	"0 true" "for its Retry-After, without spending an attempt"
receiver_mode r1 200
wait_until 15 task_done "$rl"
is "$(task_status "$rl")" completed "and it completes once the receiver answers"

refused=$(submit '{"type": "http.request", "payload": {"url": "http://127.0.0.1:1/"},
  "retry": {"attempts": 1}}')
wait_until 10 task_done "$refused"
like "$(task_status "$refused")/$(col "$refused" error)" "^failed/.*(refused|connect)" \
	"a refused connection fails with the network error"

bad=$(submit '{"type": "http.request", "payload": {"url": "ftp://example/"}}')
wait_until 10 task_done "$bad"
is "$(col "$bad" error)" 'step "0": http.request: input.url must be an http(s) URL' \
	"a bad url fails the step permanently, with the field named"
kill -0 "$(dwad_pid d1)"
ok $? "dwad is unaffected"
