#!/bin/sh
# crash-durability.sh: PostgreSQL crashes (pg_ctl stop -m immediate) under
# two busy dwad while a producer keeps submitting.  Every task whose INSERT
# (or dwa.submit) returned is still there after the crash, every step seen
# `succeeded` before the crash is still succeeded with the same output and
# attempt, and everything then runs to completion with the daemons that
# survived the restart.  Execution is at least once: re-runs are counted
# and reported, not failed.
. "$(dirname "$0")/../lib/harness.sh"
plan 16

# The harness's own cluster runs with fsync=off for speed, and passes it on
# the postgres command line, which wins over postgresql.conf, ALTER SYSTEM
# and postgresql.auto.conf.  A durability test must not run like that, so
# this file starts its cluster itself, with fsync and synchronous_commit
# on (a commit is acknowledged only once its WAL is flushed), same options
# otherwise.  The harness calls pg_ctl_start from db_setup, so redefining it
# here is enough; it is also used for the restart after the crash.
pg_ctl_start() {
	as_pg "$PGBIN/pg_ctl" -D "$T_TMP/pgdata" -l "$T_TMP/pg.log" -w -t 60 \
	    -o "-k $T_TMP -p $PGPORT -c listen_addresses='' -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=200" \
	    start >/dev/null || bail "postgres did not start: $(tail -5 "$T_TMP/pg.log")"
}

db_setup --own-cluster
is "$(sql "SELECT current_setting('fsync') || ',' || current_setting('synchronous_commit')")" "on,on" \
	"the cluster runs with fsync and synchronous_commit on"

dwad_start d1 --concurrency 64 --batch 64 || bail "dwad d1 did not start"
dwad_start d2 --concurrency 64 --batch 64 || bail "dwad d2 did not start"

# --- the producer ----------------------------------------------------------
#
# One psql call per small batch, one statement per call (so one
# transaction): a batch's ids are appended to $T_TMP/ids only when psql
# exited 0, i.e. when the server answered the statement and its commit.
# While the server is down the calls fail and nothing is recorded.

psql_q() { psql -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }

items=$(seq -s, 0 19)
dag='{"type": "crash-dag", "steps": [
    {"id": "a", "task": "sleep", "input": {"ms": 20}},
    {"id": "b", "task": "sleep", "dependsOn": ["a"], "input": {"ms": 20, "from": "{{steps.a.ms}}"}},
    {"id": "c", "task": "sleep", "dependsOn": ["a", "b"], "input": {"ms": 20}}
  ]}'
fan="{\"type\": \"crash-fan\", \"payload\": {\"items\": [$items]},
  \"steps\": [{\"id\": \"each\", \"task\": \"echo\", \"forEach\": \"{{payload.items}}\",
               \"input\": {\"n\": \"{{item}}\", \"i\": \"{{index}}\"}}]}"

# record FILE N: append FILE's ids (all numeric lines) to producer N's list.
record() {
	if grep -qvE '^[0-9]+$' "$1"; then
		echo "unexpected output: $(head -3 "$1")" >>"$T_TMP/producer.log"
		return 1
	fi
	cat "$1" >>"$T_TMP/ids.$2"
}

# producer N: submit batches until $T_TMP/stop exists.
producer() {
	local n=$1 i=0 okb=0 errb=0
	: >"$T_TMP/ids.$n"
	while [ ! -e "$T_TMP/stop" ]; do
		i=$((i + 1))
		# Single-step noop tasks, by INSERT ... RETURNING.
		if psql_q -c "INSERT INTO dwa.tasks (type, payload)
		    SELECT 'noop', jsonb_build_object('batch', $i, 'k', g)
		    FROM generate_series(1, 16) g RETURNING id" \
		    >"$T_TMP/p1.$n.out" 2>>"$T_TMP/producer.log" && record "$T_TMP/p1.$n.out" $n; then
			okb=$((okb + 1))
		else
			errb=$((errb + 1))
			sleep 0.05
		fi
		# Four 3-step DAGs and a forEach of 20 echos, by dwa.submit.
		d="\$d\$$dag\$d\$"
		defs="($d), ($d), ($d), ($d), (\$d\$$fan\$d\$)"
		if psql_q -c "SELECT dwa.submit(d::jsonb) FROM (VALUES $defs) v(d)" \
		    >"$T_TMP/p2.$n.out" 2>>"$T_TMP/producer.log" && record "$T_TMP/p2.$n.out" $n; then
			okb=$((okb + 1))
		else
			errb=$((errb + 1))
			sleep 0.05
		fi
		echo "$okb $errb" >"$T_TMP/producer.count.$n"
	done
}

# Three of them side by side, for load (each psql call waits for its WAL
# flush).
PRODUCERS=""
for n in 1 2 3; do
	producer $n &
	PRODUCERS="$PRODUCERS $!"
done
T_PIDS="$T_PIDS $PRODUCERS"

sleep 3
# The snapshot is one committed read: \copy of a single SELECT.  Take it
# again (for up to ~5 s) until it catches steps in flight, then crash at
# once: the daemons often catch up between batches.
for try in $(seq 1 60); do
	psql_q -c "\\copy (SELECT id, status, attempt, md5(output::text) FROM dwa.steps) TO '$T_TMP/snap'" \
		|| bail "snapshot failed"
	grep -q "	running	" "$T_TMP/snap" && break
	sleep 0.05
