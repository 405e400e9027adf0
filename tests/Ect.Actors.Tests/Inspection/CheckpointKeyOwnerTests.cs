using System.Text.RegularExpressions;
using Ect.Actors.Checkpoints;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Inspection;

/// <summary>
/// One owner of every checkpoint metadata key (issue 13): the key strings appear as literals only in CheckpointFormat,
/// so a reader and a writer cannot drift apart; everyone else names CheckpointFormat's constant.
/// </summary>
public class CheckpointKeyOwnerTests
{
    private static readonly string[] Keys =
    [
        CheckpointFormat.NetworkConfig, CheckpointFormat.NetworkKind, CheckpointFormat.Edm2Config, CheckpointFormat.Precond,
        CheckpointFormat.SigmaMin, CheckpointFormat.SigmaData, CheckpointFormat.DataPath, CheckpointFormat.InitWeights,
        CheckpointFormat.InitSha256, CheckpointFormat.ConfigChanges, CheckpointFormat.UserStages, CheckpointFormat.SourceSha256,
    ];

    /// <summary>Same words that are not checkpoint keys: `ect eval`'s JSON result has a field "precond".</summary>
    private static readonly HashSet<string> NotCheckpointKeys = [$"Cli{Path.DirectorySeparatorChar}EvalVerb.cs: \"precond\""];

    [Fact]
    public void Checkpoint_keys_are_literals_only_in_CheckpointFormat()
    {
        var src = Path.Combine(RepoRoot.Find(), "src", "Ect.Actors");
        var owner = Path.Combine(src, "Checkpoints", "CheckpointFormat.cs");
        File.ReadAllText(owner).Should().Contain("\"network-config\"", "the scan below must look for what the owner really holds");
        var offenders = new List<string>();
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            if (file == owner || file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")) continue;
            var text = File.ReadAllText(file);
            foreach (var key in Keys)
                if (Regex.IsMatch(text, "\"(user\\.)?" + Regex.Escape(key) + "\"") && !NotCheckpointKeys.Contains($"{Path.GetRelativePath(src, file)}: \"{key}\""))
                    offenders.Add($"{Path.GetRelativePath(src, file)}: \"{key}\"");
        }
        offenders.Should().BeEmpty("checkpoint keys are named through CheckpointFormat's constants");
    }
}
