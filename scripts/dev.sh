#!/usr/bin/env bash
# The tghost developer entry point.
#
#   scripts/dev.sh deps              install the Debian packages that are missing
#   scripts/dev.sh build             deps + release build in build/
#   scripts/dev.sh run [ARGS] SCRIPT [ARGS]
#                                    deps + build tghost alone (build-run/) + run
#                                    it: --sandbox needs no token, else BOT_TOKEN
#   scripts/dev.sh test              deps + build + all tests, in the release
#                                    build and under ASan+UBSan (build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config liblua5.4-dev libevent-dev
          libcurl4-openssl-dev lua-cjson-dev ca-certificates
          libsqlite3-dev libhiredis-dev
          libssl-dev                # libcrypto: Web App and login checks
          libmimalloc-dev           # tghost's allocator (bench/README.md)
          redis-server              # the Redis storage tests start their own
          nghttp2-server openssl    # the HTTP/2 tests only
          nghttp2-proxy
          systemd                   # systemd-analyze, for the unit's test
          python3 python3-prometheus-client)   # parses /metrics in the tests

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
}

build() {
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -j "$(nproc)"
}

# Only errors on the terminal: `run` is about the bot, not the compiler.
build_quietly() {
  local log
  log=$(mktemp)
  if ! build "$1" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

case "${1:-}" in
  deps) deps ;;
  build) deps; build default ;;
  run)
    shift
    [ $# -ge 1 ] || { echo "usage: scripts/dev.sh run [tghost options] SCRIPT.lua [tghost options]" >&2; exit 2; }
    deps; build_quietly run
    # tghost takes its options before or after the script.
    exec build-run/tghost "$@"
    ;;
  test)
    deps
    logs=$(mktemp -d)
    trap 'rm -rf "$logs"' EXIT
    for preset in default asan; do
      build "$preset"
      # As many tests at once as there are cores: the timing tests are
      # written to hold on a busy machine.
      ctest --preset "$preset" -j "$(nproc)" | tee "$logs/$preset"
    done
    # One closing line with both of ctest's counts.
    echo "== default: $(grep -h 'tests passed' "$logs/default");" \
         "asan: $(grep -h 'tests passed' "$logs/asan")"
    ;;
  *)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
