#!/bin/sh
# flaky.sh STATE: the first run (STATE absent) creates STATE and exits 75
# (transient); the next answers {"result": "second"}.
cat >/dev/null
if [ ! -e "$1" ]; then
	: >"$1"
	echo "flaky: try again" >&2
	exit 75
fi
echo '{"result": "second"}'
