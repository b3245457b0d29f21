#!/bin/sh
# video-analysis.sh: contrib/examples/video-analysis.json through dwad with
# the programs of contrib/tasks, on a clip made with ffmpeg (6 s, a scene
# change at 3 s) served by a python http.server on loopback: data.download,
# then video.extract_frames, video.extract_audio and video.detect_scenes in
# parallel, image.transform over the 12 frames with forEachConcurrency 4
# (never more than 4 at once), and data.aggregate.  Files are shared
# through the task directory (DWA_TASK_DIR/<step>[-<item>]), which dwad
# removes once the task has completed.
. "$(dirname "$0")/../lib/harness.sh"

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v convert >/dev/null 2>&1; then
	echo "1..0 # SKIP ffmpeg or ImageMagick not installed (contrib/dev.sh installs them)"
	exit 0
fi
plan 22

TASKS=$(cd "$top_srcdir/contrib/tasks" && pwd -P)
EXAMPLE="$top_srcdir/contrib/examples/video-analysis.json"

# --- the clip, served on loopback ------------------------------------------------
mkdir "$T_TMP/www"
ffmpeg -hide_banner -loglevel error -nostdin \
    -f lavfi -i testsrc=duration=3:size=320x240:rate=25 \
    -f lavfi -i smptebars=duration=3:size=320x240:rate=25 \
    -f lavfi -i sine=frequency=440:duration=6 \
    -filter_complex '[0:v][1:v]concat=n=2:v=1:a=0[v]' -map '[v]' -map 2:a \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$T_TMP/www/clip.mp4" ||
	bail "cannot make the test clip"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$T_TMP/www" >"$T_TMP/http.log" 2>&1 &
T_PIDS="$T_PIDS $!"
wait_until 10 grep -q "port [0-9]" "$T_TMP/http.log" || bail "http.server did not start"
PORT=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$T_TMP/http.log" | head -n 1)

db_setup
"$DWA" types sync "$TASKS" >/dev/null || bail "dwa types sync $TASKS failed"
export DWA_WORKDIR="$T_TMP/work"
mkdir -p "$DWA_WORKDIR"
# --keep-workdirs: d1 keeps the completed task's directory, to look at
# the files; d2 removes it at the end.
dwad_start d1 --concurrency 8 --keep-workdirs || bail "dwad d1 did not start"

def=$(sed "s|http://127.0.0.1:8000/clip.mp4|http://127.0.0.1:$PORT/clip.mp4|" "$EXAMPLE")
id=$(submit "$def")
like "$id" '^[0-9]+$' "the example is accepted (task $id)"
wait_until 60 task_done "$id"
is "$(task_status "$id")" completed "the video analysis completes"
[ "$(task_status "$id")" = completed ] ||
	diag "$(sql "SELECT step_id || coalesce('[' || item_index || ']', '') || ' ' || status || ' ' || coalesce(error, '')
	    FROM dwa.steps WHERE task_id = $id ORDER BY id")"
D1=$(dwad_pid d1)
kill -TERM "$D1"
wait "$D1" 2>/dev/null

# out STEP EXPR: a jq-like look at one step's output (a Python expression over j).
out() {
	sql "SELECT output FROM dwa.steps WHERE task_id = $id AND step_id = '$1' AND item_index IS NULL" |
	    python3 -c 'import json, os, sys; j = json.load(sys.stdin); r = eval(sys.argv[1]); print(r if isinstance(r, str) else json.dumps(r))' "$2" 2>&1
}

# --- download --------------------------------------------------------------------------
is "$(out download '[j["bytes"], j["sha256"]]')" \
	"[$(wc -c <"$T_TMP/www/clip.mp4" | tr -d ' '), \"$(sha256sum "$T_TMP/www/clip.mp4" | cut -d ' ' -f 1)\"]" \
	"data.download fetched the clip: its size and sha256"
# The task directory: where the frames step put its frames/ directory.
tdir=$(dirname "$(out frames 'os.path.dirname(j["frames"][0]["path"])')")
like "$tdir" "^$DWA_WORKDIR/." "the task directory is under DWA_WORKDIR ($tdir)"
dl=$(out download 'j["path"]')
like "$dl" "^$tdir/." "the clip was downloaded into it ($dl)"
cmp -s "$dl" "$T_TMP/www/clip.mp4"
ok $? "the downloaded file is the clip"

