using System.Reflection;

namespace Ect.Bench;

/// <summary>A benchmark that the `Ect.Bench` program runs by name: `dotnet run -c Release --project bench/Ect.Bench -- NAME [args]`.</summary>
public interface IBenchmarkVerb
{
    string Name { get; }
    string Description { get; }
    int Run(string[] args);
}

public static class Program
{
    public static int Main(string[] args)
    {
        // As `ect` does, before any benchmark loads libtorch (OMP_WAIT_POLICY=ACTIVE in the environment keeps spinning).
        Ect.Compute.Runtime.OpenMpWaitPolicy.Apply();
        // As `ect` does: glibc keeps tensor memory between passes (issue 21); ECT_BENCH_HEAP=default leaves glibc's
        // own policy, to measure what it costs.
        if (Environment.GetEnvironmentVariable("ECT_BENCH_HEAP") != "default") Ect.Compute.Runtime.NativeHeapPolicy.Apply();
        Console.WriteLine($"native heap policy: {(Ect.Compute.Runtime.NativeHeapPolicy.Active ? "kept (mallopt)" : "glibc default" + (Ect.Compute.Runtime.NativeHeapPolicy.SkippedBecause is { } why ? $" ({why})" : ""))}");
        var verbs = typeof(Program).Assembly.GetTypes()
            .Where(t => typeof(IBenchmarkVerb).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (IBenchmarkVerb)Activator.CreateInstance(t)!)
            .OrderBy(v => v.Name)
            .ToList();
        if (args.Length == 0 || verbs.All(v => v.Name != args[0]))
        {
            Console.WriteLine("usage: dotnet run -c Release --project bench/Ect.Bench -- NAME [args]");
            foreach (var v in verbs) Console.WriteLine($"  {v.Name,-28} {v.Description}");
            return args.Length == 0 ? 0 : 2;
        }
        return verbs.First(v => v.Name == args[0]).Run(args[1..]);
    }
}
