package tokenvault

import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import org.junit.jupiter.api.Test
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.TokenVaultException

/** `storeResponse` with the reference server's own login answer, and a Java-timestamp expiry. */
class StoreResponseTest {

    @Test
    fun `the server's own answer is stored as is, and an epoch expires_in is scheduled`() {
        ReferenceServer("001").use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    server.register(vault)
                    val request = HttpRequest.newBuilder(URI.create("${server.base}/test/login"))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString("""{"user":"ada","answer":"dialect"}"""))
                        .build()
                    val response = HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString())
                    val info = vault.storeResponse("ada", "backend", response.body(),
                        dateHeader = response.headers().firstValue("Date").orElseThrow())
                    assertTrue(info.hasRefreshCredential)
                    assertTrue(info.accessRemainingMs in 50_001..60_000, info.accessRemainingMs.toString())
                    val rotated = vault.forceRefresh("ada")
                    assertEquals(200, server.protectedStatus(rotated.token))
                    assertFailsWith<TokenVaultException.Protocol> {
                        vault.storeResponse("bob", "backend", """{"success":false,"error":{"type":"AUTHENTICATION"}}""")
                    }
                    assertFailsWith<TokenVaultException.InvalidInput> {
                        vault.storeResponse("bob", "backend", response.body(), refreshCredential = "extra")
                    }
                    assertFailsWith<TokenVaultException.NotFound> { vault.sessionInfo("bob") }

                    // expires_in as seed 003 writes it: a Java timestamp (epoch ms), 2 s ahead.
                    val (access, refresh) = server.login("eve")
                    val stored = vault.store(NewSession(account = "eve", profile = "backend", accessToken = access,
                        refreshCredential = refresh, expiresInSecs = (System.currentTimeMillis() + 2_000).toULong()))
                    // Server time is the JWT's iat (whole seconds): up to 1 s behind the device.
                    assertTrue(stored.accessRemainingMs in 1_001..3_000, stored.accessRemainingMs.toString())
                    val before = server.stat("refresh_successes")
                    Thread.sleep(2_500) // due by then whatever the iat rounding
                    val token = vault.accessToken("eve")
                    assertTrue(token.generation > stored.generation)
                    assertEquals(before + 1, server.stat("refresh_successes"))
                }
            }
        }
    }
    @Test
    fun `logout with revoke reaches the server's RFC 7009 endpoint`() {
        ReferenceServer("001").use { server ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    vault.loadProfileJson("""{"preset":"rotating-success-envelope","name":"backend","url":"${server.refreshUrl}","revocation_url":"/oauth/revoke"}""")
                    server.loginAndStore(vault, "ada")
                    assertTrue(vault.remove("ada", revoke = true))
                    assertFailsWith<TokenVaultException.NotFound> { vault.sessionInfo("ada") }
                    val deadline = System.currentTimeMillis() + 10_000
                    while (vault.pendingRevocations().pending.isNotEmpty() && System.currentTimeMillis() < deadline) {
                        Thread.sleep(20)
                    }
                    assertEquals(0, vault.pendingRevocations().pending.size)
                    assertEquals(1, server.stat("rfc7009_revocations"))
                    assertEquals(1, server.stat("families_revoked"))
                    assertEquals(0uL, vault.sendRevocations().revoked)
                }
            }
        }
    }
}
