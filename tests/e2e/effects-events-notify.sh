#!/bin/sh
# effects-events-notify.sh: toast, emit and redirect are stored in
# dwa.events and sent on NOTIFY dwa_events when the state change commits,
# with the exact payload {"task_id", "event", "id", "data"}; nothing is
# sent for a rolled-back change.  PostgreSQL refuses NOTIFY payloads of
# 8000 bytes or more: a payload of 7999 bytes is sent whole, one of 8000
# (or 100 kB) without its "data" (a listener reads it from dwa.events by
# id), and the state change goes through either way.
#
# The listener is a LISTEN session over libpq (ctypes), not dwad: what any
# UI backend would see.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 16

db_setup
sql "INSERT INTO dwa.task_types (name, executor) VALUES ('t.ui', 'worker')" >/dev/null ||
    bail "cannot register t.ui"

# The listener: one JSON line {"channel", "payload"} per notification, to
# $T_TMP/notify.log; $T_TMP/notify.ready once it listens.
cat >"$T_TMP/listen.py" <<'PY'
import ctypes, ctypes.util, json, select, sys, time

class PGnotify(ctypes.Structure):
    _fields_ = [("relname", ctypes.c_char_p), ("be_pid", ctypes.c_int),
                ("extra", ctypes.c_char_p)]

pq = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQconnectdb.argtypes = [ctypes.c_char_p]
pq.PQstatus.argtypes = [ctypes.c_void_p]
pq.PQerrorMessage.restype = ctypes.c_char_p
pq.PQerrorMessage.argtypes = [ctypes.c_void_p]
pq.PQexec.restype = ctypes.c_void_p
pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQresultStatus.argtypes = [ctypes.c_void_p]
pq.PQclear.argtypes = [ctypes.c_void_p]
pq.PQsocket.argtypes = [ctypes.c_void_p]
pq.PQconsumeInput.argtypes = [ctypes.c_void_p]
pq.PQnotifies.restype = ctypes.POINTER(PGnotify)
pq.PQnotifies.argtypes = [ctypes.c_void_p]
pq.PQfreemem.argtypes = [ctypes.c_void_p]

log, ready, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
conn = pq.PQconnectdb(b"")          # PGHOST, PGPORT, PGDATABASE, PGUSER
if pq.PQstatus(conn) != 0:
    sys.exit("connect: %s" % pq.PQerrorMessage(conn).decode())
res = pq.PQexec(conn, b"LISTEN dwa_events")
if pq.PQresultStatus(res) != 1:     # PGRES_COMMAND_OK
    sys.exit("listen: %s" % pq.PQerrorMessage(conn).decode())
pq.PQclear(res)
open(ready, "w").close()
out = open(log, "a", encoding="utf-8")
end = time.time() + seconds
while time.time() < end:
    select.select([pq.PQsocket(conn)], [], [], 0.2)
    if not pq.PQconsumeInput(conn):
        sys.exit("connection lost: %s" % pq.PQerrorMessage(conn).decode())
    while True:
        n = pq.PQnotifies(conn)
        if not n:
            break
        out.write(json.dumps({"channel": n.contents.relname.decode(),
                              "payload": n.contents.extra.decode()}) + "\n")
        out.flush()
        pq.PQfreemem(n)
PY
: >"$T_TMP/notify.log"
python3 "$T_TMP/listen.py" "$T_TMP/notify.log" "$T_TMP/notify.ready" 90 \
    2>"$T_TMP/listener.log" &
T_PIDS="$T_PIDS $!"
wait_until 10 test -e "$T_TMP/notify.ready" || bail "the listener did not start"

# notes [FILTER]: the payloads received, in order (FILTER: a grep -E on them).
notes() { python3 -c 'import json, sys
for l in open(sys.argv[1]): print(json.loads(l)["payload"])' "$T_TMP/notify.log" | grep -E -- "${1:-.}"; }
nnotes() { notes "$@" | wc -l | tr -d ' '; }
has_notes() { [ "$(nnotes "$2")" -ge "$1" ]; }
# event_id TASK EVENT: the id of the task's dwa.events row of that kind.
event_id() { sql "SELECT id FROM dwa.events WHERE task_id = $1 AND event = '$2'"; }
# complete TASK RESULT: claim the ready t.ui steps, complete the task's,
# through SQL.
complete() {
	sql "SELECT dwa.complete((SELECT run_id FROM dwa.claim('w', ARRAY['t.ui'], 100)
	     WHERE task_id = $1), '$(printf '%s' "$2" | sed "s/'/''/g")'::jsonb)"
}

# --- toast at submission, emit and redirect on success -----------------------

A=$(submit '{"type": "t.ui", "payload": {"who": "ann"},
  "onPending": [{"$event": "toast", "text": "Queued {{task.id}}", "variant": "info"}],
  "onSuccess": [{"$event": "emit", "event": "finished", "data": {"n": "{{result.n}}", "who": "{{payload.who}}"}},
                {"$event": "redirect", "url": "/tasks/{{task.id}}"}]}')
