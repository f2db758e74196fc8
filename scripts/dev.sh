#!/usr/bin/env bash
# The tghost developer entry point.
#
#   scripts/dev.sh deps              install the Debian packages that are missing
#   scripts/dev.sh build             deps + release build in build/
#   scripts/dev.sh run [ARGS] SCRIPT [ARGS]
#                                    what running needs + build tghost alone
#                                    (build-run/) + run it: --sandbox needs no
#                                    token, else BOT_TOKEN
#   scripts/dev.sh test              deps + build + all tests, in the release
#                                    build and under ASan+UBSan (build-asan/);
#                                    ends with one line of counts and failures
set -euo pipefail
cd "$(dirname "$0")/.."

# What building and running tghost needs.
RUN_PACKAGES=(build-essential cmake pkg-config liblua5.4-dev libevent-dev
              libcurl4-openssl-dev ca-certificates
              libsqlite3-dev libhiredis-dev
              libssl-dev            # libcrypto: Web App and login checks
              libmimalloc-dev       # tghost's allocator (bench/README.md)
              libedit-dev)          # line editing in the sandbox
# What the tests need on top (the Redis storage tests start a
# redis-server of their own; apt also starts one as a system service).
TEST_PACKAGES=(lua-cjson-dev         # the JSON fuzz target's oracle
               redis-server
               nghttp2-server openssl nghttp2-proxy   # the HTTP/2 tests
               systemd               # systemd-analyze, for the unit's test
               python3 python3-prometheus-client   # parses /metrics
               dpkg-dev file lintian)   # the .deb: dpkg-shlibdeps, its check

# deps PACKAGE...: installs those that are missing.
deps() {
  local missing=()
  for p in "$@"; do
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
  deps) deps "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}" ;;
  build) deps "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"; build default ;;
  run)
    shift
    [ $# -ge 1 ] || { echo "usage: scripts/dev.sh run [tghost options] SCRIPT.lua [tghost options]" >&2; exit 2; }
    deps "${RUN_PACKAGES[@]}"; build_quietly run
    # tghost takes its options before or after the script.
    exec build-run/tghost "$@"
    ;;
  test)
    deps "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    logs=$(mktemp -d)
    trap 'rm -rf "$logs"' EXIT
    status=0 summary=""
    for preset in default asan; do
      # A build or a test that fails does not stop the other preset, nor
      # the summary below: it sets the exit status.
      if ! build "$preset"; then
        echo "the build failed" > "$logs/$preset"
        status=1
        continue
      fi
      # As many tests at once as there are cores: the timing tests are
      # written to hold on a busy machine.
      ctest --preset "$preset" -j "$(nproc)" 2>&1 | tee "$logs/$preset" \
        || status=1
    done
    # One closing line: both of ctest's counts and the names of the tests
    # that failed (listed by ctest after "The following tests FAILED:", as
    # "NN - name (Failed)"; skipped ones come under another heading).
    for preset in default asan; do
      line=$(grep -h -m1 -e 'tests passed' -e 'the build failed' "$logs/$preset" \
             || echo "no result")
      failed=$(awk '/^The following tests/ { listing = /FAILED/; next }
                    listing && / - / { print $3 }' "$logs/$preset" | tr '\n' ' ')
      summary+="$preset: $line${failed:+ (failed: ${failed% })}; "
    done
    echo "== ${summary%; }"
    exit $status
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
