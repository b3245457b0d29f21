#!/usr/bin/env bash
# dev.sh: everything a developer needs, from a fresh Debian machine.
#
#   contrib/dev.sh demo     install what is missing, build, start PostgreSQL
#                           under .dwa/ (unless DATABASE_URL is set), run the
#                           example DAG with dwad and show it progress
#   contrib/dev.sh check    install, build with ASan/UBSan, run every suite
#                           against a throwaway cluster
#   contrib/dev.sh build    install and build only
#   contrib/dev.sh pg-start | pg-stop | env
#                           the embedded cluster; 'env' prints DATABASE_URL
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
state="$top/.dwa"
pgbin=""

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

# --- packages -------------------------------------------------------------

packages=(autoconf automake libtool pkg-config make gcc libpq-dev libssl-dev
	libevent-dev libcurl4-openssl-dev libjansson-dev
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	ffmpeg imagemagick python3 python3-starlette python3-uvicorn)

find_pgbin() {
	pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
		packages+=(postgresql-15)
		pgbin=/usr/lib/postgresql/15/bin
	fi
}

install_missing() {
	local missing=() p
	find_pgbin
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	local sudo=""
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || die "missing packages: ${missing[*]} (run as root or install them)"
		sudo=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq >/dev/null
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- build ----------------------------------------------------------------

# build DIR CONFIGURE-FLAGS...: an out-of-tree build under .dwa/.
build() {
	local name=$1 dir="$state/$1"
	shift
	[ -x "$top/configure" ] || { say "autoreconf"; (cd "$top" && ./autogen.sh >/dev/null 2>&1) || die "autoreconf failed"; }
	if [ -f "$top/Makefile" ]; then
		say "the source tree is configured in place: building there"
		make -C "$top" -j"$(nproc)" -s >/dev/null || make -C "$top" || die "build failed"
		builddir=$top
		return
	fi
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ] || [ "$(cat "$dir/.flags" 2>/dev/null)" != "$*" ]; then
		say "configure $*"
		(cd "$dir" && "$top/configure" "$@" >configure.out 2>&1) ||
			{ tail -20 "$dir/configure.out"; die "configure failed"; }
		echo "$*" >"$dir/.flags"
		sed -n '/configured:/,$p' "$dir/configure.out" >&2
	fi
	say "make (.dwa/$name)"
	make -C "$dir" -j"$(nproc)" -s >/dev/null || make -C "$dir" || die "build failed"
	builddir=$dir
}

# --- the embedded cluster ---------------------------------------------------

pg_user() { [ "$(id -u)" = 0 ] && echo postgres || id -un; }
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
	local pgdir="$state/pg"
	find_pgbin
	mkdir -p "$pgdir"
	if [ "$(id -u)" = 0 ]; then
		chown postgres "$pgdir"
		runuser -u postgres -- test -w "$pgdir" ||
			die "the postgres user cannot write $pgdir: clone somewhere it can reach, or set DATABASE_URL"
	fi
	if [ ! -f "$pgdir/data/PG_VERSION" ]; then
		say "initdb $pgdir/data"
		as_pg "$pgbin/initdb" -A trust -U postgres -D "$pgdir/data" >"$pgdir/initdb.log" 2>&1 ||
			{ cat "$pgdir/initdb.log"; die "initdb failed"; }
	fi
	if ! as_pg "$pgbin/pg_ctl" -D "$pgdir/data" status >/dev/null 2>&1; then
		say "starting PostgreSQL (socket in $pgdir)"
		as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w \
			-o "-k $pgdir -p 5432 -c listen_addresses=''" start >/dev/null ||
			{ tail -20 "$pgdir/postgres.log"; die "PostgreSQL did not start"; }
	fi
	export DATABASE_URL="postgresql:///dwa?host=$pgdir&port=5432&user=postgres"
	"$pgbin/psql" -X -q -d "postgresql:///postgres?host=$pgdir&port=5432&user=postgres" \
		-tAc "SELECT 1 FROM pg_database WHERE datname = 'dwa'" | grep -q 1 ||
		"$pgbin/createdb" -h "$pgdir" -p 5432 -U postgres dwa
}

pg_stop() {
	find_pgbin
	[ -f "$state/pg/data/PG_VERSION" ] &&
		as_pg "$pgbin/pg_ctl" -D "$state/pg/data" -m fast stop >/dev/null 2>&1 || true
}

database() {
	if [ -n "${DATABASE_URL:-}" ]; then
		say "using DATABASE_URL"
	else
		pg_start
	fi
}

# --- commands -----------------------------------------------------------------

