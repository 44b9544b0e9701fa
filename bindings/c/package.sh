#!/usr/bin/env bash
# Stage an installable tokenvault C/C++ package from an existing release build:
#
#   cargo build -p tokenvault-ffi --release
#   bindings/c/package.sh <prefix> [<cargo target dir>]
#
# <prefix>/include/tokenvault.h, tokenvault.hpp
# <prefix>/lib/libtokenvault.a, libtokenvault.so
# <prefix>/lib/cmake/tokenvault/tokenvault-config.cmake (+ -version): tokenvault::static, ::shared
# <prefix>/lib/pkgconfig/tokenvault.pc, tokenvault-static.pc
#
# Linux only for now (macOS would ship a .dylib and other native libraries).
set -euo pipefail

# What Rust's std needs when linking libtokenvault.a on Linux, from
#   cargo rustc -p tokenvault-ffi --release -- --print native-static-libs
# (run-tests.sh links the static library with exactly this list, so a change shows up there).
NATIVE_STATIC_LIBS="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix="${1:?usage: package.sh <prefix> [<cargo target dir>]}"
target="${2:-$root/target}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
major="${version%%.*}"
minor="${version#*.}"; minor="${minor%%.*}"
cmake_libs="$(echo "$NATIVE_STATIC_LIBS" | sed 's/-l//g; s/ /;/g')"

mkdir -p "$prefix/include" "$prefix/lib/cmake/tokenvault" "$prefix/lib/pkgconfig"
install -m 644 "$root/bindings/c/include/tokenvault.h" "$root/bindings/cpp/include/tokenvault.hpp" "$prefix/include/"
install -m 644 "$target/release/libtokenvault.a" "$prefix/lib/"
# The shared library under its full version, with its SONAME and the link-time name as links
# (the layout ldconfig and distributions use).
soname="$(objdump -p "$target/release/libtokenvault.so" | sed -n 's/^ *SONAME *//p')"
[ -n "$soname" ] || { echo "package.sh: libtokenvault.so has no SONAME" >&2; exit 1; }
install -m 755 "$target/release/libtokenvault.so" "$prefix/lib/libtokenvault.so.$version"
# Stripped of its symbol table (the exported functions stay): what ships is what size-check measures.
strip --strip-unneeded "$prefix/lib/libtokenvault.so.$version"
ln -sf "libtokenvault.so.$version" "$prefix/lib/$soname"
ln -sf "$soname" "$prefix/lib/libtokenvault.so"

subst() {
  sed -e "s|@VERSION@|$version|g; s|@VERSION_MAJOR@|$major|g; s|@VERSION_MINOR@|$minor|g; s|@SONAME_SUFFIX@|${soname#libtokenvault.so.}|g" \
      -e "s|@NATIVE_LIBS@|$NATIVE_STATIC_LIBS|g; s|@NATIVE_LIBS_CMAKE@|$cmake_libs|g" "$1" > "$2"
}
subst "$root/bindings/c/cmake/tokenvault-config.cmake.in" "$prefix/lib/cmake/tokenvault/tokenvault-config.cmake"
subst "$root/bindings/c/cmake/tokenvault-config-version.cmake.in" "$prefix/lib/cmake/tokenvault/tokenvault-config-version.cmake"
subst "$root/bindings/c/cmake/tokenvault.pc.in" "$prefix/lib/pkgconfig/tokenvault.pc"
subst "$root/bindings/c/cmake/tokenvault-static.pc.in" "$prefix/lib/pkgconfig/tokenvault-static.pc"
echo "package: staged tokenvault $version in $prefix"
