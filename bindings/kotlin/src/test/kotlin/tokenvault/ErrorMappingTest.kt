package tokenvault

import java.io.RandomAccessFile
import java.nio.file.Files
import java.nio.file.Paths
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import uniffi.tokenvault.HttpRequest
import uniffi.tokenvault.HttpResponse
import uniffi.tokenvault.HttpTransport
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.SessionState
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.TokenVaultException
import uniffi.tokenvault.VaultEvent
import uniffi.tokenvault.debugTriggerPanic
import uniffi.tokenvault.errorCodeName

/** Every failure reaches Kotlin as its own TokenVaultException, carrying the stable code. */
class ErrorMappingTest {

    /** The code a variant carries, and its stable name, agree with tokenvault::ErrorCode. */
    private fun check(e: TokenVaultException, code: Int, name: String) {
        val carried = when (e) {
            is TokenVaultException.ReauthenticationRequired -> e.code
            is TokenVaultException.Transient -> e.code
            is TokenVaultException.Throttled -> e.code
            is TokenVaultException.StorageUnavailable -> e.code
            is TokenVaultException.WrongKey -> e.code
            is TokenVaultException.Corrupt -> e.code
            is TokenVaultException.NotFound -> e.code
            is TokenVaultException.InvalidInput -> e.code
            is TokenVaultException.Protocol -> e.code
            is TokenVaultException.Internal -> e.code
            is TokenVaultException.SchemaTooNew -> e.code
            is TokenVaultException.RefreshOutcomeUnknown -> e.code
            is TokenVaultException.Closed -> e.code
        }
        assertEquals(code, carried, e.message)
        assertEquals(name, errorCodeName(carried))
        assertTrue(e.message!!.contains("code=$code"))
    }

    @Test
    fun `local failures`() {
        TempDir().use { dir ->
            val path = dir.file("v.db")
            TokenVault.openWithKey(path, TEST_KEY).use { vault ->
                check(assertFailsWith<TokenVaultException.NotFound> { vault.accessToken("nobody") }, 7, "not_found")
                check(assertFailsWith<TokenVaultException.InvalidInput> { vault.loadProfileJson("{") }, 8, "invalid_input")
                check(
                    assertFailsWith<TokenVaultException.InvalidInput> {
                        vault.store(NewSession(account = "a", profile = "unregistered", accessToken = "t"))
                    },
                    8, "invalid_input",
                )
                vault.closeVault()
                check(assertFailsWith<TokenVaultException.Closed> { vault.listAccounts() }, 13, "closed")
            }
            check(
                assertFailsWith<TokenVaultException.WrongKey> { TokenVault.openWithKey(path, ByteArray(32)) },
                5, "wrong_key",
            )
            check(
                assertFailsWith<TokenVaultException.InvalidInput> { TokenVault.openWithKey(path, ByteArray(31)) },
                8, "invalid_input",
            )

            // A newer schema: user_version (offset 60 of the SQLite header) set to 99.
            RandomAccessFile(path, "rw").use { f ->
                f.seek(60)
                f.writeInt(99)
            }
            val tooNew = assertFailsWith<TokenVaultException.SchemaTooNew> { TokenVault.openWithKey(path, TEST_KEY) }
            check(tooNew, 11, "schema_too_new")
            assertEquals(99L, tooNew.found)

            val junk = dir.file("junk.db")
            Files.write(Paths.get(junk), ByteArray(8192) { 0x5a })
            check(assertFailsWith<TokenVaultException.Corrupt> { TokenVault.openWithKey(junk, TEST_KEY) }, 6, "corrupt")

            check(
                assertFailsWith<TokenVaultException.StorageUnavailable> {
                    TokenVault.openWithKey(dir.file("no/such/dir/v.db"), TEST_KEY)
                },
                4, "storage_unavailable",
            )
        }
    }

