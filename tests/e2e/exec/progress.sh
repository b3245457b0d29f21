#!/bin/sh
# progress.sh FLAG: report 40 %, wait (up to 20 s) for the file FLAG, then
# report 90 %, an event and two objects; the last one is the output.
cat >/dev/null
echo '{"progress": 40}'
i=0
while [ ! -e "$1" ] && [ $i -lt 400 ]; do
	sleep 0.05
	i=$((i + 1))
done
echo '{"progress": 90}'
echo '{"event": "note", "data": {"x": 1}}'
echo '{"a": 1}'
echo '{"b": 2}'
