#!/bin/sh
# data-download.sh: the data.download built-in against a local file server:
# the file lands in the task's directory (per step, per forEach element),
# with its size, content type and SHA-256; a 404 fails at once, a 503 is
# retried; bad input fails at once with a message naming the field; the
# directory goes once the task has completed.
. "$(dirname "$0")/../lib/harness.sh"
plan 16

db_setup
mkdir -p "$T_TMP/www/media"
head -c 300000 /dev/urandom >"$T_TMP/www/media/clip.bin"
printf 'hello\n' >"$T_TMP/www/a.txt"
printf 'world\n' >"$T_TMP/www/b.txt"
(cd "$T_TMP/www" && exec python3 -m http.server --bind 127.0.0.1 0 >"$T_TMP/www.out" 2>"$T_TMP/www.log") &
T_PIDS="$T_PIDS $!"
wait_until 10 grep -q "port" "$T_TMP/www.out" || bail "file server did not start"
PORT=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$T_TMP/www.out")
U="http://127.0.0.1:$PORT"

export DWA_WORKDIR="$T_TMP/work"
dwad_start d1 || bail "dwad did not start"
col() { sql "SELECT $2 FROM dwa.tasks WHERE id = $1"; }
R2='{"attempts": 2, "backoff": {"initialMs": 100}}'

dl=$(submit "{\"type\": \"dl\", \"steps\": [
  {\"id\": \"get\", \"task\": \"data.download\", \"input\": {\"url\": \"$U/media/clip.bin?v=1\"}},
  {\"id\": \"hold\", \"task\": \"sleep\", \"dependsOn\": [\"get\"], \"input\": {\"ms\": 3000}}]}")
wait_until 10 sql_true "SELECT status = 'succeeded' FROM dwa.steps WHERE task_id = $dl AND step_id = 'get'"
out() { sql "SELECT output ->> '$1' FROM dwa.steps WHERE task_id = $dl AND step_id = 'get'"; }
is "$(out path)" "$DWA_WORKDIR/task-$dl/get/clip.bin" \
	"the file goes to <task dir>/<step>/<name from the URL's path>"
is "$(out bytes)" 300000 "bytes is its size"
is "$(out sha256)" "$(sha256sum "$T_TMP/www/media/clip.bin" | cut -d' ' -f1)" "sha256 is its digest"
is "$(out content_type)" "application/octet-stream" "content_type is the answer's"
cmp -s "$(out path)" "$T_TMP/www/media/clip.bin"
ok $? "the file is what the server sent"
is "$(ls -A "$DWA_WORKDIR/task-$dl/get" | wc -l)" 1 "no partial file is left beside it"
wait_until 10 task_done "$dl"
wait_until 15 test ! -e "$DWA_WORKDIR/task-$dl"
ok $? "the task's directory goes once the task has completed"

fe=$(submit "{\"type\": \"fe\", \"steps\": [{\"id\": \"each\", \"task\": \"data.download\",
  \"forEach\": [\"a.txt\", \"b.txt\"], \"input\": {\"url\": \"$U/{{item}}\", \"filename\": \"f.txt\"}}]}")
wait_until 10 task_done "$fe"
is "$(sql "SELECT string_agg(output ->> 'path', ' ' ORDER BY item_index) FROM dwa.steps
    WHERE task_id = $fe AND item_index IS NOT NULL")" \
	"$DWA_WORKDIR/task-$fe/each-0/f.txt $DWA_WORKDIR/task-$fe/each-1/f.txt" \
	"forEach elements get a directory each; filename names the file"
is "$(sql "SELECT string_agg(output ->> 'content_type', ' ' ORDER BY item_index) FROM dwa.steps
    WHERE task_id = $fe AND item_index IS NOT NULL")" "text/plain text/plain" "with their content types"

nf=$(submit "{\"type\": \"data.download\", \"payload\": {\"url\": \"$U/missing.bin\"}, \"retry\": $R2}")
wait_until 10 task_done "$nf"
is "$(sql "SELECT status || ' ' || attempt FROM dwa.steps WHERE task_id = $nf")" "failed 1" "a 404 fails at once"
like "$(col "$nf" error)" "HTTP 404" "naming the status"
ls "$DWA_WORKDIR/task-$nf/0" 2>/dev/null | grep -q .
ok $(( ! $? )) "and leaves no file"

down=$(submit "{\"type\": \"data.download\", \"payload\": {\"url\": \"http://127.0.0.1:1/x\"}, \"retry\": $R2}")
wait_until 10 task_done "$down"
is "$(sql "SELECT status || ' ' || attempt FROM dwa.steps WHERE task_id = $down")" "failed 2" \
	"a refused connection is transient: retried"

nourl=$(submit '{"type": "data.download", "payload": {"href": "x"}, "retry": {"attempts": 2}}')
badfn=$(submit "{\"type\": \"data.download\", \"payload\": {\"url\": \"$U/a.txt\", \"filename\": \"../x\"}}")
wait_until 10 task_done "$nourl"
wait_until 10 task_done "$badfn"
is "$(sql "SELECT status || ' ' || attempt || ' ' || error FROM dwa.steps WHERE task_id = $nourl")" \
	"failed 1 data.download: input.url must be an http(s) URL" "a missing url fails at once, naming the field"
like "$(sql "SELECT status || ' ' || error FROM dwa.steps WHERE task_id = $badfn")" \
	'^failed data.download: input.filename must be a file name' "a filename with a / is refused"
kill -0 "$(dwad_pid d1)"
ok $? "dwad is still running"
