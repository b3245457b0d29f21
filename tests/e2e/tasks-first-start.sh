#!/bin/sh
# tasks-first-start.sh: dwad --tasks DIR registers the task library on
# its first start and leaves the registry alone afterwards; DWA_TASKS_DIR
# does the same; a --tasks directory that cannot be read stops dwad.
. "$(dirname "$0")/../lib/harness.sh"
plan 8

db_setup
LIB="$top_srcdir/contrib/tasks"
NPROG=$(find "$LIB" -maxdepth 1 -type f -perm -u+x | wc -l)
dwad_start d1 --tasks "$LIB" || bail "dwad did not start"
is "$(sql "SELECT count(*) FROM dwa.task_types WHERE executor = 'exec'
    AND command[1] LIKE '$(cd "$LIB" && pwd -P)/%'")" "$NPROG" \
	"the first start registers the $NPROG programs of the library"
like "$(grep 'task library' "$T_TMP/d1.log")" "registered $NPROG task types" "and says so"
is "$(sql "SELECT count(*) FROM dwa.task_types WHERE name IN ('video.extract_frames',
    'video.extract_audio', 'video.detect_scenes', 'image.transform', 'data.rss') AND 'video' = ANY (tags)
    OR name = 'image.transform' AND 'image' = ANY (tags)")" 4 \
	"under their names, with their tags"
kill -TERM "$(dwad_pid d1)"
wait_until 10 test ! -d "/proc/$(dwad_pid d1)"

sql "UPDATE dwa.task_types SET description = 'mine' WHERE name = 'image.transform'" >/dev/null
DWA_TASKS_DIR="$LIB" dwad_start d2 || bail "dwad d2 did not start"
is "$(sql "SELECT description FROM dwa.task_types WHERE name = 'image.transform'")" mine \
	"a later start (DWA_TASKS_DIR) leaves the registry as it was made"
grep -q "task library" "$T_TMP/d2.log"
ok $(( ! $? )) "and registers nothing"
img=$(submit '{"type": "image.transform", "payload": {}}')
wait_until 15 task_done "$img"
like "$(sql "SELECT error FROM dwa.tasks WHERE id = $img")" "path" \
	"a library program runs under dwad (and names the missing field)"

run "$DWAD" --tasks "$T_TMP/none"
is "$RC" 1 "a --tasks directory that does not exist stops dwad"
like "$ERR" "--tasks: $T_TMP/none: No such file or directory" "naming it"
