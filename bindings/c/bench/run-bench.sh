#!/usr/bin/env bash
# Build the release library and time the cached-token read through the C ABI.
#   bindings/c/bench/run-bench.sh [iterations per run (1000000)] [runs (9)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cd "$root"
cargo build --quiet -p tokenvault-ffi --release
mkdir -p "$target/bindings"
# The static library, linked as bindings/c/package.sh documents.
gcc -std=c11 -O2 -Wall -Wextra -Werror -Ibindings/c/include bindings/c/bench/bench_cached_read.c \
  "$target/release/libtokenvault.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o "$target/bindings/bench_cached_read"
"$target/bindings/bench_cached_read" "$@"
