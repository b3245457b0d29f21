#!/bin/sh
# foreach-chunks.sh: a forEach of 30,000 elements without
# forEachConcurrency runs under dwad in chunks (dwa._fe_chunk): the rows of
# the first chunk made with the step, the next ones made on dwad's
# housekeeping connection when asked (NOTIFY dwa_expand) while the chunk
# before runs; every output comes back in element order.  kill -9 of the
# daemon in the middle: a second one finishes it, every element run.
. "$(dirname "$0")/../lib/harness.sh"
plan 12

db_setup

# submit_each N TASK INPUT: a forEach of N elements 0..N-1, each step of
# type TASK with input INPUT (JSON, templates allowed).
submit_each() {
	sql "SET dwa.max_payload_bytes = 4000000;
	     SELECT dwa.submit(jsonb_build_object('type', 'chunks', 'payload',
	         jsonb_build_object('xs', (SELECT jsonb_agg(g) FROM generate_series(0, $1 - 1) g)),
	         'steps', jsonb_build_array(jsonb_build_object('id', 'e', 'task', '$2',
	             'forEach', '{{payload.xs}}', 'input', '$3'::jsonb))))"
}
# in_order TASK N: how many of the task's N outputs carry their element
# (field x) at their place.
in_order() {
	sql "SELECT count(*) FROM dwa.tasks t,
	       jsonb_array_elements(t.result) WITH ORDINALITY AS r(e, o)
	      WHERE t.id = $1 AND (r.e ->> 'x')::integer = r.o - 1"
}

chunk=$(sql "SELECT dwa._fe_chunk()")
id=$(submit_each 30000 echo '{"x": "{{item}}"}')
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id = $id AND item_index IS NOT NULL")" \
	"$chunk" "submitted (no daemon yet): one chunk of the 30,000 elements made"
dwad_start d1 -v --concurrency 64 || bail "dwad d1 did not start"
wait_until 60 task_done "$id"
is "$(task_status "$id")" completed "the forEach task completes"
is "$(sql "SELECT jsonb_array_length(result) FROM dwa.tasks WHERE id = $id")" 30000 \
	"its result has the 30,000 outputs"
is "$(in_order "$id")" 30000 "... each in its element's place"
is "$(sql "SELECT count(DISTINCT item_index) || ' ' || max(attempt)
	     FROM dwa.steps WHERE task_id = $id AND item_index IS NOT NULL")" "30000 1" \
	"every element made once, run once"
log_contains d1 "more elements made"
ok $? "dwad made chunks on its housekeeping connection, asked by the ends"
log_contains d1 "elements of forEach step .* failed"
ok $(( ! $? )) "... and none of them failed"

# kill -9 in the middle: elements of 5 ms, 64 at a time, at least 0.6 s a
# chunk.
id=$(submit_each 30000 sleep '{"ms": 5, "x": "{{item}}"}')
wait_until 60 sql_true "SELECT fe_total - fe_remaining > 12000 FROM dwa.steps
	WHERE task_id = $id AND item_index IS NULL" || bail "the second forEach did not get going"
kill -KILL "$(dwad_pid d1)"
done_at_kill=$(sql "SELECT fe_total - fe_remaining FROM dwa.steps WHERE task_id = $id AND item_index IS NULL")
ok $([ "$done_at_kill" -lt 30000 ]; echo $?) "dwad killed with $done_at_kill of the 30,000 elements done"
dwad_start d2 --concurrency 64 --reap 200ms || bail "dwad d2 did not start"
wait_until 90 task_done "$id"
is "$(task_status "$id")" completed "a second dwad finishes the forEach"
is "$(in_order "$id")" 30000 "... every output in its element's place"
is "$(sql "SELECT count(DISTINCT item_index) FROM dwa.steps WHERE task_id = $id AND item_index IS NOT NULL")" \
	30000 "... every element made once"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE fe_next < fe_total AND fe_concurrency IS NULL AND status = 'running'")" \
	0 "no forEach step is left making elements"
