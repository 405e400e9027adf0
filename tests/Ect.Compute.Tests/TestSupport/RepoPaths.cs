namespace Ect.Compute.Tests.TestSupport;

/// <summary>Locates the repository root (the folder holding Ect.Actors.sln) and the golden data kept in it (tests/golden).</summary>
public static class RepoPaths
{
    public const string SolutionFile = "Ect.Actors.sln";

    /// <summary>Walks up from the test assembly's folder (then the working directory) to the folder containing Ect.Actors.sln.</summary>
    public static string RepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, SolutionFile)))
                    return dir.FullName;
        }
        throw new InvalidOperationException(
            $"Could not find {SolutionFile} above '{AppContext.BaseDirectory}' or '{Directory.GetCurrentDirectory()}'. Run the tests from inside the repository.");
    }

    /// <summary>The repository's golden data folder, <c>tests/golden</c> (see its README). Nothing outside the repository is read.</summary>
    public static string GoldenDir()
    {
        var root = RepoRoot();
        var golden = Path.Combine(root, "tests", "golden");
        if (!Directory.Exists(golden))
            throw new DirectoryNotFoundException(
                $"Golden reference data not found at '{golden}' (it is part of the repository: tests/golden). " +
                "Restore it with 'git checkout -- tests/golden'.");
        return golden;
    }

    /// <summary>A sub-folder of the golden data (e.g. "ddpmpp-small"), with a clear error when missing.</summary>
    public static string GoldenDir(string name)
    {
        var dir = Path.Combine(GoldenDir(), name);
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Golden data set '{name}' not found at '{dir}'.");
        return dir;
    }
}
