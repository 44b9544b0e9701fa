// The C# binding's glue, tested on Mono against tests/testkit's reference server (seed 001
// dialect: rotation on every refresh, previous access token revoked): the whole cycle through
// the built-in transport and through a C# transport, the two-step refresh, events, every error
// path, dispose, finalizers, callbacks surviving the GC, and several C# threads at once.

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Tokenvault.Tests
{
    public static class VaultTests
    {
        private const string Account2 = "spieler-\u00e4\U0001F600";

        // ---- the library and its status table ------------------------------------------------

        [Test]
        public static void StatusCodesMatchTheLibrarysTable()
        {
            Assert.True(TokenVault.Version.Length > 0, "version");
            foreach (StatusCode code in Enum.GetValues(typeof(StatusCode)))
            {
                // ReauthenticationRequired -> reauthentication_required
                var snake = new StringBuilder();
                foreach (char c in code.ToString())
                {
                    if (char.IsUpper(c) && snake.Length > 0) snake.Append('_');
                    snake.Append(char.ToLowerInvariant(c));
                }
                Assert.Equal(snake.ToString(), TokenVault.StatusName(code), "name of " + (int)code);
            }
            Assert.Equal(14, Enum.GetValues(typeof(StatusCode)).Length, "status count");
            Assert.Equal("unknown", TokenVault.StatusName((StatusCode)14), "past the table");
        }

        [Test]
        public static void StructLayoutsMatchTheHeader()
        {
            if (IntPtr.Size != 8) return;
            unsafe
            {
                Assert.Equal(80, sizeof(NativeSessionParams), "tv_session_params");
                Assert.Equal(88, sizeof(NativeSessionInfo), "tv_session_info");
                Assert.Equal(48, sizeof(NativeEvent), "tv_event");
                Assert.Equal(16, sizeof(NativeBuf), "tv_buf");
                Assert.Equal(40, sizeof(NativeAnchor), "tv_anchor");
            }
        }

        [Test]
        public static void APanicComesBackAsAnInternalException()
        {
            var e = Assert.Throws<InternalException>(TokenVault.TestPanic);
            Assert.Equal(StatusCode.Internal, e.Code, "code");
            Assert.True(e.Message.Contains("panic"), e.Message);
            Assert.True(!e.Message.Contains("deliberate"), "the payload must not leak");
            Assert.Throws<InternalException>(TokenVault.TestPanic); // and the process goes on
        }

        // ---- whole cycle ------------------------------------------------------------------------

        [Test]
        public static void WholeCycleThroughTheBuiltInTransport()
        {
            var server = Env.Server("001");
            using (var v = Env.Open(server))
            {
                var events = new List<VaultEvent>();
                v.SetEventHandler(e => { lock (events) events.Add(e); });
                var info = Env.SignIn(v, server, "ada");
                Assert.Equal(SessionState.Fresh, info.State, "state");
                Assert.True(info.HasRefreshCredential, "refresh credential stored");
                Assert.True(info.AccessRemaining > TimeSpan.FromSeconds(50), "remaining " + info.AccessRemaining);

                string t1 = v.AccessToken("ada");
                Assert.Equal(200, server.Protected(t1), "token accepted");
                Assert.True(ReferenceEquals(t1, v.AccessToken("ada")), "unchanged: the same string instance");
                Assert.Equal(t1, v.AccessToken("ada", TimeSpan.FromSeconds(10)), "min ttl within the lifetime");

                string t2 = v.ForceRefresh("ada");
                Assert.NotEqual(t1, t2, "rotated");
                Assert.Equal(t2, v.AccessToken("ada"), "cached read sees the refresh");
                Assert.Equal(200, server.Protected(t2), "new token accepted");
                Assert.Equal(1L, server.Stat("refresh_successes"), "one refresh");

                // A 401 with an older token: the current one, no refresh. With the current one: refreshed.
                Assert.Equal(t2, v.ReportRejected("ada", t1), "newer token returned");
                string t3 = v.ReportRejected("ada", t2);
                Assert.NotEqual(t2, t3, "refreshed after 401");
                Assert.Equal(2L, server.Stat("refresh_successes"), "two refreshes");

                info = v.GetSessionInfo("ada");
                Assert.Equal(2UL, info.RefreshCount, "refresh count");
                Assert.Equal(t3, v.AccessToken("ada"), "cached read after the 401");
                Assert.Equal(info.Generation, v.Cached("ada").Generation, "generation of the cached string");
                string json = v.SessionInfoJson("ada");
                Assert.True(json.Contains("\"refresh_count\":2") && json.Contains("Ada \\\"the\\\" Player"), json);

                Assert.True(Env.Eventually(() => { lock (events) return events.Count(e => e.Kind == VaultEventKind.TokenRefreshed) == 2; }), "two refresh events");
                lock (events)
                {
                    var last = events.Last(e => e.Kind == VaultEventKind.TokenRefreshed);
                    Assert.Equal("ada", last.Account, "event account");
                    Assert.Equal(info.Generation, last.Generation, "event generation");
                }

                // Accounts round-trip as UTF-8.
                Env.SignIn(v, server, Account2);
                var accounts = v.ListAccounts();
                Assert.Equal(2, accounts.Length, "accounts");
                Assert.Equal("ada", accounts[0], "first");
                Assert.Equal(Account2, accounts[1], "second (UTF-8)");
                Assert.True(v.Remove(Account2), "removed");
                Assert.True(!v.Remove(Account2), "already removed");
                Assert.True(Env.Eventually(() => { lock (events) return events.Any(e => e.Kind == VaultEventKind.SessionRemoved && e.Account == Account2); }), "removed event");
                Assert.Throws<NotFoundException>(() => v.AccessToken(Account2), "removed account");
            }
        }

        [Test]
        public static void WholeCycleThroughACSharpTransport()
        {
            var server = Env.Server("001");
            using (var v = Env.Open(server))
            {
                var transport = new WebRequestTransport();
                v.SetTransport(transport);
                Env.SignIn(v, server, "ada");
                string t1 = v.AccessToken("ada");
                Assert.Equal(0, transport.Calls, "no refresh for a fresh token");

                string t2 = v.ForceRefresh("ada");
                Assert.Equal(1, transport.Calls, "the refresh went through C#");
                Assert.NotEqual(t1, t2, "rotated");
                Assert.Equal(200, server.Protected(t2), "accepted");
                Assert.Equal(t2, v.AccessToken("ada"), "cached");

                // A 503: transient, the session and its token are kept.
                Assert.Equal(200, server.Post("/test/fault", "{\"fault\":\"status\",\"status\":503}"), "fault queued");
                var e = Assert.Throws<TransientException>(() => v.ForceRefresh("ada"), "503");
                Assert.Equal(StatusCode.Transient, e.Code, "code");
                Assert.Equal(t2, v.AccessToken("ada"), "still served");
                Assert.Equal(StatusCode.Transient, v.GetSessionInfo("ada").LastFailure, "failure recorded");

                // A transport that throws: a transport failure, reported, never a crash.
                var reported = new List<Exception>();
                Action<Exception> reporter = x => { lock (reported) reported.Add(x); };
                TokenVault.UnhandledCallbackException += reporter;
                try
                {
                    transport.OnCall = r => { throw new InvalidOperationException("game bug"); };
                    var te = Assert.Throws<TokenVaultException>(() => v.ForceRefresh("ada"), "throwing transport");
                    Assert.Equal(StatusCode.Transient, te.Code, "a transport failure is transient");
                    lock (reported) Assert.True(reported.Any(x => x.Message == "game bug"), "reported");
                }
                finally
                {
                    TokenVault.UnhandledCallbackException -= reporter;
                    transport.OnCall = null;
                }

                // Back to the built-in transport.
                int calls = transport.Calls;
                string t3 = v.ForceRefresh("ada");
                Assert.Equal(calls + 1, transport.Calls, "still C#");
                v.SetTransport(null);
                string t4 = v.ForceRefresh("ada");
                Assert.Equal(calls + 1, transport.Calls, "built-in now");
                Assert.NotEqual(t3, t4, "rotated");
                Assert.Equal(200, server.Protected(t4), "accepted");
            }
        }

        [Test]
        public static void TwoStepRefreshAsAUnityWebRequestCoroutineWouldDoIt()
        {
            var server = Env.Server("001");
            using (var v = Env.Open(server))
            {
                Env.SignIn(v, server, "ada");
                string before = v.AccessToken("ada");
                var fresh = v.BeginRefresh("ada", false);
                Assert.Equal(RefreshStep.Fresh, fresh.Step, "not due");
                Assert.True(fresh.Request == null && fresh.Id == 0, "nothing to send");

                var attempt = v.BeginRefresh("ada", true);
                Assert.Equal(RefreshStep.Send, attempt.Step, "forced");
                Assert.Equal("POST", attempt.Request.Method, "method");
                Assert.True(attempt.Request.Url.EndsWith("/v2/Auth/RefreshToken"), attempt.Request.Url);
                Assert.True(attempt.Request.Header("content-type") != null, "content type");
                Assert.True(Encoding.UTF8.GetString(attempt.Request.Body).Contains("refreshToken"), "body");
                Assert.Equal(RefreshStep.InFlight, v.BeginRefresh("ada", true).Step, "single flight");

                // The game performs the request (here HttpWebRequest; in Unity, UnityWebRequest).
                var response = new WebRequestTransport().Send(attempt.Request);
                string after = v.FinishRefresh(attempt, response.Status, response.Headers, response.Body);
                Assert.NotEqual(before, after, "rotated");
                Assert.Equal(after, v.AccessToken("ada"), "cached read sees it");
                Assert.Equal(200, server.Protected(after), "accepted");
                Assert.Throws<InvalidInputException>(() => v.FinishRefresh(attempt, response.Status, response.Headers, response.Body), "finished twice");

                var failing = v.BeginRefresh("ada", true);
                Assert.Throws<TransientException>(() => v.FailRefresh(failing, TransportFailure.Connect), "forced + network failure");
                Assert.Equal(after, v.AccessToken("ada"), "token kept");
            }
        }

        [Test]
        public static void AsyncHelpersRunOffTheCallingThread()
        {
            var server = Env.Server("001");
            using (var v = Env.Open(server))
            {
                Env.SignIn(v, server, "ada");
                int caller = Thread.CurrentThread.ManagedThreadId;
                int ran = -1;
                string forced = v.RunAsync(x => { ran = Thread.CurrentThread.ManagedThreadId; return x.ForceRefresh("ada"); }).Result;
                Assert.NotEqual(caller, ran, "ran on the pool");
                Assert.Equal(forced, v.AccessTokenAsync("ada").Result, "async read");
                var ae = Assert.Throws<AggregateException>(() => v.AccessTokenAsync("nobody").Wait(), "async failure");
                Assert.True(ae.InnerException is NotFoundException, "the vault's exception inside");
                using (var p = TokenVault.OpenWithPassphraseAsync(Env.DbPath(), "correct horse").Result)
                    Assert.Equal(0, p.ListAccounts().Length, "opened async");
            }
        }

        // ---- error paths -----------------------------------------------------------------------

        [Test]
        public static void WrongKeyIsItsOwnErrorAndChangesNothing()
        {
            var server = Env.Server("001");
            string path = Env.DbPath();
            using (var v = Env.Open(server, path)) Env.SignIn(v, server, "ada");
            byte[] before = Hash(path);
            var e = Assert.Throws<WrongKeyException>(() => TokenVault.OpenWithKey(path, Env.OtherKey), "wrong key");
            Assert.Equal(StatusCode.WrongKey, e.Code, "code");
            Assert.True(e is TokenVaultException, "base class");
            Assert.Throws<WrongKeyException>(() => TokenVault.OpenWithPassphrase(path, "guess"), "wrong passphrase");
            Assert.True(before.SequenceEqual(Hash(path)), "file untouched");
            using (var v = TokenVault.OpenWithKey(path, Env.Key))
            {
                Assert.Equal(1, v.ListAccounts().Length, "still there");
                v.RekeyWithPassphrase("new passphrase");
            }
            // Two key slots: until the new secret opened the vault once, the old key still opens
            // it (a game that crashed before saving its new key is not locked out)...
            using (var v = TokenVault.OpenWithKey(path, Env.Key))
                Assert.Equal(1, v.ListAccounts().Length, "old key before the new one was used");
            using (var v = TokenVault.OpenWithKey(path, Env.Key))
                Assert.Equal(1, v.ListAccounts().Length, "old key, again");
            // ...and the first open with the new secret retires it.
            using (var v = TokenVault.OpenWithPassphrase(path, "new passphrase"))
                Assert.Equal(1, v.ListAccounts().Length, "new passphrase");
            before = Hash(path);
            Assert.Throws<WrongKeyException>(() => TokenVault.OpenWithKey(path, Env.Key), "old key after the new one was used");
            Assert.True(before.SequenceEqual(Hash(path)), "file untouched by the refused key");

            // Back to a raw key: the passphrase keeps opening until the key was used once.
            using (var v = TokenVault.OpenWithPassphrase(path, "new passphrase")) v.Rekey(Env.OtherKey);
            TokenVault.OpenWithPassphrase(path, "new passphrase").Dispose();
            using (var v = TokenVault.OpenWithKey(path, Env.OtherKey))
                Assert.Equal(1, v.ListAccounts().Length, "new key");
            Assert.Throws<WrongKeyException>(() => TokenVault.OpenWithPassphrase(path, "new passphrase"), "old passphrase after the new key was used");
            Assert.Throws<WrongKeyException>(() => TokenVault.OpenWithKey(path, Env.Key), "the first key");
        }

        [Test]
        public static void ReauthenticationRequiredAfterServerSideLogout()
        {
            var server = Env.Server("001");
            using (var v = Env.Open(server))
            {
                var expired = new ManualResetEvent(false);
                string reason = null;
                v.SetEventHandler(e => { if (e.Kind == VaultEventKind.SessionExpired) { reason = e.Reason; expired.Set(); } });
                Env.SignIn(v, server, "ada");
                string token = v.AccessToken("ada");
                Assert.Equal(200, server.Post("/test/revoke", "{\"token\":\"" + token + "\"}"), "revoked");
                var e1 = Assert.Throws<ReauthenticationRequiredException>(() => v.ForceRefresh("ada"), "refused");
                Assert.Equal(StatusCode.ReauthenticationRequired, e1.Code, "code");
                Assert.True(!e1.Message.Contains(token), "no token in messages");
                Assert.True(expired.WaitOne(5000), "expired event");
                Assert.True(!string.IsNullOrEmpty(reason), "reason");
                Assert.Equal(SessionState.ReauthenticationRequired, v.GetSessionInfo("ada").State, "state");
            }
        }

        [Test]
        public static void InvalidInputEverywhere()
        {
            var server = Env.Server("001");
            Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithKey(Env.DbPath(), new byte[31]), "short key");
            Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithKey(Env.DbPath(), null), "null key");
            Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithKey(null, Env.Key), "null path");
            Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithKey("", Env.Key), "empty path");
            Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithPassphrase(Env.DbPath(), ""), "empty passphrase");
            using (var v = Env.Open(server))
            {
                Assert.Throws<InvalidInputException>(() => v.LoadProfileJson("not json"), "bad profile");
                Assert.Throws<InvalidInputException>(() => v.LoadProfileJson("{\"preset\":\"nope\"}"), "unknown preset");
                Assert.Throws<InvalidInputException>(() => v.Store(new Session { Account = "ada", Profile = "game", AccessToken = "" }), "empty token");
                Assert.Throws<InvalidInputException>(() => v.Store(new Session { Account = "ada", Profile = "game" }), "null token");
                Assert.Throws<NotFoundException>(() => v.AccessToken("nobody"), "no session");
                Assert.Throws<InvalidInputException>(() => v.AccessToken(null), "null account");
                Assert.Throws<InvalidInputException>(() => v.AccessToken("a\0b"), "NUL inside");
                // A lone surrogate cannot become UTF-8: refused before crossing.
                Assert.Throws<InvalidInputException>(() => v.AccessToken("bad\ud800"), "lone surrogate");
                Env.SignIn(v, server, "ada");
                var attempt = v.BeginRefresh("ada", true);
                Assert.Throws<InvalidInputException>(() => v.FailRefresh(attempt, (TransportFailure)0), "not a failure kind");
                Assert.Throws<InvalidInputException>(() => v.FinishRefresh(new RefreshAttempt { Id = 999999 }, 200, null, null), "unknown attempt");
                Assert.Throws<TransientException>(() => v.FailRefresh(attempt, TransportFailure.Timeout), "forced + timeout");

                // Invalid UTF-8 is unreachable through the API (C# strings are UTF-16, encoded by us);
                // the raw entry point refuses it with the same exception.
                unsafe
                {
                    byte[] bad = { 0xC3, 0x28, 0 };
                    NativeBuf buf;
                    ulong gen;
                    byte changed;
                    int status;
                    fixed (byte* p = bad) status = Native.tv_vault_token_if_changed(v.Handle, p, 0, 0, out buf, out gen, out changed);
                    var e = Errors.From(status);
                    Assert.True(e is InvalidInputException && e.Message.Contains("UTF-8"), e.Message);
                    fixed (byte* p = bad) status = Native.tv_vault_load_profile_json(v.Handle, p);
                    Assert.Equal((int)StatusCode.InvalidInput, status, "profile json");
                }
            }
        }

        [Test]
        public static void UseAfterDisposeAndAfterClose()
        {
            var server = Env.Server("001");
            var v = Env.Open(server);
            Env.SignIn(v, server, "ada");
            var reader = v.Cached("ada");
            reader.Get();
            v.Close();
            v.Close();
            Assert.Equal(StatusCode.Closed, Assert.Throws<VaultClosedException>(() => v.AccessToken("ada"), "closed").Code, "code");
            Assert.Throws<VaultClosedException>(() => v.SetTransport(new WebRequestTransport()), "closed transport");
            v.Dispose();
            v.Dispose();
            Assert.Throws<ObjectDisposedException>(() => v.AccessToken("ada"), "AccessToken");
            Assert.Throws<ObjectDisposedException>(() => reader.Get(), "a reader of a disposed vault");
            Assert.Throws<ObjectDisposedException>(() => v.ForceRefresh("ada"), "ForceRefresh");
            Assert.Throws<ObjectDisposedException>(() => v.ListAccounts(), "ListAccounts");
            Assert.Throws<ObjectDisposedException>(() => v.GetSessionInfo("ada"), "GetSessionInfo");
            Assert.Throws<ObjectDisposedException>(() => v.BeginRefresh("ada", true), "BeginRefresh");
            Assert.Throws<ObjectDisposedException>(() => v.SetEventHandler(e => { }), "SetEventHandler");
            Assert.Throws<ObjectDisposedException>(v.Close, "Close");
        }

        [Test]
        public static void DisposeFromInsideTheEventHandlerDoesNotDeadlock()
        {
            var server = Env.Server("001");
            long handles = HandleCounter.Live;
            var v = Env.Open(server);
            var done = new ManualResetEvent(false);
            v.SetEventHandler(e => { v.Dispose(); done.Set(); });
            Env.SignIn(v, server, "ada");
            v.Remove("ada");
            Assert.True(done.WaitOne(5000), "handler ran");
            Assert.True(Env.Eventually(() => HandleCounter.Live == handles), "released on the pool");
            Assert.Throws<ObjectDisposedException>(() => v.AccessToken("ada"), "disposed");
        }

        // ---- GC, finalizers ----------------------------------------------------------------

        [Test]
        public static void CallbacksSurviveGarbageCollection()
        {
            var server = Env.Server("001");
            using (var v = Env.Open(server))
            {
                long states = Callbacks.LiveStates;
                var got = new ManualResetEvent(false);
                int before = WebRequestTransport.AllCalls;
                InstallUnreferencedCallbacks(v, got);
                Assert.Equal(states + 2, Callbacks.LiveStates, "two GCHandles held by the library");
                for (int i = 0; i < 3; i++) { GC.Collect(); GC.WaitForPendingFinalizers(); }
                Env.SignIn(v, server, "ada");
                v.ForceRefresh("ada");
                Assert.Equal(before + 1, WebRequestTransport.AllCalls, "the collected-looking transport ran");
                Assert.True(got.WaitOne(5000), "the event handler ran");
                // Replacing them hands the GCHandles back (destroy callback).
                v.SetTransport(null);
                v.SetEventHandler(null);
                // (The event handler's is handed back once its last call has returned.)
                Assert.True(Env.Eventually(() => Callbacks.LiveStates == states), "GCHandles freed: " + (Callbacks.LiveStates - states));
            }
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void InstallUnreferencedCallbacks(TokenVault v, ManualResetEvent got)
        {
            v.SetTransport(new WebRequestTransport());
            v.SetEventHandler(e => got.Set());
        }

        [Test]
        public static void AThousandUndisposedHandlesAreReleasedByTheFinalizer()
        {
            var server = Env.Server("001");
            string path = Env.DbPath();
            using (var v = Env.Open(server, path)) Env.SignIn(v, server, "ada");
            Collect();
            long handles = HandleCounter.Live;
            long states = Callbacks.LiveStates;
            for (int batch = 0; batch < 10; batch++)
            {
                LeakVaults(path, 100);
                Collect();
            }
            // Mono scans stacks conservatively: allow a stray few to be still reachable.
            Assert.True(Env.Eventually(() => { Collect(); return HandleCounter.Live - handles <= 3; }), "live handles: " + (HandleCounter.Live - handles));
            Assert.True(Callbacks.LiveStates - states <= 6, "GCHandles: " + (Callbacks.LiveStates - states));
            using (var v = TokenVault.OpenWithKey(path, Env.Key)) Assert.Equal(1, v.ListAccounts().Length, "the file is fine");
        }

        private static void Collect()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void LeakVaults(string path, int n)
        {
            for (int i = 0; i < n; i++)
            {
                var v = TokenVault.OpenWithKey(path, Env.Key);
                v.AccessToken("ada");
                if (i % 10 == 0)
                {
                    v.SetTransport(new WebRequestTransport());
                    v.SetEventHandler(e => { });
                }
            }
        }

        // ---- threads -------------------------------------------------------------------------

        [Test]
        public static void ManyCSharpThreadsReadWhileOneRefreshes()
        {
            var server = Env.Server("002", "--access-ttl-ms", "60000");
            using (var v = TokenVault.OpenWithKey(Env.DbPath(), Env.Key))
            {
                v.LoadProfileJson("{\"preset\":\"rotating-bearer-versioned\",\"name\":\"game\",\"url\":\"" + server.BaseUrl + "/User/RefreshToken\"}");
                var transport = new WebRequestTransport();
                v.SetTransport(transport);
                Env.SignIn(v, server, "ada");
                string first = v.AccessToken("ada");
                var seen = new HashSet<string>();
                int failures = 0;
                var start = new ManualResetEvent(false);
                var threads = Enumerable.Range(0, 8).Select(i => new Thread(() =>
                {
                    start.WaitOne();
                    var local = new HashSet<string>();
                    for (int k = 0; k < 5000; k++)
                    {
                        try { local.Add(i % 2 == 0 ? v.AccessToken("ada") : v.Cached("ada").Get()); }
                        catch (Exception) { Interlocked.Increment(ref failures); }
                    }
                    lock (seen) seen.UnionWith(local);
                })).ToList();
                threads.ForEach(t => t.Start());
                start.Set();
                string refreshed = v.ForceRefresh("ada");
                threads.ForEach(t => t.Join());
                Assert.Equal(0, failures, "failed reads");
                Assert.True(seen.IsSubsetOf(new[] { first, refreshed }), "only the two tokens were seen");
                Assert.Equal(refreshed, v.AccessToken("ada"), "current");
                Assert.Equal(1, transport.Calls, "one refresh");

                // Eight threads report the same rejected token at once: exactly one refresh.
                var barrier = new Barrier(8);
                var results = new string[8];
                var reporters = Enumerable.Range(0, 8).Select(i => new Thread(() =>
                {
                    barrier.SignalAndWait();
                    results[i] = v.ReportRejected("ada", refreshed);
                })).ToList();
                reporters.ForEach(t => t.Start());
                reporters.ForEach(t => t.Join());
                Assert.Equal(1, results.Distinct().Count(), "one new token for all");
                Assert.NotEqual(refreshed, results[0], "refreshed");
                Assert.Equal(2, transport.Calls, "single flight");
                Assert.Equal(2L, server.Stat("refresh_successes"), "server saw two refreshes");
            }
        }

        private static byte[] Hash(string path)
        {
            using (var sha = SHA256.Create())
            using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
                return sha.ComputeHash(f);
        }
    }
}
