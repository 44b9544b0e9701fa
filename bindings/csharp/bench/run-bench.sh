#!/usr/bin/env bash
# The cached-token read from C# on Mono (returning a .NET string) and through the C ABI from C,
# in the same run, on the same release library (figures: docs/PERFORMANCE.md).
#
#   bindings/csharp/bench/run-bench.sh [iterations per run (1000000)] [runs (9)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/bindings/csharp"
pkg="$root/bindings/csharp/unity/com.tokenvault"
cd "$root"
for tool in mcs mono gcc; do
  command -v "$tool" >/dev/null || { echo "run-bench: '$tool' is missing" >&2; exit 1; }
done
cargo build --quiet -p tokenvault-ffi --release
bindings/csharp/unity/copy-plugins.sh "$target" >/dev/null
mkdir -p "$out"
mcs -langversion:7.2 -unsafe -optimize+ -nologo -target:library -out:"$out/Tokenvault.dll" "$pkg"/Runtime/*.cs
mcs -langversion:7.2 -unsafe -optimize+ -nologo -out:"$out/TokenvaultBench.exe" -r:"$out/Tokenvault.dll" \
  bindings/csharp/bench/CachedReadBench.cs

echo "== C ABI from C"
bindings/c/bench/run-bench.sh "$@"
echo
echo "== C# on Mono (P/Invoke)"
LD_LIBRARY_PATH="$pkg/Plugins/Linux/x86_64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" mono --optimize=all "$out/TokenvaultBench.exe" "$@"
