// Test support: tests/testkit's reference server started as a child process, an HTTP helper
// for its /test routes, and a C# transport built on HttpWebRequest — the game doing the HTTP.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;

namespace Tokenvault.Tests
{
    public sealed class ReferenceServer : IDisposable
    {
        private readonly Process process;
        public readonly string BaseUrl;

        public ReferenceServer(string dialect, params string[] extraArgs)
        {
            string binary = Environment.GetEnvironmentVariable("TV_REFERENCE_SERVER");
            if (string.IsNullOrEmpty(binary)) throw new InvalidOperationException("TV_REFERENCE_SERVER is not set");
            var psi = new ProcessStartInfo(binary, "--dialect " + dialect + " " + string.Join(" ", extraArgs))
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
            };
            process = Process.Start(psi);
            string line = process.StandardOutput.ReadLine();
            if (line == null || !line.StartsWith("LISTENING ", StringComparison.Ordinal))
                throw new InvalidOperationException("reference-server said: " + line);
            BaseUrl = "http://127.0.0.1:" + line.Substring("LISTENING ".Length).Trim();
        }

        /// <summary>POST /test/login: a fresh (access, refresh) pair for <paramref name="user"/>.</summary>
        public KeyValuePair<string, string> Login(string user)
        {
            string body = Http.Send("POST", BaseUrl + "/test/login", "{\"user\":\"" + user + "\"}", null).Value;
            return new KeyValuePair<string, string>(JsonString(body, "accessToken"), JsonString(body, "refreshCredential"));
        }

        public int Post(string path, string json) { return Http.Send("POST", BaseUrl + path, json, null).Key; }

        public long Stat(string counter)
        {
            string body = Http.Send("GET", BaseUrl + "/test/stats", null, null).Value;
            var m = Regex.Match(body, "\"" + counter + "\"\\s*:\\s*(\\d+)");
            return m.Success ? long.Parse(m.Groups[1].Value) : -1;
        }

        public int Protected(string accessToken)
        {
            return Http.Send("GET", BaseUrl + "/protected", null, accessToken).Key;
        }

        public static string JsonString(string json, string key)
        {
            var m = Regex.Match(json, "\"" + key + "\"\\s*:\\s*\"([^\"]*)\"");
            return m.Success ? m.Groups[1].Value : null;
        }

