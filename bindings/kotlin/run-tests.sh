#!/usr/bin/env bash
# Kotlin (JVM) tests of the uniffi bindings: builds the native library (debug) and the reference
# server, then runs the JUnit suite with Maven. (Bindings that do not match the library fail at
# load time on uniffi's checksums; `bindings/uniffi-bindgen/generate.sh --check` compares the
# committed files byte for byte.)
# Needs a JDK 17+ and Maven; Kotlin 2.x, JNA, kotlinx-coroutines and JUnit come from Maven Central
# on the first run (cached in ~/.m2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cd "$root"

cargo build -q --locked -p tokenvault-ffi
cargo build -q --locked -p tokenvault-testkit --bin reference-server

cd "$here"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
rm -rf "$here/target/surefire-reports"
mvn -q -B test \
  -Dtokenvault.lib.dir="$target/debug" \
  -Dtokenvault.reference.server="$target/debug/reference-server" >"$log" 2>&1 || status=$?
if [ $status -ne 0 ]; then
  cat "$log"
fi
# Surefire's summary, from its reports (mvn -q hides the console summary).
python3 - "$here/target/surefire-reports" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
t = f = e = s = 0
for path in glob.glob(sys.argv[1] + "/TEST-*.xml"):
    r = ET.parse(path).getroot()
    t += int(r.get("tests", 0)); f += int(r.get("failures", 0))
    e += int(r.get("errors", 0)); s += int(r.get("skipped", 0))
print(f"Tests run: {t}, Failures: {f}, Errors: {e}, Skipped: {s}")
print(f"kotlin: {t - f - e - s} passed, {f + e} failed, {s} skipped")
PY
exit $status
