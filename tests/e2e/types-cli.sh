#!/bin/sh
# types-cli.sh: dwa types against a real database, with no daemon: sync of
# tests/e2e/types (two good programs; one printing garbage, one exiting 1,
# one without a name, one hanging past DWA_DESCRIBE_TIMEOUT, all reported
# and skipped; a non-executable file ignored), the rows stored, a second
# sync changing nothing, a builtin type left alone, list filtered by all
# or any tags, --json, export --format typescript, and the usage errors.
. "$(dirname "$0")/../lib/harness.sh"

db_setup
plan 43

DIR=$(cd "$top_srcdir/tests/e2e/types" && pwd -P)
export DWA_DESCRIBE_TIMEOUT=1

stored() {
	sql "SELECT string_agg(concat_ws(' ', name, executor, command, tags,
	    description, timeout, metadata), '; ' ORDER BY name)
	    FROM dwa.task_types WHERE name LIKE '%.fake'"
}

# --- sync -----------------------------------------------------------------
start=$(date +%s)
run "$DWA" types sync "$DIR"
took=$(( $(date +%s) - start ))
is "$RC" 1 "sync with bad programs exits 1"
is "$OUT" "synced text.fake
synced video.fake" "sync prints the synced types, sorted by file name"
like "$ERR" "^dwa: types sync: $DIR/fails.fake: exit status 1" "an exit status is reported"
like "$ERR" "dwa: types sync: $DIR/garbage.fake: --describe did not print JSON" "garbage is reported"
like "$ERR" "dwa: types sync: $DIR/hangs.fake: no answer to --describe within 1000 ms, killed" "a hang is killed and reported"
like "$ERR" "dwa: types sync: $DIR/noname.fake: \"name\" must be a non-empty string" "a missing name is reported"
is "$(printf '%s\n' "$ERR" | wc -l | tr -d ' ')" 4 "one line for each bad program, none for notexec.fake"
ok "$([ "$took" -le 5 ] && echo 0 || echo 1)" "the hanging program did not hold sync for long ($took s)"
is "$(pgrep -f "$DIR/hangs.fake" | wc -l | tr -d ' ')" 0 "the hanging program is gone"
is "$(sql "SELECT count(*) FROM dwa.task_types WHERE name IN ('fails.fake', 'notexec.fake')")" 0 \
    "nothing stored for the bad or non-executable programs"

is "$(sql "SELECT concat_ws(' ', executor, command, tags, timeout, description)
    FROM dwa.task_types WHERE name = 'video.fake'")" \
    "exec {$DIR/video.fake} {video,extract,gpu} 00:05:00 extract fake frames" \
    "video.fake: command, tags with gpu, timeout, description"
is "$(sql "SELECT concat_ws(' ', executor, command, tags, timeout)
    FROM dwa.task_types WHERE name = 'text.fake'")" \
    "exec {$DIR/text.fake} {text,ai,streaming} 00:01:30" \
    "text.fake: tags with streaming, timeout in seconds"
is "$(sql "SELECT metadata->>'gpu', metadata->'inputs'->>'fps', metadata->'outputs'->>'frames'
    FROM dwa.task_types WHERE name = 'video.fake'")" "T4|number|string[]" \
    "metadata holds the whole description"
is "$(sql "SELECT description IS NULL, metadata->'streaming' FROM dwa.task_types WHERE name = 'text.fake'")" \
    "t|true" "no description: NULL"

before=$(stored)
sql "UPDATE dwa.task_types SET tags = '{old}' WHERE name = 'video.fake'" >/dev/null
run "$DWA" types sync "$DIR"
is "$RC" 1 "second sync exits 1 again"
is "$OUT" "synced text.fake
synced video.fake" "second sync prints the same"
is "$(stored)" "$before" "second sync: the same rows (upserted, tags replaced)"
is "$(sql "SELECT count(*) FROM dwa.task_types WHERE name LIKE '%.fake'")" 2 "no duplicate rows"

