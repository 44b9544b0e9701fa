package tokenvault

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import uniffi.tokenvault.AccessToken
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.SessionInfo
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.TokenVaultException

// Suspending forms of the vault calls that may block: a refresh goes to the network, a store
// or a remove waits for a durable SQLite commit. Each runs the blocking call on
// Dispatchers.IO; the native core does the single-flight, so a thousand coroutines asking at
// once still cause one refresh. They throw TokenVaultException like the blocking calls.

/** [TokenVault.accessToken] on [Dispatchers.IO]. */
@Throws(TokenVaultException::class)
suspend fun TokenVault.awaitAccessToken(account: String): AccessToken =
    withContext(Dispatchers.IO) { accessToken(account) }

/** [TokenVault.forceRefresh] on [Dispatchers.IO]. */
@Throws(TokenVaultException::class)
suspend fun TokenVault.awaitForceRefresh(account: String): AccessToken =
    withContext(Dispatchers.IO) { forceRefresh(account) }

/** [TokenVault.reportRejected] on [Dispatchers.IO]: call it when the API answered 401. */
@Throws(TokenVaultException::class)
suspend fun TokenVault.awaitReportRejected(account: String, token: String): AccessToken =
    withContext(Dispatchers.IO) { reportRejected(account, token) }

/** [TokenVault.store] on [Dispatchers.IO]. */
@Throws(TokenVaultException::class)
suspend fun TokenVault.awaitStore(session: NewSession): SessionInfo =
    withContext(Dispatchers.IO) { store(session) }

/** [TokenVault.remove] on [Dispatchers.IO]. */
@Throws(TokenVaultException::class)
suspend fun TokenVault.awaitRemove(account: String): Boolean =
    withContext(Dispatchers.IO) { remove(account) }

/** [CachedToken.get] on [Dispatchers.IO] (it refreshes when the core says the token is due). */
@Throws(TokenVaultException::class)
suspend fun CachedToken.await(): String = withContext(Dispatchers.IO) { get() }
