#!/usr/bin/env bash
# The C / C++ archive: tokenvault-<version>-linux-x86_64.tar.gz, from an existing release build.
#
#   packaging/c-archive.sh <cargo target dir> <dist dir>
#
# Inside, one folder tokenvault-<version>-linux-x86_64/ (unpack it anywhere; nothing in it holds
# an absolute path):
#   include/tokenvault.h, tokenvault.hpp           the C header and the C++17 wrapper
#   lib/libtokenvault.a                            static
#   lib/libtokenvault.so.<version>                 shared, with its SONAME as a link to it,
#   lib/libtokenvault.so.<major.minor>, .so          and the link-time name
#   lib/cmake/tokenvault/                          find_package(tokenvault): ::static, ::shared
#   lib/pkgconfig/tokenvault.pc, tokenvault-static.pc
#   README.md                                      how to link and use it (the C binding's README)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:?usage: c-archive.sh <cargo target dir> <dist dir>}"
dist="${2:?usage: c-archive.sh <cargo target dir> <dist dir>}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
name="tokenvault-$version-linux-x86_64"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/bindings/c/package.sh" "$work/$name" "$target" >/dev/null
install -m 644 "$root/bindings/c/README.md" "$work/$name/README.md"

# Nothing in the package may point back at the machine that built it.
if grep -rIl -- "$work" "$work/$name" >/dev/null; then
  echo "c-archive: a file holds the staging path:" >&2
  grep -rIl -- "$work" "$work/$name" >&2
  exit 1
fi

mkdir -p "$dist"
# Same bytes for the same inputs: sorted entries, no owner, a fixed time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-0}" \
  -C "$work" -czf "$dist/$name.tar.gz" "$name"
echo "c-archive: $dist/$name.tar.gz ($(stat -c %s "$dist/$name.tar.gz") bytes)"
