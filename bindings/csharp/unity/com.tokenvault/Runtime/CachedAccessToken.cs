// The hot path: one account's access token as a .NET string that is built once per token.
//
// Building a .NET string from ~900 UTF-8 bytes costs ~475 ns on Mono, the P/Invoke itself ~60.
// This reader keeps the last string with its generation and asks the core, in one native call
// that copies nothing, whether that generation is still the current, fresh token
// (tv_vault_token_if_changed). Only when the core answers "changed" — a refresh, a new store —
// do bytes cross and a new string get built. The core still makes every refresh decision: this
// class has no clock and no notion of expiry.

using System;

namespace Tokenvault
{
    /// <summary>Reads one account's access token cheaply and repeatedly; thread-safe. Get it from
    /// <see cref="TokenVault.Cached"/> (or just call <see cref="TokenVault.AccessToken(string)"/>,
    /// which uses one per account).</summary>
    public sealed unsafe class CachedAccessToken
    {
        private sealed class Snapshot
        {
            internal readonly string Token;
            internal readonly ulong Generation;
            internal Snapshot(string token, ulong generation) { Token = token; Generation = generation; }
        }

        private readonly TokenVault vault;
        private readonly byte[] account; // NUL-terminated UTF-8, encoded once
        private volatile Snapshot last;

        internal CachedAccessToken(TokenVault vault, string account)
        {
            this.vault = vault;
            Account = account;
            this.account = Utf8.Encode(account, "account") ?? throw new InvalidInputException("invalid input: `account` is null");
        }

        public string Account { get; private set; }

        /// <summary>Generation of the token last returned (0 before the first read).</summary>
        public ulong Generation { get { var s = last; return s == null ? 0 : s.Generation; } }

        /// <summary>A valid access token: the same string instance as last time while the core says
        /// it is current and fresh, a new one after a refresh. May refresh (blocking) when due.</summary>
        public string Get() { return Get(0); }

        /// <summary>As <see cref="Get()"/>, for a token that stays valid at least <paramref name="minTtl"/>.</summary>
        public string Get(TimeSpan minTtl) { return Get(TokenVault.Millis(minTtl)); }

        private string Get(ulong minTtlMs)
        {
            Snapshot s = last;
            ulong known = s == null ? 0 : s.Generation;
            NativeBuf buf;
            ulong generation;
            byte changed;
            int status;
            VaultHandle handle = vault.Handle;
            fixed (byte* a = account)
                status = Native.tv_vault_token_if_changed(handle, a, minTtlMs, known, out buf, out generation, out changed);
            if (status != 0) throw Errors.From(status);
            if (changed == 0) return s.Token;
            try
            {
                string token = Utf8.Decode(buf.Data, (int)buf.Len.ToUInt64());
                last = new Snapshot(token, generation);
                return token;
            }
            finally
            {
                Native.tv_buf_free(ref buf);
            }
        }
    }
}