# a builtin type of the same name is not replaced; the rest still syncs
mkdir "$T_TMP/lib"
cp "$DIR/text.fake" "$T_TMP/lib/a.fake"
printf '#!/bin/sh\necho %s\n' "'{\"name\": \"blt.fake\", \"tags\": [\"x\"]}'" >"$T_TMP/lib/b.fake"
chmod 755 "$T_TMP/lib/a.fake" "$T_TMP/lib/b.fake"
sql "INSERT INTO dwa.task_types (name, executor) VALUES ('blt.fake', 'builtin')" >/dev/null
run "$DWA" types sync "$T_TMP/lib"
is "$RC" 1 "a builtin of the same name: exit 1"
is "$OUT" "synced text.fake" "the other program still syncs"
like "$ERR" "dwa: types sync: .*/b.fake: type blt.fake is builtin: not replaced" "the builtin is reported"
is "$(sql "SELECT executor, tags FROM dwa.task_types WHERE name = 'blt.fake'")" "builtin|{}" "the builtin is untouched"
is "$(sql "SELECT command FROM dwa.task_types WHERE name = 'text.fake'")" "{$T_TMP/lib/a.fake}" "a resync moves the command"
sql "DELETE FROM dwa.task_types WHERE name = 'blt.fake'" >/dev/null
rm "$T_TMP/lib/b.fake"
run "$DWA" types sync "$T_TMP/lib"
is "$RC.$OUT" "0.synced text.fake" "a clean sync exits 0"

run "$DWA" types sync "$T_TMP/missing"
is "$RC" 1 "sync of a missing dir exits 1"
like "$ERR" "^dwa: types sync: .*missing: No such file or directory" "and says why"
run "$DWA" types sync
is "$RC" 2 "sync without DIR is a usage error"

# --- list -----------------------------------------------------------------
run "$DWA" types list --tag video
is "$(printf '%s\n' "$OUT" | awk 'NR == 1 { print $1, $2, $3, $4 } NR > 1 { print $1, $2, $3 }')" \
    "name executor tags description
video.fake exec {video,extract,gpu}" "list --tag video: header and the video row"
run "$DWA" types list --tag ai --tag text
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }')" "text.fake" "list --tag ai --tag text: all tags"
run "$DWA" types list --tag video --tag ai
is "$RC.$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }')" "0." "list --tag video --tag ai: none has both"
run "$DWA" types list --tag video --tag ai --any
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" "text.fake video.fake " \
    "list --tag video --tag ai --any: either"
run "$DWA" types --tag gpu
is "$(printf '%s\n' "$OUT" | awk 'NR > 1 { print $1 }')" "video.fake" "'types' alone lists"
run "$DWA" types list --json --tag video
is "$RC" 0 "list --json exits 0"
is "$(json "$OUT" "concat_ws(' ', j->'count', j->'types'->0->>'name', j->'types'->0->>'executor',
    j->'types'->0->'tags', j->'types'->0->'timeout', j->'types'->0->'command'->>0)")" \
    "1 video.fake exec [\"video\", \"extract\", \"gpu\"] 300 $DIR/video.fake" "list --json"

# --- export ---------------------------------------------------------------
run "$DWA" types export --format typescript
is "$RC" 0 "export exits 0"
like "$OUT" "export interface VideoFakeInput \{" "VideoFakeInput"
like "$(printf '%s\n' "$OUT" | sed -n '/VideoFakeInput/,/^}/p' | tr '\n' ' ')" \
    "fps: number; *url: string; *\}" "its fields, sorted"
like "$(printf '%s\n' "$OUT" | sed -n '/VideoFakeOutput/,/^}/p' | tr '\n' ' ')" \
    "count: number; *frames: string\[\];" "VideoFakeOutput"
like "$(printf '%s\n' "$OUT" | sed -n '/TextFakeInput/,/^}/p' | tr '\n' ' ')" \
    "n: number; *opts: \{ hot: boolean; \}; *prompt: string;" "TextFakeInput, nested"
like "$(printf '%s\n' "$OUT" | sed -n '/TextFakeOutput/,/^}/p' | tr '\n' ' ')" \
    "\[key: string\]: unknown;" "missing outputs: unknown"
like "$(printf '%s\n' "$OUT" | tr '\n' ' ')" 'export type TaskName =( *\| "[a-z.]+")* *\| "text.fake" *\| "video.fake";' "TaskName"
run "$DWA" types export --format python
is "$RC" 2 "export --format python is a usage error"

# --- help -----------------------------------------------------------------
rc=0
for form in "" list sync export; do
	"$DWA" types $form --help >/dev/null 2>&1 || rc=1
done
is "$rc" 0 "--help of each form exits 0"
