using FluentAssertions;
using Xunit;

namespace Ect.Compute.Tests.TestSupport;

public class RepoPathsTests
{
    [Fact]
    public void FindsTheSolutionRootAndExplainsAMissingGoldenSet()
    {
        File.Exists(Path.Combine(RepoPaths.RepoRoot(), RepoPaths.SolutionFile)).Should().BeTrue();
        Directory.Exists(RepoPaths.GoldenDir()).Should().BeTrue();
        RepoPaths.GoldenDir().Should().StartWith(RepoPaths.RepoRoot(), "the golden data is part of the repository");
        var missing = () => RepoPaths.GoldenDir("no-such-set");
        missing.Should().Throw<DirectoryNotFoundException>().WithMessage("*Golden data set 'no-such-set' not found*");
    }

    /// <summary>A user's clone has nothing beside it: no source, test, script or CI file may read a folder next to the
    /// repository (the golden sets once lived in a shared folder beside it).</summary>
    [Fact]
    public void NothingInTheRepositoryReadsAFolderBesideIt()
    {
        var root = RepoPaths.RepoRoot();
        var needle = ".." + "/shared";   // split so that this file does not match itself
        var offenders = new List<string>();
        foreach (var top in new[] { "src", "tests", "bench", "scripts", ".ci", "hocon" })
        {
            var dir = Path.Combine(root, top);
            if (!Directory.Exists(dir)) continue;
            foreach (var file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
            {
                var rel = Path.GetRelativePath(root, file);
                if (rel.Contains("/bin/") || rel.Contains("/obj/") || rel.StartsWith("tests/golden/")) continue;
                var ext = Path.GetExtension(file);
                if (ext is not (".cs" or ".sh" or ".conf" or ".csproj" or ".props" or ".targets" or ".py" or "")) continue;
                if (new FileInfo(file).Length > 1_000_000) continue;
                var lines = File.ReadAllLines(file);
                for (var i = 0; i < lines.Length; i++)
                    if (lines[i].Contains(needle)) offenders.Add($"{rel}:{i + 1}: {lines[i].Trim()}");
            }
        }
        offenders.Should().BeEmpty("the repository must carry every file its tests and scripts read");
    }
}
