using Ect.Actors.Checkpoints;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>The checkpointer deletes only its own checkpoint files, whatever path a message names (issue 12, point 1).</summary>
public sealed class CheckpointerPathTests : TestKit
{
    public CheckpointerPathTests() : base(ConfigurationFactory.ParseString("ect.io-dispatcher { type = PinnedDispatcher }")) { }

    [Theory]
    [InlineData("../victim.txt")]
    [InlineData("checkpoints/../../victim.txt")]
    [InlineData("checkpoints/../journal.db")]
    [InlineData("/etc/passwd")]
    [InlineData("journal.db")]
    [InlineData("checkpoints/sub/ckpt-000000010.ckpt")]
    [InlineData("checkpoints/ckpt-000000010.ckpt.tmp")]
    [InlineData("checkpoints/evil.ckpt")]
    [InlineData("")]
    public void A_path_that_is_not_one_of_its_checkpoint_files_is_refused(string path) =>
        Checkpointer.CheckpointFileIn("/runs/r", path).Should().BeNull();

    [Fact]
    public void Its_own_checkpoint_files_are_accepted() =>
        Checkpointer.CheckpointFileIn("/runs/r", "checkpoints/ckpt-000000010.ckpt").Should().Be("/runs/r/checkpoints/ckpt-000000010.ckpt");

    [Fact]
    public void A_delete_message_with_an_escaping_path_deletes_nothing_outside_the_checkpoints()
    {
        var parent = Directory.CreateTempSubdirectory("ect-ckpt-").FullName;
        var runDir = Path.Combine(parent, "run");
        Directory.CreateDirectory(Path.Combine(runDir, "checkpoints"));
        var victim = Path.Combine(parent, "victim.txt");
        var journal = Path.Combine(runDir, "journal.db");
        var own = Path.Combine(runDir, "checkpoints", "ckpt-000000010.ckpt");
        foreach (var f in new[] { victim, journal, own }) File.WriteAllText(f, "x");

        var checkpointer = Sys.ActorOf(Checkpointer.Props(runDir));
        checkpointer.Tell(new DeleteCheckpoints(["../victim.txt", "journal.db", "checkpoints/../journal.db", victim, "checkpoints/ckpt-000000010.ckpt"]), TestActor);

        AwaitCondition(() => !File.Exists(own), TimeSpan.FromSeconds(10), "the checkpoint it owns is deleted (the message was handled)");
        File.Exists(victim).Should().BeTrue();
        File.Exists(journal).Should().BeTrue();
        Directory.Delete(parent, true);
    }
}