cmd_demo() {
	install_missing
	build build
	database
	local dwa="$builddir/src/dwa" dwad="$builddir/src/dwad" id rc port i
	"$dwa" migrate
	mkdir -p "$state/demo"
	if [ ! -s "$state/demo/clip.mp4" ]; then
		# 6 s: a test pattern, then colour bars (a scene change at 3 s), a tone.
		say "making .dwa/demo/clip.mp4 with ffmpeg"
		ffmpeg -hide_banner -loglevel error -nostdin \
			-f lavfi -i testsrc=duration=3:size=640x360:rate=25 \
			-f lavfi -i smptebars=duration=3:size=640x360:rate=25 \
			-f lavfi -i sine=frequency=440:duration=6 \
			-filter_complex '[0:v][1:v]concat=n=2:v=1:a=0[v]' -map '[v]' -map 2:a \
			-c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest \
			"$state/demo/clip.tmp.mp4" || die "ffmpeg could not make the clip"
		mv "$state/demo/clip.tmp.mp4" "$state/demo/clip.mp4"
	fi
	# Globals, for the trap.
	demo_pid="" http_pid=""
	trap 'for p in $demo_pid $http_pid; do kill -TERM $p 2>/dev/null; wait $p 2>/dev/null || true; done' EXIT
	python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$state/demo" \
		>"$state/demo-http.log" 2>&1 &
	http_pid=$!
	port=""
	for i in $(seq 100); do
		port=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$state/demo-http.log" | head -n 1)
		[ -n "$port" ] && break
		sleep 0.1
	done
	[ -n "$port" ] || die "python3 -m http.server did not start: $(cat "$state/demo-http.log")"
	say "serving .dwa/demo/clip.mp4 on http://127.0.0.1:$port/"
	say "starting dwad (log: .dwa/demo-dwad.log, files: .dwa/work)"
	# No stdout, so that a pipe reading ours ends.
	# On its first start dwad registers the task library (dwa types sync).
	: >"$state/demo-dwad.log"
	DWA_WORKDIR="$state/work" "$dwad" --concurrency 8 --tasks "$top/contrib/tasks" \
		--log-file "$state/demo-dwad.log" >/dev/null 2>&1 &
	demo_pid=$!
	for i in $(seq 300); do
		grep -q " ready: " "$state/demo-dwad.log" 2>/dev/null && break
		kill -0 "$demo_pid" 2>/dev/null || die "dwad stopped: $(tail -5 "$state/demo-dwad.log")"
		sleep 0.1
	done
	say "submitting contrib/examples/video-analysis.json"
	id=$(sed "s|http://127.0.0.1:8000/clip.mp4|http://127.0.0.1:$port/clip.mp4|" \
		"$top/contrib/examples/video-analysis.json" | "$dwa" submit -)
	say "task $id: watching it run"
	rc=0
	"$dwa" watch "$id" || rc=$?
	say "final state of task $id"
	"$dwa" status "$id"
	echo
	echo "DATABASE_URL=$DATABASE_URL"
	echo "try: psql \"\$DATABASE_URL\" -c 'SELECT * FROM dwa.task_steps WHERE task_id = $id'"
	return $rc
}

cmd_check() {
	install_missing
	build build-check --enable-debug --enable-sanitizers
	local rc=0
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/dwa-check.XXXXXX")
	chmod 755 "$tmp"
	[ "$(id -u)" = 0 ] && chown postgres "$tmp"
	say "throwaway PostgreSQL in $tmp"
	as_pg "$pgbin/initdb" -A trust --nosync -U postgres -D "$tmp/data" >"$tmp/initdb.log" 2>&1 ||
		{ cat "$tmp/initdb.log"; die "initdb failed"; }
	as_pg "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/postgres.log" -w \
		-o "-k $tmp -p 5432 -c listen_addresses='' -c fsync=off -c max_connections=300" \
		start >/dev/null || { tail -20 "$tmp/postgres.log"; die "PostgreSQL did not start"; }
	trap 'as_pg "$pgbin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1; rm -rf "$tmp"' EXIT
	export DWA_TEST_PGHOST="$tmp" DWA_TEST_PGPORT=5432
	export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
	say "make check"
	make -C "$builddir" -j"$(nproc)" check || rc=$?
	summary "$builddir"
	return $rc
}

# summary DIR: one closing line from the .trs files.
summary() {
	local pass fail skip
	pass=$(cat $(find "$1/tests" -name '*.trs') 2>/dev/null | grep -c '^:test-result: PASS' || true)
	fail=$(cat $(find "$1/tests" -name '*.trs') 2>/dev/null | grep -Ec '^:test-result: (FAIL|XPASS|ERROR)' || true)
	skip=$(cat $(find "$1/tests" -name '*.trs') 2>/dev/null | grep -c '^:test-result: SKIP' || true)
	for f in $(grep -l -E '^:test-result: (FAIL|XPASS|ERROR)' $(find "$1/tests" -name '*.trs') 2>/dev/null); do
		echo "--- ${f%.trs}.log"
		grep -E '^(not ok|#|Bail)' "${f%.trs}.log" | head -40
	done
	echo "$pass passed, $fail failed, $skip skipped"
}

case "${1:-}" in
demo)		cmd_demo ;;
check)		cmd_check ;;
build)		install_missing; build build ;;
pg-start)	pg_start; echo "DATABASE_URL=$DATABASE_URL" ;;
pg-stop)	pg_stop ;;
env)		echo "DATABASE_URL=postgresql:///dwa?host=$state/pg&port=5432&user=postgres" ;;
*)
	echo "usage: contrib/dev.sh demo|check|build|pg-start|pg-stop|env" >&2
	exit 2 ;;
esac
