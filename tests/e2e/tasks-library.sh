#!/bin/sh
# tasks-library.sh: the programs of contrib/tasks, run by hand on a clip made
# with ffmpeg (6 s, a scene change at 3 s, a 440 Hz tone): --describe of
# each, every task's output and files (in the current directory, or under
# DWA_TASK_DIR/<step>[-<item>]), progress lines before the result, bad input
# (the message names the field, exit 2), a missing file, ffmpeg failing or
# crashing (exit 1 with its stderr tail), SIGTERM stopping ffmpeg (exit 75);
# then dwa types sync registers the seven (nothing from lib/), list --tag
# video and export --format typescript show them.
. "$(dirname "$0")/../lib/harness.sh"

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v convert >/dev/null 2>&1; then
	echo "1..0 # SKIP ffmpeg or ImageMagick not installed (contrib/dev.sh installs them)"
	exit 0
fi
plan 85

TASKS=$(cd "$top_srcdir/contrib/tasks" && pwd -P)
FAKE=$(cd "$top_srcdir/tests/e2e/tasks" && pwd -P)
DWA=$(cd "$(dirname "$DWA")" && pwd -P)/dwa	# absolute: the tests run in $T_TMP/work
M=$$	# a unique sleep duration, so pgrep finds only our process
NAMES="audio.convert data.rss image.transform video.convert video.detect_scenes video.extract_audio video.extract_frames"

# --- fixtures ------------------------------------------------------------------
cd "$T_TMP" || bail "cannot cd to $T_TMP"
ffmpeg -hide_banner -loglevel error -nostdin \
    -f lavfi -i testsrc=duration=3:size=320x240:rate=25 \
    -f lavfi -i smptebars=duration=3:size=320x240:rate=25 \
    -f lavfi -i sine=frequency=440:duration=6 \
    -filter_complex '[0:v][1:v]concat=n=2:v=1:a=0[v]' -map '[v]' -map 2:a \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest clip.mp4 ||
	bail "cannot make the test clip"
ffmpeg -hide_banner -loglevel error -nostdin -f lavfi -i testsrc=duration=1:size=160x120:rate=10 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p silent.mp4 || bail "cannot make the silent clip"
echo "not a video" >text.txt
mkdir work
cd work || bail "cannot cd to work"
unset DWA_TASK_DIR DWA_STEP_ID DWA_ITEM_INDEX

# task NAME JSON: run a program by hand with JSON on stdin; OUT, ERR, RC and
# RES (its last line: {"result": X} on success).
task() {
	printf '%s\n' "$2" >"$T_TMP/in"
	run "$TASKS/$1" <"$T_TMP/in"
	RES=$(printf '%s\n' "$OUT" | tail -n 1)
}
# py EXPR: evaluate a Python expression over the JSON on stdin as j.
py() { python3 -c 'import json, os, sys; j = json.load(sys.stdin); r = eval(sys.argv[1]); print(r if isinstance(r, str) else json.dumps(r))' "$@" 2>&1; }
# pr EXPR: py over the last result, as j.
pr() { printf '%s\n' "$RES" | py "(lambda j: $1)(j.get('result'))"; }
size() { wc -c <"$1" | tr -d ' '; }
probe() { ffprobe -v error -of csv=p=0 -show_entries "$2" "$1" 2>&1 | head -n 1; }

# --- --describe ------------------------------------------------------------------
for n in $NAMES; do
	"$TASKS/$n" --describe >"$T_TMP/$n.json" 2>&1 || diag "$n --describe failed"
done
is "$(cd "$T_TMP" && printf '[]' | py '" ".join(
	json.load(open(n + ".json"))["name"] for n in sys.argv[2].split())' "$NAMES")" "$NAMES" \
	"--describe of each prints JSON whose name is the file name"
