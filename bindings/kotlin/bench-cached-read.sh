#!/usr/bin/env bash
# The cached-token read (900-byte token) from Rust, Kotlin (JVM, JNA) and Python, in one run,
# against the release library. Prints one line per measurement: `BENCH <surface>.<name> <ns/call>`
# (median), then a table. Takes ~3 minutes on 2 cores once everything is built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cd "$root"

cargo build -q --locked --release -p tokenvault-ffi
out=$(mktemp)
pkg=$(mktemp -d)
trap 'rm -rf "$out" "$pkg"' EXIT

echo "== Rust (criterion, core bench: cached_read/vault_access_token/1_thread)"
cargo bench -q --locked -p tokenvault --bench vault -- --warm-up-time 1 --measurement-time 3 \
  'cached_read/vault_access_token/1_thread' 2>/dev/null | tee -a "$out" | grep -E "time:|cached_read" || true

echo "== Kotlin (JVM $(java -version 2>&1 | head -1 | cut -d'"' -f2), JNA)"
(cd "$here" && mvn -q -B test -Dtest=CachedReadBench -Dsurefire.failIfNoSpecifiedTests=false \
  -Dtokenvault.bench=true -Dtokenvault.lib.dir="$target/release") | grep -o 'BENCH .*' | tee -a "$out"

echo "== Python $(python3 -c 'import sys; print(sys.version.split()[0])') (ctypes)"
cp "$root/bindings/python/tokenvault.py" "$root/bindings/python/tokenvault_cached.py" \
  "$root/bindings/python/bench_cached_read.py" "$pkg/"
ln -s "$target/release/libtokenvault.so" "$pkg/libtokenvault.so"
(cd "$pkg" && python3 bench_cached_read.py) | tee -a "$out"

echo
echo "== summary (median ns per cached read of a 900-byte token)"
python3 - "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+)", text)
if m:
    v, unit = float(m.group(1)), m.group(2)
    ns = v * {"ns": 1, "µs": 1e3, "us": 1e3, "ps": 1e-3}[unit]
    print(f"{'rust.vault_access_token (criterion median estimate)':55s} {ns:12.1f}")
for name, v in re.findall(r"^BENCH (\S+) (\S+)$", text, re.M):
    print(f"{name:55s} {float(v):12.1f}")
PY
