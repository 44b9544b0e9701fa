package tokenvault

import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import uniffi.tokenvault.TokenVault

/** Many coroutines, one refresh: the single-flight is the core's, whatever the caller. */
class CoroutinesTest {

    @Test
    fun `500 coroutines reading an expired token cause exactly one refresh`() {
        ReferenceServer("002").use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    server.register(vault)
                    // expires_in 1 s, then 1.1 s pass: the stored token has expired.
                    server.loginAndStore(vault, "player", expiresInSecs = 1UL)
                    Thread.sleep(1100)
                    val tokens = runBlocking {
                        (1..500).map { async(Dispatchers.IO) { vault.awaitAccessToken("player") } }.awaitAll()
                    }
                    assertEquals(1, server.stat("refresh_requests"))
                    assertEquals(1, tokens.map { it.generation }.toSet().size)
                    assertEquals(200, server.protectedStatus(tokens.first().token))
                }
            }
        }
    }

    @Test
    fun `concurrent refreshes of several accounts through the Kotlin transport`() {
        ReferenceServer("001").use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    vault.setTransport(JavaHttpTransport())
                    server.register(vault)
                    val accounts = (1..8).map { "player-$it" }
                    accounts.forEach { server.loginAndStore(vault, it, expiresInSecs = 1UL) }
                    Thread.sleep(1100)
                    val tokens = runBlocking {
                        accounts.flatMap { account ->
                            (1..25).map { async(Dispatchers.IO) { account to vault.awaitAccessToken(account) } }
                        }.awaitAll()
                    }
                    assertEquals(8, server.stat("refresh_requests"))
                    val byAccount = tokens.groupBy({ it.first }, { it.second.token })
                    assertEquals(8, byAccount.size)
                    byAccount.values.forEach { assertEquals(1, it.toSet().size) }
                    byAccount.values.forEach { assertEquals(200, server.protectedStatus(it.first())) }
                    // Cached reads from coroutines: no more requests.
                    runBlocking {
                        accounts.map { account ->
                            async(Dispatchers.IO) { CachedToken(vault, account).use { it.await() } }
                        }.awaitAll()
                    }
                    assertEquals(8, server.stat("refresh_requests"))
                    // A forced refresh from a coroutine after a 401.
                    val stale = byAccount.getValue("player-1").first()
                    val newer = runBlocking { vault.awaitReportRejected("player-1", stale) }
                    assertTrue(newer.token != stale)
                    assertEquals(9, server.stat("refresh_requests"))
                }
            }
        }
    }
}
