#!/bin/sh
# foreach-concurrency.sh: a forEach of 12 elements with forEachConcurrency 3
# never has more than 3 running, even with two daemons; outputs come back
# in element order.
. "$(dirname "$0")/../lib/harness.sh"
plan 5

db_setup
dwad_start d1 --concurrency 10 || bail "dwad d1 did not start"
dwad_start d2 --concurrency 10 || bail "dwad d2 did not start"

id=$(submit '{"type": "fan", "payload": {"items": [0,1,2,3,4,5,6,7,8,9,10,11]},
  "steps": [
    {"id": "each", "task": "sleep", "forEach": "{{payload.items}}", "forEachConcurrency": 3,
     "input": {"ms": 150, "n": "{{item}}", "i": "{{index}}"}},
    {"id": "sum", "task": "echo", "dependsOn": ["each"]}
  ]}')
wait_until 30 task_done "$id"
is "$(task_status "$id")" completed "the forEach task completes"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id = $id AND item_index IS NOT NULL")" 12 \
	"one step row per element"
# The most runs alive at any start instant.
maxc=$(sql "SELECT max((SELECT count(*) FROM dwa.steps b
	 WHERE b.task_id = a.task_id AND b.item_index IS NOT NULL
	   AND b.started_at <= a.started_at AND b.finished_at > a.started_at))
	 FROM dwa.steps a WHERE a.task_id = $id AND a.item_index IS NOT NULL")
is "$maxc" 3 "at most (and at some point exactly) 3 elements ran at once"
diag "daemons that ran elements: $(sql "SELECT count(DISTINCT worker_id) FROM dwa.steps WHERE task_id = $id AND item_index IS NOT NULL")"
is "$(sql "SELECT string_agg(e ->> 'n', ',' ORDER BY o) FROM dwa.tasks,
	jsonb_array_elements(result) WITH ORDINALITY AS x(e, o) WHERE id = $id")" \
	"0,1,2,3,4,5,6,7,8,9,10,11" "outputs in element order"
is "$(sql "SELECT result -> 5 ->> 'i' FROM dwa.tasks WHERE id = $id")" 5 \
	"{{index}} keeps its number type"
