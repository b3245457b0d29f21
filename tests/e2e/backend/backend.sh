# backend.sh: sourced by tests after harness.sh.  Starts the reference
# HTTP backend (contrib/backends/server.py) on loopback with the test
# handlers of handlers.py beside this file; the harness kills it at exit
# (T_PIDS), and it stops by itself after 120 s anyway.
#
#   backend_start NAME [SERVER ARGS...]   start it; stderr (one line a
#                                         request) goes to $T_TMP/NAME.log
#   backend_url NAME                      http://127.0.0.1:PORT
#
# Set DWA_BACKEND_TOKEN before backend_start for a backend that wants a
# bearer token, DWA_TEST_CALLS for t.count.

backend_start() {
	local name=$1
	shift
	python3 "$top_srcdir/contrib/backends/server.py" --host 127.0.0.1 --port 0 \
	    --max-seconds 120 --module "$top_srcdir/tests/e2e/backend/handlers.py" "$@" \
	    >"$T_TMP/$name.out" 2>"$T_TMP/$name.log" &
	T_PIDS="$T_PIDS $!"
	eval "BACKEND_PID_$name=$!"
	wait_until 10 grep -q '^listening on ' "$T_TMP/$name.out" || {
		diag "backend $name did not start: $(cat "$T_TMP/$name.log")"
		return 1
	}
	eval "BACKEND_PORT_$name=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$T_TMP/$name.out")"
}
backend_url() { eval "echo http://127.0.0.1:\$BACKEND_PORT_$1"; }
