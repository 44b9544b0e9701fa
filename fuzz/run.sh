#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 20 s each) and prints libFuzzer's summary.
#   fuzz/run.sh            # 20 s per target (what ./test.sh runs)
#   fuzz/run.sh 3600       # an hour per target
#   cargo fuzz run parse_response -- -max_total_time=86400   # one target, a day
# Crashes land in fuzz/artifacts/<target>/; turn each into a regression test in core before fixing.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# libFuzzer's instrumentation flags are nightly-only: use a nightly toolchain when one is installed,
# otherwise let the stable compiler accept them (RUSTC_BOOTSTRAP, for this build only).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
fi
targets=(parse_response profile_json jwt_claims id_token record_decrypt)
cargo "${toolchain[@]}" fuzz build -O
total=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  out=$(cargo "${toolchain[@]}" fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536 -print_final_stats=1 2>&1) || {
    echo "$out" | tail -n 40
    echo "fuzz target $t FAILED"
    exit 1
  }
  runs=$(echo "$out" | sed -n 's/^Done \([0-9]*\) runs.*/\1/p' | tail -n1)
  echo "fuzz $t: ${runs:-?} executions in ${secs} s, no crash"
  total=$((total + ${runs:-0}))
done
echo "fuzz: $total executions over ${#targets[@]} targets, 0 crashes"
