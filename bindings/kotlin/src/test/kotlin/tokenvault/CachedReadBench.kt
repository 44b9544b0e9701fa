package tokenvault

import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.Preset
import uniffi.tokenvault.TokenVault

/**
 * The cached-token read from Kotlin over JNA (900-byte token). Not a test: it runs only with
 * -Dtokenvault.bench=true (bindings/bench-cached-read.sh, against the release library) and prints
 * `BENCH <name> <median ns/call>` lines. Median of 15 batches after a warm-up.
 */
class CachedReadBench {

    private fun measure(name: String, batch: Int, op: () -> Any) {
        repeat(3) { for (i in 0 until batch) op() }
        val samples = (1..15).map {
            val start = System.nanoTime()
            for (i in 0 until batch) op()
            (System.nanoTime() - start).toDouble() / batch
        }.sorted()
        println("BENCH kotlin.$name %.1f".format(samples[samples.size / 2]))
    }

    @Test
    fun `cached read`() {
        assumeTrue(System.getProperty("tokenvault.bench") == "true", "benchmarks run only with -Dtokenvault.bench=true")
        TempDir().use { dir ->
            TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:9/token")
                vault.store(NewSession("player", "backend", "t".repeat(900), expiresInSecs = 3600UL))
                val watch = vault.watch("player")
                val cached = CachedToken(watch)
                val known = vault.accessToken("player").generation
                measure("vault_access_token", 20_000) { vault.accessToken("player") }
                measure("watch_token_if_changed", 20_000) { watch.tokenIfChanged(known) ?: known }
                measure("watch_current_generation", 20_000) { watch.currentGeneration() }
                measure("cached_token_get", 20_000) { cached.get() }
                cached.close()
            }
        }
    }
}
