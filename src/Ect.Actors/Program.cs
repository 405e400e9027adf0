using System.CommandLine;
using Ect.Actors.Cli;

namespace Ect.Actors;

public static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    /// <summary>The `ect` command tree (every verb), for Main and for tests that parse documented commands.</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("ect: Easy Consistency Tuning training daemon and tools");
        // Each verb lives in its own file under Cli/ and is discovered here, so verbs can be added
        // without editing this file.
        foreach (var verb in typeof(Program).Assembly.GetTypes()
                     .Where(t => typeof(ICliVerb).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
                     .Select(t => (ICliVerb)Activator.CreateInstance(t)!)
                     .OrderBy(v => v.Order))
            root.Subcommands.Add(verb.Build());
        return root;
    }
}
