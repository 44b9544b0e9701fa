// Callbacks from the library into C#: the host's HTTP transport, the event handler and the
// host anchor.
//
// IL2CPP compiles ahead of time and cannot marshal an instance delegate to a function pointer:
// every callback is a static method marked [MonoPInvokeCallback] (the package's own, matched by
// name), and the C# object it
// serves travels as user_data, a GCHandle. The library calls the destroy function exactly once
// when it no longer needs user_data (transport or handler replaced, vault closed or freed),
// which frees the GCHandle. The delegates themselves live in static fields, so the GC never
// moves or collects what the library holds a pointer to (the anchor's struct carries function
// pointers taken once from those same static delegates).
//
// No exception may unwind into the library: every callback catches everything. A transport
// exception becomes a transport failure; an anchor exception becomes a non-zero status; event
// handler and anchor exceptions are reported through TokenVault.UnhandledCallbackException.

using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;

namespace Tokenvault
{
    /// <summary>Marks a static method called from native code, for IL2CPP's ahead-of-time
    /// compiler. IL2CPP recognises the attribute by its name, in any namespace, so the package
    /// defines its own (unconditionally) and needs no engine reference: UnityEngine's
    /// AOT.MonoPInvokeCallbackAttribute is not visible to an assembly without one.</summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type type) { }
    }
}

namespace Tokenvault
{
    /// <summary>An HTTP request the vault needs sent for a refresh. Header values and body are
    /// credentials: never log them.</summary>
    public sealed class RefreshRequest
    {
        public string Method { get; internal set; }
        public string Url { get; internal set; }
        /// <summary>Headers to send, in order (Content-Type included; Host and Content-Length are the HTTP client's).</summary>
        public IList<KeyValuePair<string, string>> Headers { get; internal set; }
        public byte[] Body { get; internal set; }
        /// <summary>Give up (and report a timeout) after this long.</summary>
        public TimeSpan Timeout { get; internal set; }
        /// <summary>A larger response body is <see cref="TransportFailure.TooLarge"/>.</summary>
        public long MaxResponseBytes { get; internal set; }
        /// <summary>Whether plain http:// is allowed (a loopback endpoint, or allow_http). When false,
        /// refuse an http:// URL with <see cref="TransportFailure.InsecureScheme"/> before connecting.</summary>
        public bool AllowsPlainHttp { get; internal set; }
        /// <summary>Certificate pins, each "sha256/&lt;base64 of the SHA-256 of the DER SubjectPublicKeyInfo&gt;".
        /// When not empty, besides normal validation, some certificate of the server's chain must match one
        /// (e.g. in HttpClientHandler.ServerCertificateCustomValidationCallback, or UnityWebRequest's
        /// certificateHandler), or send nothing and throw <see cref="TransportFailure.CertificatePin"/>.</summary>
        public IList<string> Pins { get; internal set; }

        /// <summary>The first header of that name (case-insensitive), or null.</summary>
        public string Header(string name)
        {
            foreach (var h in Headers)
                if (string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)) return h.Value;
            return null;
        }

