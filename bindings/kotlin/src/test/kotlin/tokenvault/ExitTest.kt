package tokenvault

import java.io.File
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import org.junit.jupiter.api.Test
import uniffi.tokenvault.NewSession
import uniffi.tokenvault.TokenVault
import uniffi.tokenvault.VaultEvent
import uniffi.tokenvault.VaultObserver

/**
 * A JVM program that exits (returns from `main`, then `System.exit`) without closing its vault,
 * while the vault's event thread is inside the program's observer, exits cleanly.
 */
class ExitTest {
    @Test
    fun `exiting mid-event without close is clean`() {
        val java = File(System.getProperty("java.home"), "bin/java").path
        repeat(3) {
            val process = ProcessBuilder(
                java,
                "-cp", System.getProperty("java.class.path"),
                "-Djna.library.path=" + System.getProperty("jna.library.path"),
                "-Dtokenvault.reference.server=" + System.getProperty("tokenvault.reference.server"),
                "tokenvault.ExitTestKt",
            ).redirectErrorStream(true).start()
            val output = process.inputStream.bufferedReader().readText()
            assertTrue(process.waitFor(60, TimeUnit.SECONDS), output)
            assertEquals(0, process.exitValue(), output)
            assertTrue(output.contains("exiting without close"), output)
            assertFalse(output.contains("FATAL") || output.contains("hs_err"), output)
        }
    }
}

/** The program of [ExitTest]. */
fun main() {
    val server = ReferenceServer("001")
    val dir = TempDir()
    val vault = TokenVault.openWithKey(dir.file("v.db"), TEST_KEY)
    vault.setObserver(object : VaultObserver {
        override fun onEvent(event: VaultEvent) {
            Thread.sleep(50)
        }
    })
    server.register(vault)
    server.loginAndStore(vault, "player")
    repeat(3) { vault.forceRefresh("player") }
    server.close()
    println("exiting without close")
    System.out.flush()
    System.exit(0)
}
