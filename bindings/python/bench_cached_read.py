"""The cached-token read from Python (900-byte token). Prints `BENCH python.<name> <median ns/call>`.

Run by bindings/kotlin/bench-cached-read.sh against the release library; not a test.
"""

import os
import statistics
import tempfile
import time

import tokenvault as tv
from tokenvault_cached import CachedToken


def measure(name, batch, op):
    for _ in range(batch):
        op()
    samples = []
    for _ in range(15):
        start = time.perf_counter_ns()
        for _ in range(batch):
            op()
        samples.append((time.perf_counter_ns() - start) / batch)
    print(f"BENCH python.{name} {statistics.median(samples):.1f}", flush=True)


def main():
    with tempfile.TemporaryDirectory() as d:
        vault = tv.TokenVault.open_with_key(os.path.join(d, "v.db"), bytes(range(32)))
        vault.register_preset(tv.Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", None)
        vault.store(tv.NewSession(account="player", profile="backend", access_token="t" * 900, expires_in_secs=3600))
        watch = vault.watch("player")
        known = vault.access_token("player").generation
        cached = CachedToken(vault, "player")
        measure("vault_access_token", 5_000, lambda: vault.access_token("player"))
        measure("watch_token_if_changed", 5_000, lambda: watch.token_if_changed(known))
        measure("watch_current_generation", 5_000, watch.current_generation)
        measure("cached_token_get", 50_000, cached.get)
        cached.close()
        vault.close()


if __name__ == "__main__":
    main()
