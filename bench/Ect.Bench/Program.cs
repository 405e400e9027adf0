namespace Ect.Bench;
public static class Program { public static int Main(string[] args) { Console.WriteLine("benchmarks: see bench/README.md"); return 0; } }