    @Test
    fun `a panic inside the library comes back as Internal`() {
        check(assertFailsWith<TokenVaultException.Internal> { debugTriggerPanic() }, 10, "internal")
        // ...and the library keeps working.
        TempDir().use { dir -> TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { it.listAccounts() } }
    }

    @Test
    fun `server failures`() {
        ReferenceServer("001").use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    val log = EventLog()
                    vault.setObserver(log)
                    server.register(vault)
                    server.loginAndStore(vault, "player")

                    server.fault("""{"fault":"status","status":503}""")
                    check(assertFailsWith<TokenVaultException.Transient> { vault.forceRefresh("player") }, 2, "transient")

                    server.fault("""{"fault":"garbage"}""")
                    check(assertFailsWith<TokenVaultException.Protocol> { vault.forceRefresh("player") }, 9, "protocol")

                    // The answer to a rotation is lost: the next attempt's refusal is reported as
                    // "outcome unknown", not as a plain expired session.
                    server.fault("""{"fault":"lose_response"}""")
                    check(assertFailsWith<TokenVaultException.Transient> { vault.forceRefresh("player") }, 2, "transient")
                    check(
                        assertFailsWith<TokenVaultException.RefreshOutcomeUnknown> { vault.forceRefresh("player") },
                        12, "refresh_outcome_unknown",
                    )

                    // Throttled (on its own account: the core then holds back every refresh of
                    // that account for the Retry-After).
                    server.loginAndStore(vault, "slow")
                    server.fault("""{"fault":"throttle","retry_after_secs":7}""")
                    val throttled = assertFailsWith<TokenVaultException.Throttled> { vault.forceRefresh("slow") }
                    check(throttled, 3, "throttled")
                    assertEquals(7_000UL, throttled.retryAfterMs)

                    // A server-side logout: the credential is refused.
                    server.loginAndStore(vault, "other")
                    val token = vault.accessToken("other").token
                    assertTrue(server.revoke(token))
                    check(
                        assertFailsWith<TokenVaultException.ReauthenticationRequired> { vault.forceRefresh("other") },
                        1, "reauthentication_required",
                    )
                    assertEquals(SessionState.REAUTHENTICATION_REQUIRED, vault.sessionInfo("other").state)
                    log.await { it is VaultEvent.SessionExpired && it.account == "other" }
                    // Never deleted implicitly.
                    assertEquals(listOf("other", "player", "slow"), vault.listAccounts())
                }
            }
        }
    }

    @Test
    fun `failures of a Kotlin transport`() {
        ReferenceServer("001").use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    vault.setTransport(JavaHttpTransport())
                    server.register(vault)
                    // A port nobody listens on: the connection is refused.
                    vault.registerPreset(server.preset, "dead", "http://127.0.0.1:9/refresh", """{"api_key":"k"}""")
                    server.loginAndStore(vault, "player")
                    server.loginAndStore(vault, "lost", profile = "dead")

                    val refused = assertFailsWith<TokenVaultException.Transient> { vault.forceRefresh("lost") }
                    assertTrue(refused.reason.contains("Connect"), refused.reason)

                    // A body over the cap: the transport refuses it, the core calls it a protocol error.
                    server.fault("""{"fault":"oversized","bytes":2000000}""")
                    check(assertFailsWith<TokenVaultException.Protocol> { vault.forceRefresh("player") }, 9, "protocol")

                    // An unexpected exception thrown by the app's transport is a transient failure,
                    // not a crash, and its text (which could quote the request) is not passed on.
                    vault.setTransport(object : HttpTransport {
                        override fun send(request: HttpRequest): HttpResponse =
                            throw IllegalStateException("boom ${request.url}")
                    })
                    val thrown = assertFailsWith<TokenVaultException.Transient> { vault.forceRefresh("player") }
                    assertTrue(!thrown.reason.contains("boom"), thrown.reason)
                    // The session lives on.
                    assertEquals(200, server.protectedStatus(vault.accessToken("player").token))
                }
            }
        }
    }
}
