#!/bin/sh
# The Debian package (cmake/package.cmake): cpack builds it from the build
# folder; it has its dependencies and files; it installs (into a scratch
# root whose package list is this machine's, so a dependency Debian 12
# cannot satisfy fails the install) and the installed tghost runs the
# installed echo example's transcript; it removes cleanly; lintian, where
# installed, reports no error or warning.
#
#   deb_package.sh BUILD_DIR        (exit 77: skipped, tools missing)
set -u
build=$1
for tool in cpack dpkg-deb dpkg dpkg-shlibdeps file; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is not installed (Debian packages dpkg-dev, file): skipped"
    exit 77
  fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "package: $*"; exit 1; }

if ! cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" \
     > "$work/cpack.log" 2>&1; then
  cat "$work/cpack.log"
  fail "cpack -G DEB failed"
fi
deb=$(ls "$work"/out/tghost_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "cpack wrote no tghost_*.deb"

# The control fields: the libraries tghost links, found by dpkg-shlibdeps.
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 liblua5.4-0 libevent-core-2.1-7 libevent-extra-2.1-7 \
           libcurl4 libsqlite3-0 libhiredis libedit2; do
  case "$depends" in *"$lib"*) ;; *) fail "Depends lacks $lib: $depends" ;; esac
done
[ "$(dpkg-deb -f "$deb" Package)" = tghost ] || fail "the package is not named tghost"

# The files.
dpkg-deb -c "$deb" | awk '{ print $6 }' > "$work/contents"
for f in ./usr/bin/tghost ./usr/share/man/man1/tghost.1.gz \
         ./lib/systemd/system/tghost@.service \
         ./usr/share/tghost/types/tghost.lua \
         ./usr/share/doc/tghost/copyright \
         ./usr/share/doc/tghost/changelog.gz \
         ./usr/share/doc/tghost/changelog.Debian.gz \
         ./usr/share/doc/tghost/examples/echo.lua \
         ./usr/share/doc/tghost/examples/echo.chat \
         ./usr/share/doc/tghost/docs/README.md \
         ./usr/share/doc/tghost/docs/guide/first-bot.md; do
  grep -qx "$f" "$work/contents" || fail "the package lacks $f"
done

# Installed into a scratch root that knows this machine's packages.
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" \
         "$root/var/lib/dpkg/triggers"
cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
touch "$root/var/lib/dpkg/available"
# (dpkg warns that the other packages' file lists are missing: expected.)
if ! dpkg --root="$root" --force-not-root --log=/dev/null -i "$deb" \
     > "$work/dpkg.log" 2>&1; then
  grep -v "files list file for package" "$work/dpkg.log"
  fail "dpkg -i failed (unmet dependencies?)"
fi
file "$root/usr/bin/tghost" | grep -q ", stripped" || fail "the binary is not stripped"
grep -q "^ExecStart=/usr/bin/tghost " "$root/lib/systemd/system/tghost@.service" ||
  fail "the unit does not start /usr/bin/tghost"
"$root/usr/bin/tghost" --version | grep -q "^tghost " || fail "tghost --version"
examples=$root/usr/share/doc/tghost/examples
if ! "$root/usr/bin/tghost" --sandbox "$examples/echo.lua" \
     --script "$examples/echo.chat" > "$work/echo.log" 2>&1; then
  cat "$work/echo.log"
  fail "the installed echo example's transcript failed"
fi
gzip -dc "$root/usr/share/man/man1/tghost.1.gz" | grep -q '^\.TH TGHOST 1' ||
  fail "the man page is not a compressed man page"
dpkg --root="$root" --force-not-root --log=/dev/null -r tghost \
  > "$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg -r failed"; }
left=$(find "$root/usr" "$root/lib" -type f 2>/dev/null | head -n 3)
[ -z "$left" ] || fail "files left after dpkg -r: $left"

if command -v lintian >/dev/null 2>&1; then
  if ! lintian --fail-on error,warning "$deb" > "$work/lintian.log" 2>&1; then
    cat "$work/lintian.log"
    fail "lintian reports errors or warnings"
  fi
  checked="; lintian: no error or warning"
else
  checked="; lintian is not installed: not run"
fi
echo "package: $(basename "$deb") builds, installs, runs and removes$checked"
