package tokenvault

import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotEquals
import kotlin.test.assertTrue
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.CsvSource
import uniffi.tokenvault.HttpResponse
import uniffi.tokenvault.RefreshStep
import uniffi.tokenvault.SessionState
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.TokenVaultException
import uniffi.tokenvault.TransportException
import uniffi.tokenvault.VaultEvent

/** The whole cycle against each seed dialect's reference server, with each transport. */
class VaultCycleTest {

    @ParameterizedTest(name = "dialect {0}, {1} transport")
    @CsvSource("000,built-in", "001,built-in", "002,built-in", "000,kotlin", "001,kotlin", "002,kotlin")
    fun `store, read, refresh when due, force, report a 401, remove`(dialect: String, transport: String) {
        // A 2 s access token: due for refresh at ~75 % of its life.
        ReferenceServer(dialect, accessTtlMs = 2_000).use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    if (transport == "kotlin") vault.setTransport(JavaHttpTransport())
                    val log = EventLog()
                    vault.setObserver(log)
                    server.register(vault)
                    server.loginAndStore(vault, "player")

                    // A fresh token is served from memory.
                    val first = vault.accessToken("player")
                    assertEquals(200, server.protectedStatus(first.token))
                    assertEquals(first, vault.accessToken("player"))
                    assertEquals(0, server.stat("refresh_requests"))

                    // Due: the next read refreshes, once.
                    Thread.sleep(2_100)
                    val second = vault.accessToken("player")
                    assertTrue(second.generation > first.generation)
                    assertNotEquals(first.token, second.token)
                    assertEquals(200, server.protectedStatus(second.token))
                    assertEquals(1, server.stat("refresh_successes"))
                    val refreshed = log.await { it is VaultEvent.TokenRefreshed } as VaultEvent.TokenRefreshed
                    assertEquals("player", refreshed.account)
                    assertEquals(second.generation, refreshed.generation)

                    // Forced.
                    val third = vault.forceRefresh("player")
                    assertTrue(third.generation > second.generation)
                    assertEquals(200, server.protectedStatus(third.token))

                    // A 401 reported against an older token returns the newer one, no refresh.
                    val requests = server.stat("refresh_requests")
                    assertEquals(third, vault.reportRejected("player", second.token))
                    assertEquals(requests, server.stat("refresh_requests"))
                    // ...and against the current token, refreshes.
                    val fourth = vault.reportRejected("player", third.token)
                    assertTrue(fourth.generation > third.generation)

                    val info = vault.sessionInfo("player")
                    assertEquals(fourth.generation, info.generation)
                    assertEquals(SessionState.FRESH, info.state)
                    assertEquals(3UL, info.refreshCount)
                    assertTrue(info.hasRefreshCredential)
                    assertTrue(info.accessRemainingMs > 0)
                    assertEquals(listOf("player"), vault.listAccounts())
                    assertEquals(1UL, vault.sessionCount())
                    assertTrue(vault.checkIntegrity())

                    // Logout.
                    assertTrue(vault.remove("player"))
                    log.await { it is VaultEvent.SessionRemoved && it.account == "player" }
                    assertFailsWith<TokenVaultException.NotFound> { vault.accessToken("player") }
                    assertEquals(emptyList(), vault.listAccounts())
                    vault.closeVault()
                }
            }
        }
    }

    @ParameterizedTest(name = "dialect {0}")
    @CsvSource("000", "001", "002")
    fun `two-step refresh driven by the app's own HTTP client`(dialect: String) {
        ReferenceServer(dialect).use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    server.register(vault)
                    server.loginAndStore(vault, "player")
                    val before = vault.accessToken("player")
                    // Not due: the current token comes back at once.
                    val fresh = vault.beginRefresh("player", false)
                    assertEquals(RefreshStep.Fresh(before), fresh)

                    val http = JavaHttpTransport()
                    val step = vault.beginRefresh("player", true) as RefreshStep.Send
                    assertTrue(step.request.url.startsWith(server.base))
                    // While it is pending, others are told it is in flight.
                    assertEquals(RefreshStep.InFlight, vault.beginRefresh("player", true))
                    val response: HttpResponse = http.send(step.request)
                    val after = vault.finishRefresh(step.attempt, response)
                    assertTrue(after.generation > before.generation)
                    assertEquals(200, server.protectedStatus(after.token))
                    assertEquals(after, vault.accessToken("player"))

                    // A network failure reported by the app: a forced refresh fails as transient,
                    // the session lives on.
                    val again = vault.beginRefresh("player", true) as RefreshStep.Send
                    assertFailsWith<TokenVaultException.Transient> {
                        vault.failRefresh(again.attempt, TransportException.Connect("no route"))
                    }
                    assertEquals(after, vault.accessToken("player"))
                    // An attempt cannot be finished twice.
                    assertFailsWith<TokenVaultException.InvalidInput> {
                        vault.finishRefresh(again.attempt, response)
                    }
                }
            }
        }
    }
}