# --- frames, audio, scenes: in parallel, files in the task directory ------------------
is "$(out frames '[j["count"], [f["index"] for f in j["frames"]], j["frames"][11]["time"]]')" \
	"[12, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 5.5]" "frames: 12, at 2 per second"
is "$(out frames 'sorted(set(os.path.dirname(f["path"]) for f in j["frames"]))')" "[\"$tdir/frames\"]" \
	"the frames are in DWA_TASK_DIR/frames"
is "$(out audio '[j["sample_rate"], j["channels"], round(j["duration"]), j["path"]]')" \
	"[16000, 1, 6, \"$tdir/audio/audio.wav\"]" "audio: 16 kHz mono, 6 s, in DWA_TASK_DIR/audio"
is "$(out scenes '[j["count"], round(j["scenes"][1]["start"], 1)]')" "[2, 3.0]" \
	"detect_scenes finds the scene change at 3 s"
is "$(sql "SELECT bool_and(a.started_at < b.finished_at AND b.started_at < a.finished_at)
	FROM dwa.steps a, dwa.steps b WHERE a.task_id = $id AND b.task_id = $id
	AND a.step_id < b.step_id AND a.step_id IN ('frames', 'audio', 'scenes') AND b.step_id IN ('frames', 'audio', 'scenes')")" t \
	"frames, audio and scenes ran at the same time"
is "$(sql "SELECT bool_and(s.started_at >= d.finished_at) FROM dwa.steps s, dwa.steps d
	WHERE s.task_id = $id AND d.task_id = $id AND d.step_id = 'download'
	AND s.step_id IN ('frames', 'audio', 'scenes')")" t "after the download"

# --- thumbs: forEach over the frames, at most 4 at once ---------------------------------------
is "$(sql "SELECT count(*) || ' ' || string_agg(DISTINCT status, ',') FROM dwa.steps
	WHERE task_id = $id AND step_id = 'thumbs' AND item_index IS NOT NULL")" "12 succeeded" \
	"one image.transform per frame, all succeeded"
maxc=$(sql "SELECT max((SELECT count(*) FROM dwa.steps b
	 WHERE b.task_id = a.task_id AND b.step_id = 'thumbs' AND b.item_index IS NOT NULL
	   AND b.started_at <= a.started_at AND b.finished_at > a.started_at))
	 FROM dwa.steps a WHERE a.task_id = $id AND a.step_id = 'thumbs' AND a.item_index IS NOT NULL")
ok "$([ "$maxc" -le 4 ] && echo 0 || echo 1)" "never more than 4 ran at once (forEachConcurrency 4; at most $maxc)"
ok "$([ "$maxc" -ge 2 ] && echo 0 || echo 1)" "and they did run in parallel ($maxc at once)"
is "$(out thumbs '[len(j), sorted(set((t["width"], t["height"], t["format"]) for t in j))]')" '[12, [[160, 90, "jpg"]]]' \
	"12 thumbnails of 160x90, in element order"
is "$(out thumbs '" ".join(t["path"] for t in j[:2])')" "$tdir/thumbs-0/frame-000001.jpg $tdir/thumbs-1/frame-000002.jpg" \
	"each element writes to DWA_TASK_DIR/thumbs-<index>"
is "$(identify -format '%w %h' "$tdir/thumbs-11/frame-000012.jpg" 2>&1)" "160 90" \
	"the files are there for later steps to read"

# --- merge: the result -----------------------------------------------------------------------
res=$(sql "SELECT result FROM dwa.tasks WHERE id = $id")
is "$(printf '%s' "$res" | python3 -c 'import json, sys; j = json.load(sys.stdin); print(sorted(j), len(j["thumbs"]), j["scenes"]["count"], j["audio"]["sample_rate"])')" \
	"['audio', 'scenes', 'thumbs'] 12 2 16000" "the result aggregates thumbs, audio and scenes"
is "$(sql "SELECT progress FROM dwa.tasks WHERE id = $id")" 100 "progress 100"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id = $id AND attempt > 1")" 0 "no step needed a retry"

dwad_start d2 || bail "dwad d2 did not start"
wait_until 15 test ! -e "$tdir"
ok $? "once the task has completed, dwad removes its directory"
