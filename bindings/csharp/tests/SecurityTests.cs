// The C# side of the core's state protections: a session bound to its endpoint's origin
// (MoveSession), the host anchor that refuses an old copy of the whole vault file
// (IVaultAnchor through tv_anchor callbacks), and the two key slots of a rekey.

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Threading;

namespace Tokenvault.Tests
{
    /// <summary>An anchor kept in a file elsewhere than the vault (a stand-in for the Keychain):
    /// one object per open, as after a restart of the game.</summary>
    public sealed class FileAnchor : IVaultAnchor
    {
        private readonly string path;
        public int Loads, Stores;

        public FileAnchor(string path) { this.path = path; }

        public static ulong? Read(string path)
        {
            return File.Exists(path) ? ulong.Parse(File.ReadAllText(path)) : (ulong?)null;
        }

        public bool TryLoad(out ulong counter)
        {
            Interlocked.Increment(ref Loads);
            ulong? c = Read(path);
            counter = c.GetValueOrDefault();
            return c.HasValue;
        }

        public void Store(ulong counter)
        {
            Interlocked.Increment(ref Stores);
            File.WriteAllText(path, counter.ToString());
        }
    }

    /// <summary>An anchor in a field, that can be told to fail like a locked Keychain.</summary>
    public sealed class FieldAnchor : IVaultAnchor
    {
        public ulong? Counter;
        public volatile bool LoadThrows, StoreThrows;
        public int Stores;

        public bool TryLoad(out ulong counter)
        {
            if (LoadThrows) throw new IOException("keychain locked (load)");
            counter = Counter.GetValueOrDefault();
            return Counter.HasValue;
        }

        public void Store(ulong counter)
        {
            Interlocked.Increment(ref Stores);
            if (StoreThrows) throw new IOException("keychain locked (store)");
            Counter = counter;
        }
    }

    public static class SecurityTests
    {
        private static string Profile(string url, string name = "game")
        {
            return "{\"preset\":\"rotating-success-envelope\",\"name\":\"" + name + "\",\"url\":\"" + url + "\"}";
        }