        public void Dispose()
        {
            try
            {
                process.StandardInput.Close(); // the server exits at end of stdin
                if (!process.WaitForExit(5000)) process.Kill();
            }
            catch (Exception) { }
            process.Dispose();
        }
    }

    public static class Http
    {
        static Http()
        {
            ServicePointManager.Expect100Continue = false;
        }

        /// <summary>(status, body) of one exchange; HTTP errors are answers, not exceptions.</summary>
        public static KeyValuePair<int, string> Send(string method, string url, string json, string bearer)
        {
            var req = (HttpWebRequest)WebRequest.Create(url);
            req.Method = method;
            req.Proxy = null;
            req.KeepAlive = false;
            req.Timeout = 10000;
            if (bearer != null) req.Headers["Authorization"] = "Bearer " + bearer;
            if (json != null)
            {
                byte[] b = Encoding.UTF8.GetBytes(json);
                req.ContentType = "application/json";
                req.ContentLength = b.Length;
                using (var s = req.GetRequestStream()) s.Write(b, 0, b.Length);
            }
            HttpWebResponse resp;
            try { resp = (HttpWebResponse)req.GetResponse(); }
            catch (WebException e) when (e.Response != null) { resp = (HttpWebResponse)e.Response; }
            using (resp)
            using (var r = new StreamReader(resp.GetResponseStream(), Encoding.UTF8))
                return new KeyValuePair<int, string>((int)resp.StatusCode, r.ReadToEnd());
        }
    }

    /// <summary>The game's own HTTP client as the vault's transport (HttpWebRequest).</summary>
    public sealed class WebRequestTransport : IRefreshTransport
    {
        public int Calls;
        public static int AllCalls;
        public Action<RefreshRequest> OnCall;

        static WebRequestTransport()
        {
            ServicePointManager.Expect100Continue = false;
        }

        public RefreshResponse Send(RefreshRequest r)
        {
            Interlocked.Increment(ref Calls);
            Interlocked.Increment(ref AllCalls);
            var onCall = OnCall;
            if (onCall != null) onCall(r);
            var req = (HttpWebRequest)WebRequest.Create(r.Url);
            req.Method = r.Method;
            req.Proxy = null;
            req.AllowAutoRedirect = false;
            req.KeepAlive = false;
            req.Timeout = (int)Math.Min(int.MaxValue, r.Timeout.TotalMilliseconds);
            req.ReadWriteTimeout = req.Timeout;
            foreach (var h in r.Headers)
            {
                // HttpWebRequest keeps a few headers as properties.
                if (string.Equals(h.Key, "Content-Type", StringComparison.OrdinalIgnoreCase)) req.ContentType = h.Value;
                else if (string.Equals(h.Key, "Accept", StringComparison.OrdinalIgnoreCase)) req.Accept = h.Value;
                else if (string.Equals(h.Key, "User-Agent", StringComparison.OrdinalIgnoreCase)) req.UserAgent = h.Value;
                else req.Headers[h.Key] = h.Value;
            }
            HttpWebResponse resp;
            try
            {
                req.ContentLength = r.Body.Length;
                using (var s = req.GetRequestStream()) s.Write(r.Body, 0, r.Body.Length);
                resp = (HttpWebResponse)req.GetResponse();
            }
            catch (WebException e) when (e.Response != null)
            {
                resp = (HttpWebResponse)e.Response;
            }
            catch (WebException e)
            {
                TransportFailure f = e.Status == WebExceptionStatus.Timeout ? TransportFailure.Timeout
                    : e.Status == WebExceptionStatus.ConnectFailure || e.Status == WebExceptionStatus.NameResolutionFailure ? TransportFailure.Connect
                    : TransportFailure.Io;
                throw new TransportException(f, "HttpWebRequest: " + e.Status, e);
            }
            using (resp)
            {
                var answer = new RefreshResponse { Status = (int)resp.StatusCode };
                foreach (string name in resp.Headers.AllKeys)
                    answer.Headers.Add(new KeyValuePair<string, string>(name, resp.Headers[name]));
                using (var s = resp.GetResponseStream())
                using (var ms = new MemoryStream())
                {
                    var chunk = new byte[8192];
                    int n;
                    while ((n = s.Read(chunk, 0, chunk.Length)) > 0)
                    {
                        ms.Write(chunk, 0, n);
                        if (ms.Length > r.MaxResponseBytes) throw new TransportException(TransportFailure.TooLarge, "response too large");
                    }
                    answer.Body = ms.ToArray();
                }
                return answer;
            }
        }
    }

    /// <summary>Shared state of the run: temp directories and servers, cleaned up at exit.</summary>
    public static class Env
    {
        private static readonly List<IDisposable> cleanup = new List<IDisposable>();
        private static readonly List<string> dirs = new List<string>();
        public static readonly byte[] Key = MakeKey(1);
        public static readonly byte[] OtherKey = MakeKey(2);

        public static byte[] MakeKey(byte seed)
        {
            var k = new byte[32];
            for (int i = 0; i < k.Length; i++) k[i] = (byte)(seed + i);
            return k;
        }

        public static ReferenceServer Server(string dialect, params string[] args)
        {
            var s = new ReferenceServer(dialect, args);
            lock (cleanup) cleanup.Add(s);
            return s;
        }

        public static string TempDir()
        {
            string d = Path.Combine(Path.GetTempPath(), "tokenvault-cs-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(d);
            lock (dirs) dirs.Add(d);
            return d;
        }

        public static string DbPath() { return Path.Combine(TempDir(), "vault.db"); }

        /// <summary>A vault with the seed-001 profile ("game") pointing at <paramref name="server"/>.</summary>
        public static TokenVault Open(ReferenceServer server, string path = null)
        {
            var v = TokenVault.OpenWithKey(path ?? DbPath(), Key);
            v.LoadProfileJson("{\"preset\":\"rotating-success-envelope\",\"name\":\"game\",\"url\":\"" + server.BaseUrl + "/v2/Auth/RefreshToken\"}");
            return v;
        }

        public static SessionInfo SignIn(TokenVault v, ReferenceServer server, string account)
        {
            var pair = server.Login(account);
            return v.Store(new Session
            {
                Account = account,
                Profile = "game",
                AccessToken = pair.Key,
                RefreshCredential = pair.Value,
                TokenType = "Bearer",
                Hints = new Dictionary<string, string> { { "display_name", "Ada \"the\" Player" } },
            });
        }

        /// <summary>Wait until <paramref name="condition"/> holds (5 s at most).</summary>
        public static bool Eventually(Func<bool> condition)
        {
            var sw = Stopwatch.StartNew();
            while (sw.ElapsedMilliseconds < 5000)
            {
                if (condition()) return true;
                Thread.Sleep(5);
            }
            return condition();
        }

        public static void Shutdown()
        {
            lock (cleanup) { foreach (var c in cleanup) c.Dispose(); cleanup.Clear(); }
            lock (dirs)
            {
                foreach (var d in dirs) { try { Directory.Delete(d, true); } catch (Exception) { } }
                dirs.Clear();
            }
        }
    }
}
