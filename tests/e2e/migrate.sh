#!/bin/sh
# migrate.sh: dwa migrate is idempotent and safe concurrently; dwad refuses
# a database whose schema is missing or older than itself; dwad's options.
. "$(dirname "$0")/../lib/harness.sh"
plan 20

db_setup --no-migrate

nmig=$(ls "$top_srcdir"/migrations/*.sql | wc -l)
latest=$(ls "$top_srcdir"/migrations/*.sql | tail -n 1 | xargs basename | cut -c1-4)
out=$(timeout 10 "$DWAD" 2>&1); rc=$?
is "$rc" 1 "dwad exits 1 on a database without the schema"
like "$out" "no DWA schema: run 'dwa migrate'" "and names dwa migrate"

pids=""
for i in 1 2 3 4 5; do
	"$DWA" migrate --quiet >"$T_TMP/m$i.out" 2>&1 &
	pids="$pids $!"
done
fails=0
for p in $pids; do wait "$p" || fails=$((fails + 1)); done
is "$fails" 0 "five concurrent migrates all succeed"
is "$(sql "SELECT count(DISTINCT version) || ',' || count(*) FROM dwa.schema_migrations")" "$nmig,$nmig" \
	"each migration recorded once"
out=$("$DWA" migrate)
like "$out" "^schema at ${latest}_[a-z0-9_]+ \(0 migrations applied\)$" "a second migrate applies nothing"
is "$(sql "SELECT count(*) FROM dwa.task_types WHERE executor = 'builtin'")" 8 \
	"the built-in task types are registered"
is "$(sql "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'dwa\_%'")" \
	"dwa_admin,dwa_submitter,dwa_worker" "the three roles exist"

# A sql/ file that cannot be applied (a table where a view goes): the
# error names the file, the whole apply is rolled back, exit 1.
sql "DROP VIEW dwa.task_steps; CREATE TABLE dwa.task_steps (x integer)" >/dev/null
out=$("$DWA" migrate 2>&1); rc=$?
is "$rc" 1 "a sql/ file that fails: dwa migrate exits 1"
like "$out" "sql/80_views.sql: .*task_steps" "naming the file and the error"
sql "DROP TABLE dwa.task_steps" >/dev/null
"$DWA" migrate --quiet
is "$(sql "SELECT relkind FROM pg_class WHERE oid = 'dwa.task_steps'::regclass")" v \
	"and once the table is gone, migrate puts the view back"

# Pretend the newest migration is missing.
sql "UPDATE dwa.schema_migrations SET version = '0000' WHERE version = '$latest'" >/dev/null
have=$(sql "SELECT max(version) FROM dwa.schema_migrations")
out=$(timeout 10 "$DWAD" 2>&1); rc=$?
is "$rc" 1 "dwad exits 1 on an older schema"
like "$out" "schema is at $have, this build needs $latest: run 'dwa migrate'" "naming both versions"
sql "UPDATE dwa.schema_migrations SET version = '$latest' WHERE version = '0000'" >/dev/null

out=$(timeout 10 "$DWAD" --db "postgresql:///no_such_db?host=$PGHOST&port=$PGPORT" 2>&1); rc=$?
is "$rc" 1 "dwad exits 1 when the database is unreachable"
like "$out" "cannot connect to the database: .*set DATABASE_URL or --db" "saying what to set"

out=$("$DWAD" --help); rc=$?
is "$rc" 0 "dwad --help exits 0"
like "$out" "--concurrency N" "and lists the options"
out=$("$DWAD" --bogus 2>&1); rc=$?
is "$rc" 2 "an unknown option is a usage error"
out=$("$DWAD" --concurrency 0 2>&1); rc=$?
is "$rc" 2 "--concurrency 0 is a usage error"
like "$out" "concurrency: 0 is out of range" "with a message"
out=$("$DWAD" --grace soon 2>&1)
like "$out" 'grace: "soon" is not a duration' "a bad duration is named"
