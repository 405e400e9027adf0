using System.Reflection;
using System.Text.RegularExpressions;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>docs/architecture.md's state diagram of the run coordinator and the coordinator's behaviours stay equal.</summary>
public class CoordinatorDiagramTests
{
    private static readonly Regex Transition = new(@"^\s*(\[\*\]|\w+)\s*-->\s*(\[\*\]|\w+)\s*(?::\s*(\w+))?", RegexOptions.Compiled);

    private static List<(string From, string To, string? Message)> Diagram()
    {
        var doc = File.ReadAllText(Path.Combine(RepoRoot.Find(), "docs", "architecture.md"));
        var section = doc.IndexOf("## The run coordinator's states", StringComparison.Ordinal);
        section.Should().BeGreaterThan(-1, "docs/architecture.md has the coordinator's state diagram");
        var start = doc.IndexOf("```mermaid", section, StringComparison.Ordinal);
        var end = doc.IndexOf("```", start + 10, StringComparison.Ordinal);
        return doc[start..end].Split('\n').Select(l => Transition.Match(l)).Where(m => m.Success)
            .Select(m => (m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Success ? m.Groups[3].Value : null)).ToList();
    }

    private static IReadOnlySet<string> Behaviours() => typeof(RunCoordinator)
        .GetMethods(BindingFlags.Instance | BindingFlags.NonPublic)
        .Where(m => m.GetCustomAttribute<CoordinatorBehaviourAttribute>() != null)
        .Select(m => m.Name).ToHashSet();

    [Fact]
    public void Every_state_in_the_diagram_is_a_behaviour_and_every_behaviour_is_drawn()
    {
        var drawn = Diagram().SelectMany(t => new[] { t.From, t.To }).Where(s => s != "[*]").ToHashSet();
        drawn.Should().NotBeEmpty();
        drawn.Should().BeEquivalentTo(Behaviours());
    }

    [Fact]
    public void Every_message_on_an_arrow_is_a_type_the_coordinator_receives_or_sends()
    {
        var types = new[] { typeof(RunCoordinator).Assembly, typeof(Akka.Actor.Terminated).Assembly, typeof(Akka.Persistence.RecoveryCompleted).Assembly }
            .SelectMany(a => a.GetTypes()).Select(t => t.Name).ToHashSet();
        types.Add("Begin"); // RunCoordinator's own private message
        var messages = Diagram().Where(t => t.Message != null).Select(t => t.Message!).Distinct().ToList();
        messages.Should().NotBeEmpty();
        messages.Where(m => !types.Contains(m)).Should().BeEmpty("each arrow is labelled with a message type that exists");
    }

    [Fact]
    public void Every_behaviour_but_the_first_and_the_last_is_entered_and_left()
    {
        var t = Diagram();
        foreach (var b in Behaviours())
        {
            t.Should().Contain(x => x.To == b, $"{b} is entered from somewhere");
            t.Should().Contain(x => x.From == b, $"{b} is left for somewhere");
        }
    }
}
