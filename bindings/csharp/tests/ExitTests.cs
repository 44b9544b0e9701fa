// A Mono program that exits without disposing its vault, while the vault's event thread is
// inside the program's event handler and log lines are routed to it, exits cleanly.

using System;
using System.Diagnostics;
using System.Reflection;
using System.Threading;

namespace Tokenvault.Tests
{
    public static class ExitTests
    {
        [Test]
        public static void ExitingMidEventWithoutDisposeIsClean()
        {
            string exe = Assembly.GetExecutingAssembly().Location;
            for (int run = 0; run < 3; run++)
            {
                var psi = new ProcessStartInfo("mono", "--debug \"" + exe + "\" --exit-mid-event")
                {
                    UseShellExecute = false,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                };
                using (var p = Process.Start(psi))
                {
                    string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
                    Assert.True(p.WaitForExit(60000), "exited: " + output);
                    Assert.Equal(0, p.ExitCode, "exit status (" + output + ")");
                    Assert.True(output.Contains("exiting without dispose"), output);
                    Assert.True(!output.Contains("FATAL") && !output.Contains("SIGABRT"), output);
                }
            }
        }

        /// <summary>The child program of the test above.</summary>
        public static int ExitMidEvent()
        {
            var server = new ReferenceServer("001");
            TokenVault.SetLogHandler(LogLevel.Trace, (level, target, message) => { });
            var v = Env.Open(server);
            v.SetEventHandler(e => Thread.Sleep(50));
            Env.SignIn(v, server, "player");
            for (int i = 0; i < 3; i++) v.ForceRefresh("player");
            server.Dispose();
            Console.WriteLine("exiting without dispose");
            Console.Out.Flush();
            Env.Shutdown(); // removes the temporary folder (the vault in it stays open)
            return 0;
        }
    }
}
