// UTF-8 marshalling by hand: Mono's and IL2CPP's default string marshalling differ by platform
// (ANSI vs UTF-8), so strings cross as NUL-terminated UTF-8 byte arrays we build ourselves.

using System;
using System.Text;

namespace Tokenvault
{
    internal static unsafe class Utf8
    {
        // Strict: a lone surrogate is an error, never silently replaced by U+FFFD.
        private static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated UTF-8 bytes of <paramref name="s"/>; null stays null (the library
        /// then answers InvalidInput for a required argument).</summary>
        internal static byte[] Encode(string s, string argument)
        {
            if (s == null) return null;
            if (s.IndexOf('\0') >= 0)
                throw new InvalidInputException("invalid input: `" + argument + "` contains a NUL character");
            try
            {
                int n = Strict.GetByteCount(s);
                var bytes = new byte[n + 1];
                Strict.GetBytes(s, 0, s.Length, bytes, 0);
                return bytes;
            }
            catch (EncoderFallbackException)
            {
                throw new InvalidInputException("invalid input: `" + argument + "` is not valid Unicode (lone surrogate)");
            }
        }

        /// <summary>A string from <paramref name="len"/> UTF-8 bytes (invalid sequences become U+FFFD).</summary>
        internal static string Decode(IntPtr data, int len)
        {
            if (data == IntPtr.Zero || len == 0) return string.Empty;
            return Encoding.UTF8.GetString((byte*)data, len);
        }

        /// <summary>A string from a NUL-terminated UTF-8 pointer (null for NULL).</summary>
        internal static string FromNative(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            byte* b = (byte*)p;
            int len = 0;
            while (b[len] != 0) len++;
            return Encoding.UTF8.GetString(b, len);
        }

        /// <summary>Overwrite a managed copy of a secret.</summary>
        internal static void Wipe(byte[] bytes)
        {
            if (bytes != null) Array.Clear(bytes, 0, bytes.Length);
        }
    }
}
