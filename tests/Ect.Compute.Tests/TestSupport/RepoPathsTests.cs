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
        var missing = () => RepoPaths.GoldenDir("no-such-set");
        missing.Should().Throw<DirectoryNotFoundException>().WithMessage("*Golden data set 'no-such-set' not found*");
    }
}
