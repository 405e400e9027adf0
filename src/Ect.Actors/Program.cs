using System.CommandLine;
using Ect.Actors.Cli;

namespace Ect.Actors;

public static class Program
{
    public static int Main(string[] args)
    {
        // Before anything loads libtorch (and its OpenMP runtime, which reads the setting once, as it loads).
        Ect.Compute.Runtime.OpenMpWaitPolicy.Apply();
        // glibc keeps tensor memory between passes instead of trimming and re-faulting it (issue 21).
        Ect.Compute.Runtime.NativeHeapPolicy.Apply();
        // A run started by `ect sweep run` or `ect node` dies with the process that started it (no orphan trainer).
        Ect.Actors.Sweeps.TrainChild.WatchParentFromEnvironment();
        var (root, usageExitCodes) = Build();
        var parsed = root.Parse(args);
        var code = parsed.Invoke(); // with parse errors: prints them and the help hint
        if (parsed.Errors.Count == 0) return code;
        // A bad command line exits with the code the verb's help promises for bad arguments.
        for (var r = parsed.CommandResult; r != null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            if (usageExitCodes.TryGetValue(r.Command, out var usage)) return usage;
        return code;
    }

    /// <summary>The `ect` command tree (every verb), for Main and for tests that parse documented commands.</summary>
    public static RootCommand BuildRoot() => Build().Root;

    private static (RootCommand Root, Dictionary<Command, int> UsageExitCodes) Build()
    {
        var root = new RootCommand("ect: Easy Consistency Tuning training daemon and tools");
        // Each verb lives in its own file under Cli/ and is discovered here, so verbs can be added
        // without editing this file.
        var usageExitCodes = new Dictionary<Command, int>();
        foreach (var verb in typeof(Program).Assembly.GetTypes()
                     .Where(t => typeof(ICliVerb).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
                     .Select(t => (ICliVerb)Activator.CreateInstance(t)!)
                     .OrderBy(v => v.Order))
        {
            var command = verb.Build();
            usageExitCodes[command] = verb.UsageErrorExitCode;
            root.Subcommands.Add(command);
        }
        return (root, usageExitCodes);
    }
}
