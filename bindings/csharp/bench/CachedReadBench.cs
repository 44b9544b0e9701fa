// The cached-token read from C# on Mono, returning a .NET string, for a ~900-byte token (as in
// bindings/c/bench/bench_cached_read.c, run by the same script). Median ns/call over several runs:
//
//   naive/copy_into_pinned_buffer+string   tv_vault_access_token_copy into a pinned byte[], then
//                                          Encoding.UTF8.GetString: bytes cross and a string is
//                                          built on every call (floor measured on the dev machine:
//                                          ~60 ns P/Invoke + ~475 ns string build; ADR 0009)
//   naive/rust_buf+string+free             tv_vault_access_token (library buffer), string, tv_buf_free
//   generation_checked/CachedAccessToken   reader.Get(): one tv_vault_token_if_changed call; the
//                                          kept string is returned while the core says unchanged
//   generation_checked/vault.AccessToken   the same through the vault's per-account reader lookup
//   control/string_from_900_utf8_bytes     Encoding.UTF8.GetString alone
//
//   mono TokenvaultBench.exe [iterations] [runs]

using System;
using System.Diagnostics;
using System.IO;
using System.Text;

namespace Tokenvault.Bench
{
    public static unsafe class CachedReadBench
    {
        private const int TokenLen = 900;
        private static int sink;

        public static int Main(string[] args)
        {
            int iters = args.Length > 0 ? int.Parse(args[0]) : 1000000;
            int runs = args.Length > 1 ? int.Parse(args[1]) : 9;
            string dir = Path.Combine(Path.GetTempPath(), "tokenvault-cs-bench-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                var key = new byte[32];
                key[0] = 7;
                using (var v = TokenVault.OpenWithKey(Path.Combine(dir, "bench.db"), key))
                {
                    v.LoadProfileJson("{\"preset\":\"oauth2\",\"name\":\"bench\",\"url\":\"https://auth.example.com/oauth/token\",\"client_id\":\"bench\"}");
                    const string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
                    var sb = new StringBuilder(TokenLen);
                    for (int i = 0; i < TokenLen; i++) sb.Append(alphabet[i % 64]);
                    string token = sb.ToString();
                    v.Store(new Session
                    {
                        Account = "player-1",
                        Profile = "bench",
                        AccessToken = token,
                        RefreshCredential = "refresh-credential-of-player-1",
                        ExpiresIn = TimeSpan.FromHours(1),
                    });

                    Console.WriteLine("tokenvault {0} from C# on Mono {1}, {2}-byte token", TokenVault.Version, MonoVersion(), TokenLen);
                    VaultHandle h = v.Handle;
                    byte[] account = Encoding.UTF8.GetBytes("player-1\0");
                    byte[] buf = new byte[4096];
                    byte[] utf8 = Encoding.UTF8.GetBytes(token);

                    Run("csharp_cached_read/naive/copy_into_pinned_buffer+string", iters, runs, () =>
                    {
                        UIntPtr len;
                        ulong gen;
                        int st;
                        fixed (byte* a = account)
                        fixed (byte* b = buf)
                        {
                            st = Native.tv_vault_access_token_copy(h, a, 0, b, (UIntPtr)buf.Length, out len, out gen);
                            if (st != 0) throw Errors.From(st);
                            return Encoding.UTF8.GetString(b, (int)len.ToUInt64());
                        }
                    });
                    Run("csharp_cached_read/naive/rust_buf+string+free", iters, runs, () =>
                    {
                        NativeBuf nb;
                        ulong gen;
                        int st;
                        fixed (byte* a = account)
                            st = Native.tv_vault_access_token(h, a, 0, out nb, out gen);
                        if (st != 0) throw Errors.From(st);
                        try { return Utf8.Decode(nb.Data, (int)nb.Len.ToUInt64()); }
                        finally { Native.tv_buf_free(ref nb); }
                    });
                    var reader = v.Cached("player-1");
                    Run("csharp_cached_read/generation_checked/CachedAccessToken.Get", iters, runs, reader.Get);
                    Run("csharp_cached_read/generation_checked/vault.AccessToken", iters, runs, () => v.AccessToken("player-1"));
                    Run("control/string_from_900_utf8_bytes", iters, runs, () => Encoding.UTF8.GetString(utf8));
                    if (reader.Get() != token) throw new Exception("wrong token");
                }
            }
            finally
            {
                try { Directory.Delete(dir, true); } catch (Exception) { }
            }
            return 0;
        }

        private static void Run(string label, int iters, int runs, Func<string> op)
        {
            for (int i = 0; i < iters / 10; i++) sink += op().Length; // warm-up (JIT, caches)
            var perCall = new double[runs];
            for (int r = 0; r < runs; r++)
            {
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < iters; i++) sink += op().Length;
                perCall[r] = sw.Elapsed.TotalMilliseconds * 1e6 / iters;
            }
            Array.Sort(perCall);
            Console.WriteLine("{0,-64} median {1,7:F1} ns/call  ({2} runs x {3}; min {4:F1}, max {5:F1})",
                label, perCall[runs / 2], runs, iters, perCall[0], perCall[runs - 1]);
        }

        private static string MonoVersion()
        {
            var t = Type.GetType("Mono.Runtime");
            var m = t == null ? null : t.GetMethod("GetDisplayName", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static);
            return m == null ? "?" : (string)m.Invoke(null, null);
        }
    }
}