        /// <summary>A loopback port where nothing listens (bound, then released).</summary>
        private static int DeadPort()
        {
            var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            int port = ((IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            return port;
        }

        // ---- sessions bound to their endpoint ----------------------------------------------------

        [Test]
        public static void MoveSessionRebindsTheSessionToTheProfilesNewEndpoint()
        {
            var server = Env.Server("001");
            string home = server.BaseUrl + "/v2/Auth/RefreshToken";
            using (var v = Env.Open(server))
            {
                var transport = new WebRequestTransport();
                var urls = new List<string>();
                transport.OnCall = r => { lock (urls) urls.Add(r.Url); };
                v.SetTransport(transport);
                Env.SignIn(v, server, "ada");
                string t1 = v.AccessToken("ada");

                // The profile registered again under the same name, on another origin (another
                // port): the refresh credential is not sent there.
                string moved = "http://127.0.0.1:" + DeadPort() + "/v2/Auth/RefreshToken";
                v.LoadProfileJson(Profile(moved));
                var e = Assert.Throws<InvalidInputException>(() => v.ForceRefresh("ada"), "refresh towards another origin");
                Assert.Equal(StatusCode.InvalidInput, e.Code, "code");
                Assert.Throws<InvalidInputException>(() => v.BeginRefresh("ada", true), "two-step refresh towards another origin");
                Assert.Equal(0, transport.Calls, "nothing was sent");
                Assert.Equal(t1, v.AccessToken("ada"), "the fresh token is still served");

                Assert.Throws<NotFoundException>(() => v.MoveSession("nobody", "game"), "no session");
                Assert.Throws<InvalidInputException>(() => v.MoveSession("ada", "no-such-profile"), "unknown profile");
                Assert.Throws<InvalidInputException>(() => v.MoveSession(null, "game"), "null account");

                // Moved: the refresh now goes to the new endpoint (nothing listens: transient).
                v.MoveSession("ada", "game");
                Assert.Throws<TransientException>(() => v.ForceRefresh("ada"), "refresh at the new endpoint");
                Assert.Equal(1, transport.Calls, "sent once");
                lock (urls) Assert.Equal(moved, urls[0], "to the new endpoint");
                Assert.Equal(t1, v.AccessToken("ada"), "session kept");
                Assert.Equal(0L, server.Stat("refresh_successes"), "the old server saw nothing");

                // Back to the real server: another origin again, refused again until moved.
                v.LoadProfileJson(Profile(home));
                Assert.Throws<InvalidInputException>(() => v.ForceRefresh("ada"), "refresh towards the first origin");
                Assert.Equal(1, transport.Calls, "still nothing sent");
                v.MoveSession("ada", "game");
                string t2 = v.ForceRefresh("ada");
                Assert.NotEqual(t1, t2, "rotated");
                Assert.Equal(2, transport.Calls, "sent");
                lock (urls) Assert.Equal(home, urls[1], "to the server");
                Assert.Equal(200, server.Protected(t2), "accepted");
                Assert.Equal(1L, server.Stat("refresh_successes"), "one refresh");

                // To a profile of another name: the session follows that profile, not "game".
                v.LoadProfileJson(Profile(home, "game-eu"));
                v.MoveSession("ada", "game-eu");
                v.LoadProfileJson(Profile(moved));
                string t3 = v.ForceRefresh("ada");
                Assert.NotEqual(t2, t3, "rotated");
                lock (urls) Assert.Equal(home, urls[2], "through game-eu");
                Assert.Equal(2L, server.Stat("refresh_successes"), "two refreshes");
            }
        }

        // ---- the host anchor -------------------------------------------------------------------

        [Test]
        public static void AnAnchorRefusesAnOldCopyOfTheWholeFile()
        {
            var server = Env.Server("001");
            string path = Env.DbPath();
            string anchorPath = Path.Combine(Env.TempDir(), "anchor.txt"); // not beside the vault
            string backup = Path.Combine(Env.TempDir(), "backup");
            long states = Callbacks.LiveStates;

            var anchor = new FileAnchor(anchorPath);
            using (var v = OpenAnchored(server, path, anchor)) Env.SignIn(v, server, "ada");
            Assert.True(anchor.Loads == 1 && anchor.Stores >= 1, "loaded once, stored " + anchor.Stores);
            ulong? first = FileAnchor.Read(anchorPath);
            Assert.True(first.HasValue, "the anchor holds the counter");
            Assert.True(Env.Eventually(() => Callbacks.LiveStates == states), "destroy ran: GCHandles " + (Callbacks.LiveStates - states));

            // A copy of the whole file, taken while it was closed.
            CopyVault(path, backup);

            // Opened again (a new anchor object, as after a restart), the GC runs, then a write.
            using (var v = OpenAnchoredUnreferenced(server, path, anchorPath))
            {
                Assert.Equal(states + 1, Callbacks.LiveStates, "the library holds the anchor");
                for (int i = 0; i < 3; i++) { GC.Collect(); GC.WaitForPendingFinalizers(); }
                Env.SignIn(v, server, "bob");
                Assert.Equal(2, v.ListAccounts().Length, "two accounts");
            }
            ulong? second = FileAnchor.Read(anchorPath);
            Assert.True(second.HasValue && second.Value > first.Value, "the counter grew: " + first + " -> " + second);
            Assert.True(Env.Eventually(() => Callbacks.LiveStates == states), "destroy ran again");

            // The old copy restored over the vault: refused, and left exactly as it was.
            CopyVault(backup, path);
            byte[] before = Hash(path);
            var e = Assert.Throws<CorruptException>(() => TokenVault.OpenWithKey(path, Env.Key, new FileAnchor(anchorPath)), "restored copy");
            Assert.Equal(StatusCode.Corrupt, e.Code, "code");
            Assert.Throws<WrongKeyException>(() => TokenVault.OpenWithPassphrase(path, "not the key", new FileAnchor(anchorPath)), "a wrong secret is still WrongKey");
            Assert.True(before.SequenceEqual(Hash(path)), "the file is unchanged");
            Assert.Equal(second, FileAnchor.Read(anchorPath), "the anchor is unchanged");
            Assert.Equal(states, Callbacks.LiveStates, "a refused open hands the GCHandle back");

            // The documented limit: without the anchor nothing is checked.
            using (var v = TokenVault.OpenWithKey(path, Env.Key))
                Assert.Equal("ada", string.Join(",", v.ListAccounts()), "the old copy's sessions");
        }

        [Test]
        public static void AnAnchorThatThrowsFailsTheOpenWithoutACrash()
        {
            var server = Env.Server("001");
            string path = Env.DbPath();
            long states = Callbacks.LiveStates;
            var reported = new List<Exception>();
            Action<Exception> reporter = x => { lock (reported) reported.Add(x); };
            TokenVault.UnhandledCallbackException += reporter;
            try
            {
                Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithKey(path, Env.Key, null), "null anchor");

                var locked = new FieldAnchor { LoadThrows = true };
                var e = Assert.Throws<StorageUnavailableException>(() => TokenVault.OpenWithKey(path, Env.Key, locked), "load throws");
                Assert.Equal(StatusCode.StorageUnavailable, e.Code, "code");
                Assert.Throws<StorageUnavailableException>(() => TokenVault.OpenWithPassphrase(Env.DbPath(), "pass phrase", locked), "load throws (passphrase)");
                lock (reported) Assert.Equal(2, reported.Count(x => x.Message == "keychain locked (load)"), "reported");
                Assert.Equal(states, Callbacks.LiveStates, "failed opens hand the GCHandle back");

                // A failing Store: the write is committed anyway; the counter is stored after the next one.
                var flaky = new FieldAnchor { StoreThrows = true };
                using (var v = TokenVault.OpenWithKey(path, Env.Key, flaky))
                {
                    v.LoadProfileJson(Profile(server.BaseUrl + "/v2/Auth/RefreshToken"));
                    Env.SignIn(v, server, "ada");
                    Assert.Equal(1, v.ListAccounts().Length, "stored");
                    Assert.True(flaky.Stores >= 1 && flaky.Counter == null, "store failed");
                    lock (reported) Assert.True(reported.Any(x => x.Message == "keychain locked (store)"), "reported");
                    flaky.StoreThrows = false;
                    Env.SignIn(v, server, "bob");
                    Assert.True(flaky.Counter.HasValue, "stored after the next write");
                }
                Assert.True(Env.Eventually(() => Callbacks.LiveStates == states), "destroy ran");

                // The passphrase overload, on a new file, with a new (empty) anchor.
                var fresh = new FieldAnchor();
                string other = Env.DbPath();
                using (var v = TokenVault.OpenWithPassphraseAsync(other, "pass phrase", fresh).Result)
                    Assert.Equal(0, v.ListAccounts().Length, "opened");
                Assert.True(fresh.Counter.HasValue, "stored at open");
                fresh.Counter = fresh.Counter.Value + 1; // an anchor ahead of the file
                Assert.Throws<CorruptException>(() => TokenVault.OpenWithPassphrase(other, "pass phrase", fresh), "anchor ahead of the file");
                Assert.Equal(states, Callbacks.LiveStates, "GCHandles");
            }
            finally
            {
                TokenVault.UnhandledCallbackException -= reporter;
            }
        }

        [Test]
        public static void AnAnchorThatOutlivedTheVaultFileStartsAgainWithANewFile()
        {
            // An iOS Keychain item survives the app's uninstall: on reinstall the anchor is ahead
            // of the new, empty vault. A vault created anew has nothing to roll back to: it
            // resets the anchor to its own counter instead of refusing the new file.
            string path = Env.DbPath();
            var anchor = new FieldAnchor { Counter = 1000 };
            using (var v = TokenVault.OpenWithKey(path, Env.Key, anchor))
                Assert.Equal(0, v.ListAccounts().Length, "a new vault");
            Assert.True(anchor.Counter.HasValue && anchor.Counter.Value < 1000, "anchored again: " + anchor.Counter);
            using (var v = TokenVault.OpenWithKey(path, Env.Key, anchor))
                Assert.Equal(0, v.ListAccounts().Length, "and it opens again");
        }

        private static TokenVault OpenAnchored(ReferenceServer server, string path, IVaultAnchor anchor)
        {
            var v = TokenVault.OpenWithKey(path, Env.Key, anchor);
            v.LoadProfileJson(Profile(server.BaseUrl + "/v2/Auth/RefreshToken"));
            return v;
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static TokenVault OpenAnchoredUnreferenced(ReferenceServer server, string path, string anchorPath)
        {
            return OpenAnchored(server, path, new FileAnchor(anchorPath));
        }

        /// <summary>Copy the vault file and its -wal/-shm (when present) over <paramref name="to"/>'s.</summary>
        private static void CopyVault(string from, string to)
        {
            foreach (string suffix in new[] { "", "-wal", "-shm" })
            {
                if (File.Exists(from + suffix)) File.Copy(from + suffix, to + suffix, true);
                else if (File.Exists(to + suffix)) File.Delete(to + suffix);
            }
        }

        internal static byte[] Hash(string path)
        {
            using (var sha = SHA256.Create())
            using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
                return sha.ComputeHash(f);
        }
    }
}
