#!/bin/sh
# The man page and --help list the same options, and the page is clean
# roff. The page is generated from the option table --help prints
# (contrib/manpage.c), so this fails when an option reaches --help by any
# other way, or when the page is not rebuilt.
#
#   manpage.sh TGHOST_BINARY MAN_PAGE
set -u
tghost=$1 page=$2
fail() { echo "manpage: $*"; exit 1; }
[ -f "$page" ] || fail "no man page at $page"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$tghost" --help > "$dir/help" || fail "tghost --help failed"
# Option names: in --help, "--name" at the start of an entry; in the page,
# "\-\-name" on the line after each .TP.
sed -n 's/^  \(-., \)\{0,1\}--\([a-z0-9-]*\).*/\2/p' "$dir/help" | sort > "$dir/in_help"
awk 'tp { print; tp = 0 } /^\.TP/ { tp = 1 }' "$page" |
  sed -n 's/.*\\-\\-\([a-z0-9\\-]*\).*/\1/p' | sed 's/\\-/-/g' | sort > "$dir/in_page"
[ -s "$dir/in_help" ] || fail "no option found in tghost --help"
if ! diff "$dir/in_help" "$dir/in_page" > "$dir/diff"; then
  echo "options in --help (<) and in the man page (>) differ:"
  cat "$dir/diff"
  exit 1
fi
# The defaults --help shows, "(30)" at the end of an entry, appear in the
# page too.
for opt in $(cat "$dir/in_help"); do
  default=$(awk -v o="--$opt" '
    index($0, "  " o " ") == 1 || $0 == "  " o || index($0, ", " o) { on = 1 }
    on && /^  -/ && index($0, o) == 0 { on = 0 }
    on { text = text " " $0 }
    END { if (match(text, /\(([^()]*)\)$/)) print substr(text, RSTART + 1, RLENGTH - 2) }' "$dir/help")
  case "$default" in ''|*' '*) continue ;; esac
  grep -q "(default: $(printf '%s' "$default" | sed 's/-/\\\\-/g'))" "$page" ||
    fail "--$opt: --help shows the default ($default), the man page does not"
done
# Clean roff: no warning from groff (where it is installed).
if command -v groff >/dev/null 2>&1; then
  warnings=$(groff -man -ww -z "$page" 2>&1)
  [ -z "$warnings" ] || fail "groff warns: $warnings"
fi
echo "manpage: $(wc -l < "$dir/in_help") options, the same in --help and the man page"
