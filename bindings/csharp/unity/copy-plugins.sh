#!/usr/bin/env bash
# Put the native library built here into the Unity package: the Linux x86_64 release
# libtokenvault.so goes to com.tokenvault/Plugins/Linux/x86_64/, with a .meta that tells Unity
# it is for the Linux editor and Linux x86_64 players. Binaries are never committed
# (Plugins/.gitignore); run this after `cargo build -p tokenvault-ffi --release`.
#
#   bindings/csharp/unity/copy-plugins.sh [cargo target dir] [package folder]
#
# The package folder defaults to com.tokenvault/ here; packaging/unity-package.sh passes the
# folder it stages the UPM tarball in.
#
# Other platforms are built on their own toolchains and dropped into the places listed in
# com.tokenvault/Plugins/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${1:-${CARGO_TARGET_DIR:-$root/target}}"
lib="$target/release/libtokenvault.so"
dest="${2:-$here/com.tokenvault}/Plugins/Linux/x86_64"
[[ -f "$lib" ]] || { echo "copy-plugins: $lib is missing: cargo build -p tokenvault-ffi --release" >&2; exit 1; }
mkdir -p "$dest"
# Stripped of its symbol table (the exported functions stay): what ships is what size-check measures.
strip --strip-unneeded -o "$dest/libtokenvault.so" "$lib"
# A stable GUID (Unity needs one per asset): derived from the asset's path in the package.
guid="$(printf '%s' "com.tokenvault/Plugins/Linux/x86_64/libtokenvault.so" | md5sum | cut -c1-32)"
cat > "$dest/libtokenvault.so.meta" <<META
fileFormatVersion: 2
guid: $guid
PluginImporter:
  externalObjects: {}
  serializedVersion: 2
  iconMap: {}
  executionOrder: {}
  defineConstraints: []
  isPreloaded: 0
  isOverridable: 0
  isExplicitlyReferenced: 0
  validateReferences: 1
  platformData:
  - first:
      : Any
    second:
      enabled: 0
      settings:
        Exclude Android: 1
        Exclude Editor: 0
        Exclude Linux64: 0
        Exclude OSXUniversal: 1
        Exclude Win: 1
        Exclude Win64: 1
        Exclude iOS: 1
  - first:
      Editor: Editor
    second:
      enabled: 1
      settings:
        CPU: x86_64
        DefaultValueInitialized: true
        OS: Linux
  - first:
      Standalone: Linux64
    second:
      enabled: 1
      settings:
        CPU: x86_64
  userData:
  assetBundleName:
  assetBundleVariant:
META
echo "copy-plugins: $dest/libtokenvault.so ($(stat -c %s "$dest/libtokenvault.so") bytes)"
