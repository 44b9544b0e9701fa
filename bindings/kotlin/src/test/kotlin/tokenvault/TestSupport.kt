package tokenvault

import java.io.BufferedReader
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.nio.file.Path
import java.time.Duration
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.Preset
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.VaultEvent
import uniffi.tokenvault.VaultObserver

/** The test key (in an app: 32 bytes from the Android Keystore, see README.md). */
val TEST_KEY = ByteArray(32) { (it * 7 + 1).toByte() }

/** A directory removed after the test; vault files go in it. */
class TempDir : AutoCloseable {
    val path: Path = Files.createTempDirectory("tokenvault-kt")
    fun file(name: String): String = path.resolve(name).toString()
    override fun close() {
        path.toFile().deleteRecursively()
    }
}

/**
 * The reference server for one seed dialect (tests/testkit), started as a child process. It
 * prints `LISTENING <port>` and stops when its stdin closes.
 */
class ReferenceServer(val dialect: String, accessTtlMs: Long = 60_000) : AutoCloseable {
    private val process: Process
    val port: Int
    private val http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    init {
        val exe = System.getProperty("tokenvault.reference.server")
            ?: error("system property tokenvault.reference.server is not set (run ./run-tests.sh)")
        process = ProcessBuilder(exe, "--dialect", dialect, "--access-ttl-ms", accessTtlMs.toString())
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start()
        val line = BufferedReader(process.inputStream.reader()).readLine()
            ?: error("the reference server exited before listening")
        require(line.startsWith("LISTENING ")) { "unexpected first line: $line" }
        port = line.removePrefix("LISTENING ").trim().toInt()
    }

    val base get() = "http://127.0.0.1:$port"

    val refreshUrl: String
        get() = base + when (dialect) {
            "000" -> "/v2/client/auth/refresh-token"
            "001" -> "/v2/Auth/RefreshToken"
            "002" -> "/User/RefreshToken"
            else -> error("unknown dialect $dialect")
        }

    val preset: Preset
        get() = when (dialect) {
            "000" -> Preset.ENTITY_TOKEN_ENVELOPE
            "001" -> Preset.ROTATING_SUCCESS_ENVELOPE
            else -> Preset.ROTATING_BEARER_VERSIONED
        }

    /** Register this server's dialect in [vault] under [name]. */
    fun register(vault: TokenVault, name: String = "backend") {
        vault.registerPreset(preset, name, refreshUrl, """{"api_key":"test-api-key"}""")
    }

    private fun post(path: String, json: String): Pair<Int, String> {
        val request = HttpRequest.newBuilder(URI.create(base + path))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(json))
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        return response.statusCode() to response.body()
    }

    /** Sign [user] in: (access token, refresh credential). */
    fun login(user: String): Pair<String, String> {
        val (status, body) = post("/test/login", """{"user":${quote(user)}}""")
        check(status == 200) { "login failed: $status" }
        return field(body, "accessToken") to field(body, "refreshCredential")
    }

    /** Sign [user] in and store the session under [account] with profile [profile]. */
    fun loginAndStore(vault: TokenVault, account: String, profile: String = "backend", expiresInSecs: ULong? = null) {
        val (access, refresh) = login(account)
        vault.store(
            NewSession(
                account = account,
                profile = profile,
                accessToken = access,
                refreshCredential = refresh,
                expiresInSecs = expiresInSecs,
            ),
        )
    }

    /** A counter of `GET /test/stats` (field names as in Rust). */
    fun stat(name: String): Long {
        val request = HttpRequest.newBuilder(URI.create("$base/test/stats")).GET().build()
        val body = http.send(request, HttpResponse.BodyHandlers.ofString()).body()
        return Regex("\"$name\"\\s*:\\s*(\\d+)").find(body)?.groupValues?.get(1)?.toLong()
            ?: error("no stat $name in $body")
    }

    /** Queue a fault for the next refresh, e.g. `{"fault":"status","status":503}`. */
    fun fault(json: String) {
        check(post("/test/fault", json).first == 200)
    }

    /** Server-side logout: revoke the family of [token]. */
    fun revoke(token: String): Boolean = post("/test/revoke", """{"token":${quote(token)}}""").second.contains("true")

    /** The status `GET /protected` answers for [accessToken]. */
    fun protectedStatus(accessToken: String): Int {
        val request = HttpRequest.newBuilder(URI.create("$base/protected"))
            .header("Authorization", "Bearer $accessToken")
            .GET()
            .build()
        return http.send(request, HttpResponse.BodyHandlers.discarding()).statusCode()
    }

    override fun close() {
        process.outputStream.close()
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroyForcibly()
        }
    }

    private companion object {
        fun quote(s: String) = "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""
        fun field(json: String, name: String): String =
            Regex("\"$name\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)
                ?: error("no field $name in the response")
    }
}

/** Collects events from the vault's event thread. */
class EventLog : VaultObserver {
    val events = LinkedBlockingQueue<VaultEvent>()
    override fun onEvent(event: VaultEvent) {
        events.add(event)
    }

    /** Wait up to 5 s for an event matching [predicate]. */
    fun await(predicate: (VaultEvent) -> Boolean): VaultEvent {
        val deadline = System.nanoTime() + 5_000_000_000L
        while (System.nanoTime() < deadline) {
            val e = events.poll(50, TimeUnit.MILLISECONDS) ?: continue
            if (predicate(e)) return e
        }
        error("no matching event within 5 s")
    }
}
