#!/usr/bin/env bash
# Generates the uniffi bindings (Kotlin, Swift, Python) from the unstripped debug library, in
# library mode, with this workspace's own uniffi-bindgen (ADR 0008).
#
#   bindings/uniffi-bindgen/generate.sh            regenerate the committed files
#   bindings/uniffi-bindgen/generate.sh --check    fail if the committed files differ
#   bindings/uniffi-bindgen/generate.sh --android DIR
#                                                  Kotlin for Android (`android = true`) into DIR
#
# The library and the bindgen are built by two separate cargo invocations on purpose: one
# invocation building both would unify uniffi's `cli` feature into the shipped library.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
mode=write
android_dir=
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --android) mode=android; android_dir=${2:?--android needs an output directory} ;;
  *) echo "usage: $0 [--check | --android DIR]" >&2; exit 2 ;;
esac

cargo build -q --locked -p tokenvault-ffi
cargo build -q --locked -p tokenvault-uniffi-bindgen
lib=$target/debug/libtokenvault.so
bindgen=$target/debug/uniffi-bindgen

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ "$mode" = android ]; then
  "$bindgen" generate --library "$lib" --config bindings/uniffi-bindgen/uniffi-android.toml \
    -l kotlin --no-format -o "$out" >/dev/null
  mkdir -p "$android_dir"
  cp -R "$out"/. "$android_dir"/
  echo "Android Kotlin bindings written to $android_dir"
  exit 0
fi

"$bindgen" generate --library "$lib" --config bindings/uniffi-bindgen/uniffi.toml \
  -l kotlin -l swift -l python --no-format -o "$out" >/dev/null

# Python: close every vault at interpreter exit (see the appended file).
cat bindings/uniffi-bindgen/python-atexit.py >> "$out/tokenvault.py"

# generated file -> committed place
pairs=(
  "uniffi/tokenvault/tokenvault.kt:bindings/kotlin/src/main/kotlin/uniffi/tokenvault/tokenvault.kt"
  "tokenvault.py:bindings/python/tokenvault.py"
  "TokenVaultKit.swift:bindings/swift/Sources/TokenVaultKit/TokenVaultKit.swift"
  "tokenvaultFFI.h:bindings/swift/Sources/tokenvaultFFI/include/tokenvaultFFI.h"
  "tokenvaultFFI.modulemap:bindings/swift/Sources/tokenvaultFFI/include/module.modulemap"
)
status=0
for pair in "${pairs[@]}"; do
  src=$out/${pair%%:*}
  dst=${pair#*:}
  if [ "$mode" = check ]; then
    if ! cmp -s "$src" "$dst"; then
      echo "out of date: $dst (run bindings/uniffi-bindgen/generate.sh)" >&2
      status=1
    fi
  else
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst"
  fi
done
if [ "$mode" = check ]; then
  [ $status -eq 0 ] && echo "uniffi bindings are up to date"
  exit $status
fi
echo "uniffi bindings regenerated"
