#!/usr/bin/env bash
# The benchmark in one command (bench/README.md): sets the peers up, builds
# tghost and the benchmark (release, build/), and runs tghost, grammY runner
# and telebot one after the other, every scenario three times. Arguments go
# to build/bench/peerbench (--scenarios echo,seq --runs 5, ...). The tables
# go to stdout, progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/dev.sh deps
bench/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target tghost peerbench >/dev/null
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg) at the start" 
status=0
build/bench/peerbench "$@" || status=$?
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
