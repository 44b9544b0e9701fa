// Status codes and exceptions. The numbers are tokenvault's error taxonomy, the same in the C
// header (tv_status), uniffi (Kotlin, Swift) and here; they never change once released. The test
// suite checks every value against the library's own tv_status_name.

using System;

namespace Tokenvault
{
    /// <summary>The stable status codes (tv_status in the C header).</summary>
    public enum StatusCode
    {
        Ok = 0,
        /// <summary>The session can no longer be refreshed: show the login screen.</summary>
        ReauthenticationRequired = 1,
        /// <summary>Network failure, timeout, 408, 5xx, captive portal: try later; the session lives on.</summary>
        Transient = 2,
        /// <summary>The server asked to slow down (429).</summary>
        Throttled = 3,
        /// <summary>The database file could not be opened, locked or written.</summary>
        StorageUnavailable = 4,
        /// <summary>The key or passphrase does not open this vault. Nothing was written.</summary>
        WrongKey = 5,
        /// <summary>A record or the file failed its integrity check. Nothing was altered or deleted.</summary>
        Corrupt = 6,
        /// <summary>No session is stored for that account.</summary>
        NotFound = 7,
        /// <summary>Invalid argument: null, invalid text, bad profile, empty token.</summary>
        InvalidInput = 8,
        /// <summary>The server answered with something the profile cannot interpret.</summary>
        Protocol = 9,
        /// <summary>A bug in tokenvault (a panic caught at the boundary). Please report it.</summary>
        Internal = 10,
        /// <summary>The file was written by a newer tokenvault; it was left untouched.</summary>
        SchemaTooNew = 11,
        /// <summary>An earlier refresh was sent and its answer lost.</summary>
        RefreshOutcomeUnknown = 12,
        /// <summary>The vault was closed.</summary>
        Closed = 13,
    }

    /// <summary>Every failure of the library. <see cref="Code"/> is the stable status code; the
    /// message never contains a token, key, passphrase or account id.</summary>
    public class TokenVaultException : Exception
    {
        public StatusCode Code { get; private set; }
        public TokenVaultException(StatusCode code, string message) : base(message) { Code = code; }
    }

    public sealed class ReauthenticationRequiredException : TokenVaultException
    { public ReauthenticationRequiredException(string m) : base(StatusCode.ReauthenticationRequired, m) { } }

    /// <summary>A temporary failure (network, 5xx). The session is kept; try again later.</summary>
    public class TransientException : TokenVaultException
    {
        public TransientException(string m) : base(StatusCode.Transient, m) { }
        protected TransientException(StatusCode code, string m) : base(code, m) { }
    }

    /// <summary>The server asked to slow down (429). Also a <see cref="TransientException"/>.</summary>
    public sealed class ThrottledException : TransientException
    { public ThrottledException(string m) : base(StatusCode.Throttled, m) { } }

    public sealed class StorageUnavailableException : TokenVaultException
    { public StorageUnavailableException(string m) : base(StatusCode.StorageUnavailable, m) { } }

    public sealed class WrongKeyException : TokenVaultException
    { public WrongKeyException(string m) : base(StatusCode.WrongKey, m) { } }

    public sealed class CorruptException : TokenVaultException
    { public CorruptException(string m) : base(StatusCode.Corrupt, m) { } }

    public sealed class NotFoundException : TokenVaultException
    { public NotFoundException(string m) : base(StatusCode.NotFound, m) { } }

    public sealed class InvalidInputException : TokenVaultException
    { public InvalidInputException(string m) : base(StatusCode.InvalidInput, m) { } }

    public sealed class ProtocolException : TokenVaultException
    { public ProtocolException(string m) : base(StatusCode.Protocol, m) { } }

    public sealed class InternalException : TokenVaultException
    { public InternalException(string m) : base(StatusCode.Internal, m) { } }

    public sealed class SchemaTooNewException : TokenVaultException
    { public SchemaTooNewException(string m) : base(StatusCode.SchemaTooNew, m) { } }

    public sealed class RefreshOutcomeUnknownException : TokenVaultException
    { public RefreshOutcomeUnknownException(string m) : base(StatusCode.RefreshOutcomeUnknown, m) { } }

    public sealed class VaultClosedException : TokenVaultException
    { public VaultClosedException(string m) : base(StatusCode.Closed, m) { } }

    internal static unsafe class Errors
    {
        /// <summary>Throw the exception of a non-zero status, with this thread's last-error message
        /// (read on the thread that made the failing call, as the C ABI requires).</summary>
        internal static void Check(int status)
        {
            if (status != 0) throw From(status);
        }

        internal static TokenVaultException From(int status)
        {
            string message = LastMessage();
            switch ((StatusCode)status)
            {
                case StatusCode.ReauthenticationRequired: return new ReauthenticationRequiredException(message);
                case StatusCode.Transient: return new TransientException(message);
                case StatusCode.Throttled: return new ThrottledException(message);
                case StatusCode.StorageUnavailable: return new StorageUnavailableException(message);
                case StatusCode.WrongKey: return new WrongKeyException(message);
                case StatusCode.Corrupt: return new CorruptException(message);
                case StatusCode.NotFound: return new NotFoundException(message);
                case StatusCode.InvalidInput: return new InvalidInputException(message);
                case StatusCode.Protocol: return new ProtocolException(message);
                case StatusCode.Internal: return new InternalException(message);
                case StatusCode.SchemaTooNew: return new SchemaTooNewException(message);
                case StatusCode.RefreshOutcomeUnknown: return new RefreshOutcomeUnknownException(message);
                case StatusCode.Closed: return new VaultClosedException(message);
                default: return new TokenVaultException((StatusCode)status, message);
            }
        }

        private static string LastMessage()
        {
            UIntPtr len;
            // First the length (the documented size probe), then the text.
            Native.tv_last_error_message(null, UIntPtr.Zero, out len);
            int n = (int)len.ToUInt64();
            if (n == 0) return "tokenvault error";
            var buf = new byte[n + 1];
            fixed (byte* p = buf)
            {
                if (Native.tv_last_error_message(p, (UIntPtr)buf.Length, out len) != 0) return "tokenvault error";
                return Utf8.Decode((IntPtr)p, (int)len.ToUInt64());
            }
        }
    }
}
