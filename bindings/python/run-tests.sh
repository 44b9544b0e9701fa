#!/usr/bin/env bash
# Python tests of the uniffi bindings: builds the native library (debug) and the reference
# server, then runs pytest on the generated module (installing pytest with pip if it is missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cd "$root"

cargo build -q --locked -p tokenvault-ffi
cargo build -q --locked -p tokenvault-testkit --bin reference-server
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest

# The generated module loads libtokenvault.so from its own directory.
pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
cp "$here/tokenvault.py" "$here/tokenvault_cached.py" "$pkg/"
ln -s "$target/debug/libtokenvault.so" "$pkg/libtokenvault.so"

# Run from there, so that `import tokenvault` finds that copy, not the one beside the tests.
cd "$pkg"
TOKENVAULT_REFERENCE_SERVER="$target/debug/reference-server" PYTHONPATH="$pkg" \
  python3 -m pytest -q -p no:cacheprovider --rootdir "$here" "$here/tests" "$@"
