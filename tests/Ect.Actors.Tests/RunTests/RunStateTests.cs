using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

public class RunStateTests
{
    private static CommandApplied Command(int i) => new() { IdempotencyKey = $"k-{i}", Accepted = true, Message = $"m{i}" };

    [Fact]
    public void The_remembered_commands_trim_drops_the_oldest_keys_in_the_order_they_were_applied()
    {
        const int max = RunState.MaxRememberedCommands;
        var st = new RunState();
        for (int i = 0; i < max + 3; i++) st.Apply(Command(i));

        st.Commands.Should().HaveCount(max);
        // Removing k-0 frees the dictionary's first slot and k-10001 reuses it: picking the "first" key of the
        // dictionary would then drop the newest key instead of k-1.
        st.Commands.Keys.Should().NotContain(["k-0", "k-1", "k-2"]);
        st.Commands.Keys.Should().Contain(["k-3", $"k-{max}", $"k-{max + 1}", $"k-{max + 2}"]);
        st.CommandOrder.First().Should().Be("k-3");
        st.CommandOrder.Last().Should().Be($"k-{max + 2}");
        st.CommandOrder.Should().Equal(Enumerable.Range(3, max).Select(i => $"k-{i}"));
    }

    [Fact]
    public void A_key_applied_again_keeps_its_place_and_the_trim_stays_deterministic_across_a_snapshot()
    {
        const int max = RunState.MaxRememberedCommands;
        var replayed = new RunState();
        for (int i = 0; i < max + 10; i++) replayed.Apply(Command(i));
        replayed.Apply(Command(20)); // the same key again (e.g. an event written twice): no new place in the order

        // The same history, recovered from a snapshot taken midway, then the rest of the events.
        var snapshotted = RunState.FromSnapshot(RunSnapshot.Parser.ParseFrom(replayed.ToSnapshot().ToByteArrayHelper()));
        foreach (var s in new[] { replayed, snapshotted })
            for (int i = max + 10; i < max + 25; i++) s.Apply(Command(i));

        replayed.CommandOrder.First().Should().Be("k-25");
        snapshotted.CommandOrder.Should().Equal(replayed.CommandOrder);
        RunStateComparison.Differences(replayed, snapshotted).Should().BeEmpty();
    }
}
