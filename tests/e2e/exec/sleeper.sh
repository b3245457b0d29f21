#!/bin/sh
# sleeper.sh SECONDS [ignore-term]: start `sleep SECONDS` as a child (same
# process group) and wait for it; with ignore-term, the script and its
# child ignore SIGTERM, so only SIGKILL ends them.
cat >/dev/null
[ "${2:-}" = ignore-term ] && trap '' TERM
echo '{"progress": 5}'
sleep "$1" &
wait
echo '{"result": "woke"}'
