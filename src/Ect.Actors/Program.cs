namespace Ect.Actors;
public static class Program { public static int Main(string[] args) { Console.Error.WriteLine("ect: not yet wired"); return 1; } }
