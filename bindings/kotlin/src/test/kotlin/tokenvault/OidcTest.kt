package tokenvault

import java.io.BufferedReader
import java.io.File
import java.net.URI
import java.net.URLEncoder
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.TokenVaultException

/**
 * panva's oidc-provider (tests/oidc/server.mjs; `npm ci --prefix tests/oidc` first), as a child
 * process: it prints `LISTENING <port>` and stops when its stdin closes.
 */
class OidcProvider(alg: String) : AutoCloseable {
    private val process: Process
    val issuer: String
    private val http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    init {
        val dir = File(System.getProperty("tokenvault.oidc.dir") ?: error("tokenvault.oidc.dir is not set"))
        check(File(dir, "node_modules/oidc-provider").isDirectory) {
            "oidc-provider is not installed: run `npm ci --prefix tests/oidc`"
        }
        process = ProcessBuilder(System.getenv("TOKENVAULT_NODE") ?: "node", "server.mjs", "--alg", alg)
            .directory(dir)
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start()
        val line = BufferedReader(process.inputStream.reader()).readLine()
            ?: error("oidc-provider exited before listening")
        require(line.startsWith("LISTENING ")) { "unexpected first line: $line" }
        issuer = "http://127.0.0.1:" + line.removePrefix("LISTENING ").trim()
    }

    fun profileJson(): String =
        """{"preset":"oauth2","name":"op","url":"$issuer/token","client_id":"tokenvault-test","oidc":{"issuer":"$issuer"}}"""

    private fun post(path: String, form: String): Pair<Int, String> {
        val request = HttpRequest.newBuilder(URI.create(issuer + path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .POST(HttpRequest.BodyPublishers.ofString(form))
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        return response.statusCode() to response.body()
    }

    /** The test-only bootstrap grant: (access token, refresh token). */
    fun bootstrap(account: String): Pair<String, String> {
        val (status, body) = post(
            "/token",
            "grant_type=urn%3Atokenvault%3Atest%3Abootstrap&client_id=tokenvault-test&account=" +
                URLEncoder.encode(account, Charsets.UTF_8),
        )
        check(status == 200) { "bootstrap failed: $status" }
        return field(body, "access_token") to field(body, "refresh_token")
    }

    private fun field(json: String, name: String): String =
        Regex("\"$name\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)
            ?: error("no field $name in the response")

    /** The next id_token names [sub] as its subject. */
    fun nextSub(sub: String) {
        check(post("/test/next-sub?sub=" + URLEncoder.encode(sub, Charsets.UTF_8), "").first == 204)
    }

    override fun close() {
        process.outputStream.close()
        if (!process.waitFor(5, java.util.concurrent.TimeUnit.SECONDS)) process.destroyForcibly()
    }
}

/** OpenID Connect id_tokens on the JVM: the validated claims in sessionInfo, and a refusal. */
class OidcTest {
    private fun signedIn(vault: TokenVault, op: OidcProvider) {
        vault.loadProfileJson(op.profileJson())
        val (access, refresh) = op.bootstrap("player-1")
        vault.store(NewSession(account = "player-1", profile = "op", accessToken = access, refreshCredential = refresh, expiresInSecs = 60UL))
    }

    @Test
    fun `a refresh shows the validated id_token claims in sessionInfo`() {
        for (alg in listOf("ES256", "RS256")) {
            OidcProvider(alg).use { op ->
                TempDir().use { dir ->
                    TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                        signedIn(vault, op)
                        assertNull(vault.sessionInfo("player-1").identity)
                        vault.forceRefresh("player-1")
                        val info = vault.sessionInfo("player-1")
                        val claims = assertNotNull(info.identity, alg)
                        assertEquals(op.issuer, claims.iss())
                        assertEquals("player-1", claims.sub())
                        assertEquals("Player player-1", claims.name())
                        assertEquals("player-1@example.test", claims.email())
                        assertEquals(true, claims.emailVerified())
                        assertEquals("https://example.test/avatars/player-1.png", claims.picture())
                        assertEquals("en-GB", claims.locale())
                        assertNull(claims.phoneNumber())
                        // Personal data stays out of toString.
                        val text = info.toString() + claims.toString()
                        assertFalse(text.contains("example.test") || text.contains("Player"), text)
                    }
                }
            }
        }
    }

    @Test
    fun `an id_token for another subject is Protocol and stores nothing`() {
        OidcProvider("ES256").use { op ->
            TempDir().use { dir ->
                TokenVault.openWithKey(dir.file("v.db"), TEST_KEY).use { vault ->
                    signedIn(vault, op)
                    vault.forceRefresh("player-1")
                    val before = vault.sessionInfo("player-1")
                    op.nextSub("someone-else")
                    val e = assertFailsWith<TokenVaultException.Protocol> { vault.forceRefresh("player-1") }
                    assertFalse(e.toString().contains("someone-else"))
                    val after = vault.sessionInfo("player-1")
                    assertEquals(before.generation, after.generation)
                    assertEquals(before.identity, after.identity)
                    assertTrue(after.identity?.sub() == "player-1")
                }
            }
        }
    }
}
