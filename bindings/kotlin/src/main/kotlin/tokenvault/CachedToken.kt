package tokenvault

import com.sun.jna.Native
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.TokenVaultException
import uniffi.tokenvault.TokenWatch

/**
 * The cached read of one account's access token, for hot paths (every outgoing API request).
 *
 * A plain `vault.accessToken(account)` costs tens of microseconds from Kotlin: JNA allocates and
 * reflects over uniffi's call-status structure on every call, and a new `String` is built from
 * ~1 KB of native memory. This keeps the last token string on the Kotlin side and, on each
 * [get], asks the native core only for the *generation* of the valid token, through one plain
 * direct-mapped function with `long`s in and out (`tokenvault_probe_generation`). The string
 * crosses again only when the core hands out a different token (after a refresh, a new sign-in,
 * a forced refresh).
 *
 * Every decision is still the core's: each [get] runs the core's `access_token`, which refreshes
 * when due (so it may block on the network: call it off the main thread, or use [await]). It
 * throws [TokenVaultException] exactly as `accessToken` does. Thread-safe.
 */
class CachedToken(private val watch: TokenWatch) : AutoCloseable {
    /** A cached read of [account]; throws [TokenVaultException.NotFound] without a session. */
    constructor(vault: TokenVault, account: String) : this(vault.watch(account))

    private class Held(val generation: Long, val token: String)

    private val probeId: Long = watch.probeId().toLong()

    @Volatile
    private var held: Held? = null

    /** A valid access token. */
    @Throws(TokenVaultException::class)
    fun get(): String {
        val mine = held
        val generation = Probe.tokenvault_probe_generation(probeId, mine?.generation ?: 0L)
        if (generation < 0) {
            // The typed error of this failure, recorded on this thread by the probe.
            watch.raiseProbeFailure()
            throw TokenVaultException.Internal(-generation.toInt(), "the probe failed without an error")
        }
        if (mine != null && mine.generation == generation) {
            return mine.token
        }
        val fresh = watch.token()
        held = Held(fresh.generation.toLong(), fresh.token)
        return fresh.token
    }

    /** The generation of the token [get] returned last (0 before the first call). */
    val generation: ULong
        get() = (held?.generation ?: 0L).toULong()

    /** Forget the cached string and release the native watch (later [get]s fail). */
    override fun close() {
        held = null
        watch.close()
    }

    override fun toString(): String = "CachedToken(generation $generation)"

    /** The one function called outside uniffi (JNA direct mapping: no per-call allocation). */
    private object Probe {
        init {
            // The library uniffi's generated code loads (same override property).
            Native.register(
                Probe::class.java,
                System.getProperty("uniffi.component.tokenvault.libraryOverride") ?: "tokenvault",
            )
        }

        /** The generation (>= 1) of the valid token, or minus the failure's stable code. */
        external fun tokenvault_probe_generation(probeId: Long, knownGeneration: Long): Long
    }
}
