#!/bin/sh
# ok.sh: echo the input back with the run's working directory, leaving a
# file there.  Output: {"input": INPUT, "cwd": DIR}.
input=$(tr '\n' ' ')
echo scratch >scratch
printf '{"result": {"input": %s, "cwd": "%s"}}\n' "$input" "$PWD"
