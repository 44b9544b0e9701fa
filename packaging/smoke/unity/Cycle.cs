// The store/read cycle with the Unity package's runtime, compiled by Mono's compiler as Unity
// compiles it (C# 7.2, unsafe code allowed): open a vault in the folder given as the first
// argument with a 32-byte raw key, register a profile, store a session, read its access token
// back, close; open again and read it again. Prints "cycle ok" last and exits 0, or throws.
using System;
using System.IO;
using Tokenvault;

internal static class Cycle
{
    private const string Profile =
        "{\"preset\":\"oauth2\",\"name\":\"backend\",\"url\":\"https://auth.example.com/oauth/token\",\"client_id\":\"game\"}";
    private const string Token = "smoke-access-token-csharp";

    private static int Main(string[] args)
    {
        string path = Path.Combine(args[0], "tokens.db");
        var key = new byte[32];
        for (int i = 0; i < key.Length; i++) key[i] = (byte)(i * 7 + 1);

        using (var vault = TokenVault.OpenWithKey(path, key))
        {
            vault.LoadProfileJson(Profile);
            vault.Store(new Session
            {
                Account = "player-1", Profile = "backend", AccessToken = Token,
                RefreshCredential = "smoke-refresh-token", ExpiresIn = TimeSpan.FromHours(1),
            });
            Expect(vault.AccessToken("player-1"));
            vault.Close();
        }
        using (var vault = TokenVault.OpenWithKey(path, key))
        {
            vault.LoadProfileJson(Profile);
            Expect(vault.AccessToken("player-1"));
            vault.Close();
        }
        Console.WriteLine("cycle ok (Tokenvault.dll on Mono " + Environment.Version + ")");
        return 0;
    }

    private static void Expect(string token)
    {
        if (token != Token) throw new Exception("access token: got another token back");
    }
}
