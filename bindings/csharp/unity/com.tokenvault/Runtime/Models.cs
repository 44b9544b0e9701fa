// Plain data the vault takes and returns. No behaviour: every decision is the core's.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Tokenvault
{
    /// <summary>A session to store, as the game's own sign-in produced it.</summary>
    public sealed class Session
    {
        /// <summary>The game's account id (required).</summary>
        public string Account;
        /// <summary>The name of a profile loaded with <see cref="TokenVault.LoadProfileJson"/> (required).</summary>
        public string Profile;
        /// <summary>The access token (required).</summary>
        public string AccessToken;
        /// <summary>The refresh token (or entity token); null if none.</summary>
        public string RefreshCredential;
        /// <summary>The access token's lifetime if the server said (expires_in); otherwise the JWT exp or the profile's default.</summary>
        public TimeSpan? ExpiresIn;
        /// <summary>The login response's expires_in exactly as it wrote it, when it is not a
        /// duration: seconds from now, or an absolute epoch time in seconds or milliseconds (a
        /// Java timestamp), told apart as the vault does for refresh responses. Set this or
        /// <see cref="ExpiresIn"/>, not both.</summary>
        public long? ExpiresInValue;
        /// <summary>The refresh credential's lifetime if the server said.</summary>
        public TimeSpan? RefreshExpiresIn;
        /// <summary>The login response's refresh_expires_in exactly as it wrote it (see
        /// <see cref="ExpiresInValue"/>). Set this or <see cref="RefreshExpiresIn"/>, not both.</summary>
        public long? RefreshExpiresInValue;
        /// <summary>True for refresh credentials that never expire by time (OAuth2 offline tokens).</summary>
        public bool Offline;
        public string TokenType;
        public string Scope;
        /// <summary>Non-secret facts to keep with the session (e.g. a display name).</summary>
        public IDictionary<string, string> Hints;

        internal string HintsJson()
        {
            if (Hints == null) return null;
            var sb = new StringBuilder("{");
            bool first = true;
            foreach (var kv in Hints)
            {
                if (!first) sb.Append(',');
                first = false;
                Json.Quote(sb, kv.Key);
                sb.Append(':');
                Json.Quote(sb, kv.Value ?? "");
            }
            return sb.Append('}').ToString();
        }
    }

    public enum SessionState
    {
        /// <summary>The access token is valid and not yet due for refresh.</summary>
        Fresh = 0,
        /// <summary>Valid but past its refresh point.</summary>
        RefreshDue = 1,
        /// <summary>Expired; the next read refreshes it.</summary>
        Expired = 2,
        /// <summary>The server refused the refresh credential: the user must sign in again.</summary>
        ReauthenticationRequired = 3,
    }

    /// <summary>Options for <see cref="TokenVault.OpenWithOptions"/>. Every value is optional:
    /// null keeps the library's default. A value out of range makes the open throw
    /// <see cref="InvalidInputException"/> before any file is touched.</summary>
    public sealed class VaultOptions
    {
        /// <summary>Fraction of the access token's lifetime after which it is refreshed
        /// (0.05 to 0.95; default 0.75).</summary>
        public double? RefreshPoint { get; set; }
        /// <summary>Spread around the refresh point, as a fraction of the lifetime (0 to 0.2;
        /// default 0.05).</summary>
        public double? Jitter { get; set; }
        /// <summary>The largest share of a token's lifetime a caller's minimum TTL may demand
        /// (0.05 to 0.9; default 0.5).</summary>
        public double? MinTtlCap { get; set; }
        /// <summary>A token counts as expired this long before its expiry (at most one hour;
        /// default 5 s; capped at 10 % of the token's lifetime).</summary>
        public TimeSpan? ExpiryMargin { get; set; }
        /// <summary>How long to wait for another process's write lock on the file (at most 10
        /// minutes; default 5 s).</summary>
        public TimeSpan? BusyTimeout { get; set; }
        /// <summary>A host anchor (see <see cref="IVaultAnchor"/>), or null.</summary>
        public IVaultAnchor Anchor { get; set; }
    }

    /// <summary>What a vault did since it was opened (<see cref="TokenVault.Metrics"/>). Counts
    /// only: no token, no account id.</summary>
    public sealed class VaultMetrics
    {
        /// <summary>Reads answered from the cache without any refresh or file access.</summary>
        public ulong CachedHits { get; internal set; }
        /// <summary>Refresh requests the vault built to send (blocking and two-step).</summary>
        public ulong RefreshesStarted { get; internal set; }
        /// <summary>Attempts that ended with a stored pair.</summary>
        public ulong RefreshesSucceeded { get; internal set; }
        /// <summary>Attempts that ended with an error, all codes together.</summary>
        public ulong RefreshesFailed { get; internal set; }
        /// <summary>The same by status (codes that never occurred are left out).</summary>
        public IDictionary<StatusCode, ulong> RefreshesFailedByCode { get; internal set; }
        /// <summary>Callers that waited for a refresh already in flight in this vault.</summary>
        public ulong SingleFlightJoins { get; internal set; }
        /// <summary>Times the account's cross-process refresh lock was held by a peer.</summary>
        public ulong LockWaits { get; internal set; }
        /// <summary>Times this vault refreshed after waiting for a peer that left no new pair.</summary>
        public ulong LockTakeovers { get; internal set; }
        /// <summary>Attempts that found an earlier attempt's lost-answer marker.</summary>
        public ulong LostAnswerMarkers { get; internal set; }
        /// <summary>Requests that went through the transport.</summary>
        public ulong TransportRequests { get; internal set; }
        /// <summary>Median transport latency over the last 1,024 requests; null before any.</summary>
        public TimeSpan? TransportLatencyP50 { get; internal set; }
        /// <summary>99th percentile of the same window; null before any.</summary>
        public TimeSpan? TransportLatencyP99 { get; internal set; }
        /// <summary>Response body bytes received.</summary>
        public ulong ResponseBytes { get; internal set; }
    }

    /// <summary>Log levels, most severe first (the numbers of the C API's tv_log_level).</summary>
    public enum LogLevel
    {
        Off = 0,
        Error = 1,
        Warn = 2,
        Info = 3,
        Debug = 4,
        Trace = 5,
    }

    /// <summary>A session's facts, without secrets. Times are server time.</summary>
    public sealed class SessionInfo
    {
        public SessionState State { get; internal set; }
        /// <summary>Generation of the stored pair (grows with every refresh and store).</summary>
        public ulong Generation { get; internal set; }
        public ulong RefreshCount { get; internal set; }
        public DateTimeOffset IssuedAt { get; internal set; }
        public DateTimeOffset AccessExpiresAt { get; internal set; }
        /// <summary>Time left on the access token (negative once expired).</summary>
        public TimeSpan AccessRemaining { get; internal set; }
        /// <summary>When the refresh credential ends, if known.</summary>
        public DateTimeOffset? SessionExpiresAt { get; internal set; }
        /// <summary>Forecast of the time left before the user must sign in again, if known.</summary>
        public TimeSpan? SessionRemaining { get; internal set; }
        /// <summary>Server clock minus device clock.</summary>
        public TimeSpan ClockOffset { get; internal set; }
        /// <summary>Status of the last failed refresh since the last success, or null.</summary>
        public StatusCode? LastFailure { get; internal set; }
        public TimeSpan? LastFailureAgo { get; internal set; }
        public bool Offline { get; internal set; }
        public bool HasRefreshCredential { get; internal set; }

        internal static SessionInfo From(ref NativeSessionInfo n)
        {
            return new SessionInfo
            {
                State = (SessionState)n.State,
                Generation = n.Generation,
                RefreshCount = n.RefreshCount,
                IssuedAt = DateTimeOffset.FromUnixTimeMilliseconds(n.IssuedAtMs),
                AccessExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(n.AccessExpiresAtMs),
                AccessRemaining = TimeSpan.FromMilliseconds(n.AccessRemainingMs),
                SessionExpiresAt = n.HasSessionExpiresAt != 0 ? DateTimeOffset.FromUnixTimeMilliseconds(n.SessionExpiresAtMs) : (DateTimeOffset?)null,
                SessionRemaining = n.HasSessionRemaining != 0 ? TimeSpan.FromMilliseconds(n.SessionRemainingMs) : (TimeSpan?)null,
                ClockOffset = TimeSpan.FromMilliseconds(n.ClockOffsetMs),
                LastFailure = n.LastFailureStatus != 0 ? (StatusCode)n.LastFailureStatus : (StatusCode?)null,
                LastFailureAgo = n.LastFailureStatus != 0 ? TimeSpan.FromMilliseconds(n.LastFailureAgoMs) : (TimeSpan?)null,
                Offline = n.Offline != 0,
                HasRefreshCredential = n.HasRefreshCredential != 0,
            };
        }
    }

    /// <summary>What <see cref="TokenVault.BeginRefresh"/> decided (tv_refresh_step).</summary>
    public enum RefreshStep
    {
        /// <summary>No refresh needed (or a peer did it): read the token.</summary>
        Fresh = 0,
        /// <summary>Another refresh of this account is in flight: read the token again later.</summary>
        InFlight = 1,
        /// <summary>Send <see cref="RefreshAttempt.Request"/>, then FinishRefresh or FailRefresh.</summary>
        Send = 2,
    }

    /// <summary>A two-step refresh the game performs itself (e.g. with UnityWebRequest in a coroutine).</summary>
    public sealed class RefreshAttempt
    {
        public RefreshStep Step { get; internal set; }
        /// <summary>Identifies the attempt for FinishRefresh / FailRefresh (0 unless Step is Send).</summary>
        public ulong Id { get; internal set; }
        /// <summary>The request to send (null unless Step is Send). Contains credentials.</summary>
        public RefreshRequest Request { get; internal set; }
    }

    internal static class Json
    {
        internal static void Quote(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }
    }
}
