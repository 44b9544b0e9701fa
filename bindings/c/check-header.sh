#!/usr/bin/env bash
# Regenerate the C header from ffi/src with the pinned cbindgen and fail on any difference from
# the committed bindings/c/include/tokenvault.h; then compile the header as C99 (-Wall -Wextra
# -Werror) and as C++17, each time included twice.
#
#   bindings/c/check-header.sh          # check (CI)
#   bindings/c/check-header.sh --write  # regenerate the committed header
#
# cbindgen: $CBINDGEN, else .tools/bin/cbindgen, else cbindgen on PATH; if none is the pinned
# version, it is installed into .tools (set TV_NO_TOOL_INSTALL=1 to fail instead):
#   cargo install cbindgen --version 0.29.4 --locked --root .tools
set -euo pipefail

PINNED="0.29.4"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
header="$root/bindings/c/include/tokenvault.h"

cbindgen="${CBINDGEN:-}"
if [[ -z "$cbindgen" ]]; then
  if [[ -x "$root/.tools/bin/cbindgen" ]]; then cbindgen="$root/.tools/bin/cbindgen"; else cbindgen="cbindgen"; fi
fi
version="$("$cbindgen" --version 2>/dev/null | awk '{print $2}')" || true
if [[ "$version" != "$PINNED" && -z "${CBINDGEN:-}" && -z "${TV_NO_TOOL_INSTALL:-}" ]]; then
  echo "check-header: installing cbindgen $PINNED into $root/.tools (about a minute, once)" >&2
  cargo install --quiet cbindgen --version "$PINNED" --locked --root "$root/.tools" >&2
  cbindgen="$root/.tools/bin/cbindgen"
  version="$("$cbindgen" --version 2>/dev/null | awk '{print $2}')" || true
fi
if [[ "$version" != "$PINNED" ]]; then
  echo "check-header: need cbindgen $PINNED, found '${version:-none}' ($cbindgen)" >&2
  echo "  cargo install cbindgen --version $PINNED --locked --root $root/.tools" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$cbindgen" --quiet --config "$root/ffi/cbindgen.toml" --crate tokenvault-ffi \
  --output "$tmp/tokenvault.h" "$root/ffi"

if [[ "${1:-}" == "--write" ]]; then
  cp "$tmp/tokenvault.h" "$header"
  echo "check-header: wrote $header"
elif ! diff -u "$header" "$tmp/tokenvault.h" > "$tmp/diff"; then
  cat "$tmp/diff"
  echo "check-header: FAILED: $header differs from the generated header; run bindings/c/check-header.sh --write" >&2
  exit 1
fi

# The header must compile cleanly as strict C99 and as C++17, and be idempotent.
printf '#include "tokenvault.h"\n#include "tokenvault.h"\nint main(void) { return tv_version() == 0; }\n' > "$tmp/twice.c"
gcc -std=c99 -pedantic -Wall -Wextra -Werror -I"$root/bindings/c/include" -c "$tmp/twice.c" -o "$tmp/c.o"
cp "$tmp/twice.c" "$tmp/twice.cpp"
g++ -std=c++17 -Wall -Wextra -Werror -I"$root/bindings/c/include" -c "$tmp/twice.cpp" -o "$tmp/cpp.o"
echo "check-header: OK (cbindgen $PINNED; C99 and C++17 compile, included twice)"
