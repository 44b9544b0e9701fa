// Open options, metrics and log routing from C# on Mono, against the seed-001 reference server.

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;

namespace Tokenvault.Tests
{
    public static class ObservabilityTests
    {
        [Test]
        public static void OpenOptionsApplyAndInvalidValuesCreateNoFile()
        {
            string path = Env.DbPath();
            var bad = new[]
            {
                new VaultOptions { RefreshPoint = 0.99 },
                new VaultOptions { Jitter = -0.1 },
                new VaultOptions { MinTtlCap = 1.5 },
                new VaultOptions { ExpiryMargin = TimeSpan.FromHours(2) },
                new VaultOptions { BusyTimeout = TimeSpan.FromMinutes(11) },
            };
            foreach (var o in bad)
            {
                Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithOptions(path, Env.Key, null, o), "bad option");
                Assert.True(!File.Exists(path), "no file created");
            }
            Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithOptions(path, Env.Key, "pass", new VaultOptions()), "key and passphrase");
            Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithOptions(path, null, null, new VaultOptions()), "neither");
            Assert.Throws<InvalidInputException>(() => TokenVault.OpenWithOptions(path, Env.Key, null, null), "null options");

            // Refresh point 5 % of a 20 s token: due after 1 s (with the defaults, after 15 s).
            var options = new VaultOptions { RefreshPoint = 0.05, Jitter = 0.0, BusyTimeout = TimeSpan.FromSeconds(1) };
            using (var v = TokenVault.OpenWithOptions(path, null, "a passphrase", options))
            {
                v.LoadProfileJson("{\"preset\":\"oauth2\",\"name\":\"game\",\"url\":\"http://127.0.0.1:9/token\",\"client_id\":\"c\"}");
                v.Store(new Session { Account = "p", Profile = "game", AccessToken = new string('a', 40), RefreshCredential = new string('r', 40), ExpiresIn = TimeSpan.FromSeconds(20) });
                Assert.Equal(SessionState.Fresh, v.GetSessionInfo("p").State, "state at first");
                Thread.Sleep(1200);
                Assert.Equal(SessionState.RefreshDue, v.GetSessionInfo("p").State, "state after 1.2 s");
            }
        }

        [Test]
        public static void MetricsCountHitsRefreshesAndFailuresByCode()
        {
            var server = Env.Server("001");
            using (var v = Env.Open(server))
            {
                Assert.Equal(0UL, v.Metrics().CachedHits, "no hit yet");
                Env.SignIn(v, server, "player");
                for (int i = 0; i < 10; i++) v.AccessToken("player");
                v.ForceRefresh("player");
                var m = v.Metrics();
                Assert.True(m.CachedHits >= 9, "cached hits: " + m.CachedHits);
                Assert.Equal(1UL, m.RefreshesStarted, "started");
                Assert.Equal(1UL, m.RefreshesSucceeded, "succeeded");
                Assert.Equal(1UL, m.TransportRequests, "requests");
                Assert.True(m.ResponseBytes > 100, "bytes");
                Assert.True(m.TransportLatencyP50.Value > TimeSpan.Zero && m.TransportLatencyP99.Value >= m.TransportLatencyP50.Value, "latency");

                v.Store(new Session { Account = "stranger", Profile = "game", AccessToken = new string('x', 40), RefreshCredential = new string('y', 40) });
                Assert.Throws<ReauthenticationRequiredException>(() => v.ForceRefresh("stranger"), "unknown credential");
                m = v.Metrics();
                Assert.Equal(1UL, m.RefreshesFailed, "failed");
                Assert.Equal(1, m.RefreshesFailedByCode.Count, "codes");
                Assert.Equal(1UL, m.RefreshesFailedByCode[StatusCode.ReauthenticationRequired], "by code");
                v.Close();
                Assert.Equal(2UL, v.Metrics().RefreshesStarted, "after close");
            }
        }

        [Test]
        public static void LogLinesReachTheHandlerFilteredAndWithoutSecrets()
        {
            var server = Env.Server("001");
            var lines = new List<KeyValuePair<LogLevel, string>>();
            Action<LogLevel, string, string> handler = (level, target, message) =>
            {
                lock (lines) lines.Add(new KeyValuePair<LogLevel, string>(level, target + " " + message));
            };
            using (var v = Env.Open(server))
            {
                long held = Callbacks.LiveStates;
                try
                {
                    TokenVault.SetLogHandler(LogLevel.Trace, handler);
                    var pair = server.Login("player-0c4f");
                    v.Store(new Session { Account = "player-0c4f", Profile = "game", AccessToken = pair.Key, RefreshCredential = pair.Value });
                    string rotated = v.ForceRefresh("player-0c4f");
                    v.Remove("player-0c4f");
                    List<KeyValuePair<LogLevel, string>> seen;
                    lock (lines) seen = lines.ToList();
                    Assert.True(seen.Count >= 3, "lines: " + seen.Count);
                    Assert.True(seen.Any(l => l.Key == LogLevel.Debug), "a debug line");
                    foreach (var l in seen)
                    {
                        Assert.True(l.Value.StartsWith("tokenvault", StringComparison.Ordinal), "target: " + l.Value);
                        foreach (var secret in new[] { pair.Key, pair.Value, rotated, "player-0c4f" })
                            Assert.True(!l.Value.Contains(secret), "a secret in a log line");
                    }

                    TokenVault.SetLogHandler(LogLevel.Warn, handler);
                    lock (lines) lines.Clear();
                    Env.SignIn(v, server, "second");
                    v.ForceRefresh("second");
                    lock (lines) Assert.True(lines.All(l => l.Key <= LogLevel.Warn), "only warnings and errors");
                }
                finally
                {
                    TokenVault.SetLogHandler(LogLevel.Trace, null);
                }
                Assert.True(Env.Eventually(() => Callbacks.LiveStates == held), "the handlers' GCHandles are freed");
                lock (lines) lines.Clear();
                v.ForceRefresh("second");
                lock (lines) Assert.Equal(0, lines.Count, "no line after removal");
            }
        }

        [Test]
        public static void StoreResponseTakesTheServersOwnAnswerAndAnEpochExpiry()
        {
            var server = Env.Server("001");
            using (var v = Env.Open(server))
            {
                var answer = Http.Send("POST", server.BaseUrl + "/test/login", "{\"user\":\"ada\",\"answer\":\"dialect\"}", null);
                Assert.Equal(200, answer.Key, "login status");
                var info = v.StoreResponse("ada", "game", answer.Value, DateTime.UtcNow.ToString("r"));
                Assert.True(info.HasRefreshCredential, "refresh credential stored");
                Assert.Equal(ReferenceServer.JsonString(answer.Value, "accessToken"), v.AccessToken("ada"), "the answer's token");
                string rotated = v.ForceRefresh("ada");
                Assert.Equal(200, server.Protected(rotated), "the rotated token works");
                Assert.Throws<ProtocolException>(() => v.StoreResponse("bob", "game", "{\"success\":false,\"error\":{\"type\":\"AUTHENTICATION\"}}"), "failure body");
                Assert.Throws<InvalidInputException>(() => v.StoreResponse("bob", "game", answer.Value, null, "extra"), "two credentials");
                Assert.Throws<NotFoundException>(() => v.GetSessionInfo("bob"), "nothing stored");

                // expires_in as seed 003 writes it: a Java timestamp (epoch ms), 2 s ahead.
                var pair = server.Login("eve");
                long epochMs = (long)(DateTime.UtcNow - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalMilliseconds;
                var stored = v.Store(new Session { Account = "eve", Profile = "game", AccessToken = pair.Key, RefreshCredential = pair.Value, ExpiresInValue = epochMs + 2000 });
                Assert.True(stored.AccessRemaining > TimeSpan.FromSeconds(1) && stored.AccessRemaining <= TimeSpan.FromSeconds(3), "remaining " + stored.AccessRemaining);
                Assert.Throws<InvalidInputException>(() => v.Store(new Session { Account = "eve", Profile = "game", AccessToken = pair.Key, ExpiresIn = TimeSpan.FromSeconds(1), ExpiresInValue = 5 }), "both forms");
                long before = server.Stat("refresh_successes");
                Thread.Sleep(2500); // due by then whatever the iat rounding
                v.AccessToken("eve");
                Assert.True(v.GetSessionInfo("eve").Generation > stored.Generation, "refreshed");
                Assert.Equal(before + 1, server.Stat("refresh_successes"), "one refresh");
            }
        }

        [Test]
        public static void RemoveWithRevokeReachesTheServersRfc7009Endpoint()
        {
            var server = Env.Server("001");
            using (var v = TokenVault.OpenWithKey(Env.DbPath(), Env.Key))
            {
                v.LoadProfileJson("{\"preset\":\"rotating-success-envelope\",\"name\":\"game\",\"url\":\"" + server.BaseUrl + "/v2/Auth/RefreshToken\",\"revocation_url\":\"/oauth/revoke\"}");
                Env.SignIn(v, server, "ada");
                Assert.True(v.Remove("ada", revoke: true), "removed");
                Assert.Throws<NotFoundException>(() => v.GetSessionInfo("ada"), "gone locally");
                Assert.True(Env.Eventually(() => v.PendingRevocations() == 0), "sent in the background");
                Assert.Equal(1L, server.Stat("rfc7009_revocations"), "one RFC 7009 request");
                Assert.Equal(1L, server.Stat("families_revoked"), "the family revoked");
                int pending;
                Assert.Equal(0, v.SendRevocations(out pending), "nothing left to send");
                Assert.Equal(0, pending, "nothing pending");
                Assert.True(v.PendingRevocationsJson().Contains("\"dropped\":0"), "json");
            }
        }
    }
}
