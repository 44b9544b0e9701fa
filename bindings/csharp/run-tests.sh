#!/usr/bin/env bash
# The C# binding's tests on Mono, in one run (about a minute once cargo's release build is warm):
#
#   1. the release library and the reference server are built, and the library is copied into
#      the Unity package (unity/copy-plugins.sh) — the tests load it from there;
#   2. the package's Runtime/ is compiled with mcs as C# 7.2 (warnings are errors), once as
#      shipped and once as for iOS (DllImport("__Internal"));
#   3. the test runner (tests/, no NUnit needed) runs on mono; its last line is
#      "N passed, N failed", and the script exits non-zero on any failure.
#
#   bindings/csharp/run-tests.sh [test name filter]
#
# Needs mono-mcs and mono-runtime (apt-get install -y mono-mcs mono-runtime): missing tools are a
# failure, never a skip. Build products go to target/bindings/csharp/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/bindings/csharp"
pkg="$root/bindings/csharp/unity/com.tokenvault"
cd "$root"

step() { printf '\n== %s\n' "$*"; }

for tool in mcs mono; do
  command -v "$tool" >/dev/null || {
    echo "run-tests: '$tool' is missing: apt-get install -y mono-mcs mono-runtime" >&2
    exit 1
  }
done

step "cargo build (release library, reference server)"
cargo build --quiet -p tokenvault-ffi --release
cargo build --quiet -p tokenvault-testkit --bin reference-server
bindings/csharp/unity/copy-plugins.sh "$target"

step "mcs -langversion:7.2"
mkdir -p "$out/ios-check"
mcs_flags=(-langversion:7.2 -unsafe -warnaserror -nologo)
mcs "${mcs_flags[@]}" -target:library -out:"$out/Tokenvault.dll" "$pkg"/Runtime/*.cs
mcs "${mcs_flags[@]}" -target:library -define:UNITY_IOS -out:"$out/ios-check/Tokenvault.dll" "$pkg"/Runtime/*.cs
mcs "${mcs_flags[@]}" -out:"$out/TokenvaultTests.exe" -r:"$out/Tokenvault.dll" -r:System.dll -r:System.Core.dll \
  bindings/csharp/tests/*.cs
echo "compiled: Tokenvault.dll, TokenvaultTests.exe"

step "mono"
# The panic test prints Rust's panic message on stderr: keep it (and backtraces) out of the log.
status=0
LD_LIBRARY_PATH="$pkg/Plugins/Linux/x86_64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" RUST_BACKTRACE=0 \
  TV_REFERENCE_SERVER="$target/debug/reference-server" TV_OIDC_DIR="$root/tests/oidc" \
  mono --debug "$out/TokenvaultTests.exe" "$@" 2>"$out/stderr.log" || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- stderr"
  cat "$out/stderr.log"
fi
exit $status
