# harness.sh: sourced by the end-to-end tests and the pgTAP runner.
#
# Gives each test file its own database on a throwaway PostgreSQL cluster:
# the one named by DWA_TEST_PGHOST/DWA_TEST_PGPORT (contrib/dev.sh check
# starts one for the whole suite), else a cluster of its own, initdb'd into
# a temp dir and run as an unprivileged user when we are root.  Daemons
# started with dwad_start are killed at exit.  Logs are printed only when
# the test failed.

set -u

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
DWA="$top_builddir/src/dwa"
DWAD="$top_builddir/src/dwad"

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -n "$PGBIN" ] || PGBIN=$(dirname "$(command -v initdb 2>/dev/null || echo /usr/bin/initdb)")

T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dwa-test.XXXXXX")
chmod 755 "$T_TMP"
T_PIDS=""
T_OWN_CLUSTER=0
T_FAILED=0
T_N=0

# --- TAP -----------------------------------------------------------------

plan() { echo "1..$1"; }
diag() { printf '# %s\n' "$*"; }
ok() {
	T_N=$((T_N + 1))
	if [ "$1" -eq 0 ] 2>/dev/null; then
		echo "ok $T_N - $2"
	else
		echo "not ok $T_N - $2"
		T_FAILED=1
	fi
}
# is GOT EXPECTED DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:      '$1'"
		diag "expected: '$2'"
	fi
}
# like GOT REGEX DESCRIPTION
like() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:      '$1'"
		diag "expected to match: '$2'"
	fi
}
bail() { echo "Bail out! $*"; exit 1; }

# wait_until SECONDS COMMAND...: poll every 50 ms until COMMAND succeeds.
wait_until() {
	local deadline=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
	shift
	while [ $(( $(date +%s%N) / 1000000 )) -lt $deadline ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}

# --- PostgreSQL ------------------------------------------------------------

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "${DWA_PG_OSUSER:-postgres}" -- "$@"
	else
		"$@"
	fi
}

pg_start_own() {
	T_OWN_CLUSTER=1
	export PGHOST="$T_TMP" PGPORT=5432 PGUSER=postgres
	if [ "$(id -u)" = 0 ]; then
		chown "${DWA_PG_OSUSER:-postgres}" "$T_TMP"
	fi
	as_pg "$PGBIN/initdb" -A trust --nosync -U postgres -D "$T_TMP/pgdata" \
	    >"$T_TMP/initdb.log" 2>&1 || bail "initdb failed: $(cat "$T_TMP/initdb.log")"
	pg_ctl_start
}

pg_ctl_start() {
	as_pg "$PGBIN/pg_ctl" -D "$T_TMP/pgdata" -l "$T_TMP/pg.log" -w -t 60 \
	    -o "-k $T_TMP -p $PGPORT -c listen_addresses='' -c fsync=off -c max_connections=200" \
	    start >/dev/null || bail "postgres did not start: $(tail -5 "$T_TMP/pg.log")"
}

# pg_restart: stop the test's own cluster (immediately) and start it again.
pg_stop() { as_pg "$PGBIN/pg_ctl" -D "$T_TMP/pgdata" -m "${1:-fast}" -w stop >/dev/null 2>&1; }

# db_setup [--own-cluster] [--no-migrate]: create this test's database (on a
# cluster of its own with --own-cluster, for tests that stop the server)
# and migrate it; sets DATABASE_URL and the PG* variables.
db_setup() {
	local own=0 migrate=1 a
	for a in "$@"; do
		case $a in
		--own-cluster) own=1 ;;
		--no-migrate) migrate=0 ;;
		esac
	done
	if [ -n "${DWA_TEST_PGHOST:-}" ] && [ $own = 0 ]; then
		export PGHOST="$DWA_TEST_PGHOST" PGPORT="${DWA_TEST_PGPORT:-5432}" PGUSER=postgres
	else
		pg_start_own
	fi
	T_DB="dwa_$(basename "$0" | tr -c 'a-zA-Z0-9\n' _ | tr 'A-Z' 'a-z')$$"
	"$PGBIN/createdb" "$T_DB" || bail "createdb $T_DB failed"
	export PGDATABASE="$T_DB"
	export DATABASE_URL="postgresql:///$T_DB?host=$PGHOST&port=$PGPORT&user=postgres"
	if [ $migrate = 1 ]; then
		"$DWA" migrate --quiet || bail "dwa migrate failed"
	fi
}

