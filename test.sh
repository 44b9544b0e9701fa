#!/usr/bin/env bash
# Runs every test suite of tokenvault. This is the README's second command and what CI calls.
# Every suite runs; a missing toolchain is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n=== %s\n' "$*"; }

step "oidc-provider for the OAuth2 tests (npm ci, pinned by tests/oidc/package-lock.json)"
if [ ! -f tests/oidc/node_modules/oidc-provider/package.json ] \
  || ! cmp -s tests/oidc/package-lock.json tests/oidc/node_modules/.package-lock.json 2>/dev/null; then
  npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
fi

step "Rust: every crate's unit, integration and doc tests (full counts: 1,000 kills, every byte flipped)"
export TOKENVAULT_CRASH_KILLS="${TOKENVAULT_CRASH_KILLS:-1000}"
export TOKENVAULT_TAMPER_STRIDE="${TOKENVAULT_TAMPER_STRIDE:-1}"
export TOKENVAULT_PROCESS_CYCLES="${TOKENVAULT_PROCESS_CYCLES:-200}"
# The default members: everything but the uniffi bindgen binary, whose `cli` feature must never
# be unified into the shipped library.
cargo test --locked

step "Fuzz targets (libFuzzer), ${TOKENVAULT_FUZZ_SECONDS:-20} s each"
fuzz/run.sh "${TOKENVAULT_FUZZ_SECONDS:-20}"

step "C and C++: header check, CTest (static and shared), AddressSanitizer, valgrind"
bindings/c/run-tests.sh

step "Packages (packaging/build-all.sh → dist/): each installed in a clean temp place and run as a user would"
# After the C step: the release library is built. A missing tool fails here, never skips.
packaging/build-all.sh
packaging/smoke-test.sh

step "Kotlin on the JVM (uniffi + JNA, Maven), then Python (uniffi + pytest)"
bindings/kotlin/run-tests.sh
bindings/python/run-tests.sh

step "C#: the binding on Mono (Unity package layout, C# 7.2), against the reference server"
bindings/csharp/run-tests.sh
