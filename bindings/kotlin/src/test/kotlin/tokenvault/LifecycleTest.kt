package tokenvault

import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotEquals
import kotlin.test.assertSame
import kotlin.test.assertTrue
import uniffi.tokenvault.AccessToken
import uniffi.tokenvault.AnchorException
import uniffi.tokenvault.StateAnchor
import uniffi.tokenvault.HttpHeader
import uniffi.tokenvault.HttpResponse
import uniffi.tokenvault.PendingRevocation
import uniffi.tokenvault.RevocationQueue
import uniffi.tokenvault.VaultEvent
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.Preset
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.TokenVaultException
import uniffi.tokenvault.tokenvaultVersion

/** Object lifetime, keys, UTF-8, redaction and the cached read. */
class LifecycleTest {

    private fun openWithSession(path: String, account: String = "player"): TokenVault {
        val vault = TokenVault.openWithKey(path, TEST_KEY)
        vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", """{"client_id":"game"}""")
        vault.store(
            NewSession(
                account = account,
                profile = "backend",
                accessToken = "a".repeat(900),
                refreshCredential = "r",
                expiresInSecs = 3600UL,
            ),
        )
        return vault
    }

    @Test
    fun `use after close`() {
        TempDir().use { dir ->
            // closeVault(): the object stays, every call fails with Closed; closing twice is fine.
            val vault = openWithSession(dir.file("a.db"))
            val watch = vault.watch("player")
            vault.closeVault()
            vault.closeVault()
            assertTrue(vault.isClosed())
            assertFailsWith<TokenVaultException.Closed> { vault.accessToken("player") }
            assertFailsWith<TokenVaultException.Closed> { vault.store(NewSession("x", "backend", "t")) }
            assertFailsWith<TokenVaultException.Closed> { watch.currentGeneration() }
            vault.close()
            watch.close()

            // close() (AutoCloseable, `use`): frees the object and closes the vault, even while a
            // watch on it is alive; the Kotlin object then refuses calls.
            val second = openWithSession(dir.file("b.db"))
            val orphan = second.watch("player")
            second.use { }
            assertFailsWith<IllegalStateException> { second.accessToken("player") }
            assertFailsWith<TokenVaultException.Closed> { orphan.token() }
            orphan.close()
            assertFailsWith<IllegalStateException> { orphan.token() }

            // The file is closed for real: it opens again.
            TokenVault.openWithKey(dir.file("b.db"), TEST_KEY).use { assertEquals(listOf("player"), it.listAccounts()) }
        }
    }

    @Test
    fun `passphrase, rekey and reopen`() {
        TempDir().use { dir ->
            val path = dir.file("v.db")
            TokenVault.openWithPassphrase(path, "correct horse battery staple").use { vault ->
                vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:9/token")
                vault.store(NewSession("player", "backend", "tok"))
                vault.rekeyWithKey(TEST_KEY)
            }
            // Until the first open with the new key, the replaced passphrase still opens it.
            TokenVault.openWithPassphrase(path, "correct horse battery staple").close()
            TokenVault.openWithKey(path, TEST_KEY).close()
            assertFailsWith<TokenVaultException.WrongKey> { TokenVault.openWithPassphrase(path, "correct horse battery staple") }
            TokenVault.openWithKey(path, TEST_KEY).use { vault ->
                assertEquals(listOf("player"), vault.listAccounts())
                vault.rekeyWithPassphrase("new passphrase")
            }
            TokenVault.openWithPassphrase(path, "new passphrase").use { assertEquals(1UL, it.sessionCount()) }
        }
    }

    /** The app's anchor: a counter in a file of its own (the Keystore on Android). */
    private class FileAnchor(val file: java.io.File) : StateAnchor {
        var failing = false
        override fun load(): ULong? {
            if (failing) throw AnchorException.Failed("keystore locked")
            return if (file.exists()) file.readText().toULong() else null
        }
        override fun store(counter: ULong) = file.writeText(counter.toString())
    }

    @Test
    fun `an anchor refuses a restored old copy of the whole file`() {
        TempDir().use { dir ->
            val path = dir.file("v.db")
            val anchor = FileAnchor(java.io.File(dir.file("anchor")))
            fun open() = TokenVault.openWithKeyAnchored(path, TEST_KEY, anchor)
            open().use { vault ->
                vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", """{"client_id":"game"}""")
                vault.store(NewSession(account = "player", profile = "backend", accessToken = "first", expiresInSecs = 3600UL))
            }
            val backup = java.io.File(path).readBytes()
            open().use { vault ->
                vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", """{"client_id":"game"}""")
                vault.store(NewSession(account = "player", profile = "backend", accessToken = "second", expiresInSecs = 3600UL))
            }
            java.io.File(path).writeBytes(backup)
            assertFailsWith<TokenVaultException.Corrupt> { open() }
            assertTrue(java.io.File(path).readBytes().contentEquals(backup), "refused, nothing written")
            anchor.failing = true
            assertFailsWith<TokenVaultException.StorageUnavailable> { open() }
            // Without an anchor the old copy is consistent and opens: the documented limit.
            TokenVault.openWithKey(path, TEST_KEY).use { vault ->
                vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:9/token", """{"client_id":"game"}""")
                assertEquals("first", vault.accessToken("player").token)
            }
        }
    }

    @Test
    fun `a session is sent to another endpoint only after moveSession`() {
        TempDir().use { dir ->
            openWithSession(dir.file("v.db")).use { vault ->
                vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:10/token", """{"client_id":"game"}""")
                assertFailsWith<TokenVaultException.InvalidInput> { vault.forceRefresh("player") }
                vault.moveSession("player", "backend")
                // Now the request goes out (and fails: nothing listens on port 10).
                assertFailsWith<TokenVaultException.Transient> { vault.forceRefresh("player") }
            }
        }
    }

    @Test
    fun `UTF-8 round trip`() {
        TempDir().use { dir ->
            TokenVault.openWithKey(dir.file("ü-目录-v.db"), TEST_KEY).use { vault ->
                vault.registerPreset(Preset.OAUTH2, "backend", "http://127.0.0.1:9/token")
                val account = "Spieler-Ünïcødé-玩家-🎮"
                vault.store(
                    NewSession(
                        account = account,
                        profile = "backend",
                        accessToken = "tok-1",
                        hints = mapOf("displayName" to "Zoë 🦊", "ñ" to "√"),
                    ),
                )
                assertEquals(listOf(account), vault.listAccounts())
                val info = vault.sessionInfo(account)
                assertEquals(account, info.account)
                assertEquals("Zoë 🦊", info.hints["displayName"])
                assertEquals("√", info.hints["ñ"])
                assertEquals("tok-1", vault.accessToken(account).token)
            }
        }
    }

    @Test
    fun `a profile loaded from JSON`() {
        TempDir().use { dir ->
            TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                val name = vault.loadProfileJson(
                    """{"preset":"keycloak","name":"sso","url":"https://sso.example.com/token","client_id":"game"}""",
                )
                assertEquals("sso", name)
                vault.store(NewSession("player", "sso", "tok", refreshCredential = "r", offline = true))
                val info = vault.sessionInfo("player")
                assertEquals("sso", info.profile)
                assertTrue(info.offline)
                assertEquals(null, info.sessionRemainingMs)
            }
        }
    }

    @Test
    fun `records print no secrets`() {
        val token = AccessToken("sekrit-token", 3UL)
        assertFalse(token.toString().contains("sekrit"), token.toString())
        assertTrue(token.toString().contains("generation 3"))
        assertFalse(HttpHeader("Authorization", "Bearer sekrit").toString().contains("sekrit"))
        val session = NewSession("player-sekrit", "backend", "sekrit", refreshCredential = "sekrit")
        assertFalse(session.toString().contains("sekrit"), session.toString())
        val others = listOf(
            HttpResponse(200u, listOf(HttpHeader("Set-Cookie", "sekrit")), "sekrit".toByteArray()),
            VaultEvent.SessionRemoved("player-sekrit"),
            PendingRevocation("player-sekrit", "p", 1, 0u),
            RevocationQueue(listOf(PendingRevocation("player-sekrit", "p", 1, 0u)), 0uL),
        )
        for (r in others) {
            assertFalse(r.toString().contains("sekrit"), r.toString())
            assertFalse("$r".contains("sekrit"), "$r")
        }
        assertTrue(tokenvaultVersion().isNotEmpty())
    }

    @Test
    fun `the cached read crosses for the string only when the token changed`() {
        TempDir().use { dir ->
            openWithSession(dir.file("v.db")).use { vault ->
                CachedToken(vault, "player").use { cached ->
                    val first = cached.get()
                    assertEquals("a".repeat(900), first)
                    // Same generation: the very same String instance, no new string built.
                    assertSame(first, cached.get())
                    val generation = cached.generation
                    // A new sign-in changes the generation: the new string is fetched once.
                    vault.store(NewSession("player", "backend", "b".repeat(900), expiresInSecs = 3600UL))
                    val second = cached.get()
                    assertEquals("b".repeat(900), second)
                    assertNotEquals(generation, cached.generation)
                    assertSame(second, cached.get())
                    // Logout: the cached string is not served any more.
                    vault.remove("player")
                    assertFailsWith<TokenVaultException.NotFound> { cached.get() }
                }
                assertFailsWith<TokenVaultException.NotFound> { CachedToken(vault, "nobody") }
            }
        }
    }
}
