#!/bin/sh
# systemd-analyze verify accepts contrib/tghost@.service (no error and no
# warning) and the bot runs in its writable state directory. verify
# reports unknown or malformed settings but still exits 0, so any output
# fails the test; it also checks that ExecStart's program exists, so the
# unit is checked with it pointed at the built binary.
#
#   systemd_unit.sh UNIT TGHOST_BINARY      (exit 77: skipped)
set -u
unit=$1 binary=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze is not installed (Debian package systemd): skipped"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s#/usr/local/bin/tghost#$binary#" "$unit" > "$dir/tghost@.service"
if ! grep -q "ExecStart=$binary " "$dir/tghost@.service"; then
  echo "the unit's ExecStart does not start /usr/local/bin/tghost"
  exit 1
fi
# The bot runs in its state directory: relative paths it writes (a SQLite
# file, a journal) must land somewhere writable under ProtectSystem=strict.
state=$(sed -n 's/^StateDirectory=//p' "$unit")
workdir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
if [ -z "$state" ] || [ "$workdir" != "%S/$state" ]; then
  echo "the unit's WorkingDirectory ($workdir) is not its StateDirectory (%S/$state)"
  exit 1
fi
# --man=no: the unit's Documentation= names the man page, which need not
# be installed where the test runs.
out=$(systemd-analyze verify --man=no "$dir/tghost@.service" 2>&1)
rc=$?
[ -n "$out" ] && echo "$out"
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  echo "systemd-analyze verify: exit $rc"
  exit 1
fi
echo "systemd-analyze verify: the unit is clean"
