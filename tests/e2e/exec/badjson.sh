#!/bin/sh
# badjson.sh: a progress line, then a line that is not JSON, then exit 0.
cat >/dev/null
echo '{"progress": 10}'
echo 'this is not json'
echo '{"result": "never"}'
