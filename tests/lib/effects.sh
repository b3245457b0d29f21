# effects.sh: sourced by the effect tests after harness.sh.  Starts local
# receivers (tests/lib/receiver.py: HTTP; tests/lib/smtp-sink.py: SMTP) on
# loopback, changes their mode while they run, and reads what they
# recorded.  Every server started here is killed by the harness at exit
# (T_PIDS) and stops by itself after 90 s anyway.
#
# Receiver NAME records requests in $T_TMP/NAME-requests.log (one JSON
# object a line: time, method, path, headers with lower-case names, body),
# so a failed test prints them with the other logs.

T_LIB="$top_srcdir/tests/lib"

# server_start NAME SCRIPT [ARGS...]: start a server script; its port goes
# to PORT_<NAME>.
server_start() {
	local name=$1 script=$2
	shift 2
	python3 "$T_LIB/$script" --port-file "$T_TMP/$name.port" \
	    --log "$T_TMP/$name-requests.log" --max-seconds 90 "$@" \
	    >/dev/null 2>"$T_TMP/$name-server.log" &
	T_PIDS="$T_PIDS $!"
	eval "SERVER_PID_$name=$!"
	wait_until 10 test -s "$T_TMP/$name.port" ||
	    bail "$script $name did not start: $(cat "$T_TMP/$name-server.log")"
	eval "PORT_$name=$(cat "$T_TMP/$name.port")"
}

# receiver_start NAME [MODE]: an HTTP receiver answering MODE (default
# 200; see receiver.py); its base URL is $(receiver_url NAME).
receiver_start() {
	receiver_mode "$1" "${2:-200}"
	server_start "$1" receiver.py --mode-file "$T_TMP/$1.mode"
}
receiver_url() { eval "echo http://127.0.0.1:\$PORT_$1"; }

# receiver_mode NAME MODE: change how receiver NAME answers from now on.
receiver_mode() {
	printf '%s\n' "$2" >"$T_TMP/$1.mode.tmp" && mv "$T_TMP/$1.mode.tmp" "$T_TMP/$1.mode"
}

# smtp_start NAME: an SMTP sink; its URL is smtp://127.0.0.1:$PORT_<NAME>.
smtp_start() { server_start "$1" smtp-sink.py; }

# recorded NAME FILTER EXPR: for each record of server NAME for which the
# Python expression FILTER is true, print EXPR (r is the record; json,
# re, hmac, hashlib and os are imported; strings print as they are, other
# values as JSON with sorted keys).  b(r) is the body parsed as JSON.
recorded() {
	python3 - "$T_TMP/$1-requests.log" "$2" "$3" <<'EOF'
import hashlib, hmac, json, os, re, sys
def b(r):
    return json.loads(r["body"])
path, flt, expr = sys.argv[1:4]
try:
    lines = open(path, encoding="utf-8").read().splitlines()
except OSError:
    lines = []
for line in lines:
    r = json.loads(line)
    try:
        if not eval(flt):
            continue
        v = eval(expr)
    except Exception as e:
        v = "error: %s: %s" % (type(e).__name__, e)
    if not isinstance(v, str):
        v = json.dumps(v, sort_keys=True, ensure_ascii=False)
    print(v)
EOF
}

# nrecorded NAME [FILTER]: how many records match.
nrecorded() { recorded "$1" "${2:-True}" 1 | wc -l | tr -d ' '; }
# has_recorded NAME N [FILTER]: true once at least N records match.
has_recorded() { [ "$(nrecorded "$1" "${3:-True}")" -ge "$2" ]; }

# proc_gone PID: true once the process has exited (a zombie counts).
proc_gone() {
	case $(ps -o stat= -p "$1" 2>/dev/null) in
	""|Z*) return 0 ;;
	esac
	return 1
}

# outbox_settled TASK N: true once task TASK has at least N outbox rows and
# none is pending or delivering.
outbox_settled() {
	sql_true "SELECT count(*) >= $2 AND count(*) FILTER (WHERE status IN
	    ('pending', 'delivering')) = 0 FROM dwa.outbox WHERE task_id = $1"
}
# outbox_rows TASK: one line per outbox row of the task, for diagnostics.
outbox_rows() {
	sql "SELECT id || ' ' || hook || ' ' || event || ' ' || status || ' attempts='
	    || attempts || ' error=' || coalesce(last_error, '-')
	    FROM dwa.outbox WHERE task_id = $1 ORDER BY id"
}

# same GOT EXPECTED DESCRIPTION: like 'is', but an empty EXPECTED (say, a
# delivery id read from a row that does not exist) fails rather than
# matching an empty GOT.
same() {
	if [ -z "$2" ]; then
		ok 1 "$3"
		diag "got:      '$1'"
		diag "expected: a value, but it is empty"
	else
		is "$1" "$2" "$3"
	fi
}