is "$(cd "$T_TMP" && printf '[]' | py '" ".join(n for n in sys.argv[2].split() for k in
	("tags", "description", "timeout", "inputs", "outputs") if not json.load(open(n + ".json")).get(k))' "$NAMES")" "" \
	"each describes its tags, description, timeout, inputs and outputs"
run "$TASKS/video.convert" --frobnicate
is "$RC" 2 "an unknown argument is a usage error (exit 2)"
like "$ERR" "^usage: video.convert \[--describe\]" "with the usage line"

# --- video.extract_frames ------------------------------------------------------------
task video.extract_frames '{"path": "../clip.mp4", "fps": 2, "width": 160}'
is "$RC" 0 "extract_frames exits 0"
is "$(pr '[j["count"], len(j["frames"]), ["%d@%s" % (f["index"], f["time"]) for f in j["frames"][:4]],
	all(os.path.isfile(f["path"]) for f in j["frames"])]')" '[12, 12, ["0@0.0", "1@0.5", "2@1.0", "3@1.5"], true]' \
	"fps 2 over 6 s: 12 frame files, with their index and time"
f0=$(pr 'j["frames"][0]["path"]')
is "$f0" "$T_TMP/work/frame-000001.jpg" "by hand, frames go to the current directory, absolute paths"
is "$(identify -format '%m %w %h' "$f0" 2>&1)" "JPEG 160 120" "width 160 scales, keeping the aspect"
like "$(printf '%s\n' "$OUT" | head -n 1)" '^\{"progress":[0-9]+\}$' "progress lines come first"
is "$(printf '%s\n' "$OUT" | grep -c '"progress":100')" 1 "progress reaches 100 once"
task video.extract_frames '{"path": "../clip.mp4", "maxFrames": 3, "format": "png"}'
is "$(pr '[j["count"], [f["time"] for f in j["frames"]]]')" "[3, [0.0, 1.0, 2.0]]" "maxFrames 3 at the default fps 1"
is "$(identify -format '%m %w %h' "$(pr 'j["frames"][2]["path"]')" 2>&1)" "PNG 320 240" "format png, full size"
mkdir "$T_TMP/taskdir"
DWA_TASK_DIR="$T_TMP/taskdir" DWA_STEP_ID=frames task video.extract_frames '{"path": "../clip.mp4", "maxFrames": 2}'
is "$(pr '" ".join(f["path"] for f in j["frames"])')" "$T_TMP/taskdir/frames/frame-000001.jpg $T_TMP/taskdir/frames/frame-000002.jpg" \
	"with DWA_TASK_DIR, frames go to DWA_TASK_DIR/<step>/"
DWA_TASK_DIR="$T_TMP/taskdir" DWA_STEP_ID=frames DWA_ITEM_INDEX=3 task video.extract_frames '{"path": "../clip.mp4", "maxFrames": 1}'
is "$(pr 'j["frames"][0]["path"]')" "$T_TMP/taskdir/frames-3/frame-000001.jpg" "a forEach element: DWA_TASK_DIR/<step>-<index>/"
DWA_TASK_DIR="$T_TMP/taskdir" DWA_STEP_ID=frames task video.extract_frames '{"path": "../clip.mp4", "maxFrames": 1, "bytes": 5, "sha256": "x"}'
is "$RC.$(pr 'j["count"]').$(ls "$T_TMP/taskdir/frames" | tr '\n' ' ')" "0.1.frame-000001.jpg " \
	"a second run replaces the step's frames; fields it does not know are ignored"

# --- video.extract_audio -------------------------------------------------------------
task video.extract_audio '{"path": "../clip.mp4"}'
is "$RC" 0 "extract_audio exits 0"
a="$T_TMP/work/audio.wav"
is "$(pr '[j["path"], j["sample_rate"], j["channels"], round(j["duration"]), j["bytes"]]')" \
	"[\"$a\", 16000, 1, 6, $(size "$a")]" "audio.wav, 16 kHz mono by default, 6 s, its size in bytes"
