#!/usr/bin/env bash
# The Android library: tokenvault-<version>.aar, the Kotlin binding (uniffi, Android flavour,
# with CachedToken.kt and Coroutines.kt of the JVM binding) and libtokenvault.so for arm64-v8a,
# armeabi-v7a, x86_64 and x86, built with cargo-ndk and the Android Gradle plugin (this folder is
# the Gradle project); also published with its POM (JNA's AAR, androidx.annotation, coroutines)
# into <dist>/maven-android as tokenvault:tokenvault-android:<version>.
#
#   packaging/android/build-aar.sh [dist dir]        # default: dist/
#
# NOT RUN HERE: the Linux machines this repository is tested on have no Android SDK, NDK or
# Gradle. It is written for the `android` job of .github/workflows/release.yml (ubuntu-latest,
# whose image carries the SDK and the NDK). Needs: rustup, cargo-ndk (`cargo install cargo-ndk
# --locked`), ANDROID_NDK_HOME, ANDROID_HOME (or ANDROID_SDK_ROOT), a JDK 17 and Gradle 8.7+.
# Gradle fetches the Android Gradle plugin and androidx.annotation from Google's Maven
# repository, and the rest from Maven Central.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dist="${1:-$root/dist}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to an Android NDK (r26 or newer)}"
command -v cargo-ndk >/dev/null || { echo "build-aar: cargo-ndk is missing: cargo install cargo-ndk --locked" >&2; exit 1; }
command -v gradle >/dev/null || { echo "build-aar: gradle is missing" >&2; exit 1; }

build="$target/packaging/android"
rm -rf "$build"
mkdir -p "$build/jniLibs" "$build/kotlin"

cd "$root"
rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android
# --platform 24: minSdk in build.gradle.kts.
cargo ndk --platform 24 -t arm64-v8a -t armeabi-v7a -t x86_64 -t x86 -o "$build/jniLibs" \
  build --locked --release -p tokenvault-ffi
# The Kotlin of the Android flavour (`android = true`: Android's cleaner and annotations).
bindings/uniffi-bindgen/generate.sh --android "$build/kotlin"
# Not JavaHttpTransport.kt: java.net.http does not exist on Android.
mkdir -p "$build/kotlin/tokenvault"
cp bindings/kotlin/src/main/kotlin/tokenvault/CachedToken.kt bindings/kotlin/src/main/kotlin/tokenvault/Coroutines.kt \
  "$build/kotlin/tokenvault/"

cd "$here"
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
gradle --no-daemon -q assembleRelease publishReleasePublicationToDistRepository \
  -PtokenvaultVersion="$version" -PtokenvaultBuildDir="$build/gradle" \
  -PtokenvaultJniLibs="$build/jniLibs" -PtokenvaultKotlin="$build/kotlin" \
  -PtokenvaultMavenRepo="$dist/maven-android"
aar="$build/gradle/outputs/aar/android-release.aar"
for abi in arm64-v8a armeabi-v7a x86_64 x86; do
  grep -qx "jni/$abi/libtokenvault.so" <<<"$(unzip -Z1 "$aar")" ||
    { echo "build-aar: the AAR has no jni/$abi/libtokenvault.so" >&2; exit 1; }
done
cp "$aar" "$dist/tokenvault-$version.aar"
echo "build-aar: $dist/tokenvault-$version.aar, $dist/maven-android/"