like "$A" '^[0-9]+$' "a task with a toast, an emit and a redirect is accepted"
wait_until 10 has_notes 1 "\"task_id\" : $A,"
is "$(notes "\"task_id\" : $A,")" \
    "{\"task_id\" : $A, \"event\" : \"toast\", \"id\" : $(event_id "$A" toast), \"data\" : {\"text\": \"Queued $A\", \"variant\": \"info\"}}" \
    "the toast is sent on dwa_events when the task is accepted, with its dwa.events id and rendered data"
is "$(complete "$A" '{"n": 3}')" t "the task completes"
wait_until 10 has_notes 3 "\"task_id\" : $A,"
is "$(notes "\"task_id\" : $A," | sed 1d)" \
    "{\"task_id\" : $A, \"event\" : \"emit\", \"id\" : $(event_id "$A" emit), \"data\" : {\"data\": {\"n\": 3, \"who\": \"ann\"}, \"event\": \"finished\"}}
{\"task_id\" : $A, \"event\" : \"redirect\", \"id\" : $(event_id "$A" redirect), \"data\" : {\"url\": \"/tasks/$A\"}}" \
    "then the emit and the redirect, in effect order, their templates rendered"
is "$(python3 -c 'import json, sys
print(sorted({json.loads(l)["channel"] for l in open(sys.argv[1])}))' "$T_TMP/notify.log")" \
    "['dwa_events']" "all on channel dwa_events"
is "$(sql "SELECT string_agg(event || ' ' || payload::text, '; ' ORDER BY id) FROM dwa.events WHERE task_id = $A")" \
    "toast {\"text\": \"Queued $A\", \"variant\": \"info\"}; emit {\"data\": {\"n\": 3, \"who\": \"ann\"}, \"event\": \"finished\"}; redirect {\"url\": \"/tasks/$A\"}" \
    "dwa.events holds the same three payloads, in order"

# --- a rolled-back change sends nothing ----------------------------------------

N=$(nnotes)
psql -X -q -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<'SQL'
BEGIN;
SELECT dwa.submit('{"type": "noop", "onPending": [{"$event": "toast", "text": "never"}]}');
ROLLBACK;
SQL
B=$(submit '{"type": "noop", "onPending": [{"$event": "toast", "text": "after"}]}')
wait_until 10 has_notes $((N + 1))
is "$(notes | sed "1,${N}d" | sed 's/"id" : [0-9]*/"id" : _/')" \
    "{\"task_id\" : $B, \"event\" : \"toast\", \"id\" : _, \"data\" : {\"text\": \"after\"}}" \
    "a toast whose transaction rolled back is never sent (the next one comes first and alone)"
is "$(sql "SELECT count(*) FROM dwa.events WHERE payload ->> 'text' = 'never'")" 0 "nor stored"

# --- payloads at NOTIFY's limit ------------------------------------------------

# big_task: a task whose onSuccess emits {"event": "big", "data": "{{result.s}}"}.
big_task() {
	submit '{"type": "t.ui", "onSuccess": [{"$event": "emit", "event": "big", "data": "{{result.s}}"}]}'
}
# pad TASK BYTES: the length of result.s that makes the task's emit
# notification exactly BYTES bytes long, given the next dwa.events id.
pad() {
	sql "SELECT $2 - octet_length(json_build_object('task_id', $1, 'event', 'emit',
	    'id', (SELECT last_value + 1 FROM dwa.events_id_seq), 'data',
	    '{\"data\": \"\", \"event\": \"big\"}'::jsonb)::text)"
}
# xs N: N x's.
xs() { python3 -c 'import sys; print("x" * int(sys.argv[1]))' "$1"; }

C=$(big_task)
LEN=$(pad "$C" 7999)
is "$(complete "$C" "{\"s\": \"$(xs "$LEN")\"}")" t \
    "a task emitting a payload whose notification takes 7999 bytes completes"
wait_until 10 has_notes 1 "\"task_id\" : $C,"
is "$(notes "\"task_id\" : $C," | python3 -c 'import json, sys
p = sys.stdin.read().rstrip("\n"); j = json.loads(p)
print(len(p.encode()), j["id"], j["data"]["event"], len(j["data"]["data"]))')" \
    "7999 $(event_id "$C" emit) big $LEN" \
    "its notification is sent whole: 7999 bytes, with its id and data"

D=$(big_task)
LEN=$(pad "$D" 8000)
is "$(complete "$D" "{\"s\": \"$(xs "$LEN")\"}")" t \
    "a task emitting a payload whose notification would take 8000 bytes completes"
wait_until 10 has_notes 1 "\"task_id\" : $D,"
is "$(notes "\"task_id\" : $D,")" \
    "{\"task_id\" : $D, \"event\" : \"emit\", \"id\" : $(event_id "$D" emit)}" \
    "its notification leaves the data out, naming the dwa.events row"
is "$(sql "SELECT length(payload ->> 'data') || ' ' || (payload ->> 'event') FROM dwa.events WHERE task_id = $D")" \
    "$LEN big" "the row holds the whole payload"

E=$(big_task)
is "$(complete "$E" "{\"s\": \"$(xs 100000)\"}")" t "a task emitting 100 kB completes"
wait_until 10 has_notes 1 "\"task_id\" : $E,"
is "$(notes "\"task_id\" : $E,")" \
    "{\"task_id\" : $E, \"event\" : \"emit\", \"id\" : $(event_id "$E" emit)}" \
    "its notification leaves the data out too"
is "$(sql "SELECT status || ' ' || length(result ->> 's') || ' ' ||
    (SELECT length(payload ->> 'data') FROM dwa.events WHERE task_id = $E) FROM dwa.tasks WHERE id = $E")" \
    "completed 100000 100000" "the task's result and the dwa.events row are whole"

if [ "$T_FAILED" != 0 ]; then
	diag "notifications:"
	cut -c 1-300 "$T_TMP/notify.log" | sed 's/^/#   /'
fi
