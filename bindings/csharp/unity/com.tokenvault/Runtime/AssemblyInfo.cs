// The test runner and the benchmark (bindings/csharp/tests, bench) reach the raw entry points.
using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("TokenvaultTests")]
[assembly: InternalsVisibleTo("TokenvaultBench")]
