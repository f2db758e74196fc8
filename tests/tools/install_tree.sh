#!/bin/sh
# cmake --install puts the binary, the man page, the systemd unit (pointing
# at the installed binary) and the Lua annotations under a prefix.
#
#   install_tree.sh BUILD_DIR
set -eu
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
fail() { echo "install: $*"; exit 1; }
[ -x "$prefix/bin/tghost" ] || fail "no bin/tghost"
"$prefix/bin/tghost" --version | grep -q '^tghost ' || fail "bin/tghost --version"
[ -f "$prefix/share/man/man1/tghost.1.gz" ] || fail "no share/man/man1/tghost.1.gz"
unit="$prefix/lib/systemd/system/tghost@.service"
[ -f "$unit" ] || fail "no lib/systemd/system/tghost@.service"
grep -q "^ExecStart=$prefix/bin/tghost " "$unit" || fail "the unit does not start $prefix/bin/tghost"
[ -f "$prefix/share/tghost/types/tghost.lua" ] || fail "no share/tghost/types/tghost.lua"
[ -f "$prefix/share/tghost/types/botapi.lua" ] || fail "no share/tghost/types/botapi.lua"
echo "install: everything in place under a prefix"
