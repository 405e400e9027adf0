namespace Ect.Actors.Tests;

/// <summary>Runs `ect` in-process with Console captured (tests that use it share the "Console" collection).</summary>
internal static class CliHarness
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (o, e) = (Console.Out, Console.Error);
        var (sw, ew) = (new StringWriter(), new StringWriter());
        Console.SetOut(sw);
        Console.SetError(ew);
        try { return (Program.Main(args), sw.ToString(), ew.ToString()); }
        finally { Console.SetOut(o); Console.SetError(e); }
    }
}
