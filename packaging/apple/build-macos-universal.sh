#!/usr/bin/env bash
# macOS: one universal (arm64 + x86_64) library for C, C++ and C# hosts (Unity's macOS plugin):
#
#   <dist>/tokenvault-<version>-macos-universal.tar.gz
#     include/tokenvault.h, tokenvault.hpp
#     lib/libtokenvault.dylib      install name @rpath/libtokenvault.dylib
#     lib/libtokenvault.a          static (link with -framework Security -framework CoreFoundation
#                                  and what `--print native-static-libs` lists)
#
#   packaging/apple/build-macos-universal.sh [dist dir]
#
# NOT RUN HERE: it needs macOS with Xcode's command-line tools (lipo, install_name_tool); the
# Linux machines this repository is tested on have neither. Written for the `apple` job of
# .github/workflows/release.yml.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dist="${1:-$root/dist}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
[ "$(uname -s)" = Darwin ] || { echo "build-macos-universal.sh needs macOS" >&2; exit 1; }
export MACOSX_DEPLOYMENT_TARGET=11.0

cd "$root"
triples=(aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${triples[@]}"
for t in "${triples[@]}"; do
  cargo build --locked --release -p tokenvault-ffi --target "$t"
done

name="tokenvault-$version-macos-universal"
work="$target/packaging/macos/$name"
rm -rf "$work"
mkdir -p "$work/include" "$work/lib"
cp bindings/c/include/tokenvault.h bindings/cpp/include/tokenvault.hpp "$work/include/"
lipo -create "$target/aarch64-apple-darwin/release/libtokenvault.dylib" \
  "$target/x86_64-apple-darwin/release/libtokenvault.dylib" -output "$work/lib/libtokenvault.dylib"
install_name_tool -id @rpath/libtokenvault.dylib "$work/lib/libtokenvault.dylib"
lipo -create "$target/aarch64-apple-darwin/release/libtokenvault.a" \
  "$target/x86_64-apple-darwin/release/libtokenvault.a" -output "$work/lib/libtokenvault.a"
for lib in "$work/lib/libtokenvault.dylib" "$work/lib/libtokenvault.a"; do
  archs="$(lipo -archs "$lib")"
  [[ "$archs" == *arm64* && "$archs" == *x86_64* ]] || { echo "$lib: only $archs" >&2; exit 1; }
done
# The install name changed after linking: sign again (ad hoc), or arm64 macOS refuses to load it.
codesign --force --sign - "$work/lib/libtokenvault.dylib"

mkdir -p "$dist"
tar -C "$(dirname "$work")" -czf "$dist/$name.tar.gz" "$name"
echo "build-macos-universal: $dist/$name.tar.gz"
