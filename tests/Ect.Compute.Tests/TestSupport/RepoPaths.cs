namespace Ect.Compute.Tests.TestSupport;

/// <summary>Locates the repository root (the folder holding Ect.Actors.sln) and the shared golden data.</summary>
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

    /// <summary>The shared golden data folder: <c>../shared/golden</c> relative to the repository root.</summary>
    public static string GoldenDir()
    {
        var root = RepoRoot();
        var golden = Path.GetFullPath(Path.Combine(root, "..", "shared", "golden"));
        if (!Directory.Exists(golden))
            throw new DirectoryNotFoundException(
                $"Golden reference data not found at '{golden}' (expected ../shared/golden next to the repository root '{root}'). " +
                "Check out or link the shared golden folder there.");
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