is "$(probe "$a" stream=codec_name,sample_rate,channels)" "pcm_s16le,16000,1" "ffprobe agrees: 16-bit PCM"
task video.extract_audio '{"path": "../clip.mp4", "format": "mp3", "sampleRate": 44100, "channels": 2}'
is "$(probe "$T_TMP/work/audio.mp3" stream=codec_name,sample_rate,channels)/$(pr '[j["path"], j["sample_rate"]]')" \
	"mp3,44100,2/[\"$T_TMP/work/audio.mp3\", 44100]" "mp3, 44.1 kHz stereo"
task video.extract_audio '{"path": "../silent.mp4"}'
is "$RC" 2 "a video without sound: exit 2"
like "$ERR" "^video.extract_audio: path: has no audio stream: \.\./silent\.mp4$" "path: has no audio stream"

# --- video.convert ---------------------------------------------------------------------
task video.convert '{"path": "../clip.mp4", "format": "webm", "width": 161}'
is "$RC" 0 "convert to webm exits 0"
v="$T_TMP/work/clip.webm"
is "$(pr '[j["path"], j["format"], j["bytes"], round(j["duration"])]')" "[\"$v\", \"webm\", $(size "$v"), 6]" \
	"named after the source; format, bytes and duration"
is "$(probe "$v" stream=codec_name,width,height)" "vp9,160,120" "VP9, width 161 made even, aspect kept"
task video.convert '{"path": "../clip.mp4", "height": 120, "crf": 35}'
is "$(probe "$T_TMP/work/clip.mp4" stream=codec_name,width,height)/$RC" "h264,160,120/0" \
	"mp4 by default: H.264, height 120, aspect kept"
task video.convert '{"path": "../clip.mp4", "crf": 60}'
is "$RC" 2 "crf 60 for mp4: exit 2"
like "$ERR" "^video.convert: crf: must be at most 51 for mp4, got 60$" "crf: must be at most 51"

# --- video.detect_scenes --------------------------------------------------------------
task video.detect_scenes '{"path": "../clip.mp4"}'
is "$RC" 0 "detect_scenes exits 0"
is "$(pr '[j["count"], [[s["index"], round(s["start"], 1), round(s["end"], 1)] for s in j["scenes"]]]')" \
	"[2, [[0, 0.0, 3.0], [1, 3.0, 6.0]]]" "the scene change is found: scenes 0-3 s and 3-6 s"
task video.detect_scenes '{"path": "../clip.mp4", "threshold": 0.999}'
is "$(pr '[j["count"], j["scenes"][0]["end"]]')" "[1, 6.0]" "threshold 0.999: one scene, the whole clip"
task video.detect_scenes '{"path": "../clip.mp4", "threshold": 1.5}'
is "$RC" 2 "threshold 1.5: exit 2"
like "$ERR" "threshold: must be less than 1, got 1.5$" "threshold: must be less than 1"

# --- audio.convert ---------------------------------------------------------------------
task audio.convert "{\"path\": \"$a\", \"format\": \"mp3\", \"bitrate\": \"64k\"}"
is "$RC" 0 "audio.convert to mp3 exits 0"
is "$(probe "$T_TMP/work/audio.mp3" stream=codec_name,bit_rate)/$(pr '[j["path"], round(j["duration"])]')" \
	"mp3,64000/[\"$T_TMP/work/audio.mp3\", 6]" "mp3 at 64 kb/s, 6 s"
task audio.convert '{"path": "../clip.mp4", "format": "opus", "channels": 1}'
is "$(probe "$T_TMP/work/clip.opus" stream=codec_name,channels)/$(pr 'j["bytes"]')" "opus,1/$(size "$T_TMP/work/clip.opus")" \
	"the sound of a video to mono opus"
