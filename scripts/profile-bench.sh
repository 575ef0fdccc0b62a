#!/usr/bin/env bash
# Attach a profiler to the dialtone server while a benchmark drives it.
#
#   scripts/profile-bench.sh 'PROFILER {pid}' -- .venv/bin/python -m bench.dial.run --target dialtone ...
#
# e.g. PROFILER = '.venv/bin/py-spy record --nonblocking -r 250 -f raw -d 10 -o /tmp/p.txt -p {pid}'
#   or 'perf record -F 999 -g -o /tmp/perf.data -p {pid} -- sleep 10'
#
# Starts the benchmark, waits for the `dialtone serve` child it starts, sleeps
# $PROFILE_DELAY seconds (default 8: set-up and the first seconds of the step), then runs
# PROFILER with {pid} replaced by the server's PID, and waits for the benchmark to end.
set -euo pipefail
profiler=$1
shift 2
"$@" &
bench=$!
server=""
for _ in $(seq 1 300); do
    server=$(pgrep -P "$bench" -f "dialtone serve" || true)
    [ -n "$server" ] && break
    sleep 0.2
done
if [ -z "$server" ]; then
    echo "no dialtone server found under PID $bench" >&2
    wait "$bench"
    exit 1
fi
sleep "${PROFILE_DELAY:-8}"
stat0=$(cut -d' ' -f14,15 "/proc/$server/stat")
eval "${profiler//\{pid\}/$server}" || true
stat1=$(cut -d' ' -f14,15 "/proc/$server/stat")
echo "server $server utime+stime ticks: $stat0 -> $stat1" >&2
wait "$bench"
