// The store/read cycle with the installed jar, as a user's program: open a vault in the folder
// given as the first argument with a 32-byte raw key, register a profile, store a session, read
// its access token back, close; open again and read it again. JNA finds the native library inside
// the jar (no jna.library.path, no LD_LIBRARY_PATH). Prints "cycle ok" last and exits 0, or throws.
package example.game

import java.io.File
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.TokenVault

private const val PROFILE =
    """{"preset":"oauth2","name":"backend","url":"https://auth.example.com/oauth/token","client_id":"game"}"""
private const val TOKEN = "smoke-access-token-kotlin"

fun main(args: Array<String>) {
    val path = File(args[0], "tokens.db").path
    val key = ByteArray(32) { i -> (i * 7 + 1).toByte() }
    TokenVault.openWithKey(path, key).use { vault ->
        vault.loadProfileJson(PROFILE)
        vault.store(
            NewSession(
                account = "player-1", profile = "backend", accessToken = TOKEN,
                refreshCredential = "smoke-refresh-token", expiresInSecs = 3600uL,
            ),
        )
        check(vault.accessToken("player-1").token == TOKEN) { "access token: got another token back" }
    } // use {}: close() closes the vault
    TokenVault.openWithKey(path, key).use { vault ->
        vault.loadProfileJson(PROFILE)
        check(vault.accessToken("player-1").token == TOKEN) { "access token: got another token back" }
    } // use {}: close() closes the vault

    val lib = System.getProperty("jna.library.path")
    check(lib == null) { "jna.library.path is set: $lib" }
    println("cycle ok (tokenvault-kotlin on Java ${System.getProperty("java.version")})")
}
