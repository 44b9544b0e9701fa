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
        /// <summary>The standard claims of the session's last validated OpenID Connect id_token
        /// (profiles with an "oidc" section), or null. Never the id_token itself.</summary>
        public IdentityClaims Identity { get; internal set; }

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

    /// <summary>The standard claims of a validated OpenID Connect id_token, as the library
    /// reports them in tv_vault_session_info_json's "identity". Personal data: ToString() shows
    /// the issuer and which claims are present, never their values.</summary>
    public sealed class IdentityClaims
    {
        /// <summary>Issuer (iss).</summary>
        public string Iss { get; private set; }
        /// <summary>Subject (sub): the user's stable id at the issuer.</summary>
        public string Sub { get; private set; }
        /// <summary>When the id_token was issued (iat), server time.</summary>
        public DateTimeOffset IssuedAt { get; private set; }
        /// <summary>When the user authenticated (auth_time), if the issuer says.</summary>
        public DateTimeOffset? AuthTime { get; private set; }
        /// <summary>Authorized party (azp).</summary>
        public string Azp { get; private set; }
        public string Name { get; private set; }
        public string GivenName { get; private set; }
        public string FamilyName { get; private set; }
        public string MiddleName { get; private set; }
        public string Nickname { get; private set; }
        public string PreferredUsername { get; private set; }
        /// <summary>The profile page's URL (profile).</summary>
        public string ProfileUrl { get; private set; }
        public string Picture { get; private set; }
        public string Website { get; private set; }
        public string Email { get; private set; }
        public bool? EmailVerified { get; private set; }
        public string Gender { get; private set; }
        public string Birthdate { get; private set; }
        public string Zoneinfo { get; private set; }
        public string Locale { get; private set; }
        public string PhoneNumber { get; private set; }
        public bool? PhoneNumberVerified { get; private set; }
        public DateTimeOffset? UpdatedAt { get; private set; }

        /// <summary>From the "identity" member of the session-info JSON (null stays null).</summary>
        internal static IdentityClaims FromJson(Dictionary<string, object> o)
        {
            if (o == null) return null;
            Func<string, string> s = k => { object v; return o.TryGetValue(k, out v) ? v as string : null; };
            Func<string, bool?> b = k => { object v; return o.TryGetValue(k, out v) && v is bool ? (bool?)(bool)v : null; };
            Func<string, DateTimeOffset?> t = k =>
            {
                object v;
                return o.TryGetValue(k, out v) && v is double ? DateTimeOffset.FromUnixTimeSeconds((long)(double)v) : (DateTimeOffset?)null;
            };
            return new IdentityClaims
            {
                Iss = s("iss"), Sub = s("sub"), IssuedAt = t("iat") ?? DateTimeOffset.FromUnixTimeSeconds(0),
                AuthTime = t("auth_time"), Azp = s("azp"), Name = s("name"), GivenName = s("given_name"),
                FamilyName = s("family_name"), MiddleName = s("middle_name"), Nickname = s("nickname"),
                PreferredUsername = s("preferred_username"), ProfileUrl = s("profile"), Picture = s("picture"),
                Website = s("website"), Email = s("email"), EmailVerified = b("email_verified"), Gender = s("gender"),
                Birthdate = s("birthdate"), Zoneinfo = s("zoneinfo"), Locale = s("locale"),
                PhoneNumber = s("phone_number"), PhoneNumberVerified = b("phone_number_verified"),
                UpdatedAt = t("updated_at"),
            };
        }

        public override string ToString()
        {
            var present = new List<string>();
            if (Name != null) present.Add("name");
            if (GivenName != null) present.Add("given_name");
            if (FamilyName != null) present.Add("family_name");
            if (MiddleName != null) present.Add("middle_name");
            if (Nickname != null) present.Add("nickname");
            if (PreferredUsername != null) present.Add("preferred_username");
            if (ProfileUrl != null) present.Add("profile");
            if (Picture != null) present.Add("picture");
            if (Website != null) present.Add("website");
            if (Email != null) present.Add("email");
            if (EmailVerified != null) present.Add("email_verified");
            if (Gender != null) present.Add("gender");
            if (Birthdate != null) present.Add("birthdate");
            if (Zoneinfo != null) present.Add("zoneinfo");
            if (Locale != null) present.Add("locale");
            if (PhoneNumber != null) present.Add("phone_number");
            if (PhoneNumberVerified != null) present.Add("phone_number_verified");
            if (UpdatedAt != null) present.Add("updated_at");
            return "IdentityClaims { Iss = " + Iss + ", Sub = <redacted>, Present = [" + string.Join(", ", present.ToArray()) + "] }";
        }
    }

    internal static class Json
    {
        /// <summary>Parse the library's JSON (objects, arrays, strings, numbers as double, true,
        /// false, null) into Dictionary / List / string / double / bool / null. Throws
        /// FormatException on anything else.</summary>
        internal static object Parse(string text)
        {
            int i = 0;
            object v = Value(text, ref i);
            Ws(text, ref i);
            if (i != text.Length) throw new FormatException("trailing characters in JSON");
            return v;
        }

        private static void Ws(string s, ref int i)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
        }

        private static object Value(string s, ref int i)
        {
            Ws(s, ref i);
            if (i >= s.Length) throw new FormatException("unexpected end of JSON");
            char c = s[i];
            if (c == '{')
            {
                var o = new Dictionary<string, object>();
                i++;
                Ws(s, ref i);
                if (i < s.Length && s[i] == '}') { i++; return o; }
                while (true)
                {
                    Ws(s, ref i);
                    if (i >= s.Length || s[i] != '"') throw new FormatException("expected a key");
                    string k = Str(s, ref i);
                    Ws(s, ref i);
                    if (i >= s.Length || s[i] != ':') throw new FormatException("expected ':'");
                    i++;
                    o[k] = Value(s, ref i);
                    Ws(s, ref i);
                    if (i < s.Length && s[i] == ',') { i++; continue; }
                    if (i < s.Length && s[i] == '}') { i++; return o; }
                    throw new FormatException("expected ',' or '}'");
                }
            }
            if (c == '[')
            {
                var a = new List<object>();
                i++;
                Ws(s, ref i);
                if (i < s.Length && s[i] == ']') { i++; return a; }
                while (true)
                {
                    a.Add(Value(s, ref i));
                    Ws(s, ref i);
                    if (i < s.Length && s[i] == ',') { i++; continue; }
                    if (i < s.Length && s[i] == ']') { i++; return a; }
                    throw new FormatException("expected ',' or ']'");
                }
            }
            if (c == '"') return Str(s, ref i);
            if (string.CompareOrdinal(s, i, "true", 0, 4) == 0) { i += 4; return true; }
            if (string.CompareOrdinal(s, i, "false", 0, 5) == 0) { i += 5; return false; }
            if (string.CompareOrdinal(s, i, "null", 0, 4) == 0) { i += 4; return null; }
            int start = i;
            while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
            double d;
            if (i == start || !double.TryParse(s.Substring(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out d))
                throw new FormatException("bad JSON value");
            return d;
        }

        private static string Str(string s, ref int i)
        {
            var sb = new StringBuilder();
            i++; // opening quote
            while (i < s.Length)
            {
                char c = s[i++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                if (i >= s.Length) break;
                char e = s[i++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (i + 4 > s.Length) throw new FormatException("bad \\u escape");
                        sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 4;
                        break;
                    default: throw new FormatException("bad escape");
                }
            }
            throw new FormatException("unterminated string");
        }

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
