#!/bin/sh
# prune-cli.sh: dwa prune against a real database, with no daemon: what it
# deletes (finished tasks older than the age, with their steps, events and
# finished deliveries) and keeps (young and unfinished tasks, pending
# deliveries), the ages it takes, --limit (oldest first), --json, usage
# errors (exit 2, nothing deleted), an SQL error (exit 1) and --help.
. "$(dirname "$0")/../lib/harness.sh"

db_setup
plan 42

sql "INSERT INTO dwa.task_types (name) VALUES ('cli.pr')" >/dev/null ||
    bail "cannot register type cli.pr"

# task STATUS [FINISHED_AGO]: a task of two steps in STATUS, created a
# month ago and finished FINISHED_AGO ago (an interval); prints its id.
task() {
	local id fin=NULL
	[ -n "${2:-}" ] && fin="now() - interval '$2'"
	id=$(submit '{"type": "cli.pr", "steps": [{"id": "a", "task": "cli.pr"},
	    {"id": "b", "task": "cli.pr", "dependsOn": ["a"]}]}')
	sql "UPDATE dwa.tasks SET status = '$1', created_at = now() - interval '30 days',
	    finished_at = $fin WHERE id = $id" >/dev/null
	echo "$id"
}
# exists ID...: which of the tasks are still there, in the order given.
exists() {
	local id out=""
	for id in "$@"; do
		[ "$(sql "SELECT count(*) FROM dwa.tasks WHERE id = $id")" = 1 ] &&
		    out="$out $id"
	done
	echo "${out# }"
}
counts() {
	sql "SELECT concat_ws(' ', (SELECT count(*) FROM dwa.tasks),
	    (SELECT count(*) FROM dwa.steps), (SELECT count(*) FROM dwa.events),
	    (SELECT count(*) FROM dwa.outbox))"
}

OLD1=$(task completed '10 days')
OLD2=$(task failed '9 days')
OLD3=$(task cancelled '8 days')
YOUNG=$(task completed '2 hours')
RUNNING=$(task running)
QUEUED=$(task queued)
sql "INSERT INTO dwa.events (task_id, event, created_at)
    VALUES ($OLD1, 'toast', now() - interval '10 days'),
           ($RUNNING, 'toast', now() - interval '20 days'),
           ($RUNNING, 'toast', now())" >/dev/null
sql "INSERT INTO dwa.outbox (task_id, hook, event, effect, status, created_at)
    VALUES ($OLD1, 'onSuccess', 'webhook', '{}', 'delivered', now() - interval '10 days'),
           ($OLD1, 'onSuccess', 'webhook', '{}', 'pending', now() - interval '10 days'),
           ($RUNNING, 'onProgress', 'webhook', '{}', 'dead', now() - interval '20 days'),
           ($RUNNING, 'onProgress', 'webhook', '{}', 'pending', now() - interval '20 days')" \
    >/dev/null
is "$(counts)" "6 12 3 4" "six tasks of two steps, three events, four deliveries"

# --- usage errors: exit 2, nothing deleted ----------------------------------------

BEFORE=$(counts)
run "$DWA" prune
is "$RC" 2 "prune without --older-than is a usage error (exit 2)"
like "$ERR" '^dwa: prune: missing --older-than AGE' "and says what is missing"
like "$ERR" 'usage: dwa prune --older-than AGE \[--limit N\] \[--json\]' "with the synopsis"
run "$DWA" prune --older-than 7x
is "$RC" 2 "an age with an unknown unit is a usage error"
like "$ERR" '^dwa: prune: --older-than: "7x" is not a duration' "and names the option"
run "$DWA" prune --older-than -1d
is "$RC" 2 "a negative age is a usage error"
run "$DWA" prune --older-than ''
is "$RC" 2 "an empty age is a usage error"
run "$DWA" prune --older-than 7d --limit 0
is "$RC" 2 "a zero limit is a usage error"
like "$ERR" '^dwa: prune: --limit: 0 is out of range' "and names the option"
run "$DWA" prune --older-than 7d --limit two
is "$RC" 2 "a limit that is not a number is a usage error"
like "$ERR" '^dwa: prune: --limit: "two" is not a number' "and names the option"
run "$DWA" prune --older-than 7d --limit -3
is "$RC" 2 "a negative limit is a usage error"
run "$DWA" prune --older-than 7d extra
is "$RC" 2 "an argument is a usage error"
like "$ERR" "^dwa: prune: unexpected argument 'extra'" "and names it"
run "$DWA" prune --older-than 7d --bogus
is "$RC" 2 "an unknown option is a usage error"
is "$(counts)" "$BEFORE" "the usage errors deleted nothing"

