#!/usr/bin/env bash
# The streaming benchmark in one command (bench/README.md, "Streamed
# answers"): sets the peers up, builds tghost and the benchmark (release,
# build/), and runs tghost and grammY runner one after the other on the
# same streamed answers. Arguments go to build/bench/streambench (--chats,
# --tokens, --seconds, --interval, --peers, --runs). The table goes to
# stdout, each run's line to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/dev.sh deps
bench/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target tghost streambench >/dev/null
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
status=0
build/bench/streambench "$@" || status=$?
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
