using Ect.Actors.Output;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Output;

/// <summary>
/// stats.jsonl is read back on every resume (lines past the resume step are dropped) and for the loss plot. A line
/// that is valid JSON of another shape -- a hand edit, a tool that appended to the file -- used to escape the
/// reader's JsonException filter and stop the resume; now it is skipped like a line torn by a kill.
/// </summary>
public sealed class StatsFileHostileLinesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-stats-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static readonly string[] Hostile =
    [
        "{\"loss\":0.5,\"phase\":\"ect\"}",          // no step
        "[1,2,3]",                                   // not an object
        "\"step\"",                                  // a string
        "{\"step\":\"7\",\"loss\":0.5,\"phase\":\"ect\"}", // step as a string
        "{\"step\":1.5,\"loss\":0.5,\"phase\":\"ect\"}",   // step not an integer
        "{\"step\":1e30,\"loss\":0.5,\"phase\":\"ect\"}",  // step beyond 64 bits
        "{\"step\":3,\"loss\":0.5,\"phase\":7}",           // phase a number
        "{\"step\":3,\"loss\":0.5}",                       // no phase
        "{\"step\":3,\"lo",                               // torn by a kill
        "\0\0\0\0",                                        // the zeros a power loss can leave
    ];

    private string WriteStats()
    {
        var good = new[] { "{\"step\":1,\"loss\":0.9,\"phase\":\"ect\"}", "{\"step\":2,\"loss\":0.8,\"phase\":\"ect\"}",
                           "{\"step\":5,\"loss\":0.4,\"phase\":\"ect\"}" };
        var lines = new List<string> { good[0] };
        lines.AddRange(Hostile);
        lines.Add(good[1]);
        lines.Add(good[2]);
        File.WriteAllLines(Path.Combine(_dir, StatsFile.Name), lines);
        return Path.Combine(_dir, StatsFile.Name);
    }

    [Fact]
    public void The_loss_plot_reader_skips_lines_of_another_shape_and_keeps_the_rest()
    {
        WriteStats();
        StatsFile.Read(_dir).Select(r => r.Step).Should().Equal(1L, 2L, 5L);
    }

    [Fact]
    public void A_resume_truncates_past_the_resume_step_and_drops_lines_it_cannot_read()
    {
        var path = WriteStats();
        using (new StatsFile(_dir, keepUpToStep: 2)) { }
        File.ReadAllLines(path).Should().Equal("{\"step\":1,\"loss\":0.9,\"phase\":\"ect\"}", "{\"step\":2,\"loss\":0.8,\"phase\":\"ect\"}");
    }
}