        internal static unsafe RefreshRequest Read(IntPtr request)
        {
            IntPtr method, url, body, name, value;
            UIntPtr count, bodyLen, max;
            ulong timeoutMs;
            Errors.Check(Native.tv_http_request_method(request, out method));
            Errors.Check(Native.tv_http_request_url(request, out url));
            Errors.Check(Native.tv_http_request_header_count(request, out count));
            var headers = new List<KeyValuePair<string, string>>((int)count.ToUInt64());
            for (ulong i = 0; i < count.ToUInt64(); i++)
            {
                Errors.Check(Native.tv_http_request_header(request, (UIntPtr)i, out name, out value));
                headers.Add(new KeyValuePair<string, string>(Utf8.FromNative(name), Utf8.FromNative(value)));
            }
            Errors.Check(Native.tv_http_request_body(request, out body, out bodyLen));
            Errors.Check(Native.tv_http_request_timeout_ms(request, out timeoutMs));
            Errors.Check(Native.tv_http_request_max_response_bytes(request, out max));
            byte allowsPlain;
            UIntPtr pinCount;
            Errors.Check(Native.tv_http_request_allows_plain_http(request, out allowsPlain));
            Errors.Check(Native.tv_http_request_pin_count(request, out pinCount));
            var pins = new List<string>((int)pinCount.ToUInt64());
            for (ulong i = 0; i < pinCount.ToUInt64(); i++)
            {
                IntPtr pin;
                Errors.Check(Native.tv_http_request_pin(request, (UIntPtr)i, out pin));
                pins.Add(Utf8.FromNative(pin));
            }
            var bytes = new byte[(int)bodyLen.ToUInt64()];
            if (bytes.Length > 0) Marshal.Copy(body, bytes, 0, bytes.Length);
            return new RefreshRequest
            {
                Method = Utf8.FromNative(method),
                Url = Utf8.FromNative(url),
                Headers = headers.AsReadOnly(),
                Body = bytes,
                Timeout = TimeSpan.FromMilliseconds(timeoutMs),
                MaxResponseBytes = (long)Math.Min(max.ToUInt64(), long.MaxValue),
                AllowsPlainHttp = allowsPlain != 0,
                Pins = pins.AsReadOnly(),
            };
        }
    }

    /// <summary>The server's answer, whatever its status (a 4xx or 5xx is a response, not a failure).</summary>
    public sealed class RefreshResponse
    {
        public int Status;
        public IList<KeyValuePair<string, string>> Headers = new List<KeyValuePair<string, string>>();
        public byte[] Body = new byte[0];

        public RefreshResponse() { }
        public RefreshResponse(int status, byte[] body) { Status = status; Body = body ?? new byte[0]; }
    }

    /// <summary>Why no response could be obtained (tv_transport_result).</summary>
    public enum TransportFailure
    {
        /// <summary>No answer in time (the request may have reached the server).</summary>
        Timeout = 1,
        /// <summary>Could not connect: DNS, refused, unreachable, TLS handshake.</summary>
        Connect = 2,
        /// <summary>The connection broke mid-exchange.</summary>
        Io = 3,
        /// <summary>The response was larger than <see cref="RefreshRequest.MaxResponseBytes"/>.</summary>
        TooLarge = 4,
        Other = 5,
        /// <summary>The server's chain matched none of <see cref="RefreshRequest.Pins"/>; nothing was sent.</summary>
        CertificatePin = 6,
        /// <summary>Plain http:// while <see cref="RefreshRequest.AllowsPlainHttp"/> is false; nothing was sent.</summary>
        InsecureScheme = 7,
    }

    /// <summary>Thrown by an <see cref="IRefreshTransport"/> that got no response. Any other
    /// exception counts as <see cref="TransportFailure.Other"/>.</summary>
    public sealed class TransportException : Exception
    {
        public TransportFailure Failure { get; private set; }
        public TransportException(TransportFailure failure, string message, Exception inner = null)
            : base(message, inner) { Failure = failure; }
    }

    /// <summary>The game's own HTTP client for blocking refreshes. <see cref="Send"/> runs on the
    /// thread that asked for the token (never Unity's main thread if you use the Async methods),
    /// possibly on several threads at once. It must not follow redirects (a 307/308 would resend
    /// the refresh credential elsewhere): HttpClientHandler.AllowAutoRedirect = false, or
    /// UnityWebRequest.redirectLimit = 0; return the 3xx as the response. It must refuse http://
    /// unless RefreshRequest.AllowsPlainHttp, and enforce RefreshRequest.Pins. It must not wait for a
    /// refresh of the account it is refreshing, nor dispose the vault.</summary>
    public interface IRefreshTransport
    {
        RefreshResponse Send(RefreshRequest request);
    }

    /// <summary>What happened (tv_event_kind).</summary>
    public enum VaultEventKind
    {
        TokenRefreshed = 1,
        /// <summary>The user must sign in again (<see cref="VaultEvent.Reason"/> says why).</summary>
        SessionExpired = 2,
        SessionRemoved = 3,
    }

    public sealed class VaultEvent
    {
        public VaultEventKind Kind { get; internal set; }
        public string Account { get; internal set; }
        /// <summary>TokenRefreshed: the new generation.</summary>
        public ulong Generation { get; internal set; }
        /// <summary>TokenRefreshed: time left on the new access token.</summary>
        public TimeSpan AccessRemaining { get; internal set; }
        /// <summary>TokenRefreshed: forecast of the time left before the user must sign in again, if known.</summary>
        public TimeSpan? SessionRemaining { get; internal set; }
        /// <summary>SessionExpired: why (no secrets).</summary>
        public string Reason { get; internal set; }
    }

    /// <summary>A counter the game keeps outside the vault file, so that an old copy of the whole
    /// file (a restored backup, a copied save folder) is refused at open with
    /// <see cref="CorruptException"/> instead of silently bringing back old sessions. Keep it
    /// where restoring the app's data does not restore it too: the iOS Keychain, Keystore-backed
    /// storage on Android, DPAPI-protected data outside the save folder, a server.
    /// <c>PlayerPrefs</c> is NOT suitable (it is backed up and restored with the app).
    ///
    /// <para>Both methods may be called from any thread. <see cref="Store"/> runs after every
    /// write, on the writing thread, while the vault's store is locked: keep it quick, and never
    /// call the vault from it. An exception from either method never reaches the library: it is
    /// reported through <see cref="TokenVault.UnhandledCallbackException"/>; from
    /// <see cref="TryLoad"/> it fails the open with <see cref="StorageUnavailableException"/>,
    /// from <see cref="Store"/> the write still succeeds and the counter is stored again after
    /// the next write.</para></summary>
    public interface IVaultAnchor
    {
        /// <summary>The counter last stored, or false if none was ever stored (a new install).
        /// Throw if it exists but cannot be read right now (e.g. the Keychain is locked).</summary>
        bool TryLoad(out ulong counter);

        /// <summary>Keep <paramref name="counter"/> (it only grows); replaces the previous value.</summary>
        void Store(ulong counter);
    }

    internal static unsafe class Callbacks
    {
        // Static delegates: the library keeps their function pointers for the vault's lifetime.
        internal static readonly Native.TransportFn TransportThunk = Transport;
        internal static readonly Native.EventFn EventThunk = Event;
        internal static readonly Native.DestroyFn DestroyThunk = Destroy;
        internal static readonly Native.AnchorLoadFn AnchorLoadThunk = AnchorLoad;
        internal static readonly Native.AnchorStoreFn AnchorStoreThunk = AnchorStore;
        internal static readonly Native.LogFn LogThunk = Log;

        // tv_anchor holds raw function pointers: taken once, from the static delegates above
        // (declared before these, so initialised first), valid for the process's lifetime.
        private static readonly IntPtr AnchorLoadPtr = Marshal.GetFunctionPointerForDelegate(AnchorLoadThunk);
        private static readonly IntPtr AnchorStorePtr = Marshal.GetFunctionPointerForDelegate(AnchorStoreThunk);
        private static readonly IntPtr DestroyPtr = Marshal.GetFunctionPointerForDelegate(DestroyThunk);

        /// <summary>The tv_anchor for <paramref name="userData"/> (a <see cref="Hold"/> of an
        /// <see cref="IVaultAnchor"/>).</summary>
        internal static NativeAnchor Anchor(IntPtr userData)
        {
            return new NativeAnchor
            {
                StructSize = (UIntPtr)sizeof(NativeAnchor),
                Load = AnchorLoadPtr,
                Store = AnchorStorePtr,
                UserData = userData,
                Destroy = DestroyPtr,
            };
        }

        private static long liveStates;
        /// <summary>GCHandles held by the library right now (tests: freed by the destroy callback).</summary>
        internal static long LiveStates { get { return Interlocked.Read(ref liveStates); } }

        [ThreadStatic] internal static bool InCallback;

        internal static IntPtr Hold(object state)
        {
            Interlocked.Increment(ref liveStates);
            return GCHandle.ToIntPtr(GCHandle.Alloc(state));
        }

        /// <summary>Undo <see cref="Hold"/> when the library refused to take the state.</summary>
        internal static void Release(IntPtr userData)
        {
            Destroy(userData);
        }

        [MonoPInvokeCallback(typeof(Native.DestroyFn))]
        private static void Destroy(IntPtr userData)
        {
            try
            {
                if (userData == IntPtr.Zero) return;
                GCHandle.FromIntPtr(userData).Free();
                Interlocked.Decrement(ref liveStates);
            }
            catch (Exception e) { TokenVault.ReportCallbackException(e); }
        }

        [MonoPInvokeCallback(typeof(Native.TransportFn))]
        private static int Transport(IntPtr userData, IntPtr request, IntPtr response)
        {
            bool outer = InCallback;
            InCallback = true;
            RefreshRequest managed = null;
            try
            {
                var transport = (IRefreshTransport)GCHandle.FromIntPtr(userData).Target;
                managed = RefreshRequest.Read(request);
                RefreshResponse answer = transport.Send(managed);
                if (answer == null) return (int)TransportFailure.Other;
                if (answer.Status < 100 || answer.Status > 999) return (int)TransportFailure.Other;
                if (Native.tv_http_response_set_status(response, (ushort)answer.Status) != 0) return (int)TransportFailure.Other;
                if (answer.Headers != null)
                {
                    foreach (var h in answer.Headers)
                    {
                        // Header text from the network: a lone surrogate cannot be encoded; skip that header.
                        byte[] n, v;
                        try { n = Utf8.Encode(h.Key, "header name"); v = Utf8.Encode(h.Value ?? "", "header value"); }
                        catch (InvalidInputException) { continue; }
                        if (n == null) continue;
                        fixed (byte* pn = n)
                        fixed (byte* pv = v)
                            Native.tv_http_response_add_header(response, pn, pv);
                    }
                }
                byte[] body = answer.Body ?? new byte[0];
                if (body.Length > 0)
                {
                    fixed (byte* pb = body)
                        if (Native.tv_http_response_append_body(response, pb, (UIntPtr)body.Length) != 0)
                            return (int)TransportFailure.TooLarge;
                }
                return 0;
            }
            catch (TransportException e)
            {
                return (int)e.Failure;
            }
            catch (Exception e)
            {
                TokenVault.ReportCallbackException(e);
                return (int)TransportFailure.Other;
            }
            finally
            {
                if (managed != null) Utf8.Wipe(managed.Body);
                InCallback = outer;
            }
        }

        [MonoPInvokeCallback(typeof(Native.AnchorLoadFn))]
        private static int AnchorLoad(IntPtr userData, ulong* outCounter, int* outPresent)
        {
            bool outer = InCallback;
            InCallback = true;
            try
            {
                *outPresent = 0;
                *outCounter = 0;
                var anchor = (IVaultAnchor)GCHandle.FromIntPtr(userData).Target;
                ulong counter;
                if (anchor.TryLoad(out counter))
                {
                    *outCounter = counter;
                    *outPresent = 1;
                }
                return (int)StatusCode.Ok;
            }
            catch (Exception e)
            {
                // Any non-zero status: the library fails the open with StorageUnavailable.
                TokenVault.ReportCallbackException(e);
                return (int)StatusCode.StorageUnavailable;
            }
            finally
            {
                InCallback = outer;
            }
        }

        [MonoPInvokeCallback(typeof(Native.AnchorStoreFn))]
        private static int AnchorStore(IntPtr userData, ulong counter)
        {
            bool outer = InCallback;
            InCallback = true;
            try
            {
                var anchor = (IVaultAnchor)GCHandle.FromIntPtr(userData).Target;
                anchor.Store(counter);
                return (int)StatusCode.Ok;
            }
            catch (Exception e)
            {
                // The library logs it and stores the counter again after the next write.
                TokenVault.ReportCallbackException(e);
                return (int)StatusCode.StorageUnavailable;
            }
            finally
            {
                InCallback = outer;
            }
        }

        [MonoPInvokeCallback(typeof(Native.LogFn))]
        private static void Log(IntPtr userData, int level, IntPtr target, IntPtr message)
        {
            try
            {
                var handler = (Action<LogLevel, string, string>)GCHandle.FromIntPtr(userData).Target;
                handler((LogLevel)level, Utf8.FromNative(target), Utf8.FromNative(message));
            }
            catch (Exception e)
            {
                TokenVault.ReportCallbackException(e);
            }
        }

        [MonoPInvokeCallback(typeof(Native.EventFn))]
        private static void Event(IntPtr userData, NativeEvent* ev)
        {
            bool outer = InCallback;
            InCallback = true;
            try
            {
                var handler = (Action<VaultEvent>)GCHandle.FromIntPtr(userData).Target;
                var e = new VaultEvent
                {
                    Kind = (VaultEventKind)ev->Kind,
                    Account = Utf8.FromNative(ev->Account),
                    Generation = ev->Generation,
                    AccessRemaining = TimeSpan.FromMilliseconds(ev->AccessRemainingMs),
                    SessionRemaining = ev->HasSessionRemaining != 0 ? TimeSpan.FromMilliseconds(ev->SessionRemainingMs) : (TimeSpan?)null,
                    Reason = Utf8.FromNative(ev->Reason),
                };
                handler(e);
            }
            catch (Exception e)
            {
                TokenVault.ReportCallbackException(e);
            }
            finally
            {
                InCallback = outer;
            }
        }
    }
}
