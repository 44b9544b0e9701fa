#!/usr/bin/env bash
# Everything the C and C++ surfaces are tested with, in one run (about a minute once cargo's
# release build is warm):
#
#   1. the committed header is what cbindgen generates now, and compiles as C99 and C++17;
#   2. the release library (libtokenvault.a + .so) and the reference server are built; the
#      library is within its size budget;
#   3. a package is staged (CMake config + pkg-config), as a user would install it;
#   4. CTest, against that package (find_package(tokenvault)): the C test program linked
#      statically and dynamically, under AddressSanitizer+UBSan and under valgrind; the
#      GoogleTest suite of the C++ wrapper, statically and dynamically; the wrapper built with
#      -fno-exceptions;
#   5. the same C test program built through pkg-config, shared and static.
#
#   bindings/c/run-tests.sh            # prints ctest's summary line last
#
# Build products go to target/bindings/. Needs gcc/g++, cmake, GoogleTest (libgtest-dev),
# valgrind, pkg-config, and the pinned cbindgen (see check-header.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/bindings"
stage="$out/stage"
cd "$root"

step() { printf '\n== %s\n' "$*"; }

step "header"
bindings/c/check-header.sh

step "cargo build (release library, reference server)"
cargo build --quiet -p tokenvault-ffi --release
cargo build --quiet -p tokenvault-testkit --bin reference-server
server="$target/debug/reference-server"
bindings/c/size-check.sh --no-build

step "package"
rm -rf "$stage"
bindings/c/package.sh "$stage" "$target"

step "cmake"
cmake -S bindings/c/tests -B "$out/cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$stage" -DTV_REFERENCE_SERVER="$server" > "$out/cmake.log"
cmake --build "$out/cmake" -j2 > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }

step "pkg-config consumers"
export PKG_CONFIG_PATH="$stage/lib/pkgconfig"
src=(bindings/c/tests/test_c_api.c bindings/c/tests/support/tvt_support.c)
# shellcheck disable=SC2046 # word splitting of pkg-config output is intended
gcc -std=c11 -O1 -Wall -Wextra -Werror -Ibindings/c/tests "${src[@]}" $(pkg-config --cflags --libs tokenvault) \
  -Wl,-rpath,"$stage/lib" -lpthread -o "$out/c_api_pkgconfig_shared"
# shellcheck disable=SC2046
gcc -std=c11 -O1 -Wall -Wextra -Werror -Ibindings/c/tests "${src[@]}" $(pkg-config --cflags --libs tokenvault-static) \
  -o "$out/c_api_pkgconfig_static"
for exe in c_api_pkgconfig_shared c_api_pkgconfig_static; do
  RUST_BACKTRACE=0 TV_REFERENCE_SERVER="$server" TV_OIDC_DIR="$root/tests/oidc" "$out/$exe" 2>"$out/$exe.stderr" | sed "s/^/$exe: /" ||
    { cat "$out/$exe.stderr"; exit 1; }
done

step "ctest"
# The panic test prints Rust's panic message on stderr; keep backtraces out of the log.
cd "$out/cmake"
RUST_BACKTRACE=0 ctest -j2 --output-on-failure > "$out/ctest.log" 2>&1 && status=0 || status=$?
grep -E "^ *[0-9]+/[0-9]+ Test" "$out/ctest.log" || true
if [[ $status -ne 0 ]]; then
  cat "$out/ctest.log"
fi
grep -E "tests passed" "$out/ctest.log"
exit $status
