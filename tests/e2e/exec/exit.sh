#!/bin/sh
# exit.sh CODE: write about 10 KiB to stderr, between FIRST-MARKER and
# LAST-MARKER-CODE, and exit with CODE.
cat >/dev/null
echo "FIRST-MARKER" >&2
i=0
while [ $i -lt 160 ]; do
	echo "filler line $i ................................................" >&2
	i=$((i + 1))
done
echo "LAST-MARKER-$1" >&2
exit "$1"
