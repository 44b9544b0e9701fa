// A tiny attribute-based test runner (Debian's NUnit is 2.6 and Unity's test runner needs the
// editor; this needs nothing but mcs and mono). Every public static method marked [Test] in
// this assembly runs, in declaration order; the last line is exactly "N passed, N failed" and
// the exit code is non-zero on any failure.
//
//   mono TokenvaultTests.exe [substring filter]

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;

namespace Tokenvault.Tests
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class TestAttribute : Attribute { }

    public sealed class AssertionException : Exception
    {
        public AssertionException(string message) : base(message) { }
    }

    public static class Assert
    {
        public static void True(bool condition, string message = "expected true")
        {
            if (!condition) throw new AssertionException(message);
        }

        public static void Equal<T>(T expected, T actual, string what = "value")
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new AssertionException(what + ": expected <" + expected + ">, got <" + actual + ">");
        }

        public static void NotEqual<T>(T unexpected, T actual, string what = "value")
        {
            if (EqualityComparer<T>.Default.Equals(unexpected, actual))
                throw new AssertionException(what + ": expected anything but <" + unexpected + ">");
        }

        public static T Throws<T>(Action action, string what = "call") where T : Exception
        {
            try { action(); }
            catch (T e) { return e; }
            catch (Exception e)
            {
                throw new AssertionException(what + ": expected " + typeof(T).Name + ", got " + e.GetType().Name + ": " + e.Message);
            }
            throw new AssertionException(what + ": expected " + typeof(T).Name + ", nothing was thrown");
        }
    }

    public static class TestRunner
    {
        public static int Main(string[] args)
        {
            if (args.Length > 0 && args[0] == "--exit-mid-event") return ExitTests.ExitMidEvent();
            string filter = args.Length > 0 ? args[0] : null;
            var tests = typeof(TestRunner).Assembly.GetTypes()
                .OrderBy(t => t.FullName, StringComparer.Ordinal)
                .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static)
                    .Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0)
                    .OrderBy(m => m.MetadataToken))
                .Where(m => filter == null || (m.DeclaringType.Name + "." + m.Name).Contains(filter))
                .ToList();
            int passed = 0, failed = 0;
            try
            {
                foreach (var m in tests)
                {
                    string name = m.DeclaringType.Name + "." + m.Name;
                    var sw = Stopwatch.StartNew();
                    try
                    {
                        m.Invoke(null, null);
                        passed++;
                        Console.WriteLine("ok   {0} ({1} ms)", name, sw.ElapsedMilliseconds);
                    }
                    catch (TargetInvocationException e)
                    {
                        failed++;
                        Exception inner = e.InnerException ?? e;
                        Console.WriteLine("FAIL {0} ({1} ms): {2}: {3}", name, sw.ElapsedMilliseconds, inner.GetType().Name, inner.Message);
                        if (!(inner is AssertionException)) Console.WriteLine(inner.StackTrace);
                    }
                }
            }
            finally
            {
                Env.Shutdown();
            }
            Console.WriteLine("{0} passed, {1} failed", passed, failed);
            return failed == 0 && passed > 0 ? 0 : 1;
        }
    }
}
