#!/usr/bin/env bash
# Installs each package that packaging/build-all.sh put in dist/ into a clean temporary place, the
# way a user of that language would, and runs the store/read cycle there from a temporary working
# directory (outside the repository): open a vault with a 32-byte raw key, register a profile,
# store a session, read its access token back, close, open again, read it again. No server is
# involved (the token is fresh, so nothing is refreshed).
#
#   packaging/smoke-test.sh [dist dir] [c python unity jvm]   # default: dist/, every package
#
#   c       the archive unpacked into a temp prefix; a C program and a C++17 -fno-exceptions
#           program built with CMake find_package, static and shared, and the C program through
#           pkg-config; run without LD_LIBRARY_PATH (the rpath finds the library).
#   python  a fresh `python3 -m venv`, `pip install --no-index` of the wheel, the cycle in it.
#   unity   the UPM tarball unpacked as Unity unpacks it; a .meta for every asset; its Runtime
#           compiled by mcs as C# 7.2 with unsafe code, as Unity compiles it; the cycle must fail
#           without the plugin, then run on mono with the package's Plugins/Linux/x86_64 library
#           beside the compiled Tokenvault.dll (where Mono looks first).
#   jvm     a Maven project generated in a temp dir that depends on tokenvault:tokenvault-kotlin
#           from dist/maven (a file:// repository): no system property, no library path.
#
# Prints one "smoke <package>: ok ..." line per package; any failure (a missing tool included)
# stops it with a non-zero exit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="$(cd "${1:-$root/dist}" && pwd)"
shift || true
packages=("$@")
[[ ${#packages[@]} -gt 0 ]] || packages=(c python unity jvm)
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"

work="$(mktemp -d "${TMPDIR:-/tmp}/tokenvault-smoke.XXXXXX")"
trap 'rm -rf "$work"' EXIT

die() { echo "smoke $*" >&2; exit 1; }
need() {
  local pkg="$1"; shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$pkg: '$tool' is missing (a missing tool is a failure, never a skip)"
  done
}
# Runs a command with its output kept in a log, shown only if it fails.
quiet() {
  local log="$1"; shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; return 1; }
}
cycle_out=""
# Runs one program of the cycle with a fresh vault folder, from a working directory of its own,
# with no LD_LIBRARY_PATH: it must find the library by itself, exit 0 and print "cycle ok".
cycle() {
  local name="$1"; shift
  local dir="$work/run-$name"
  mkdir -p "$dir/vault"
  cycle_out="$(cd "$dir" && env -u LD_LIBRARY_PATH "$@" "$dir/vault" 2>&1)" || die "$name: the cycle failed: $cycle_out"
  grep -q "^cycle ok" <<<"$cycle_out" || die "$name: no 'cycle ok' line: $cycle_out"
}

smoke_c() {
  need c cmake cc c++ pkg-config ldd readelf
  local archive="$dist/tokenvault-$version-linux-x86_64.tar.gz"
  [[ -f "$archive" ]] || die "c: $archive is missing (packaging/build-all.sh)"
  local base="$work/c"
  mkdir -p "$base/prefix"
  tar -xzf "$archive" -C "$base/prefix"
  local prefix="$base/prefix/tokenvault-$version-linux-x86_64"
  cp -r "$root/packaging/smoke/c" "$base/src"

  quiet "$base/configure.log" cmake -S "$base/src" -B "$base/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix"
  quiet "$base/build.log" cmake --build "$base/build" -j2
  local exe
  for exe in cycle_c_static cycle_c_shared cycle_cpp_static cycle_cpp_shared; do
    cycle "$exe" "$base/build/$exe"
  done
  # The shared programs load the library from the unpacked package, the static ones need none.
  for exe in cycle_c_shared cycle_cpp_shared; do
    grep -q "libtokenvault.so.[0-9.]* => $prefix/lib/" <<<"$(env -u LD_LIBRARY_PATH ldd "$base/build/$exe")" ||
      die "c: $exe does not load libtokenvault from the package: $(ldd "$base/build/$exe" | grep tokenvault)"
  done
  for exe in cycle_c_static cycle_cpp_static; do
    if grep -q "libtokenvault" <<<"$(readelf -d "$base/build/$exe")"; then die "c: $exe needs libtokenvault.so"; fi
  done

  # pkg-config, with the rpath the README gives.
  local pc_flags
  pc_flags="$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs tokenvault)"
  # shellcheck disable=SC2086 # word splitting of pkg-config's output is intended
  quiet "$base/pkgconfig.log" cc -std=c11 -Wall -Wextra -Werror "$base/src/cycle.c" $pc_flags \
    -Wl,-rpath,"$prefix/lib" -o "$base/cycle_c_pkgconfig"
  cycle cycle_c_pkgconfig "$base/cycle_c_pkgconfig"
  summary="C and C++17 (-fno-exceptions) via find_package, static and shared, and C via pkg-config: 5 programs ran the cycle without LD_LIBRARY_PATH"
}

smoke_python() {
  need python python3
  local wheel="$dist/tokenvault-$version-py3-none-linux_x86_64.whl"
  [[ -f "$wheel" ]] || die "python: $wheel is missing (packaging/build-all.sh)"
  local base="$work/python"
  mkdir -p "$base"
  quiet "$base/venv.log" python3 -m venv "$base/venv"
  # --no-index: nothing is downloaded; the wheel needs nothing but itself.
  quiet "$base/pip.log" "$base/venv/bin/python" -m pip install --no-index --disable-pip-version-check "$wheel"
  cycle python "$base/venv/bin/python" -I "$root/packaging/smoke/python/cycle.py"
  summary="the wheel installed by pip (--no-index) into a fresh venv; the cycle ran from a temp directory"
}

smoke_unity() {
  need unity tar mcs mono
  local tgz="$dist/com.tokenvault-$version.tgz"
  [[ -f "$tgz" ]] || die "unity: $tgz is missing (packaging/build-all.sh)"
  local base="$work/unity"
  # Where Unity unpacks a tarball package, and where it puts the assemblies it compiles.
  local pkg="$base/Library/PackageCache/com.tokenvault@$version" out="$base/Library/ScriptAssemblies"
  mkdir -p "$pkg" "$out"
  tar -xzf "$tgz" -C "$pkg" --strip-components=1

  # Unity ignores an asset of a read-only (tarball) package that has no .meta.
  local path missing=() guids
  while IFS= read -r -d '' path; do
    [[ -f "$path.meta" ]] || missing+=("${path#"$pkg"/}")
  done < <(find "$pkg" -mindepth 1 -not -name '*.meta' -not -path '*~*' -print0)
  [[ ${#missing[@]} -eq 0 ]] || die "unity: no .meta for: ${missing[*]}"
  guids="$(find "$pkg" -name '*.meta' -exec sed -n 's/^guid: //p' {} + | sort)"
  [[ -z "$(uniq -d <<<"$guids")" ]] || die "unity: two assets share a GUID"
  local plugin="$pkg/Plugins/Linux/x86_64/libtokenvault.so"
  [[ -f "$plugin" ]] || die "unity: the package has no Plugins/Linux/x86_64/libtokenvault.so"
  if ! grep -q "Standalone: Linux64" "$plugin.meta" || ! grep -q "OS: Linux" "$plugin.meta"; then
    die "unity: the plugin's .meta does not enable the Linux editor and player"
  fi

  # As Unity compiles the package's assembly definition: C# 7.2, unsafe code allowed.
  quiet "$base/mcs.log" mcs -langversion:7.2 -unsafe -warnaserror -nologo -target:library \
    -out:"$out/Tokenvault.dll" "$pkg"/Runtime/*.cs
  quiet "$base/mcs-cycle.log" mcs -langversion:7.2 -nologo -out:"$out/Cycle.exe" -r:"$out/Tokenvault.dll" \
    "$root/packaging/smoke/unity/Cycle.cs"

  # Nothing else on this machine provides the library: without the plugin the call must fail.
  if (cd "$base" && env -u LD_LIBRARY_PATH mono "$out/Cycle.exe" "$base" >"$base/without.log" 2>&1); then
    die "unity: the cycle ran without the plugin: a libtokenvault.so is installed elsewhere"
  fi
  grep -q "DllNotFoundException" "$base/without.log" || { cat "$base/without.log" >&2; die "unity: failed, but not for the library"; }

  # Mono loads a [DllImport] library from beside the assembly that declares it (then from the
  # dynamic linker's paths): the package's plugin goes beside Tokenvault.dll, as the README says.
  cp "$plugin" "$out/"
  MONO_LOG_LEVEL=debug MONO_LOG_MASK=dll cycle unity mono "$out/Cycle.exe"
  grep -q "DllImport loaded library '$out/libtokenvault.so'" <<<"$cycle_out" ||
    die "unity: mono did not load the plugin from beside Tokenvault.dll: $(grep -i tokenvault <<<"$cycle_out")"
  summary="the UPM tarball's Runtime compiled by mcs (C# 7.2, -unsafe), every asset with a .meta; mono ran the cycle with the package's plugin beside Tokenvault.dll (and failed with DllNotFoundException without it)"
}

smoke_jvm() {
  need jvm java mvn
  local repo="$dist/maven"
  local jar="$repo/tokenvault/tokenvault-kotlin/$version/tokenvault-kotlin-$version.jar"
  [[ -f "$jar" ]] || die "jvm: $jar is missing (packaging/build-all.sh)"
  local base="$work/jvm"
  local project="$base/project"
  mkdir -p "$project/src/main/kotlin"
  local kotlin_version
  kotlin_version="$(sed -n 's|.*<kotlin.version>\(.*\)</kotlin.version>.*|\1|p' "$root/bindings/kotlin/pom.xml")"
  sed -e "s|@REPOSITORY@|file://$repo|; s|@VERSION@|$version|; s|@KOTLIN_VERSION@|$kotlin_version|" \
    "$root/packaging/smoke/jvm/pom.xml.in" > "$project/pom.xml"
  cp "$root/packaging/smoke/jvm/Cycle.kt" "$project/src/main/kotlin/"

  # Maven keeps what it fetched from a repository in ~/.m2 and would not fetch this version
  # again: drop an earlier copy of ours (only ours) so this run resolves the jar of dist/.
  rm -rf "${HOME}/.m2/repository/tokenvault/tokenvault-kotlin/$version"
  quiet "$base/package.log" mvn -B -q -f "$project/pom.xml" package
  quiet "$base/classpath.log" mvn -B -q -f "$project/pom.xml" dependency:build-classpath -Dmdep.outputFile="$base/classpath.txt"
  local resolved
  resolved="$(tr ':' '\n' <"$base/classpath.txt" | grep "/tokenvault-kotlin-$version.jar$")" ||
    die "jvm: tokenvault-kotlin is not on the project's classpath"
  cmp -s "$resolved" "$jar" || die "jvm: Maven resolved $resolved, not the jar of $repo"

  # Plain java: no -Djna.library.path, no LD_LIBRARY_PATH.
  cycle jvm java -cp "$project/target/classes:$(cat "$base/classpath.txt")" example.game.CycleKt
  summary="a fresh Maven project resolved tokenvault:tokenvault-kotlin:$version from $repo; java ran the cycle with the library from inside the jar"
}

summary=""
for pkg in "${packages[@]}"; do
  start=$SECONDS
  "smoke_$pkg"
  echo "smoke $pkg: ok ($((SECONDS - start)) s) — $summary"
done
