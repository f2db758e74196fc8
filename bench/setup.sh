#!/usr/bin/env bash
# Sets up the peers bench/peerbench compares tghost with (bench/README.md):
# the Debian packages they and the benchmark need (installed when missing),
# grammY + grammY runner from npm into bench/peers/node_modules (the
# versions in bench/peers/package-lock.json), and the telebot bot built
# offline from Debian's Go packages into bench/peers/bin. Both folders are
# ignored by git.
set -euo pipefail
cd "$(dirname "$0")/peers"

PACKAGES=(nodejs npm golang-go golang-gopkg-telebot.v3-dev
          wrk nghttp2-proxy openssl valgrind)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
# A Node.js from elsewhere (nodesource, nvm) serves as well as Debian's.
if command -v node >/dev/null && command -v npm >/dev/null; then
  kept=()
  for p in "${missing[@]}"; do
    [[ $p == nodejs || $p == npm ]] || kept+=("$p")
  done
  missing=("${kept[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi

if [ ! -d node_modules/@grammyjs/runner ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

mkdir -p bin
GOPATH=/usr/share/gocode GO111MODULE=off go build -o bin/telebot ./telebot
version() { node -p "JSON.parse(require('fs').readFileSync('node_modules/$1/package.json')).version"; }
echo "peers ready: node $(node --version), grammy $(version grammy)," \
     "@grammyjs/runner $(version @grammyjs/runner), $(go version | cut -d' ' -f3)" \
     "with telebot $(dpkg-query -W -f='${Version}' golang-gopkg-telebot.v3-dev)" >&2
