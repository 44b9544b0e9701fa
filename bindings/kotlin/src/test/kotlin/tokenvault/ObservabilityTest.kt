package tokenvault

import java.io.File
import java.util.Collections
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import org.junit.jupiter.api.Test
import uniffi.tokenvault.LogLevel
import uniffi.tokenvault.LogListener
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.OpenOptions
import uniffi.tokenvault.Preset
import uniffi.tokenvault.SessionState
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.TokenVaultException
import uniffi.tokenvault.setLogListener

/** Open options, metrics and log routing on the JVM, against the seed 001 reference server. */
class ObservabilityTest {

    @Test
    fun `open options apply and invalid values create no file`() {
        TempDir().use { dir ->
            val path = dir.file("v.db")
            for (bad in listOf(
                OpenOptions(refreshPoint = 0.99),
                OpenOptions(jitter = -0.1),
                OpenOptions(minTtlCap = 1.5),
                OpenOptions(expiryMarginMs = 3_600_001uL),
                OpenOptions(busyTimeoutMs = 600_001uL),
            )) {
                assertFailsWith<TokenVaultException.InvalidInput> { TokenVault.openWithKey(path, TEST_KEY, bad) }
                assertFalse(File(path).exists())
            }
            // Refresh point 5 % of a 20 s token: due after 1 s (with the defaults, after 15 s).
            val options = OpenOptions(refreshPoint = 0.05, jitter = 0.0, busyTimeoutMs = 1000uL)
            TokenVault.openWithKey(path, TEST_KEY, options).use { vault ->
                vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", null)
                vault.store(NewSession(account = "p", profile = "backend", accessToken = "a".repeat(40),
                    refreshCredential = "r".repeat(40), expiresInSecs = 20uL))
                assertEquals(SessionState.FRESH, vault.sessionInfo("p").state)
                Thread.sleep(1_200)
                assertEquals(SessionState.REFRESH_DUE, vault.sessionInfo("p").state)
            }
        }
    }

    @Test
    fun `metrics count hits, refreshes and failures by code`() {
        ReferenceServer("001").use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    server.register(vault)
                    assertEquals(0uL, vault.metrics().cachedHits)
                    server.loginAndStore(vault, "player")
                    repeat(10) { vault.accessToken("player") }
                    vault.forceRefresh("player")
                    var m = vault.metrics()
                    assertEquals(10uL, m.cachedHits)
                    assertEquals(1uL, m.refreshesStarted)
                    assertEquals(1uL, m.refreshesSucceeded)
                    assertEquals(1uL, m.transportRequests)
                    assertTrue(m.responseBytes > 100uL)
                    assertTrue(m.transportLatencyP50Us!! > 0uL && m.transportLatencyP99Us!! >= m.transportLatencyP50Us!!)

                    vault.store(NewSession(account = "stranger", profile = "backend", accessToken = "x".repeat(40),
                        refreshCredential = "y".repeat(40)))
                    assertFailsWith<TokenVaultException.ReauthenticationRequired> { vault.forceRefresh("stranger") }
                    m = vault.metrics()
                    assertEquals(1uL, m.refreshesFailed)
                    assertEquals(listOf(Triple(1, "reauthentication_required", 1uL)),
                        m.refreshesFailedByCode.map { Triple(it.code, it.name, it.count) })
                    assertFalse(m.toString().contains("player") || m.toString().contains("stranger"))
                }
            }
        }
    }

    private class Lines : LogListener {
        val lines: MutableList<Triple<LogLevel, String, String>> = Collections.synchronizedList(mutableListOf())
        override fun onLog(level: LogLevel, target: String, message: String) {
            lines.add(Triple(level, target, message))
        }
    }

    @Test
    fun `log lines reach the listener, filtered, without secrets`() {
        ReferenceServer("001").use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    server.register(vault)
                    val listener = Lines()
                    try {
                        setLogListener(LogLevel.TRACE, listener)
                        val (access, refresh) = server.login("player-0c4f")
                        vault.store(NewSession(account = "player-0c4f", profile = "backend", accessToken = access,
                            refreshCredential = refresh))
                        val rotated = vault.forceRefresh("player-0c4f").token
                        vault.remove("player-0c4f")
                        val lines = synchronized(listener.lines) { listener.lines.toList() }
                        assertTrue(lines.size >= 3, lines.toString())
                        assertTrue(lines.any { it.first == LogLevel.DEBUG })
                        for ((_, target, message) in lines) {
                            assertTrue(target.startsWith("tokenvault"), target)
                            for (secret in listOf(access, refresh, rotated, "player-0c4f")) {
                                assertFalse(message.contains(secret), "a secret in: $message")
                            }
                        }

                        setLogListener(LogLevel.WARN, listener)
                        listener.lines.clear()
                        server.loginAndStore(vault, "second")
                        vault.forceRefresh("second")
                        assertTrue(listener.lines.all { it.first == LogLevel.WARN || it.first == LogLevel.ERROR })
                    } finally {
                        setLogListener(LogLevel.TRACE, null)
                    }
                    listener.lines.clear()
                    vault.forceRefresh("second")
                    assertEquals(0, listener.lines.size)
                }
            }
        }
    }
}