task audio.convert "{\"path\": \"$a\", \"format\": \"wav\"}"
is "$(pr 'j["path"]')" "$T_TMP/work/audio-out.wav" "the same format never overwrites the source"
task audio.convert "{\"path\": \"$a\", \"format\": \"flac\", \"bitrate\": \"64k\"}"
is "$RC" 2 "a bitrate for flac: exit 2"
like "$ERR" "^audio.convert: bitrate: flac is lossless: it takes no bitrate$" "bitrate: flac is lossless"
task audio.convert "{\"path\": \"$a\"}"
like "$RC $ERR" "^2 audio.convert: format: is required$" "format is required"

# --- image.transform -------------------------------------------------------------------
task image.transform "{\"path\": \"$f0\", \"width\": 100, \"height\": 100, \"fit\": \"cover\"}"
is "$RC" 0 "image.transform exits 0"
i="$T_TMP/work/frame-000001-out.jpg"
is "$(identify -format '%m %w %h' "$i" 2>&1)/$(pr '[j["path"], j["width"], j["height"], j["format"], j["bytes"]]')" \
	"JPEG 100 100/[\"$i\", 100, 100, \"jpg\", $(size "$i")]" "cover fills the 100x100 box (the source is never overwritten)"
task image.transform "{\"path\": \"$f0\", \"width\": 100, \"height\": 100}"
is "$(pr '[j["width"], j["height"]]')" "[100, 75]" "contain (the default) keeps the aspect inside the box"
task image.transform "{\"path\": \"$f0\", \"width\": 100, \"height\": 100, \"fit\": \"fill\", \"format\": \"png\"}"
is "$(identify -format '%m %w %h' "$T_TMP/work/frame-000001.png" 2>&1)" "PNG 100 100" "fill stretches; format png"
task image.transform "{\"path\": \"$f0\", \"crop\": {\"x\": 10, \"y\": 20, \"width\": 50, \"height\": 40}, \"format\": \"webp\", \"quality\": 50}"
is "$(identify -format '%m %w %h' "$T_TMP/work/frame-000001.webp" 2>&1)" "WEBP 50 40" "crop 50x40, as webp"
task image.transform "{\"path\": \"$f0\", \"height\": 30}"
is "$(pr '[j["width"], j["height"]]')" "[40, 30]" "height alone keeps the aspect"
task image.transform "{\"path\": \"$f0\", \"crop\": {\"x\": 150, \"y\": 0, \"width\": 50, \"height\": 40}}"
is "$RC" 2 "a crop outside the image: exit 2"
like "$ERR" "^image.transform: crop: 50x40\+150\+0 is outside the 160x120 image$" "crop: is outside the image"
task image.transform "{\"path\": \"$f0\", \"crop\": {\"x\": 1, \"width\": 5, \"height\": 5}}"
like "$RC $ERR" "^2 image.transform: crop.y: is required$" "crop.y: is required"
task image.transform '{"path": "../text.txt"}'
like "$RC $ERR" "^2 image.transform: path: not an image ImageMagick can read" "a text file is not an image"

# --- data.rss ----------------------------------------------------------------------------
mkdir "$T_TMP/www"
cat >"$T_TMP/www/feed.xml" <<'EOF'
<?xml version="1.0"?>
<rss version="2.0"><channel><title>Demo &amp; news</title>
<item><title>First</title><link>http://example.com/1</link><guid>id-1</guid>
<pubDate>Tue, 10 Jun 2003 04:00:00 GMT</pubDate>
<description>&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;</description></item>
<item><title>Second</title><link>http://example.com/2</link></item>
</channel></rss>
EOF
cat >"$T_TMP/www/atom.xml" <<'EOF'
<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom demo</title>
<entry><title>A1</title><link rel="self" href="http://example.org/self"/>
<link href="http://example.org/a1"/><id>urn:uuid:1</id>
<updated>2003-12-13T18:30:02Z</updated><summary>Some text.</summary></entry>
</feed>
EOF
task data.rss "$(python3 -c 'import json, sys; print(json.dumps({"xml": open(sys.argv[1]).read()}))' "$T_TMP/www/feed.xml")"
is "$RC" 0 "data.rss of RSS 2.0 xml exits 0"
is "$(pr '[j["title"], j["count"], j["items"][0], j["items"][1]["id"]]')" \
	'["Demo & news", 2, {"id": "id-1", "title": "First", "link": "http://example.com/1", "published": "2003-06-10T04:00:00+00:00", "summary": "Hello world"}, "http://example.com/2"]' \
	"title, count, an item with an ISO date and a plain-text summary; no guid: the link is the id"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$T_TMP/www" >"$T_TMP/http.log" 2>&1 &