# --- an SQL error: exit 1 ------------------------------------------------------------

run "$DWA" prune --older-than 7d --db "$DATABASE_URL&options=-crole%3Ddwa_submitter"
is "$RC" 1 "prune as a role that may not prune exits 1"
like "$ERR" '^dwa: prune: .*permission denied for function prune' \
    "and shows the database's message"
is "$(counts)" "$BEFORE" "and deleted nothing"

# --- --limit: the oldest first -------------------------------------------------------

run "$DWA" prune --older-than 7d --limit 1
is "$RC:$OUT:$ERR" "0:pruned 1 task:" "--limit 1 prunes one task and says so"
is "$(exists "$OLD1" "$OLD2" "$OLD3")" "$OLD2 $OLD3" "the oldest one"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id = $OLD1")" 0 "with its steps"
is "$(sql "SELECT count(*) FROM dwa.events WHERE task_id = $OLD1")" 0 "and its event"
is "$(sql "SELECT status FROM dwa.outbox WHERE task_id = $OLD1")" pending \
    "and its delivered delivery, not its pending one"

# --- the rest ---------------------------------------------------------------------------

run "$DWA" prune --older-than 7d
is "$RC:$OUT:$ERR" "0:pruned 2 tasks:" "prune --older-than 7d prunes the other two"
is "$(exists "$OLD1" "$OLD2" "$OLD3" "$YOUNG" "$RUNNING" "$QUEUED")" \
    "$YOUNG $RUNNING $QUEUED" "young, running and queued tasks stay"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id IN ($OLD2, $OLD3)")" 0 \
    "the steps of pruned tasks are gone"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE task_id IN ($YOUNG, $RUNNING, $QUEUED)")" 6 \
    "the others' stay"
is "$(sql "SELECT count(*) FROM dwa.events WHERE task_id = $RUNNING")" 1 \
    "the running task's old event is gone, its new one stays"
is "$(sql "SELECT string_agg(status, ',' ORDER BY status) FROM dwa.outbox")" "pending,pending" \
    "its dead delivery is gone; the pending ones stay"

run "$DWA" prune --older-than 7d --json
is "$RC:$ERR" "0:" "prune --json exits 0"
is "$(json "$OUT" "j -> 'pruned', (SELECT count(*) FROM jsonb_object_keys(j))")" "0|1" \
    "it prints {\"pruned\": 0} when nothing is old enough"

# --- ages --------------------------------------------------------------------------------

run "$DWA" prune --older-than 3h
is "$RC:$OUT" "0:pruned 0 tasks" "3h keeps the task finished 2 hours ago"
run "$DWA" prune --older-than 90m
is "$RC:$OUT" "0:pruned 1 task" "90m prunes it"
R=$(task completed '1 second')
run "$DWA" prune --older-than 3600
is "$RC:$OUT" "0:pruned 0 tasks" "a bare number is seconds: 3600 keeps a task a second old"
run "$DWA" prune --older-than 0 --json
is "$(json "$OUT" "j -> 'pruned'")" 1 "--older-than 0 prunes every finished task"
is "$(exists "$R" "$RUNNING" "$QUEUED")" "$RUNNING $QUEUED" "leaving the unfinished ones"

# --- --help ---------------------------------------------------------------------------------

run "$DWA" prune --help
is "$RC:$ERR" "0:" "prune --help exits 0"
like "$OUT" '^usage: dwa prune --older-than AGE \[--limit N\] \[--json\]' "it shows the synopsis"
like "$OUT" '--limit N' "and the options"
like "$("$DWA" --help)" '  prune ' "dwa --help lists the command"
