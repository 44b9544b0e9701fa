#!/usr/bin/env python3
"""The Python wheel: tokenvault-<version>-py3-none-linux_x86_64.whl, from an existing release build.

    packaging/python-wheel.py <libtokenvault.so> <dist dir>

The wheel holds the package ``tokenvault`` (the generated uniffi module as its ``__init__.py``,
and ``libtokenvault.so`` beside it, where the module loads it from) and the module
``tokenvault_cached`` (the cached read). The module calls the library through ctypes, so the wheel
is for any Python 3 (``py3-none``) on Linux x86_64, with the glibc of the machine that built it
or newer. Written with the standard library only (no network, no build backend), to the wheel
format: METADATA, WHEEL, and a RECORD holding each file's SHA-256. The same inputs give the same
bytes (sorted entries, a fixed time).
"""

import base64
import hashlib
import pathlib
import re
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
TAG = "py3-none-linux_x86_64"
# Zip entries need a date; the earliest one the format allows keeps the wheel reproducible.
EPOCH = (1980, 1, 1, 0, 0, 0)


def workspace_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    match = re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', text, re.M | re.S)
    if not match:
        sys.exit("python-wheel: no version in Cargo.toml's [workspace.package]")
    return match.group(1)


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python-wheel.py <libtokenvault.so> <dist dir>")
    lib, dist = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    version = workspace_version()
    python = ROOT / "bindings" / "python"
    dist_info = f"tokenvault-{version}.dist-info"

    metadata = "\n".join([
        "Metadata-Version: 2.1",
        "Name: tokenvault",
        f"Version: {version}",
        "Summary: Embedded token vault: session tokens encrypted on disk, refreshed once however many threads ask",
        "License: Apache-2.0",
        "Requires-Python: >=3.8",
        "Classifier: Operating System :: POSIX :: Linux",
        "Classifier: Programming Language :: Python :: 3",
        "Description-Content-Type: text/markdown",
        "",
        (python / "README.md").read_text(),
    ])
    wheel = "\n".join([
        "Wheel-Version: 1.0",
        "Generator: tokenvault packaging/python-wheel.py",
        "Root-Is-Purelib: false",
        f"Tag: {TAG}",
        "",
    ])
    # (name in the wheel, bytes, executable)
    files = [
        ("tokenvault/__init__.py", (python / "tokenvault.py").read_bytes(), False),
        ("tokenvault/libtokenvault.so", lib.read_bytes(), True),
        ("tokenvault_cached.py", (python / "tokenvault_cached.py").read_bytes(), False),
        (f"{dist_info}/METADATA", metadata.encode(), False),
        (f"{dist_info}/WHEEL", wheel.encode(), False),
        (f"{dist_info}/top_level.txt", b"tokenvault\ntokenvault_cached\n", False),
    ]
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data, _ in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), False))

    dist.mkdir(parents=True, exist_ok=True)
    out = dist / f"tokenvault-{version}-{TAG}.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data, executable in files:  # RECORD last, as the format recommends
            info = zipfile.ZipInfo(name, EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            whl.writestr(info, data)
    print(f"python-wheel: {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
