#!/bin/sh
# effects-progress-spacing.sh: a step reporting progress every 30 ms for
# about 3 s, on two tasks at once, each with two onProgress webhooks: each
# webhook of each task is delivered at most once a second (consecutive
# deliveries at least 0.95 s apart at the receiver, not in pairs), its
# values in order, the last one the last reported.  Coalescing is per task
# and effect: each of the four series gets its own delivery a second, and
# the two webhooks of a task go side by side.
. "$(dirname "$0")/../lib/harness.sh"
. "$top_srcdir/tests/lib/effects.sh"
plan 14

db_setup
receiver_start r
R=$(receiver_url r)

# The step: 99 reports, 30 ms apart, then its result.
cat >"$T_TMP/reporter.sh" <<'SH'
#!/bin/sh
cat >/dev/null
i=1
while [ $i -le 99 ]; do
	echo "{\"progress\": $i}"
	sleep 0.03
	i=$((i + 1))
done
echo '{"result": {"reports": 99}}'
SH
chmod 755 "$T_TMP/reporter.sh"
sql "INSERT INTO dwa.task_types (name, executor, command)
     VALUES ('t.reporter', 'exec', ARRAY['$T_TMP/reporter.sh'])" >/dev/null ||
    bail "cannot register t.reporter"
export DWA_WORKDIR="$T_TMP/work"
mkdir -p "$DWA_WORKDIR"
dwad_start d1 || bail "dwad d1 did not start"

# reporter_task: a task whose two onProgress webhooks go to /p/ID/a and /p/ID/b.
reporter_task() {
	submit '{"type": "t.reporter", "onProgress": [
	    {"$event": "webhook", "url": "'"$R"'/p/{{task.id}}/a", "body": {"p": "{{progress}}"}},
	    {"$event": "webhook", "url": "'"$R"'/p/{{task.id}}/b", "body": {"p": "{{progress}}"}}]}'
}
A=$(reporter_task)
B=$(reporter_task)
like "$A $B" '^[0-9]+ [0-9]+$' "two tasks reporting progress are accepted"
wait_until 30 task_done "$A" && wait_until 30 task_done "$B"
is "$(task_status "$A") $(task_status "$B")" "completed completed" "both complete"
wait_until 15 outbox_settled "$A" 2 && wait_until 15 outbox_settled "$B" 2
ok $? "their onProgress deliveries settle"

# series TASK EFFECT EXPR: EXPR for each delivery of one webhook of a task,
# in the order received.
series() { recorded r "r['path'] == '/p/$1/$2'" "$3"; }
# gaps TASK EFFECT: the seconds between its consecutive deliveries.
gaps() {
	series "$1" "$2" "r['time']" |
	    awk 'NR > 1 { printf "%.3f\n", $1 - prev } { prev = $1 }'
}
SERIES="$A/a $A/b $B/a $B/b"

counts=""
for s in $SERIES; do
	counts="$counts $(nrecorded r "r['path'] == '/p/$s'")"
done
# At least 3 over 3 s (not throttled below one a second), far fewer than
# the 99 reports (the gaps below bound them by the time taken).
is "$(echo $counts | awk '{ for (i = 1; i <= NF; i++) if ($i < 3 || $i > 20) bad = 1
	print bad ? "bad" : "ok" }')" ok \
    "each of the 4 webhooks got 3 to 20 deliveries for 99 reports over 3 s (got$counts)"

bad=""
for s in $SERIES; do
	g=$(gaps "${s%/*}" "${s#*/}" | awk '$1 < 0.95' | tr '\n' ' ')
	[ -z "$g" ] || bad="$bad $s: $g;"
done
is "${bad:-none}" none "consecutive deliveries of each webhook are at least 0.95 s apart"
diag "gaps: $(for s in $SERIES; do printf '%s: %s; ' "$s" "$(gaps "${s%/*}" "${s#*/}" | tr '\n' ' ')"; done)"

bad=""
for s in $SERIES; do
	v=$(series "${s%/*}" "${s#*/}" "b(r)['p']" | tr '\n' ' ')
	printf '%s\n' $v | sort -n -c 2>/dev/null || bad="$bad $s: $v;"
	printf '%s\n' $v | sort -n | uniq -d | grep -q . && bad="$bad $s: repeats $v;"
done
is "${bad:-none}" none "each webhook's values arrive in rising order"

is "$(for s in $SERIES; do series "${s%/*}" "${s#*/}" "b(r)['p']" | tail -n 1; done | tr '\n' ' ')" \
    "99 99 99 99 " "the last delivery of each carries the last value reported, 99"
is "$(sql "SELECT count(*) FROM dwa.outbox WHERE task_id IN ($A, $B)
    AND (hook <> 'onProgress' OR status <> 'delivered')")" 0 \
    "every onProgress row is delivered, none dead"
is "$(sql "SELECT count(*) FROM dwa.outbox WHERE task_id IN ($A, $B)")" \
    "$(nrecorded r "r['path'].startswith('/p/')")" "one row per delivery"

# Per task and effect: a's and b's deliveries of a task (fired by the same
# reports) are not spaced out against each other.
near() {
	python3 - "$T_TMP/r-requests.log" "$1" "$2" <<'PY'
import json, sys
log, p1, p2 = sys.argv[1:4]
recs = [json.loads(l) for l in open(log)]
t1 = [r["time"] for r in recs if r["path"] == p1]
t2 = [r["time"] for r in recs if r["path"] == p2]
print("%.3f" % min(abs(a - b) for a in t1 for b in t2))
PY
}
D=$(near "/p/$A/a" "/p/$A/b")
ok "$(awk -v d="$D" 'BEGIN { print (d < 0.5) ? 0 : 1 }')" \
    "the two webhooks of a task are delivered side by side (closest ${D} s apart)"
D=$(near "/p/$B/a" "/p/$B/b")
ok "$(awk -v d="$D" 'BEGIN { print (d < 0.5) ? 0 : 1 }')" \
    "and so are those of the other task (closest ${D} s apart)"
is "$(sql "SELECT count(DISTINCT effect_index) FROM dwa.outbox WHERE task_id = $A")" 2 \
    "each effect has its own rows"

# Completion is not a progress report.
N=$(nrecorded r)
E=$(submit '{"type": "noop", "onSuccess": [{"$event": "webhook", "url": "'"$R"'/done"}]}')
wait_until 15 outbox_settled "$E" 1
is "$(nrecorded r)" "$((N + 1))" "after the tasks completed, nothing but a later webhook arrives"
proc_gone "$(dwad_pid d1)"
ok $((! $?)) "dwad keeps running"

if [ "$T_FAILED" != 0 ]; then
	diag "dwa.outbox:"
	sql "SELECT id, task_id, effect_index, status, attempts, created_at, next_attempt_at,
	    delivered_at, effect -> 'body' FROM dwa.outbox ORDER BY id" | sed 's/^/#   /'
fi