T_PIDS="$T_PIDS $!"
wait_until 10 grep -q "port [0-9]" "$T_TMP/http.log" || bail "http.server did not start"
PORT=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$T_TMP/http.log" | head -n 1)
task data.rss "{\"url\": \"http://127.0.0.1:$PORT/atom.xml\"}"
is "$RC/$(pr '[j["title"], j["items"]]')" \
	'0/["Atom demo", [{"id": "urn:uuid:1", "title": "A1", "link": "http://example.org/a1", "published": "2003-12-13T18:30:02Z", "summary": "Some text."}]]' \
	"an Atom feed by url (the alternate link, not self)"
task data.rss "{\"url\": \"http://127.0.0.1:$PORT/missing.xml\"}"
is "$RC" 1 "HTTP 404 is permanent: exit 1"
like "$ERR" "url: http://127.0.0.1:$PORT/missing.xml answered HTTP 404" "with the status"
task data.rss '{"url": "http://127.0.0.1:1/feed.xml"}'
is "$RC" 75 "a refused connection is transient: exit 75"
like "$ERR" "^data.rss: url: cannot fetch http://127.0.0.1:1/feed.xml: .*refused" "cannot fetch: refused"
task data.rss '{"xml": "<html><body/></html>"}'
like "$RC $ERR" "^2 data.rss: xml: neither RSS 2.0 nor Atom: the root element is <html>$" "neither RSS nor Atom"
task data.rss '{}'
like "$RC $ERR" "^2 data.rss: url: give either url or xml$" "neither url nor xml"

# --- bad input, common to all -------------------------------------------------------------
task video.extract_frames '{"fps": 2}'
like "$RC $ERR" "^2 video.extract_frames: path: is required$" "path: is required"
task video.extract_frames '{"path": "../clip.mp4", "fps": "2"}'
like "$RC $ERR" '^2 video.extract_frames: fps: must be a number, got "2"$' "fps: must be a number"
task video.extract_frames '{"path": "../clip.mp4", "maxFrames": 2.5}'
like "$RC $ERR" '^2 video.extract_frames: maxFrames: must be an integer, got 2.5$' "maxFrames: must be an integer"
task video.extract_frames '{"path": "../clip.mp4", "format": "gif"}'
like "$RC $ERR" '^2 video.extract_frames: format: must be one of "jpg", "png", got "gif"$' "format: must be one of"
task video.extract_frames '{"path": "../nope.mp4"}'
like "$RC $ERR" '^2 video.extract_frames: path: no such file: \.\./nope\.mp4$' "a missing file: path: no such file"
task video.detect_scenes '{"path": "../text.txt"}'
like "$RC $ERR" '^2 video.detect_scenes: path: not a media file ffprobe can read' "a text file: not a media file"
task video.convert 'not json'
like "$RC $ERR" '^2 video.convert: input: not JSON' "stdin that is not JSON"
task video.convert '[1, 2]'
like "$RC $ERR" '^2 video.convert: input: must be a JSON object, got array$' "stdin that is not an object"

