// OpenID Connect id_tokens through the C# binding, on Mono, against panva's oidc-provider
// (tests/oidc/server.mjs, `npm ci --prefix tests/oidc` first; TV_OIDC_DIR names that directory):
// the validated claims in SessionInfo.Identity after a refresh (ES256 and RS256 keys), without
// personal data in ToString(); an id_token naming another subject is a ProtocolException and
// stores nothing.

using System;
using System.Diagnostics;
using System.IO;

namespace Tokenvault.Tests
{
    public sealed class OidcProvider : IDisposable
    {
        private readonly Process process;
        public readonly string Issuer;

        public OidcProvider(string alg)
        {
            string dir = Environment.GetEnvironmentVariable("TV_OIDC_DIR");
            if (string.IsNullOrEmpty(dir)) throw new InvalidOperationException("TV_OIDC_DIR is not set");
            if (!Directory.Exists(Path.Combine(dir, "node_modules", "oidc-provider")))
                throw new InvalidOperationException("oidc-provider is not installed: run `npm ci --prefix tests/oidc`");
            string node = Environment.GetEnvironmentVariable("TOKENVAULT_NODE");
            var psi = new ProcessStartInfo(string.IsNullOrEmpty(node) ? "node" : node, "server.mjs --alg " + alg)
            {
                UseShellExecute = false,
                WorkingDirectory = dir,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
            };
            process = Process.Start(psi);
            string line = process.StandardOutput.ReadLine();
            if (line == null || !line.StartsWith("LISTENING ", StringComparison.Ordinal))
                throw new InvalidOperationException("oidc-provider said: " + line);
            Issuer = "http://127.0.0.1:" + line.Substring("LISTENING ".Length).Trim();
        }

        public string ProfileJson()
        {
            return "{\"preset\":\"oauth2\",\"name\":\"op\",\"url\":\"" + Issuer + "/token\",\"client_id\":\"tokenvault-test\"," +
                   "\"oidc\":{\"issuer\":\"" + Issuer + "\"}}";
        }

        /// <summary>The test-only bootstrap grant: (access token, refresh token).</summary>
        public string[] Bootstrap(string account)
        {
            var r = Form(Issuer + "/token",
                "grant_type=urn%3Atokenvault%3Atest%3Abootstrap&client_id=tokenvault-test&account=" + Uri.EscapeDataString(account));
            Assert.Equal(200, r.Key, "bootstrap status");
            return new[] { ReferenceServer.JsonString(r.Value, "access_token"), ReferenceServer.JsonString(r.Value, "refresh_token") };
        }

        public void NextSub(string sub)
        {
            Assert.Equal(204, Form(Issuer + "/test/next-sub?sub=" + Uri.EscapeDataString(sub), "").Key, "next-sub");
        }

        private static System.Collections.Generic.KeyValuePair<int, string> Form(string url, string form)
        {
            var req = (System.Net.HttpWebRequest)System.Net.WebRequest.Create(url);
            req.Method = "POST";
            req.Proxy = null;
            req.KeepAlive = false;
            req.Timeout = 10000;
            byte[] b = System.Text.Encoding.UTF8.GetBytes(form);
            req.ContentType = "application/x-www-form-urlencoded";
            req.ContentLength = b.Length;
            using (var s = req.GetRequestStream()) s.Write(b, 0, b.Length);
            System.Net.HttpWebResponse resp;
            try { resp = (System.Net.HttpWebResponse)req.GetResponse(); }
            catch (System.Net.WebException e) when (e.Response != null) { resp = (System.Net.HttpWebResponse)e.Response; }
            using (resp)
            using (var r = new StreamReader(resp.GetResponseStream(), System.Text.Encoding.UTF8))
                return new System.Collections.Generic.KeyValuePair<int, string>((int)resp.StatusCode, r.ReadToEnd());
        }

        public void Dispose()
        {
            try { process.StandardInput.Close(); } catch (IOException) { }
            if (!process.WaitForExit(5000)) process.Kill();
            process.Dispose();
        }
    }

    public static class OidcTests
    {
        private static TokenVault SignedIn(OidcProvider op)
        {
            var v = TokenVault.OpenWithKey(Env.DbPath(), Env.Key);
            v.LoadProfileJson(op.ProfileJson());
            string[] t = op.Bootstrap("player-1");
            v.Store(new Session { Account = "player-1", Profile = "op", AccessToken = t[0], RefreshCredential = t[1], ExpiresIn = TimeSpan.FromSeconds(60) });
            return v;
        }

        [Test]
        public static void ARefreshShowsTheValidatedIdTokenClaims()
        {
            foreach (string alg in new[] { "ES256", "RS256" })
            {
                using (var op = new OidcProvider(alg))
                using (var v = SignedIn(op))
                {
                    Assert.True(v.GetSessionInfo("player-1").Identity == null, "no claims before a refresh");
                    v.ForceRefresh("player-1");
                    var c = v.GetSessionInfo("player-1").Identity;
                    Assert.True(c != null, alg + ": claims after a refresh");
                    Assert.Equal(op.Issuer, c.Iss, "iss");
                    Assert.Equal("player-1", c.Sub, "sub");
                    Assert.Equal("Player player-1", c.Name, "name");
                    Assert.Equal("player-1@example.test", c.Email, "email");
                    Assert.Equal((bool?)true, c.EmailVerified, "email_verified");
                    Assert.Equal("https://example.test/avatars/player-1.png", c.Picture, "picture");
                    Assert.Equal("en-GB", c.Locale, "locale");
                    Assert.True(c.PhoneNumber == null, "no phone number");
                    Assert.True(Math.Abs((DateTimeOffset.UtcNow - c.IssuedAt).TotalMinutes) < 5, "iat is now");
                    string text = c.ToString();
                    Assert.True(!text.Contains("example.test") && !text.Contains("Player") && text.Contains("email"), text);
                }
            }
        }

        [Test]
        public static void AnIdTokenForAnotherSubjectIsProtocolAndStoresNothing()
        {
            using (var op = new OidcProvider("ES256"))
            using (var v = SignedIn(op))
            {
                v.ForceRefresh("player-1");
                var before = v.GetSessionInfo("player-1");
                op.NextSub("someone-else");
                var e = Assert.Throws<ProtocolException>(() => v.ForceRefresh("player-1"), "another sub");
                Assert.True(!e.Message.Contains("someone-else"), e.Message);
                var after = v.GetSessionInfo("player-1");
                Assert.Equal(before.Generation, after.Generation, "generation");
                Assert.Equal("player-1", after.Identity.Sub, "sub kept");
                Assert.Equal(before.Identity.Email, after.Identity.Email, "claims kept");
            }
        }
    }
}