done
pg_stop immediate || bail "pg_ctl stop -m immediate failed"
crash_ids=$(cat "$T_TMP"/ids.* | wc -l)
diag "crashed with $crash_ids tasks recorded; snapshot: $(cut -f2 "$T_TMP/snap" | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')"
sleep 1
pg_ctl_start
# Keep submitting for a while on the restarted server, then stop.
sleep 1
touch "$T_TMP/stop"
wait $PRODUCERS
cat "$T_TMP"/ids.* >"$T_TMP/ids"
okb=$(cat "$T_TMP"/producer.count.* | awk '{ s += $1 } END { print s + 0 }')
errb=$(cat "$T_TMP"/producer.count.* | awk '{ s += $2 } END { print s + 0 }')
diag "producers: $okb batches committed, $errb failed; $(wc -l <"$T_TMP/ids") tasks recorded"
ok $([ "$crash_ids" -gt 0 ] && [ "$errb" -gt 0 ]; echo $?) \
	"the producer recorded tasks before the crash and saw errors while the server was down"

# Load what was recorded into the database, to compare there.
psql_q -c "CREATE SCHEMA crash_t" \
	-c "CREATE TABLE crash_t.recorded (id bigint)" \
	-c "CREATE TABLE crash_t.snap (id bigint, status text, attempt integer, md5 text)" \
	-c "\\copy crash_t.recorded FROM '$T_TMP/ids'" \
	-c "\\copy crash_t.snap FROM '$T_TMP/snap'" || bail "could not load the recorded ids"

is "$(sql "SELECT count(*) FROM crash_t.recorded r WHERE NOT EXISTS (SELECT 1 FROM dwa.tasks t WHERE t.id = r.id)")" 0 \
	"every task whose submission returned survived the crash"
is "$(sql "SELECT count(*) FROM crash_t.recorded")" "$(sql "SELECT count(DISTINCT id) FROM crash_t.recorded")" \
	"no id was returned twice"
ok $([ "$(sql "SELECT count(*) FROM crash_t.snap WHERE status = 'succeeded'")" -gt 0 ]; echo $?) \
	"the snapshot saw succeeded steps"
# snap_changed: the steps succeeded in the snapshot that are gone, or no
# longer succeeded, or have another attempt or output.
snap_changed() {
	sql "SELECT count(*) FROM crash_t.snap s LEFT JOIN dwa.steps x ON x.id = s.id
	     WHERE s.status = 'succeeded'
	       AND (x.id IS NULL OR x.status <> 'succeeded' OR x.attempt <> s.attempt
	            OR md5(x.output::text) IS DISTINCT FROM s.md5)"
}
is "$(snap_changed)" 0 \
	"every step succeeded before the crash is still succeeded, same attempt and output"

wait_until 50 sql_true "SELECT NOT EXISTS (SELECT 1 FROM dwa.tasks WHERE status NOT IN ('completed', 'failed', 'cancelled'))"
ok $? "every task finishes after the restart"
is "$(sql "SELECT count(*) FROM crash_t.recorded r JOIN dwa.tasks t ON t.id = r.id WHERE t.status <> 'completed'")" 0 \
	"every recorded task completed"
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE status <> 'completed'")" 0 \
	"so did every other task (submitted while the server went down)"
is "$(sql "SELECT count(*) FROM dwa.steps WHERE status IN ('waiting', 'ready', 'running')")" 0 \
	"no step is left waiting, ready or running"
is "$(snap_changed)" 0 \
	"and stayed so while the rest ran (none ran again)"
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE steps_done > steps_total OR progress > 100 OR progress < 0")" 0 \
	"no task counts more steps done than it has, or progress over 100"
is "$(sql "SELECT count(*) FROM dwa.tasks t JOIN crash_t.recorded r ON r.id = t.id
	 WHERE t.type = 'crash-fan' AND jsonb_array_length(t.result) <> 20")" 0 \
	"every forEach has its 20 outputs"
kill -0 "$(dwad_pid d1)" && kill -0 "$(dwad_pid d2)"
ok $? "both daemons are still running"
log_contains d1 "connection lost" && log_contains d2 "connection lost"
ok $? "both logged the loss of the server"
ok $([ "$(grep -c 'db work: connected' "$T_TMP/d1.log")" -ge 2 ] &&
     [ "$(grep -c 'db work: connected' "$T_TMP/d2.log")" -ge 2 ]; echo $?) \
	"and reconnected"

diag "tasks: $(sql "SELECT count(*) FROM dwa.tasks"), steps: $(sql "SELECT count(*) FROM dwa.steps")"
diag "steps run more than once (at least once): $(sql "SELECT count(*) FROM dwa.steps WHERE attempt > 1"), max attempt $(sql "SELECT max(attempt) FROM dwa.steps")"
diag "steps requeued per daemon log: d1 $(grep -c 'requeued' "$T_TMP/d1.log"), d2 $(grep -c 'requeued' "$T_TMP/d2.log")"
