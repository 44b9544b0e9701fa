// The C ABI as P/Invoke declarations (bindings/c/include/tokenvault.h), the blittable structs it
// exchanges, and one SafeHandle per native handle. Nothing here is public: TokenVault.cs is the
// API. Strings cross as NUL-terminated UTF-8 (byte*) encoded and decoded by hand (Utf8.cs);
// buffers the library allocates are released with tv_buf_free, never by the .NET marshaller.
//
// C# 7.2 (mcs -langversion:7.2, Unity 2018.3+). Unsafe code: the .asmdef allows it.

using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Tokenvault
{
    /// <summary>Native entry points. Every function returns a <see cref="StatusCode"/> as int.</summary>
    internal static unsafe class Native
    {
#if UNITY_IOS && !UNITY_EDITOR
        // iOS links the static library into the app: symbols are looked up in the executable.
        internal const string Library = "__Internal";
#else
        // libtokenvault.so (Linux, Android), tokenvault.dll (Windows), libtokenvault.dylib (macOS).
        internal const string Library = "tokenvault";
#endif
        private const CallingConvention Cdecl = CallingConvention.Cdecl;

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int TransportFn(IntPtr userData, IntPtr request, IntPtr response);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void EventFn(IntPtr userData, NativeEvent* ev);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void DestroyFn(IntPtr userData);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int AnchorLoadFn(IntPtr userData, ulong* outCounter, int* outPresent);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int AnchorStoreFn(IntPtr userData, ulong counter);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void LogFn(IntPtr userData, int level, IntPtr target, IntPtr message);

        [DllImport(Library, CallingConvention = Cdecl)] internal static extern IntPtr tv_version();
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern IntPtr tv_status_name(int status);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_last_error_message(byte* buf, UIntPtr bufLen, out UIntPtr outLen);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern void tv_buf_free(ref NativeBuf buf);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_test_panic();

        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_open_with_key(byte* path, byte* key, UIntPtr keyLen, out VaultHandle outVault);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_open_with_passphrase(byte* path, byte* passphrase, out VaultHandle outVault);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_open_with_key_anchored(byte* path, byte* key, UIntPtr keyLen, NativeAnchor* anchor, out VaultHandle outVault);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_open_with_passphrase_anchored(byte* path, byte* passphrase, NativeAnchor* anchor, out VaultHandle outVault);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_close(VaultHandle vault);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern void tv_vault_free(IntPtr vault);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_load_profile_json(VaultHandle vault, byte* json);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_store(VaultHandle vault, NativeSessionParams* p, NativeSessionInfo* outInfo);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_store_response(VaultHandle vault, byte* account, byte* profile, byte* body, UIntPtr bodyLen, byte* dateHeader, byte* refreshCredential, NativeSessionInfo* outInfo);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_access_token_copy(VaultHandle vault, byte* account, ulong minTtlMs, byte* buf, UIntPtr bufLen, out UIntPtr outLen, out ulong outGeneration);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_access_token(VaultHandle vault, byte* account, ulong minTtlMs, out NativeBuf outToken, out ulong outGeneration);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_token_if_changed(VaultHandle vault, byte* account, ulong minTtlMs, ulong knownGeneration, out NativeBuf outToken, out ulong outGeneration, out byte outChanged);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_force_refresh(VaultHandle vault, byte* account, out NativeBuf outToken, out ulong outGeneration);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_report_rejected(VaultHandle vault, byte* account, byte* rejectedToken, out NativeBuf outToken, out ulong outGeneration);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_session_info(VaultHandle vault, byte* account, NativeSessionInfo* outInfo);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_session_info_json(VaultHandle vault, byte* account, out NativeBuf outJson);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_list_accounts(VaultHandle vault, out AccountListHandle outList);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_account_list_count(AccountListHandle list, out UIntPtr outCount);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_account_list_get(AccountListHandle list, UIntPtr index, out IntPtr outAccount);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern void tv_account_list_free(IntPtr list);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_remove(VaultHandle vault, byte* account, out byte outExisted);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_remove_and_revoke(VaultHandle vault, byte* account, out byte outExisted);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_pending_revocations_json(VaultHandle vault, out NativeBuf outJson);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_send_revocations(VaultHandle vault, out UIntPtr outRevoked, out UIntPtr outPending);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_move_session(VaultHandle vault, byte* account, byte* profile);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_rekey_with_key(VaultHandle vault, byte* key, UIntPtr keyLen);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_rekey_with_passphrase(VaultHandle vault, byte* passphrase);

        // Requests: the two-step refresh owns one (HttpRequestHandle); a transport callback borrows one (IntPtr).
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_method(IntPtr request, out IntPtr outMethod);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_url(IntPtr request, out IntPtr outUrl);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_header_count(IntPtr request, out UIntPtr outCount);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_header(IntPtr request, UIntPtr index, out IntPtr outName, out IntPtr outValue);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_body(IntPtr request, out IntPtr outBody, out UIntPtr outLen);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_timeout_ms(IntPtr request, out ulong outMs);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_max_response_bytes(IntPtr request, out UIntPtr outBytes);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_allows_plain_http(IntPtr request, out byte outAllowed);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_pin_count(IntPtr request, out UIntPtr outCount);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_request_pin(IntPtr request, UIntPtr index, out IntPtr outPin);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern void tv_http_request_free(IntPtr request);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_begin_refresh(VaultHandle vault, byte* account, byte force, out int outStep, out ulong outAttempt, out HttpRequestHandle outRequest);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_finish_refresh(VaultHandle vault, ulong attempt, ushort status, NativeHeader* headers, UIntPtr headerCount, byte* body, UIntPtr bodyLen, out NativeBuf outToken, out ulong outGeneration);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_fail_refresh(VaultHandle vault, ulong attempt, int kind, out NativeBuf outToken, out ulong outGeneration);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_response_set_status(IntPtr response, ushort status);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_response_add_header(IntPtr response, byte* name, byte* value);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_http_response_append_body(IntPtr response, byte* data, UIntPtr len);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_set_transport(VaultHandle vault, TransportFn send, IntPtr userData, DestroyFn destroy);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_set_event_callback(VaultHandle vault, EventFn callback, IntPtr userData, DestroyFn destroy);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_open_options_init(NativeOpenOptions* options);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_open_with_options(byte* path, byte* key, UIntPtr keyLen, byte* passphrase, NativeOpenOptions* options, out VaultHandle outVault);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_vault_metrics(VaultHandle vault, NativeMetrics* outMetrics);
        [DllImport(Library, CallingConvention = Cdecl)] internal static extern int tv_set_log_callback(int maxLevel, LogFn callback, IntPtr userData, DestroyFn destroy);
    }

    /// <summary>tv_buf: library-owned bytes plus a NUL; released with tv_buf_free (which zeroes them).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeBuf
    {
        public IntPtr Data;
        public UIntPtr Len;
    }

    /// <summary>tv_session_params (80 bytes on 64-bit targets; struct_size tells the library).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeSessionParams
    {
        public uint StructSize;
        public byte Offline;
        public byte* Account;
        public byte* Profile;
        public byte* AccessToken;
        public byte* RefreshCredential;
        public long ExpiresInSecs;
        public long RefreshExpiresInSecs;
        public byte* TokenType;
        public byte* Scope;
        public byte* HintsJson;
    }

    /// <summary>tv_session_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeSessionInfo
    {
        public uint StructSize;
        public int State;
        public ulong Generation;
        public ulong RefreshCount;
        public long IssuedAtMs;
        public long AccessExpiresAtMs;
        public long AccessRemainingMs;
        public long SessionExpiresAtMs;
        public long SessionRemainingMs;
        public long ClockOffsetMs;
        public ulong LastFailureAgoMs;
        public int LastFailureStatus;
        public byte HasSessionExpiresAt;
        public byte HasSessionRemaining;
        public byte Offline;
        public byte HasRefreshCredential;
    }

    /// <summary>tv_http_header.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeHeader
    {
        public byte* Name;
        public byte* Value;
    }

    /// <summary>tv_event (pointers valid only during the callback).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeEvent
    {
        public int Kind;
        public byte HasSessionRemaining;
        public IntPtr Account;
        public ulong Generation;
        public long AccessRemainingMs;
        public long SessionRemainingMs;
        public IntPtr Reason;
    }

    /// <summary>tv_anchor (40 bytes on 64-bit targets). The function pointers come from
    /// Marshal.GetFunctionPointerForDelegate on the static delegates of Callbacks, so the struct
    /// stays blittable; it is borrowed for the open call only.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeAnchor
    {
        public UIntPtr StructSize;
        public IntPtr Load;
        public IntPtr Store;
        public IntPtr UserData;
        public IntPtr Destroy;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeOpenOptions
    {
        public UIntPtr StructSize;
        public double RefreshPoint;
        public double Jitter;
        public double MinTtlCap;
        public ulong ExpiryMarginMs;
        public ulong BusyTimeoutMs;
        public NativeAnchor* Anchor;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeMetrics
    {
        public const int Codes = 16;
        public UIntPtr StructSize;
        public ulong CachedHits;
        public ulong RefreshesStarted;
        public ulong RefreshesSucceeded;
        public ulong RefreshesFailed;
        public fixed ulong RefreshesFailedByCode[Codes];
        public ulong SingleFlightJoins;
        public ulong LockWaits;
        public ulong LockTakeovers;
        public ulong LostAnswerMarkers;
        public ulong TransportRequests;
        public ulong TransportLatencyP50Us;
        public ulong TransportLatencyP99Us;
        public ulong ResponseBytes;
    }

    /// <summary>Counts live native handles of every kind (tests check that finalizers release them).</summary>
    internal static class HandleCounter
    {
        private static long live;
        internal static long Live { get { return Interlocked.Read(ref live); } }
        internal static void Opened() { Interlocked.Increment(ref live); }
        internal static void Released() { Interlocked.Decrement(ref live); }
    }

    /// <summary>A tv_vault*, released with tv_vault_free (by Dispose, or by the finalizer).</summary>
    internal sealed class VaultHandle : SafeHandle
    {
        private VaultHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        internal void Track() { if (!IsInvalid) HandleCounter.Opened(); }
        protected override bool ReleaseHandle()
        {
            // The SafeHandle guarantees no P/Invoke on this handle is running: tv_vault_free's
            // "call it last" contract. The destroy callbacks of the transport, the event
            // handler and the anchor run inside it (or earlier, at close) and free their GCHandles.
            Native.tv_vault_free(handle);
            HandleCounter.Released();
            return true;
        }
    }

    /// <summary>A tv_account_list*, released with tv_account_list_free.</summary>
    internal sealed class AccountListHandle : SafeHandle
    {
        private AccountListHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        internal void Track() { if (!IsInvalid) HandleCounter.Opened(); }
        protected override bool ReleaseHandle()
        {
            Native.tv_account_list_free(handle);
            HandleCounter.Released();
            return true;
        }
    }

    /// <summary>A tv_http_request* from tv_vault_begin_refresh, released with tv_http_request_free (zeroes its secrets).</summary>
    internal sealed class HttpRequestHandle : SafeHandle
    {
        private HttpRequestHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        internal void Track() { if (!IsInvalid) HandleCounter.Opened(); }
        protected override bool ReleaseHandle()
        {
            Native.tv_http_request_free(handle);
            HandleCounter.Released();
            return true;
        }
    }
}