# sql QUERY: one value per line, unaligned.
sql() { psql -X -A -t -q -v ON_ERROR_STOP=1 -c "$1" 2>&1; }

# submit JSON: submit a task definition through SQL; prints its id.
submit() { sql "SELECT dwa.submit('$(printf '%s' "$1" | sed "s/'/''/g")'::jsonb)"; }
task_status() { sql "SELECT status FROM dwa.tasks WHERE id = $1"; }
task_done() { case $(task_status "$1") in completed|failed|cancelled) return 0 ;; esac; return 1; }
step_status() { sql "SELECT status FROM dwa.steps WHERE task_id = $1 AND step_id = '$2' AND item_index IS NULL"; }
sql_true() { [ "$(sql "$1")" = t ]; }
step_is() { [ "$(step_status "$1" "$2")" = "$3" ]; }

# run CMD...: run a command; sets OUT, ERR and RC.
run() {
	"$@" >"$T_TMP/out" 2>"$T_TMP/err"
	RC=$?
	OUT=$(cat "$T_TMP/out")
	ERR=$(cat "$T_TMP/err")
}

# json JSON EXPR: evaluate EXPR over the JSON text as jsonb "j" in psql.
json() {
	echo "SELECT $2 FROM (SELECT :'j'::jsonb AS j) x" |
	    psql -X -A -t -q -v ON_ERROR_STOP=1 -v j="$1" 2>&1
}

# --- daemons ---------------------------------------------------------------

# dwad_start NAME [ARGS...]: start a daemon logging to $T_TMP/NAME.log and
# wait until it is ready.
dwad_start() {
	local name=$1
	shift
	${DWAD_WRAPPER:-} "$DWAD" --name "$name" -v "$@" >"$T_TMP/$name.log" 2>&1 &
	eval "PID_$name=$!"
	T_PIDS="$T_PIDS $!"
	wait_until 20 log_contains "$name" "ready" || {
		diag "dwad $name did not become ready"
		cat "$T_TMP/$name.log" | sed 's/^/# /'
		return 1
	}
}
dwad_pid() { eval "echo \$PID_$1"; }
log_contains() { grep -q -- "$2" "$T_TMP/$1.log"; }

# faults_check: dwa.steps and the tables that index it must agree
# (tests/lib/faults.sql); a fault fails the test, whatever its TAP said.
faults_check() {
	local f
	[ -n "${T_DB:-}" ] || return 0
	f=$(psql -X -A -t -q -f "$top_srcdir/tests/lib/faults.sql" 2>/dev/null) || return 0
	[ -z "$f" ] && return 0
	echo "Bail out! dwa.steps and its queues disagree: $(echo "$f" | head -n 5 | tr '\n' ';')"
	T_FAILED=1
	return 1
}

t_cleanup() {
	local pid rc=$?
	for pid in $T_PIDS; do
		kill -KILL "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	faults_check || rc=1
	if [ "$T_FAILED" != 0 ]; then
		for f in "$T_TMP"/*.log; do
			[ -f "$f" ] || continue
			echo "# --- $(basename "$f")"
			tail -n 60 "$f" | sed 's/^/# /'
		done
	fi
	if [ "$T_OWN_CLUSTER" = 1 ]; then
		pg_stop immediate
	elif [ -n "${T_DB:-}" ]; then
		"$PGBIN/dropdb" --if-exists "$T_DB" >/dev/null 2>&1
	fi
	rm -rf "$T_TMP"
	exit $rc
}
trap t_cleanup EXIT
