// The C# API of tokenvault: an encrypted token vault in one file, a valid access token in
// ~100 ns, refreshes done once however many threads ask. A thin layer over the C ABI
// (bindings/c/include/tokenvault.h): it converts types and raises exceptions; the Rust core
// makes every decision.
//
// Threading: every method may be called from any thread at once. Methods that may refresh
// (AccessToken when due, ForceRefresh, ReportRejected, FinishRefresh) block on the network:
// on Unity's main thread use the *Async methods or the two-step refresh (BeginRefresh).

using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Tokenvault
{
    /// <summary>An open vault. Dispose it when done (its finalizer releases it otherwise); after
    /// Dispose every method throws <see cref="ObjectDisposedException"/>.</summary>
    public sealed unsafe class TokenVault : IDisposable
    {
        private readonly VaultHandle handle;
        private readonly object gate = new object();
        // Copy-on-write: readers look up without a lock.
        private volatile Dictionary<string, CachedAccessToken> cached = new Dictionary<string, CachedAccessToken>(StringComparer.Ordinal);
        private volatile CachedAccessToken lastReader;
        private int disposed;

        private TokenVault(VaultHandle handle)
        {
            handle.Track();
            this.handle = handle;
        }

        /// <summary>Reports exceptions thrown by a transport or event handler (they never reach the
        /// library). In Unity: <c>TokenVault.UnhandledCallbackException += Debug.LogException;</c></summary>
        public static event Action<Exception> UnhandledCallbackException;

        internal static void ReportCallbackException(Exception e)
        {
            try
            {
                var h = UnhandledCallbackException;
                if (h != null) h(e);
            }
            catch (Exception)
            {
                // Never let the reporter's own failure unwind into native code.
            }
        }

        /// <summary>The native library's version, e.g. "0.1.0".</summary>
        public static string Version { get { return Utf8.FromNative(Native.tv_version()); } }

        /// <summary>The library's lower-case name of a status (e.g. "wrong_key").</summary>
        public static string StatusName(StatusCode code) { return Utf8.FromNative(Native.tv_status_name((int)code)); }

        /// <summary>Test-only: a deliberate panic inside the native boundary, which must come back
        /// as an <see cref="InternalException"/> (it prints a panic message on stderr).</summary>
        public static void TestPanic() { Errors.Check(Native.tv_test_panic()); }

        /// <summary>Open (or create) the vault at <paramref name="path"/> with a raw 32-byte key from
        /// the platform's secure storage. A wrong key throws <see cref="WrongKeyException"/> and
        /// leaves the file untouched.</summary>
        public static TokenVault OpenWithKey(string path, byte[] key)
        {
            byte[] p = Utf8.Encode(path, "path");
            VaultHandle h;
            int status;
            fixed (byte* pp = p)
            fixed (byte* pk = key)
                status = Native.tv_vault_open_with_key(pp, pk, (UIntPtr)(key == null ? 0 : key.Length), out h);
            if (status != 0) { h.SetHandleAsInvalid(); throw Errors.From(status); }
            return new TokenVault(h);
        }

        /// <summary>Open (or create) the vault with a passphrase (Argon2id: tens of milliseconds).</summary>
        public static TokenVault OpenWithPassphrase(string path, string passphrase)
        {
            byte[] p = Utf8.Encode(path, "path");
            byte[] s = Utf8.Encode(passphrase, "passphrase");
            VaultHandle h;
            int status;
            try
            {
                fixed (byte* pp = p)
                fixed (byte* ps = s)
                    status = Native.tv_vault_open_with_passphrase(pp, ps, out h);
            }
            finally { Utf8.Wipe(s); }
            if (status != 0) { h.SetHandleAsInvalid(); throw Errors.From(status); }
            return new TokenVault(h);
        }

        /// <summary>OpenWithPassphrase off the calling thread.</summary>
        public static Task<TokenVault> OpenWithPassphraseAsync(string path, string passphrase)
        {
            return Task.Run(() => OpenWithPassphrase(path, passphrase));
        }

        /// <summary><see cref="OpenWithKey(string, byte[])"/> with a host anchor: a file older than
        /// the anchor's counter (an old copy of the whole vault restored over it) throws
        /// <see cref="CorruptException"/> and is left exactly as it was; an anchor whose
        /// <see cref="IVaultAnchor.TryLoad"/> throws makes the open throw
        /// <see cref="StorageUnavailableException"/>. The vault keeps <paramref name="anchor"/>
        /// until it is closed or disposed, and calls its <see cref="IVaultAnchor.Store"/> after
        /// every write. Opening the same file without an anchor is not checked: always pass it.</summary>
        public static TokenVault OpenWithKey(string path, byte[] key, IVaultAnchor anchor)
        {
            if (anchor == null) throw new InvalidInputException("invalid input: `anchor` is null");
            byte[] p = Utf8.Encode(path, "path");
            IntPtr state = Callbacks.Hold(anchor);
            var a = Callbacks.Anchor(state);
            VaultHandle h;
            int status;
            try
            {
                fixed (byte* pp = p)
                fixed (byte* pk = key)
                    status = Native.tv_vault_open_with_key_anchored(pp, pk, (UIntPtr)(key == null ? 0 : key.Length), &a, out h);
            }
            catch (Exception) { Callbacks.Release(state); throw; } // e.g. DllNotFoundException: never reached the library
            return Anchored(status, h, state);
        }

        /// <summary><see cref="OpenWithPassphrase(string, string)"/> with a host anchor; see
        /// <see cref="OpenWithKey(string, byte[], IVaultAnchor)"/>.</summary>
        public static TokenVault OpenWithPassphrase(string path, string passphrase, IVaultAnchor anchor)
        {
            if (anchor == null) throw new InvalidInputException("invalid input: `anchor` is null");
            byte[] p = Utf8.Encode(path, "path");
            byte[] s = Utf8.Encode(passphrase, "passphrase");
            IntPtr state = Callbacks.Hold(anchor);
            var a = Callbacks.Anchor(state);
            VaultHandle h;
            int status;
            try
            {
                fixed (byte* pp = p)
                fixed (byte* ps = s)
                    status = Native.tv_vault_open_with_passphrase_anchored(pp, ps, &a, out h);
            }
            catch (Exception) { Callbacks.Release(state); throw; } // never reached the library
            finally { Utf8.Wipe(s); }
            return Anchored(status, h, state);
        }

        /// <summary>OpenWithPassphrase with a host anchor, off the calling thread.</summary>
        public static Task<TokenVault> OpenWithPassphraseAsync(string path, string passphrase, IVaultAnchor anchor)
        {
            return Task.Run(() => OpenWithPassphrase(path, passphrase, anchor));
        }

        /// <summary>Open (or create) the vault at <paramref name="path"/> with options: give
        /// exactly one of <paramref name="key"/> (32 raw bytes) and <paramref name="passphrase"/>,
        /// the other null. Unset options keep the library's defaults; a value out of range throws
        /// <see cref="InvalidInputException"/> and no file is created.</summary>
        public static TokenVault OpenWithOptions(string path, byte[] key, string passphrase, VaultOptions options)
        {
            if (options == null) throw new InvalidInputException("invalid input: `options` is null");
            byte[] p = Utf8.Encode(path, "path");
            byte[] s = passphrase == null ? null : Utf8.Encode(passphrase, "passphrase");
            NativeOpenOptions o;
            Errors.Check(Native.tv_open_options_init(&o));
            if (options.RefreshPoint.HasValue) o.RefreshPoint = options.RefreshPoint.Value;
            if (options.Jitter.HasValue) o.Jitter = options.Jitter.Value;
            if (options.MinTtlCap.HasValue) o.MinTtlCap = options.MinTtlCap.Value;
            if (options.ExpiryMargin.HasValue) o.ExpiryMarginMs = Millis(options.ExpiryMargin.Value, "ExpiryMargin");
            if (options.BusyTimeout.HasValue) o.BusyTimeoutMs = Millis(options.BusyTimeout.Value, "BusyTimeout");
            IntPtr state = options.Anchor == null ? IntPtr.Zero : Callbacks.Hold(options.Anchor);
            var a = Callbacks.Anchor(state);
            if (state != IntPtr.Zero) o.Anchor = &a;
            VaultHandle h;
            int status;
            try
            {
                fixed (byte* pp = p)
                fixed (byte* pk = key)
                fixed (byte* ps = s)
                    status = Native.tv_vault_open_with_options(pp, pk, (UIntPtr)(key == null ? 0 : key.Length), ps, &o, out h);
            }
            catch (Exception) { if (state != IntPtr.Zero) Callbacks.Release(state); throw; }
            finally { if (s != null) Utf8.Wipe(s); }
            if (state != IntPtr.Zero) return Anchored(status, h, state);
            if (status != 0) { h.SetHandleAsInvalid(); throw Errors.From(status); }
            return new TokenVault(h);
        }

        private static ulong Millis(TimeSpan t, string name)
        {
            if (t < TimeSpan.Zero) throw new InvalidInputException("invalid input: `" + name + "` is negative");
            return (ulong)t.TotalMilliseconds;
        }

        /// <summary>Route the vault's log lines at <paramref name="maxLevel"/> and above to
        /// <paramref name="handler"/> (level, target, message), replacing any handler set before;
        /// null (or <see cref="LogLevel.Off"/>) stops the routing. Process-wide: every vault logs
        /// to it (e.g. forward to Debug.Log). Called on whichever thread logs, possibly while the
        /// vault holds internal locks: return quickly and never call a vault from it. No line
        /// holds a token, a key or an account id.</summary>
        public static void SetLogHandler(LogLevel maxLevel, Action<LogLevel, string, string> handler)
        {
            if (handler == null)
            {
                Errors.Check(Native.tv_set_log_callback((int)LogLevel.Off, null, IntPtr.Zero, null));
                return;
            }
            IntPtr state = Callbacks.Hold(handler);
            int status = Native.tv_set_log_callback((int)maxLevel, Callbacks.LogThunk, state, Callbacks.DestroyThunk);
            if (status != 0) { Callbacks.Release(state); throw Errors.From(status); }
        }

        /// <summary>After an anchored open: on success the library owns the anchor's GCHandle
        /// (freed by the destroy callback); on failure it was never taken, so free it here.</summary>
        private static TokenVault Anchored(int status, VaultHandle h, IntPtr state)
        {
            if (status != 0)
            {
                h.SetHandleAsInvalid();
                Callbacks.Release(state);
                throw Errors.From(status);
            }
            return new TokenVault(h);
        }

        internal VaultHandle Handle
        {
            get
            {
                if (Volatile.Read(ref disposed) != 0 || handle.IsClosed)
                    throw new ObjectDisposedException(typeof(TokenVault).Name);
                return handle;
            }
        }

        internal static ulong Millis(TimeSpan t) { return t <= TimeSpan.Zero ? 0UL : (ulong)t.TotalMilliseconds; }

        /// <summary>Register (or replace) a refresh profile from its JSON
        /// (e.g. <c>{"preset":"keycloak","name":"game","url":"…","client_id":"…"}</c>).</summary>
        public void LoadProfileJson(string json)
        {
            byte[] j = Utf8.Encode(json, "json");
            fixed (byte* pj = j)
                Errors.Check(Native.tv_vault_load_profile_json(Handle, pj));
        }

        /// <summary>Store a session after the game's own sign-in (durable when this returns).</summary>
        public SessionInfo Store(Session session)
        {
            if (session == null) throw new InvalidInputException("invalid input: `session` is null");
            byte[] account = Utf8.Encode(session.Account, "account");
            byte[] profile = Utf8.Encode(session.Profile, "profile");
            byte[] access = Utf8.Encode(session.AccessToken, "access_token");
            byte[] refresh = Utf8.Encode(session.RefreshCredential, "refresh_credential");
            byte[] type = Utf8.Encode(session.TokenType, "token_type");
            byte[] scope = Utf8.Encode(session.Scope, "scope");
            byte[] hints = Utf8.Encode(session.HintsJson(), "hints");
            try
            {
                var info = new NativeSessionInfo { StructSize = (uint)sizeof(NativeSessionInfo) };
                fixed (byte* a = account, pr = profile, ac = access, rf = refresh, ty = type, sc = scope, hi = hints)
                {
                    var p = new NativeSessionParams
                    {
                        StructSize = (uint)sizeof(NativeSessionParams),
                        Offline = (byte)(session.Offline ? 1 : 0),
                        Account = a,
                        Profile = pr,
                        AccessToken = ac,
                        RefreshCredential = rf,
                        ExpiresInSecs = Raw(session.ExpiresIn, session.ExpiresInValue, "ExpiresIn"),
                        RefreshExpiresInSecs = Raw(session.RefreshExpiresIn, session.RefreshExpiresInValue, "RefreshExpiresIn"),
                        TokenType = ty,
                        Scope = sc,
                        HintsJson = hi,
                    };
                    Errors.Check(Native.tv_vault_store(Handle, &p, &info));
                }
                return SessionInfo.From(ref info);
            }
            finally
            {
                Utf8.Wipe(access);
                Utf8.Wipe(refresh);
            }
        }

        private static long Raw(TimeSpan? duration, long? value, string name)
        {
            if (duration.HasValue && value.HasValue)
                throw new InvalidInputException("invalid input: set `" + name + "` or `" + name + "Value`, not both");
            if (value.HasValue) return value.Value;
            return duration.HasValue ? (long)duration.Value.TotalSeconds : -1;
        }

        /// <summary>Store a session from the login response as the server wrote it: the profile's
        /// own response spec reads <paramref name="body"/> with the same rules as a refresh
        /// response (envelopes, expires_in relative or as an epoch time, the JWT exp, Keycloak's
        /// refresh_expires_in 0 as an offline token). <paramref name="dateHeader"/>: the
        /// response's Date header. <paramref name="refreshCredential"/>: for dialects whose
        /// answer does not carry it (seed 000's entity token). A body that is not a successful
        /// answer throws <see cref="ProtocolException"/>; nothing is stored then.</summary>
        public SessionInfo StoreResponse(string account, string profile, string body, string dateHeader = null, string refreshCredential = null)
        {
            byte[] a = Utf8.Encode(account, "account");
            byte[] p = Utf8.Encode(profile, "profile");
            byte[] b = Utf8.Encode(body, "body");
            byte[] d = dateHeader == null ? null : Utf8.Encode(dateHeader, "dateHeader");
            byte[] r = refreshCredential == null ? null : Utf8.Encode(refreshCredential, "refreshCredential");
            try
            {
                var info = new NativeSessionInfo { StructSize = (uint)sizeof(NativeSessionInfo) };
                fixed (byte* pa = a, pp = p, pb = b, pd = d, pr = r)
                    Errors.Check(Native.tv_vault_store_response(Handle, pa, pp, pb, (UIntPtr)(b == null ? 0 : b.Length - 1), pd, pr, &info));
                return SessionInfo.From(ref info);
            }
            finally
            {
                if (b != null) Utf8.Wipe(b);
                if (r != null) Utf8.Wipe(r);
            }
        }

        /// <summary>The reader that keeps <paramref name="account"/>'s token as a string and only
        /// rebuilds it when the core says the token changed. One per account is kept by the vault.</summary>
        public CachedAccessToken Cached(string account)
        {
            if (account == null) throw new InvalidInputException("invalid input: `account` is null");
            // Most games have one signed-in account: the last reader answers without a lookup
            // (a dictionary lookup costs about as much as the whole native call on Mono).
            CachedAccessToken reader = lastReader;
            if (reader != null && string.Equals(reader.Account, account)) return reader;
            if (!cached.TryGetValue(account, out reader))
            {
                lock (gate)
                {
                    if (!cached.TryGetValue(account, out reader))
                    {
                        reader = new CachedAccessToken(this, account);
                        var next = new Dictionary<string, CachedAccessToken>(cached, StringComparer.Ordinal);
                        next[account] = reader;
                        cached = next;
                    }
                }
            }
            lastReader = reader;
            return reader;
        }

        /// <summary>A valid access token for <paramref name="account"/>: the cached one while fresh
        /// (~100 ns, no copy), otherwise refreshed through the transport — blocking. Throws
        /// <see cref="ReauthenticationRequiredException"/> when the user must sign in again.</summary>
        public string AccessToken(string account) { return Cached(account).Get(); }

        /// <summary>As <see cref="AccessToken(string)"/>, valid for at least <paramref name="minTtl"/>.</summary>
        public string AccessToken(string account, TimeSpan minTtl) { return Cached(account).Get(minTtl); }

        /// <summary>AccessToken off the calling thread (never blocks Unity's main thread).</summary>
        public Task<string> AccessTokenAsync(string account)
        {
            var reader = Cached(account);
            return Task.Run(() => reader.Get());
        }

        /// <summary>Run any blocking call of this vault on the thread pool, e.g.
        /// <c>await vault.RunAsync(v => v.ForceRefresh("player-1"))</c>.</summary>
        public Task<T> RunAsync<T>(Func<TokenVault, T> call)
        {
            if (call == null) throw new ArgumentNullException("call");
            var self = this;
            return Task.Run(() => call(self));
        }

        /// <summary>Refresh now, whatever the token's age, and return the new token.</summary>
        public string ForceRefresh(string account)
        {
            byte[] a = Utf8.Encode(account, "account");
            NativeBuf buf;
            ulong generation;
            int status;
            fixed (byte* pa = a)
                status = Native.tv_vault_force_refresh(Handle, pa, out buf, out generation);
            return TakeToken(status, ref buf);
        }

        /// <summary>The game's API answered 401 to <paramref name="rejectedToken"/>: returns a newer
        /// token if one exists, otherwise refreshes (once, however many threads report it).</summary>
        public string ReportRejected(string account, string rejectedToken)
        {
            byte[] a = Utf8.Encode(account, "account");
            byte[] r = Utf8.Encode(rejectedToken, "rejected_token");
            NativeBuf buf;
            ulong generation;
            int status;
            fixed (byte* pa = a, pr = r)
                status = Native.tv_vault_report_rejected(Handle, pa, pr, out buf, out generation);
            Utf8.Wipe(r);
            return TakeToken(status, ref buf);
        }

        /// <summary>Throw for a failed status, else turn a library buffer into a string and free it.</summary>
        private static string TakeToken(int status, ref NativeBuf buf)
        {
            if (status != 0) throw Errors.From(status);
            try { return Utf8.Decode(buf.Data, (int)buf.Len.ToUInt64()); }
            finally { Native.tv_buf_free(ref buf); }
        }

        /// <summary>A session's facts (no secrets), e.g. for a "sign in again soon" notice.</summary>
        public SessionInfo GetSessionInfo(string account)
        {
            byte[] a = Utf8.Encode(account, "account");
            var info = new NativeSessionInfo { StructSize = (uint)sizeof(NativeSessionInfo) };
            fixed (byte* pa = a)
                Errors.Check(Native.tv_vault_session_info(Handle, pa, &info));
            var result = SessionInfo.From(ref info);
            // The claims (strings) come only in the JSON form.
            var doc = Json.Parse(SessionInfoJson(account)) as Dictionary<string, object>;
            object identity;
            if (doc != null && doc.TryGetValue("identity", out identity))
                result.Identity = IdentityClaims.FromJson(identity as Dictionary<string, object>);
            return result;
        }

        /// <summary>A session's facts as the library's JSON object (includes hints).</summary>
        public string SessionInfoJson(string account)
        {
            byte[] a = Utf8.Encode(account, "account");
            NativeBuf buf;
            int status;
            fixed (byte* pa = a)
                status = Native.tv_vault_session_info_json(Handle, pa, out buf);
            return TakeToken(status, ref buf);
        }

        /// <summary>The accounts with a stored session, sorted.</summary>
        public string[] ListAccounts()
        {
            AccountListHandle list;
            int status = Native.tv_vault_list_accounts(Handle, out list);
            if (status != 0) { list.SetHandleAsInvalid(); throw Errors.From(status); }
            list.Track();
            using (list)
            {
                UIntPtr count;
                Errors.Check(Native.tv_account_list_count(list, out count));
                var result = new string[(int)count.ToUInt64()];
                for (int i = 0; i < result.Length; i++)
                {
                    IntPtr p;
                    Errors.Check(Native.tv_account_list_get(list, (UIntPtr)i, out p));
                    result[i] = Utf8.FromNative(p);
                }
                return result;
            }
        }

        /// <summary>Remove an account's session (logout). Returns whether one existed. With
        /// <paramref name="revoke"/>, also sign out at the server: the refresh credential is
        /// revoked at the profile's RFC 7009 endpoint (keycloak, or a profile with
        /// revocation_url; seeds 000–002 have none). The local removal comes first, with the
        /// revocation queued durably; it is sent in the background (this call never waits for
        /// the network) and, if it cannot go now, later (<see cref="PendingRevocations"/>).</summary>
        public bool Remove(string account, bool revoke = false)
        {
            byte[] a = Utf8.Encode(account, "account");
            byte existed;
            fixed (byte* pa = a)
                Errors.Check(revoke
                    ? Native.tv_vault_remove_and_revoke(Handle, pa, out existed)
                    : Native.tv_vault_remove(Handle, pa, out existed));
            return existed != 0;
        }

        /// <summary>The revocations still to be sent, as JSON:
        /// {"pending":[{"account":…,"profile":…,"queued_at_ms":…,"attempts":…}],"dropped":n}.</summary>
        public string PendingRevocationsJson()
        {
            NativeBuf buf;
            int status = Native.tv_vault_pending_revocations_json(Handle, out buf);
            return TakeToken(status, ref buf);
        }

        /// <summary>How many revocations are still to be sent.</summary>
        public int PendingRevocations()
        {
            string json = PendingRevocationsJson();
            int n = 0;
            for (int i = json.IndexOf("\"queued_at_ms\"", StringComparison.Ordinal); i >= 0;
                 i = json.IndexOf("\"queued_at_ms\"", i + 1, StringComparison.Ordinal))
                n++;
            return n;
        }

        /// <summary>Send the queued revocations now, on this thread (blocking on the network);
        /// returns how many the server confirmed. <paramref name="stillPending"/>: how many stay
        /// queued (offline, a 5xx, their profile not loaded).</summary>
        public int SendRevocations(out int stillPending)
        {
            UIntPtr revoked, pending;
            Errors.Check(Native.tv_vault_send_revocations(Handle, out revoked, out pending));
            stillPending = (int)(ulong)pending;
            return (int)(ulong)revoked;
        }

        /// <summary>Move <paramref name="account"/>'s session to the profile <paramref name="profile"/>
        /// and to that profile's endpoint. A session's refresh credential is only ever sent to the
        /// origin (scheme, host, port) it was stored with: after a profile was registered again
        /// (<see cref="LoadProfileJson"/>) with a URL on another origin, refreshing that session
        /// throws <see cref="InvalidInputException"/> and nothing is sent, until the game calls
        /// this — only for an endpoint it trusts with the credential. Durable when it returns.
        /// Throws <see cref="NotFoundException"/> for an account without a session.</summary>
        public void MoveSession(string account, string profile)
        {
            byte[] a = Utf8.Encode(account, "account");
            byte[] p = Utf8.Encode(profile, "profile");
            fixed (byte* pa = a, pp = p)
                Errors.Check(Native.tv_vault_move_session(Handle, pa, pp));
        }

        /// <summary>Replace the vault's key (and its data key) with a new 32-byte key. The key the
        /// vault was opened with keeps opening it until the first successful open with the new key;
        /// from then on it throws <see cref="WrongKeyException"/>. The safe sequence: keep the old
        /// key, save the new key beside it, Rekey, reopen with the new key, then delete the old key.
        /// Other open vaults on the same file throw <see cref="WrongKeyException"/> until reopened.</summary>
        public void Rekey(byte[] key)
        {
            fixed (byte* pk = key)
                Errors.Check(Native.tv_vault_rekey_with_key(Handle, pk, (UIntPtr)(key == null ? 0 : key.Length)));
        }

        /// <summary><see cref="Rekey"/> with a new passphrase (the same two-slot rule).</summary>
        public void RekeyWithPassphrase(string passphrase)
        {
            byte[] s = Utf8.Encode(passphrase, "passphrase");
            try
            {
                fixed (byte* ps = s)
                    Errors.Check(Native.tv_vault_rekey_with_passphrase(Handle, ps));
            }
            finally { Utf8.Wipe(s); }
        }

        /// <summary>Route blocking refreshes through the game's own HTTP client; null restores the
        /// built-in HTTPS client. See <see cref="IRefreshTransport"/> for the rules.</summary>
        public void SetTransport(IRefreshTransport transport)
        {
            if (transport == null)
            {
                Errors.Check(Native.tv_vault_set_transport(Handle, null, IntPtr.Zero, null));
                return;
            }
            IntPtr state = Callbacks.Hold(transport);
            int status = Native.tv_vault_set_transport(Handle, Callbacks.TransportThunk, state, Callbacks.DestroyThunk);
            if (status != 0) { Callbacks.Release(state); throw Errors.From(status); }
        }

        /// <summary>What this vault did since it was opened: cached hits, refreshes by outcome,
        /// single-flight joins, cross-process lock waits and takeovers, lost-answer markers,
        /// transport latency and bytes. Also after <see cref="Close"/>.</summary>
        public VaultMetrics Metrics()
        {
            NativeMetrics m;
            m.StructSize = (UIntPtr)sizeof(NativeMetrics);
            Errors.Check(Native.tv_vault_metrics(Handle, &m));
            var byCode = new Dictionary<StatusCode, ulong>();
            for (int i = 0; i < NativeMetrics.Codes; i++)
                if (m.RefreshesFailedByCode[i] != 0) byCode[(StatusCode)i] = m.RefreshesFailedByCode[i];
            return new VaultMetrics
            {
                CachedHits = m.CachedHits,
                RefreshesStarted = m.RefreshesStarted,
                RefreshesSucceeded = m.RefreshesSucceeded,
                RefreshesFailed = m.RefreshesFailed,
                RefreshesFailedByCode = byCode,
                SingleFlightJoins = m.SingleFlightJoins,
                LockWaits = m.LockWaits,
                LockTakeovers = m.LockTakeovers,
                LostAnswerMarkers = m.LostAnswerMarkers,
                TransportRequests = m.TransportRequests,
                TransportLatencyP50 = m.TransportRequests == 0 ? (TimeSpan?)null : TimeSpan.FromTicks((long)m.TransportLatencyP50Us * 10),
                TransportLatencyP99 = m.TransportRequests == 0 ? (TimeSpan?)null : TimeSpan.FromTicks((long)m.TransportLatencyP99Us * 10),
                ResponseBytes = m.ResponseBytes,
            };
        }

        /// <summary>Receive the vault's events (token refreshed, session expired, session removed)
        /// on the vault's event thread — not Unity's main thread: hand them over (e.g. to a
        /// queue your MonoBehaviour drains in Update). The handler may call this vault, including
        /// blocking refreshes. Null removes it.</summary>
        public void SetEventHandler(Action<VaultEvent> handler)
        {
            if (handler == null)
            {
                Errors.Check(Native.tv_vault_set_event_callback(Handle, null, IntPtr.Zero, null));
                return;
            }
            IntPtr state = Callbacks.Hold(handler);
            int status = Native.tv_vault_set_event_callback(Handle, Callbacks.EventThunk, state, Callbacks.DestroyThunk);
            if (status != 0) { Callbacks.Release(state); throw Errors.From(status); }
        }

        /// <summary>Start a refresh the game sends itself (UnityWebRequest in a coroutine), with the
        /// same single-flight and durability as the blocking path. Does not block on the network.</summary>
        public RefreshAttempt BeginRefresh(string account, bool force)
        {
            byte[] a = Utf8.Encode(account, "account");
            int step;
            ulong attempt;
            HttpRequestHandle request;
            int status;
            fixed (byte* pa = a)
                status = Native.tv_vault_begin_refresh(Handle, pa, (byte)(force ? 1 : 0), out step, out attempt, out request);
            if (status != 0) { request.SetHandleAsInvalid(); throw Errors.From(status); }
            request.Track();
            using (request)
            {
                var result = new RefreshAttempt { Step = (RefreshStep)step, Id = attempt };
                if (!request.IsInvalid)
                {
                    bool added = false;
                    try
                    {
                        request.DangerousAddRef(ref added);
                        result.Request = RefreshRequest.Read(request.DangerousGetHandle());
                    }
                    finally
                    {
                        if (added) request.DangerousRelease();
                    }
                }
                return result;
            }
        }

        /// <summary>Finish a two-step refresh with the server's answer (any HTTP status). Returns the
        /// new token, durable on disk. Throws as a blocking refresh would (e.g.
        /// <see cref="ReauthenticationRequiredException"/>).</summary>
        public string FinishRefresh(RefreshAttempt attempt, int httpStatus, IEnumerable<KeyValuePair<string, string>> headers, byte[] body)
        {
            if (attempt == null) throw new InvalidInputException("invalid input: `attempt` is null");
            if (httpStatus < 0 || httpStatus > ushort.MaxValue) throw new InvalidInputException("invalid input: HTTP status out of range");
            var names = new List<byte[]>();
            var values = new List<byte[]>();
            if (headers != null)
            {
                foreach (var h in headers)
                {
                    names.Add(Utf8.Encode(h.Key ?? "", "header name"));
                    values.Add(Utf8.Encode(h.Value ?? "", "header value"));
                }
            }
            var pins = new System.Runtime.InteropServices.GCHandle[names.Count * 2];
            var native = new NativeHeader[names.Count];
            NativeBuf buf;
            ulong generation;
            int status;
            try
            {
                for (int i = 0; i < names.Count; i++)
                {
                    pins[2 * i] = System.Runtime.InteropServices.GCHandle.Alloc(names[i], System.Runtime.InteropServices.GCHandleType.Pinned);
                    pins[2 * i + 1] = System.Runtime.InteropServices.GCHandle.Alloc(values[i], System.Runtime.InteropServices.GCHandleType.Pinned);
                    native[i].Name = (byte*)pins[2 * i].AddrOfPinnedObject();
                    native[i].Value = (byte*)pins[2 * i + 1].AddrOfPinnedObject();
                }
                fixed (NativeHeader* ph = native)
                fixed (byte* pb = body)
                    status = Native.tv_vault_finish_refresh(Handle, attempt.Id, (ushort)httpStatus, native.Length == 0 ? null : ph,
                        (UIntPtr)native.Length, pb, (UIntPtr)(body == null ? 0 : body.Length), out buf, out generation);
            }
            finally
            {
                foreach (var p in pins) if (p.IsAllocated) p.Free();
            }
            return TakeToken(status, ref buf);
        }

        /// <summary>Finish a two-step refresh whose request failed on the network. Returns the still
        /// valid token (when the refresh was not forced), else throws <see cref="TransientException"/>.</summary>
        public string FailRefresh(RefreshAttempt attempt, TransportFailure failure)
        {
            if (attempt == null) throw new InvalidInputException("invalid input: `attempt` is null");
            NativeBuf buf;
            ulong generation;
            int status = Native.tv_vault_fail_refresh(Handle, attempt.Id, (int)failure, out buf, out generation);
            return TakeToken(status, ref buf);
        }

        /// <summary>Close the vault: later calls throw <see cref="VaultClosedException"/> (Dispose still
        /// needed to release it). A background logout revocation in flight is waited for (at most
        /// its profile's timeout), so the transport is not called once this returns. May be called
        /// from the vault's own callbacks.</summary>
        public void Close()
        {
            Errors.Check(Native.tv_vault_close(Handle));
        }

        /// <summary>Close and release the vault. Safe to call twice, and from the vault's own callbacks
        /// (then the release happens on the thread pool, after the callback).</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            if (Callbacks.InCallback)
            {
                // tv_vault_free must not run inside the vault's callbacks: close now, free later.
                try { Native.tv_vault_close(handle); } catch (ObjectDisposedException) { }
                ThreadPool.QueueUserWorkItem(_ => handle.Dispose());
                return;
            }
            handle.Dispose();
        }
    }
}
