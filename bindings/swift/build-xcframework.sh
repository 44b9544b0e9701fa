#!/usr/bin/env bash
# Builds build/TokenVaultFFI.xcframework for Package.swift: the release static library for an
# iOS device (arm64), the iOS simulator (arm64 + x86_64) and macOS (arm64 + x86_64), each with
# the uniffi C header and module map of `tokenvaultFFI`.
#
# Run it on a Mac with Xcode and rustup. It has never run on the Linux build machines of this
# repository (no Xcode there); see README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
[ "$(uname -s)" = Darwin ] || { echo "build-xcframework.sh needs macOS and Xcode" >&2; exit 1; }

ios=aarch64-apple-ios
sims=(aarch64-apple-ios-sim x86_64-apple-ios)
macs=(aarch64-apple-darwin x86_64-apple-darwin)
export IPHONEOS_DEPLOYMENT_TARGET=13.0 MACOSX_DEPLOYMENT_TARGET=11.0

cd "$root"
rustup target add "$ios" "${sims[@]}" "${macs[@]}"
# The bindings must match the library they are shipped with.
"$root/bindings/uniffi-bindgen/generate.sh" --check
for t in "$ios" "${sims[@]}" "${macs[@]}"; do
  cargo build --locked --release -p tokenvault-ffi --target "$t"
done

work="$here/build/work"
rm -rf "$work" "$here/build/TokenVaultFFI.xcframework"
mkdir -p "$work/headers" "$work/ios-simulator" "$work/macos"
cp "$here/Sources/tokenvaultFFI/include/tokenvaultFFI.h" "$here/Sources/tokenvaultFFI/include/module.modulemap" \
  "$work/headers/"
libs() { for t in "$@"; do printf '%s\n' "$target/$t/release/libtokenvault.a"; done; }
# One fat library per platform (the simulator and macOS each run on two architectures).
lipo -create $(libs "${sims[@]}") -output "$work/ios-simulator/libtokenvault.a"
lipo -create $(libs "${macs[@]}") -output "$work/macos/libtokenvault.a"

xcodebuild -create-xcframework \
  -library "$target/$ios/release/libtokenvault.a" -headers "$work/headers" \
  -library "$work/ios-simulator/libtokenvault.a" -headers "$work/headers" \
  -library "$work/macos/libtokenvault.a" -headers "$work/headers" \
  -output "$here/build/TokenVaultFFI.xcframework"
rm -rf "$work"
echo "built $here/build/TokenVaultFFI.xcframework"
