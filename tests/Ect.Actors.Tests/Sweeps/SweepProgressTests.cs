using System.Globalization;
using System.Text;
using Ect.Actors.Sweeps;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// The sweep tables' live progress: between checkpoints the journal knows nothing newer than the last committed one, so
/// a run an hour into its training read as "started, step 0" (seen on the first sweep of the 32-channel teacher, with
/// checkpoints every 250 steps of ~3 s). The table now reads the last lines of the run's stats.jsonl.
/// </summary>
public class SweepProgressTests
{
    private static (SweepSpec Spec, string Root) Sweep()
    {
        var dir = Directory.CreateTempSubdirectory("ect-sweep-progress-").FullName;
        var path = Path.Combine(dir, "sweep.conf");
        File.WriteAllText(path, """
            sweep {
              name = "progress"
              metric = "fd-resnet18-2step"
              set { ect.run.engine = fake, ect.pretrain.steps = 0 }
              list = [ { "ect.tuning.steps" = 100 }, { "ect.tuning.steps" = 200 } ]
            }
            """);
        var root = Path.Combine(dir, "runs");
        Directory.CreateDirectory(root);
        return (SweepSpec.Load(path), root);
    }

    private static string Line(long step, double seconds, DateTimeOffset time) => string.Create(CultureInfo.InvariantCulture,
        $$"""{"step":{{step}},"kimg":{{step * 0.064}},"loss":1.5,"phase":"tuning","stage":0,"lr":0.0001,"images_per_s":20,"step_s":{{seconds}},"time":"{{time:O}}"}""");

    /// <summary>Steps 1..last, each <paramref name="seconds"/> long except step <paramref name="spike"/> (50 s), the last one logged at <paramref name="end"/>.</summary>
    private static void Stats(string runDir, long last, double seconds, DateTimeOffset end, long spike = -1, string tail = "")
    {
        Directory.CreateDirectory(runDir);
        var text = new StringBuilder();
        for (long s = 1; s <= last; s++) text.Append(Line(s, s == spike ? 50 : seconds, end - TimeSpan.FromSeconds((last - s) * seconds))).Append('\n');
        File.WriteAllText(Path.Combine(runDir, "stats.jsonl"), text + tail);
    }

    [Fact]
    public void A_training_run_shows_its_last_logged_step_and_the_time_left_at_its_median_pace()
    {
        var (spec, root) = Sweep();
        var dir = Path.Combine(root, spec.Runs[0].Id);
        // 60 lines (~12 KB: more than the tail read, so the tail starts mid-line), a spiked step among the last ones,
        // and a line the writer has not finished.
        Stats(dir, 60, 2.0, DateTimeOffset.UtcNow, spike: 58, tail: """{"step":61,"kimg":3.9""");

        var live = SweepProgress.Read(dir)!;
        live.Step.Should().Be(60, "the unfinished line is skipped, the last whole one counts");
        live.SecondsPerStep.Should().Be(2.0, "the median of the last lines, not the 50 s spike");
        SweepProgress.IsTraining(live, DateTimeOffset.UtcNow).Should().BeTrue();
        SweepProgress.Left(spec, spec.Runs[0], live).Should().Be(TimeSpan.FromSeconds(40 * 2.0), "100 tuning steps, 60 done, 2 s each");
        SweepProgress.Format(TimeSpan.FromSeconds(80)).Should().Be("1:20");
        SweepProgress.Format(TimeSpan.FromSeconds(2 * 3600 + 5)).Should().Be("2:00:05");

        var row = SweepResults.Read(spec, root)[0];
        row.State.Should().Be("training");
        row.Step.Should().Be(60, "no checkpoint yet: the journal alone would say 0");
        SweepResults.Read(spec, root)[1].State.Should().Be("pending");
    }

    [Fact]
    public void A_run_whose_last_step_is_old_is_not_training_and_a_run_that_exited_after_its_last_step_with_an_error_failed()
    {
        var (spec, root) = Sweep();
        var stale = Path.Combine(root, spec.Runs[0].Id);
        Stats(stale, 30, 2.0, DateTimeOffset.UtcNow - TimeSpan.FromHours(1));
        SweepProgress.IsTraining(SweepProgress.Read(stale)!, DateTimeOffset.UtcNow).Should().BeFalse("its last step is an hour old");
        var row = SweepResults.Read(spec, root)[0];
        row.State.Should().Be("started");
        row.Step.Should().Be(30);

        // A child that logged a step a second ago, then exited with an error (sweep-run.json is written at its exit).
        var failed = Path.Combine(root, spec.Runs[1].Id);
        Stats(failed, 10, 2.0, DateTimeOffset.UtcNow - TimeSpan.FromSeconds(1));
        new SweepRunRecord(spec.Runs[1].Id, 1, 3, 12.5).Write(failed);
        SweepResults.Read(spec, root)[1].State.Should().Be("failed (exit 3)");
        // Started again: a new step after the record's time is training again.
        File.SetLastWriteTimeUtc(Path.Combine(failed, SweepRunRecord.FileName), DateTime.UtcNow - TimeSpan.FromMinutes(1));
        SweepResults.Read(spec, root)[1].State.Should().Be("training");
    }

    [Fact]
    public void A_run_past_its_last_step_without_RunFinished_is_evaluating_until_its_child_exits()
    {
        var (spec, root) = Sweep();
        var dir = Path.Combine(root, spec.Runs[0].Id);
        // All 100 steps logged five minutes ago: the end-of-run evaluators are working (no step for minutes).
        Stats(dir, 100, 2.0, DateTimeOffset.UtcNow - TimeSpan.FromMinutes(5));
        SweepResults.Read(spec, root)[0].Should().Match<SweepRunResult>(r => r.State == "evaluating" && r.Step == 100);
        // The child then exits with an error before the journal says finished.
        new SweepRunRecord(spec.Runs[0].Id, 1, 1, 600).Write(dir);
        SweepResults.Read(spec, root)[0].State.Should().Be("failed (exit 1)");
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json at all\n")]
    [InlineData("{\"step\":-5,\"time\":\"2026-12-03T05:00:00Z\"}\n")]
    [InlineData("[1,2,3]\n{\"step\":\"seven\"}\n{\"step\":1e400}\n")]
    public void A_stats_file_with_nothing_the_daemon_writes_gives_no_progress(string content)
    {
        var (spec, root) = Sweep();
        var dir = Path.Combine(root, spec.Runs[0].Id);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "stats.jsonl"), content);
        SweepProgress.Read(dir).Should().BeNull();
        SweepResults.Read(spec, root)[0].Should().Match<SweepRunResult>(r => r.State == "started" && r.Step == 0);
    }

    [Fact]
    public void A_line_without_a_time_or_pace_gives_a_step_but_no_estimate_and_is_not_taken_for_training()
    {
        var (spec, root) = Sweep();
        var dir = Path.Combine(root, spec.Runs[0].Id);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "stats.jsonl"), "{\"step\":7}\n");
        var live = SweepProgress.Read(dir)!;
        live.Step.Should().Be(7);
        SweepProgress.Left(spec, spec.Runs[0], live).Should().BeNull();
        SweepProgress.IsTraining(live, DateTimeOffset.UtcNow).Should().BeFalse();
    }
}
