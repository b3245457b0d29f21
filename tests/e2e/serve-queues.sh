#!/bin/sh
# serve-queues.sh: dwad --queues serves only the steps of those queues
# (a daemon on a GPU machine), external workers may name queues too, and
# a daemon without --queues serves them all; bad --queues is refused.
. "$(dirname "$0")/../lib/harness.sh"
plan 9

db_setup
dwad_start gpu --queues gpu,video || bail "dwad gpu did not start"
g1=$(submit '{"type": "noop", "queue": "gpu"}')
v1=$(submit '{"type": "noop", "queue": "video"}')
d1=$(submit '{"type": "noop"}')
a1=$(submit '{"type": "noop", "queue": "audio"}')
wait_until 10 task_done "$g1"
wait_until 10 task_done "$v1"
is "$(sql "SELECT string_agg(t.queue || ':' || w.name, ' ' ORDER BY t.queue) FROM dwa.tasks t
    JOIN dwa.steps s ON s.task_id = t.id JOIN dwa.workers w ON w.id = s.worker_id
    WHERE t.id IN ($g1, $v1)")" "gpu:gpu video:gpu" "dwad --queues gpu,video runs the steps of its queues"
sleep 1.5
is "$(sql "SELECT string_agg(status, ' ' ORDER BY id) FROM dwa.tasks WHERE id IN ($d1, $a1)")" \
	"queued queued" "and leaves the others alone"

is "$(sql "SELECT count(*) FROM dwa.claim('w1', ARRAY['noop'], 5, '30 s', ARRAY['audio'])")" 1 \
	"dwa.claim with queues takes only theirs"
is "$(sql "SELECT status FROM dwa.steps WHERE task_id = $a1") $(sql "SELECT status FROM dwa.steps WHERE task_id = $d1")" \
	"running ready" "the audio step, not the default one"

dwad_start all || bail "dwad all did not start"
wait_until 10 task_done "$d1"
is "$(task_status "$d1")" completed "a daemon without --queues serves every queue"

run "$DWAD" --queues ,
is "$RC" 2 "--queues with no name is a usage error"
like "$ERR" 'names no queue' "saying so"
run "$DWAD" --queues 'a"b'
like "$ERR" 'must not contain quotes' "a queue name with a quote is refused"
"$DWAD" --help | grep -q -- "--queues Q,..."
ok $? "--help shows --queues"
