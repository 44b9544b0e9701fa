#!/usr/bin/env bash
# Windows x86_64 for MSVC: the DLL with its import library, the static library, and the headers:
#
#   <dist>/tokenvault-<version>-windows-x86_64-msvc.zip
#     include/tokenvault.h, tokenvault.hpp
#     bin/tokenvault.dll, tokenvault.pdb       the DLL (Unity: Plugins/Windows/x86_64/) and its symbols
#     lib/tokenvault.lib                       import library: link it, ship bin/tokenvault.dll beside the .exe
#     lib/tokenvault-static.lib                static library, with the system libraries it needs
#     lib/NATIVE-LIBS.txt                        listed (rustc's --print native-static-libs)
#
#   packaging/windows/build-windows.sh [dist dir]
#
# Then a C program is built against the archive with cl and run (the store/read cycle of
# packaging/smoke/c/cycle.c), with the DLL beside it.
#
# NOT RUN HERE: it needs Windows with Visual Studio's C++ tools (cl, link) and rustup's
# x86_64-pc-windows-msvc toolchain, run from Git Bash inside a developer environment; the Linux
# machines this repository is tested on have none of them. Written for the `windows` job of
# .github/workflows/release.yml.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dist="${1:-$root/dist}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
triple=x86_64-pc-windows-msvc
command -v cl >/dev/null || { echo "build-windows: cl is missing (run inside a Visual Studio developer environment)" >&2; exit 1; }

cd "$root"
rustup target add "$triple"
cargo build --locked --release -p tokenvault-ffi --target "$triple"
out="$target/$triple/release"
native_libs="$(cargo rustc --locked --release -p tokenvault-ffi --target "$triple" --crate-type staticlib \
  -- --print native-static-libs 2>&1 | sed -n 's/.*native-static-libs: //p' | tail -n1)"
[ -n "$native_libs" ] || { echo "build-windows: rustc printed no native-static-libs" >&2; exit 1; }

name="tokenvault-$version-windows-x86_64-msvc"
work="$target/packaging/windows/$name"
rm -rf "$work"
mkdir -p "$work/include" "$work/bin" "$work/lib"
cp bindings/c/include/tokenvault.h bindings/cpp/include/tokenvault.hpp "$work/include/"
cp "$out/tokenvault.dll" "$out/tokenvault.pdb" "$work/bin/"
# Rust names the DLL's import library tokenvault.dll.lib and the static library tokenvault.lib;
# the usual MSVC names are tokenvault.lib for the import library.
cp "$out/tokenvault.dll.lib" "$work/lib/tokenvault.lib"
cp "$out/tokenvault.lib" "$work/lib/tokenvault-static.lib"
printf '%s\n' "$native_libs" > "$work/lib/NATIVE-LIBS.txt"

# Windows programs (cl, 7z) get Windows paths; Git Bash's automatic conversion skips "-I/c/...".
win() { cygpath -w "$1"; }

# The cycle, built against the archive's files only, with the DLL beside the program.
check="$target/packaging/windows/check"
rm -rf "$check"
mkdir -p "$check/vault"
cp "$work/bin/tokenvault.dll" "$check/"
(cd "$check" && cl -nologo -W3 -I"$(win "$work/include")" "$(win "$root/packaging/smoke/c/cycle.c")" \
  "$(win "$work/lib/tokenvault.lib")" -Fe:cycle.exe)
"$check/cycle.exe" "$(win "$check/vault")"

mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
rm -f "$dist/$name.zip"
(cd "$(dirname "$work")" && 7z a -tzip -bso0 "$(win "$dist/$name.zip")" "$name")
echo "build-windows: $dist/$name.zip"
