#!/bin/sh
# ok.sh: echo the input back with the run's working directory and the
# environment dwad gives programs, leaving a file in the work directory
# and one in the task's directory.
# Output: {"input": INPUT, "cwd": DIR, "env": {...}}.
input=$(tr '\n' ' ')
echo scratch >scratch
[ -n "${DWA_TASK_DIR:-}" ] && echo kept >"$DWA_TASK_DIR/from-$DWA_STEP_ID"
printf '{"result": {"input": %s, "cwd": "%s", "env": {"run": "%s", "task": "%s", "step": "%s", "attempt": "%s", "item": "%s", "dir": "%s"}}}\n' \
	"$input" "$PWD" "${DWA_RUN_ID:-}" "${DWA_TASK_ID:-}" "${DWA_STEP_ID:-}" \
	"${DWA_ATTEMPT:-}" "${DWA_ITEM_INDEX:-unset}" "${DWA_TASK_DIR:-}"
