#!/usr/bin/env bash
# The cached-token read (900-byte token) through the C ABI, with the same read in Rust (criterion)
# in the same run.
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
echo "== Rust (criterion, core bench: cached_read/vault_access_token/1_thread)"
cargo bench -q --locked -p tokenvault --bench vault -- --warm-up-time 1 --measurement-time 3 \
  'cached_read/vault_access_token/1_thread' 2>/dev/null | grep -E "time:|paired 1 thread" || true
echo "== C ABI (the same library, linked statically)"
"$target/bindings/bench_cached_read" "$@"
