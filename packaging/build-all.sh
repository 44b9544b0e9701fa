#!/usr/bin/env bash
# Builds every package this Linux x86_64 machine can build, into dist/ (or the folder given):
#
#   tokenvault-<version>-linux-x86_64.tar.gz   C / C++: headers, static and shared library
#                                               (SONAME, versioned name), CMake package, pkg-config
#   tokenvault-<version>-py3-none-linux_x86_64.whl
#                                               Python: the generated module and the library
#   com.tokenvault-<version>.tgz               Unity (UPM tarball): the C# runtime, the Linux
#                                               x86_64 plugin and the .meta import settings
#   maven/tokenvault/tokenvault-kotlin/<version>/
#                                               JVM: the Kotlin jar with linux-x86-64/libtokenvault.so
#                                               inside, and its POM, as a Maven repository
#
#   packaging/build-all.sh [dist dir]
#
# The release library is built once (`cargo build --locked -p tokenvault-ffi --release`; cargo
# reuses a current build) and every package takes its copy of it. packaging/smoke-test.sh installs
# each package and runs it. Other platforms: packaging/README.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dist="${1:-$root/dist}"
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
cd "$root"

# A missing tool is a failure, never a skip.
for tool in cargo objdump strip tar python3 md5sum unzip java mvn; do
  command -v "$tool" >/dev/null || { echo "build-all: '$tool' is missing" >&2; exit 1; }
done

cargo build --quiet --locked -p tokenvault-ffi --release
# The Python wheel takes a stripped copy (symbol table out, exported functions kept), as the other
# packages do.
lib="$target/bindings/libtokenvault.stripped.so"
mkdir -p "$target/bindings"
strip --strip-unneeded -o "$lib" "$target/release/libtokenvault.so"

# Only what this script writes is replaced; anything else in the folder is left alone.
rm -rf "$dist"/tokenvault-*-linux-x86_64.tar.gz "$dist"/tokenvault-*.whl "$dist"/com.tokenvault-*.tgz "$dist/maven"

packaging/c-archive.sh "$target" "$dist"
packaging/python-wheel.py "$lib" "$dist"
packaging/unity-package.sh "$target" "$dist"
packaging/jvm-jar.sh "$target" "$dist"