# --- ffmpeg failing, crashing, stopped ----------------------------------------------------
PATH="$FAKE:$PATH" FAKE_FFMPEG=fail task video.convert '{"path": "../clip.mp4"}'
is "$RC" 1 "ffmpeg exiting 1: permanent (exit 1)"
like "$(printf '%s' "$ERR" | tr '\n' ' ')" "^video.convert: ffmpeg exited with status 1: noise before the end FAKE-FAIL-MARKER: Invalid data" \
	"the message holds ffmpeg's stderr tail"
PATH="$FAKE:$PATH" FAKE_FFMPEG=crash task video.extract_audio '{"path": "../clip.mp4"}'
is "$RC" 1 "ffmpeg killed by a signal: permanent (exit 1)"
like "$ERR" "^video.extract_audio: ffmpeg killed by signal 11: FAKE-CRASH-MARKER" "killed by signal 11, with its stderr"
printf '{"path": "../clip.mp4"}\n' >"$T_TMP/in"
PATH="$FAKE:$PATH" FAKE_FFMPEG=hang FAKE_SLEEP="41.$M" "$TASKS/video.detect_scenes" <"$T_TMP/in" >"$T_TMP/out" 2>"$T_TMP/err" &
prog=$!
T_PIDS="$T_PIDS $prog"
wait_until 10 pgrep -f "sleep 41\.$M"
ok $? "the stand-in ffmpeg runs"
kill -TERM "$prog"
wait "$prog"
is "$?" 75 "SIGTERM: the program exits 75 (a retry may succeed)"
wait_until 5 sh -c "! pgrep -f 'sleep 41\.$M'"
ok $? "and its ffmpeg is gone"
like "$(cat "$T_TMP/err")" "terminated by signal 15" "it says why"

# --- dwa types sync, list, export -----------------------------------------------------------
db_setup
run "$DWA" types sync "$TASKS"
is "$RC" 0 "dwa types sync contrib/tasks exits 0"
is "$(printf '%s\n' "$OUT" | tr '\n' ' ')" "$(for n in $NAMES; do printf 'synced %s ' "$n"; done)" "it syncs the seven"
is "$(sql "SELECT count(*) FROM dwa.task_types WHERE executor = 'exec' AND command[1] LIKE '$TASKS/%'")" 7 \
	"seven exec types, no more: lib/ is not registered"
is "$(sql "SELECT concat_ws(' ', tags, timeout, description) FROM dwa.task_types WHERE name = 'video.extract_frames'")" \
	"{video,image,extract,generic} 00:30:00 extract still frames from a video at a fixed rate (ffmpeg)" \
	"video.extract_frames: tags, timeout, description"
is "$(find "$TASKS" -name '__pycache__' | wc -l | tr -d ' ')" 0 "running the programs left no __pycache__ behind"
run "$DWA" types list --tag video
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" \
	"video.convert video.detect_scenes video.extract_audio video.extract_frames " "list --tag video: the four video types"
run "$DWA" types list --tag image --tag transform
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" "image.transform " "list --tag image --tag transform"
run "$DWA" types export --format typescript
like "$(printf '%s\n' "$OUT" | sed -n '/interface VideoExtractFramesInput/,/^}/p' | tr '\n' ' ')" \
	"format: string; *fps: number; *maxFrames: number; *path: string; *width: number; *\}" "VideoExtractFramesInput"
like "$(printf '%s\n' "$OUT" | sed -n '/interface VideoExtractFramesOutput/,/^}/p' | tr '\n' ' ')" \
	"count: number; *frames: \(\{ index: number; path: string; time: number; \}\)\[\];" "VideoExtractFramesOutput"
like "$(printf '%s\n' "$OUT" | sed -n '/interface ImageTransformInput/,/^}/p' | tr '\n' ' ')" \
	"crop: \{ height: number; width: number; x: number; y: number; \};" "ImageTransformInput, crop nested"
rc=0
for n in $NAMES; do
	printf '%s\n' "$OUT" | tr '\n' ' ' | grep -Eq "export type TaskName =.*\| \"$n\"" || rc=1
done
ok $rc "TaskName has all seven"
