namespace Ect.Actors.Tests;

internal static class RepoRoot
{
    /// <summary>The folder holding Ect.Actors.sln, found by walking up from the test binaries.</summary>
    public static string Find()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Ect.Actors.sln"))) return d.FullName;
        throw new InvalidOperationException($"No Ect.Actors.sln above '{AppContext.BaseDirectory}': run the tests from the repository.");
    }
}
