using Ect.Actors.Configuration;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Output;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using SkiaSharp;
using Xunit;

namespace Ect.Actors.Tests.Output;

/// <summary>What a person sees first: the run's first screen, the step counts of this invocation, grids to look at.</summary>
public class FirstScreenTests
{
    private static async Task<string> Train(string runDir, params string[] sets)
    {
        var log = new StringWriter();
        var outcome = await RunDaemon.RunAsync(DaemonHarness.Settings(sets), runDir, Engines.Fake, CancellationToken.None, log)
            .WaitAsync(TimeSpan.FromMinutes(3));
        outcome.ExitCode.Should().Be(0, outcome.Message);
        return log.ToString();
    }

    [Fact]
    public async Task The_first_screen_says_new_or_resumed_from_which_checkpoint_what_trains_and_the_cap_of_this_invocation()
    {
        var dir = DaemonHarness.NewRunDir();
        var first = await Train(dir, "run.max-steps=15");
        var id = Ect.Actors.Run.RunIdentity.Read(dir)!;
        first.Should().Contain($"ect train: run {Path.GetFileName(dir)} (id {id.Id}, ").And.Contain($" in {dir}")
            .And.Contain("journal    SQLite journal " + Path.Combine(dir, "journal.db")).And.Contain($"(stream {id.PersistenceId})")
            .And.Contain("state      new run, starting at step 0")
            .And.Contain("trains     the fake engine").And.Contain("1,024 parameters")
            .And.Contain("data       fake data").And.Contain("batch 32")
            .And.Contain("this run   stops at step 15 of 60 (step cap)")
            .And.Contain("compute    fake engine on the CPU")
            .And.Contain("control    off");
        // Printed once, before anything else: the banner's lines are the first ones of the log.
        first.Split('\n')[0].Should().StartWith("ect train: run ");

        var last = RunJournal.Events<CheckpointCommitted>(RunJournal.Read(dir)).Last();
        var second = await Train(dir, "run.max-steps=25");
        second.Should().Contain($"state      resumed from {last.Path} at step {last.Step} ({last.Phase}, stage {last.Stage}")
            .And.Contain("stops at step 25 of 60");
        second.Should().NotContain("new run");

        var third = await Train(dir);
        third.Should().NotContain("step cap", "without --steps the run goes to its configured end");
        var done = await Train(dir);
        done.Should().Contain("state      finished at step 60");
    }

    [Fact]
    public void With_control_on_it_says_how_to_watch_and_steer_the_run()
    {
        var s = DaemonHarness.Settings("control.enabled=on");
        var log = new StringWriter();
        var banner = new RunBanner(log, "runs/x y", s);
        using var engine = new FakeTrainingEngine(1, 16, 0.9);
        using var source = new FakeBatchSource(1, 4, 8);
        banner.Engine(s, engine, source);
        banner.Done.IsCompleted.Should().BeTrue("the progress display waits for it");
        log.ToString().Should().Contain("ctl status --run-dir \"runs/x y\"").And.Contain("ctl pause|resume|checkpoint");
        banner.Engine(s, engine, source);
        log.ToString().Split("watch").Should().HaveCount(2, "a restarted trainer does not print the screen again");
    }

    [Fact]
    public void The_progress_line_counts_to_this_invocations_cap_and_names_the_runs_total()
    {
        var display = new ProgressDisplay("off", 15, 60, 32, 1, "r");
        var stats = new TrainingProgress(3, 0.1, 1.0, "tuning", 0, 1e-4, ImagesPerSecond: 32, StepSeconds: 1, Time: DateTimeOffset.UnixEpoch);
        var line = display.Line(stats);
        line.Should().Contain("step 3/15 (run: 60)");
        line.Should().Contain("eta 00:00:12", "12 steps of 32 images left at 32 img/s");
        display.SetTarget(60, 60);
        display.Line(stats).Should().Contain("step 3/60 ").And.NotContain("run:");
    }

    [Fact]
    public void A_view_grid_scales_each_image_to_at_least_64_pixels_by_nearest_neighbour_and_keeps_the_values()
    {
        const int n = 4, size = 8;
        var images = new float[n * size * size];
        for (int i = 0; i < images.Length; i++) images[i] = (i * 37 % 200) / 100f - 1f;
        var dir = DaemonHarness.NewRunDir();
        var view = Path.Combine(dir, "view.png");
        var raw = Path.Combine(dir, "raw.png");
        ViewGrid.Save(view, images, n, 1, size, "step 1 | test");
        Png.SaveGrid(raw, images, n, 1, size);

        using var v = SKBitmap.Decode(view);
        using var r = SKBitmap.Decode(raw);
        r.Width.Should().Be(2 * size);
        int scale = ViewGrid.Scale(size);
        scale.Should().Be(8);
        v.Width.Should().BeGreaterThanOrEqualTo(2 * 64);
        int captionHeight = v.Height - (2 * size * scale + 3 * 2);
        captionHeight.Should().BeGreaterThanOrEqualTo(0);
        // Every raw pixel appears as a scale x scale block at its place in the view (gutter 2 px).
        for (int img = 0; img < n; img++)
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                {
                    int rx = img % 2 * size + x, ry = img / 2 * size + y;
                    var expected = r.GetPixel(rx, ry).Red;
                    int vx = 2 + img % 2 * (size * scale + 2) + x * scale, vy = captionHeight + 2 + img / 2 * (size * scale + 2) + y * scale;
                    v.GetPixel(vx, vy).Red.Should().Be(expected);
                    v.GetPixel(vx + scale - 1, vy + scale - 1).Red.Should().Be(expected);
                }
    }
}
