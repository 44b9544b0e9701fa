#!/usr/bin/env bash
# The JVM package: the Kotlin binding's jar with the Linux x86_64 native library inside, at
# linux-x86-64/libtokenvault.so (where JNA looks on the classpath when neither jna.library.path
# nor the system's library path has it), deployed with its POM into a Maven repository folder:
#
#   <dist>/maven/tokenvault/tokenvault-kotlin/<version>/tokenvault-kotlin-<version>.{jar,pom}
#
# A project uses it with that folder as a repository (file://…/dist/maven) and the dependency
# tokenvault:tokenvault-kotlin:<version>; kotlin-stdlib, JNA and kotlinx-coroutines come from
# Maven Central as the POM says.
#
#   packaging/jvm-jar.sh <cargo target dir> <dist dir>
#
# Needs a JDK 17+ and Maven; Maven's own plugins come from Maven Central on the first run
# (cached in ~/.m2). The build goes to <cargo target dir>/packaging/jvm, apart from the tests'.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:?usage: jvm-jar.sh <cargo target dir> <dist dir>}"
dist="${2:?usage: jvm-jar.sh <cargo target dir> <dist dir>}"
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
pom="$root/bindings/kotlin/pom.xml"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
build="$target/packaging/jvm"
native="$build/native"

pom_version="$(python3 -c '
import sys, xml.etree.ElementTree as ET
ns = {"m": "http://maven.apache.org/POM/4.0.0"}
print(ET.parse(sys.argv[1]).getroot().find("m:version", ns).text)' "$pom")"
[[ "$pom_version" == "$version" ]] ||
  { echo "jvm-jar: pom.xml says $pom_version, Cargo.toml $version" >&2; exit 1; }

rm -rf "$build"
mkdir -p "$native/linux-x86-64"
# Stripped of its symbol table (the exported functions stay): what ships is what size-check measures.
strip --strip-unneeded -o "$native/linux-x86-64/libtokenvault.so" "$target/release/libtokenvault.so"

log="$build/maven.log"
mvn_run() { mvn -B -q -f "$pom" "$@" >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }
# The tests are the Kotlin suite's (bindings/kotlin/run-tests.sh); this builds the jar only.
mvn_run package -Dmaven.test.skip=true \
  -Dtokenvault.native.dir="$native" -Dtokenvault.build.dir="$build/maven"
jar="$build/maven/tokenvault-kotlin-$version.jar"
grep -qx "linux-x86-64/libtokenvault.so" <<<"$(unzip -Z1 "$jar")" ||
  { echo "jvm-jar: $jar has no linux-x86-64/libtokenvault.so" >&2; exit 1; }

# deploy-file writes a repository as a server holds it: the jar, the POM, maven-metadata.xml and
# their checksums.
mvn_run deploy:deploy-file -Dfile="$jar" -DpomFile="$pom" -Durl="file://$dist/maven" -DrepositoryId=tokenvault-dist
echo "jvm-jar: $dist/maven/tokenvault/tokenvault-kotlin/$version/ ($(stat -c %s "$jar") bytes jar)"
