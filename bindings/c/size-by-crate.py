#!/usr/bin/env python3
"""What each crate (and the C parts) contributes to the shipped library, from its symbol table.

    cargo build -p tokenvault-ffi --release
    bindings/c/size-by-crate.py target/release/libtokenvault.so

Sums `nm --size-sort -S` sizes of code and read-only data by the first path segment of each
demangled name (`ring::…`, `<rustls::… as …>` → ring, rustls); SQLite's and ring's C and
assembly functions by their prefixes. Generic code is counted under the crate whose type or
function names it first (after inlining under fat LTO much of it is inside `tokenvault` or
`core`), so read the figures as an estimate; the exact cost of a part is the difference in
stripped size of a build without it. Also prints the ELF sections (unwinding tables included).
"""
import collections
import re
import subprocess
import sys


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lib = sys.argv[1]
    out = subprocess.run(["nm", "-C", "--size-sort", "-S", lib], capture_output=True, text=True, check=True).stdout
    total = collections.Counter()
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2] in "bBdD":
            continue
        size, name = int(parts[1], 16), parts[3].lstrip("<&*( ")
        m = re.match(r"(?:_<)?([A-Za-z0-9_]+)::", name)
        if m:
            crate = m.group(1)
        elif name.startswith(("sqlite3", "sqlite")):
            crate = "SQLite (C, exported names)"
        elif name.startswith("ring_") or name.startswith("ecp_nistz256"):
            crate = "ring (C and assembly)"
        elif name.startswith(("tv_", "uniffi_", "tokenvault_")):
            crate = "tokenvault-ffi (exported functions)"
        else:
            crate = "other C statics (mostly SQLite)"
        total[crate] += size
    grand = sum(total.values())
    print(f"{'bytes':>9}  share  part ({lib})")
    for crate, size in total.most_common(30):
        print(f"{size:9d} {size / grand * 100:5.1f}%  {crate}")
    print(f"{grand:9d} 100.0%  all symbols")
    print()
    print(subprocess.run(["size", "-A", lib], capture_output=True, text=True, check=True).stdout)


if __name__ == "__main__":
    main()
