#!/usr/bin/env bash
# The Unity package: com.tokenvault-<version>.tgz, the tarball Unity's Package Manager installs
# with "Add package from tarball…" (or "com.tokenvault": "file:/path/com.tokenvault-<version>.tgz"
# in Packages/manifest.json). npm-pack layout: everything under package/.
#
#   packaging/unity-package.sh <cargo target dir> <dist dir>
#
# Inside: package.json, README.md, Runtime/ (the C# source and its .asmdef), Samples~/,
# Plugins/README.md and Plugins/Linux/x86_64/libtokenvault.so with its import settings (Editor
# and Standalone Linux x86_64; bindings/csharp/unity/copy-plugins.sh writes them). A package
# installed from a tarball is read-only to Unity, which ignores any asset without a .meta file,
# so every file and folder gets one here, with a GUID derived from its path in the package (the
# same GUID in every version). Folders ending in "~" (Samples~) are not imported and get none.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:?usage: unity-package.sh <cargo target dir> <dist dir>}"
dist="${2:?usage: unity-package.sh <cargo target dir> <dist dir>}"
src="$root/bindings/csharp/unity/com.tokenvault"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
pkg_version="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$src/package.json")"
[[ "$pkg_version" == "$version" ]] ||
  { echo "unity-package: package.json says $pkg_version, Cargo.toml $version" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/package"
mkdir -p "$stage/Plugins"
cp -r "$src/package.json" "$src/README.md" "$src/Runtime" "$src/Samples~" "$stage/"
cp "$src/Plugins/README.md" "$stage/Plugins/"
"$root/bindings/csharp/unity/copy-plugins.sh" "$target" "$stage" >/dev/null

guid() { printf '%s' "com.tokenvault/$1" | md5sum | cut -c1-32; }
# The importer block Unity writes for each kind of asset (Unity 2020.3's own .meta files).
importer() {
  case "$1" in
    *.cs) printf 'MonoImporter:\n  externalObjects: {}\n  serializedVersion: 2\n  defaultReferences: []\n  executionOrder: 0\n  icon: {instanceID: 0}\n' ;;
    *.asmdef) printf 'AssemblyDefinitionImporter:\n  externalObjects: {}\n' ;;
    package.json) printf 'PackageManifestImporter:\n  externalObjects: {}\n' ;;
    *.md | *.json | *.txt) printf 'TextScriptImporter:\n  externalObjects: {}\n' ;;
    *) echo "unity-package: no importer known for $1" >&2; return 1 ;;
  esac
}
while IFS= read -r -d '' path; do
  rel="${path#"$stage"/}"
  [[ -e "$path.meta" ]] && continue   # the plugin's, from copy-plugins.sh
  {
    printf 'fileFormatVersion: 2\nguid: %s\n' "$(guid "$rel")"
    if [[ -d "$path" ]]; then
      printf 'folderAsset: yes\nDefaultImporter:\n  externalObjects: {}\n'
    else
      importer "$rel"
    fi
    printf '  userData: \n  assetBundleName: \n  assetBundleVariant: \n'
  } > "$path.meta"
done < <(find "$stage" -mindepth 1 -not -name '*.meta' -not -path '*~*' -print0 | sort -z)

mkdir -p "$dist"
out="$dist/com.tokenvault-$version.tgz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-0}" \
  -C "$work" -czf "$out" package
echo "unity-package: $out ($(stat -c %s "$out") bytes)"
