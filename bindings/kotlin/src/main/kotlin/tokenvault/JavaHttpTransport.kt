package tokenvault

import java.io.IOException
import java.io.InputStream
import java.net.ConnectException
import java.net.URI
import java.net.UnknownHostException
import java.net.http.HttpClient
import java.net.http.HttpConnectTimeoutException
import java.net.http.HttpTimeoutException
import java.time.Duration
import uniffi.tokenvault.HttpHeader
import uniffi.tokenvault.HttpRequest
import uniffi.tokenvault.HttpResponse
import uniffi.tokenvault.HttpTransport
import uniffi.tokenvault.TransportException
import java.net.http.HttpRequest as JavaRequest
import java.net.http.HttpResponse as JavaResponse

/**
 * A refresh transport on the JDK's `java.net.http.HttpClient` (Java 11+; on Android use OkHttp,
 * see README.md). Install it with `vault.setTransport(JavaHttpTransport())` to send refreshes
 * through the app's own HTTP stack (its proxy, its TLS settings) instead of the built-in client.
 *
 * Redirects are never followed (a 3xx on a token endpoint is a captive portal, and following it
 * would send a refresh token elsewhere); the request's timeout and response-size cap are honoured;
 * failures are classified for the core (connect failures never reached the server, a broken
 * exchange may have). Exception texts are not passed on: they may quote the URL's query.
 *
 * Plain `http://` is refused unless the request allows it (`allowPlainHttp`: a loopback endpoint,
 * or a profile with `allow_http`). Certificate pins are not checked by this transport: a pinned
 * request is refused ([TransportException.CertificatePin]) rather than sent unpinned; use the
 * built-in transport (no `setTransport`) for pinned profiles.
 */
class JavaHttpTransport(
    private val client: HttpClient = HttpClient.newBuilder()
        .followRedirects(HttpClient.Redirect.NEVER)
        .connectTimeout(Duration.ofSeconds(10))
        .build(),
) : HttpTransport {

    override fun send(request: HttpRequest): HttpResponse {
        if (request.url.regionMatches(0, "http://", 0, 7, ignoreCase = true) && !request.allowPlainHttp) {
            throw TransportException.InsecureScheme("plain http refused for this endpoint")
        }
        if (request.pins.isNotEmpty()) {
            throw TransportException.CertificatePin("this transport cannot check certificate pins")
        }
        val builder = try {
            JavaRequest.newBuilder(URI.create(request.url))
                .timeout(Duration.ofMillis(request.timeoutMs.toLong().coerceAtLeast(1)))
                .method(request.method, JavaRequest.BodyPublishers.ofByteArray(request.body))
                .apply { request.headers.forEach { header(it.name, it.value) } }
        } catch (e: IllegalArgumentException) {
            throw TransportException.Other("the request cannot be built by java.net.http")
        }
        val response = try {
            client.send(builder.build(), JavaResponse.BodyHandlers.ofInputStream())
        } catch (e: HttpConnectTimeoutException) {
            throw TransportException.Connect("connect timed out")
        } catch (e: HttpTimeoutException) {
            throw TransportException.Timeout("timed out after ${request.timeoutMs} ms")
        } catch (e: ConnectException) {
            throw TransportException.Connect("connection failed")
        } catch (e: UnknownHostException) {
            throw TransportException.Connect("host not found")
        } catch (e: IOException) {
            throw TransportException.Io("i/o error (${e.javaClass.simpleName})")
        } catch (e: InterruptedException) {
            Thread.currentThread().interrupt()
            throw TransportException.Other("interrupted")
        }
        val cap = request.maxResponseBytes.toLong()
        val body = try {
            response.body().use { readAtMost(it, cap) }
        } catch (e: IOException) {
            throw TransportException.Io("the response body broke off")
        } ?: throw TransportException.TooLarge("response body over $cap bytes")
        val headers = response.headers().map().flatMap { (name, values) ->
            values.map { HttpHeader(name, it) }
        }
        return HttpResponse(response.statusCode().toUShort(), headers, body)
    }

    /** The stream's bytes, or null when there are more than [cap]. */
    private fun readAtMost(input: InputStream, cap: Long): ByteArray? {
        val limit = cap.coerceAtMost(Int.MAX_VALUE.toLong() - 8).toInt()
        val bytes = input.readNBytes(limit + 1)
        return if (bytes.size > limit) null else bytes
    }
}
