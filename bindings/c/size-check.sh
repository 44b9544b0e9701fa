#!/usr/bin/env bash
# Fail if the shipped library grew past its budget: builds the release cdylib (unless
# --no-build), strips a copy and compares. The budget catches, among others, bindgen code
# (uniffi's `cli` feature) leaking into the library: a whole-workspace build unifies it in and the
# debug .so grows from 52 MB to 110 MB (docs/adr/0008-uniffi-bindings.md, Consequences).
#
#   bindings/c/size-check.sh [--no-build]
#
# Measured (Rust 1.95, x86_64 Linux, release profile lto = "thin"): stripped libtokenvault.so
# 5.2-5.5 MB (the core still grows), of which SQLite ~1.26 MB, rustls + ring + webpki ~0.6 MB;
# 6.64 MB with id_token validation (ADR 0012).
set -euo pipefail

# 6.5 MiB: OpenID Connect id_token validation (jsonwebtoken, RustCrypto rsa + p256, ADR 0012)
# added 0.50 MiB (6,111,064 -> 6,639,192 bytes stripped).
BUDGET_BYTES=3290000 # see PERFORMANCE.md ("The transport's own TLS provider", "Footprint"): the 3.0 MB goal is not met yet

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
if [[ "${1:-}" != "--no-build" ]]; then
  (cd "$root" && cargo build --quiet -p tokenvault-ffi --release)
fi
lib="$target/release/libtokenvault.so"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
strip -o "$tmp/libtokenvault.so" "$lib"
cp "$target/release/libtokenvault.a" "$tmp/libtokenvault.a"
strip --strip-debug "$tmp/libtokenvault.a"

# A SQLITE_OMIT_* option the amalgamation does not support can leave SQLite's parser calling
# functions that were left out: the shared library still links, and fails only when loaded.
undefined=$(nm -D --undefined-only "$lib" | awk '$2 ~ /^sqlite3/ {print $2}')
if [[ -n "$undefined" ]]; then
  echo "size-check: FAILED: the library references SQLite functions it does not contain:" $undefined >&2
  exit 1
fi

so=$(stat -c %s "$tmp/libtokenvault.so")
a=$(stat -c %s "$tmp/libtokenvault.a")
awk -v so="$so" -v a="$a" -v b="$BUDGET_BYTES" 'BEGIN {
  printf "size-check: libtokenvault.so stripped %d bytes (%.2f MiB, budget %.2f MiB); libtokenvault.a without debug info %d bytes (%.2f MiB)\n", so, so / 1048576, b / 1048576, a, a / 1048576 }'
if (( so > BUDGET_BYTES )); then
  echo "size-check: FAILED: the stripped shared library is over its budget of $BUDGET_BYTES bytes" >&2
  exit 1
fi
