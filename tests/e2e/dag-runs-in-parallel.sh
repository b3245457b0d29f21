#!/bin/sh
# dag-runs-in-parallel.sh: the seed's video-analysis DAG shape with sleep
# steps: independent branches overlap in time, joins wait for every
# dependency, and the wall time stays below the serial sum.
. "$(dirname "$0")/../lib/harness.sh"
plan 9

db_setup
dwad_start d1 --concurrency 8 || bail "dwad did not start"

id=$(submit '{"type": "video-analysis", "payload": {"url": "http://127.0.0.1/clip.mp4"},
  "steps": [
    {"id": "download", "task": "sleep", "input": {"ms": 300, "url": "{{payload.url}}"}},
    {"id": "frames", "task": "sleep", "dependsOn": ["download"], "input": {"ms": 400}},
    {"id": "audio", "task": "sleep", "dependsOn": ["download"], "input": {"ms": 400}},
    {"id": "detect", "task": "sleep", "dependsOn": ["frames"], "input": {"ms": 300}},
    {"id": "embed", "task": "sleep", "dependsOn": ["frames"], "input": {"ms": 300}},
    {"id": "transcribe", "task": "sleep", "dependsOn": ["audio"], "input": {"ms": 300}},
    {"id": "merge", "task": "data.aggregate", "dependsOn": ["detect", "embed", "transcribe"]}
  ]}')
like "$id" '^[0-9]+$' "submitted task $id"
wait_until 20 task_done "$id"
is "$(task_status "$id")" completed "the DAG completes"

# overlap A B: 1 when the runs of steps A and B overlapped in time.
overlap() {
	sql "SELECT (a.started_at < b.finished_at AND b.started_at < a.finished_at)::int
	       FROM dwa.steps a, dwa.steps b
	      WHERE a.task_id = $id AND b.task_id = $id AND a.step_id = '$1' AND b.step_id = '$2'"
}
is "$(overlap frames audio)" 1 "frames and audio ran in parallel"
is "$(overlap detect embed)" 1 "detect and embed ran in parallel"
is "$(overlap detect transcribe)" 1 "branches of different parents overlap"
is "$(sql "SELECT (m.started_at >= (SELECT max(finished_at) FROM dwa.steps d
	WHERE d.task_id = $id AND d.step_id IN ('detect', 'embed', 'transcribe')))::int
	FROM dwa.steps m WHERE m.task_id = $id AND m.step_id = 'merge'")" 1 \
	"merge started only after all three dependencies finished"
is "$(sql "SELECT string_agg(k, ',' ORDER BY k) FROM dwa.tasks, jsonb_object_keys(result) k WHERE id = $id")" \
	"detect,embed,transcribe" "the result is the single sink's output"
is "$(sql "SELECT result #>> '{detect,ms}' FROM dwa.tasks WHERE id = $id")" 300 \
	"data.aggregate received its dependencies keyed by id"
wall=$(sql "SELECT extract(epoch FROM finished_at - created_at) * 1000 < 2000 FROM dwa.tasks WHERE id = $id")
is "$wall" t "wall time below the serial sum of 2000 ms"
