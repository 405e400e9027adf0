using System.Diagnostics;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Distributed;

/// <summary>
/// A live 2-rank job (the tiny config of <see cref="DataParallelRunTests"/>): a worker stuck inside a step ends the job
/// in bounded time, named with its step and journaled on rank 0; `ect ctl status` against the running job shows its ranks.
/// </summary>
public class DataParallelFaultTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_rank_stuck_inside_a_step_ends_the_job_in_bounded_time_naming_rank_and_step_and_rank_0_journals_it()
    {
        var (dir, config) = DataParallelRunTests.Setup("hang");
        var run = Path.Combine(dir, "run");
        // Fault injection: rank 1 sleeps forever inside step 3 (of pretraining: 4 steps); steps time out after 3 s.
        using var p = MpiJob.Start(2, EctProcess.TrainArgs(run, [config],
            "--set", "ect.distributed.test-hang-rank=1", "--set", "ect.distributed.test-hang-step=3", "--set", "ect.distributed.step-timeout-s=3"));
        var text = new System.Text.StringBuilder();
        var hanging = new TaskCompletionSource();
        p.OutputDataReceived += (_, l) => { lock (text) text.AppendLine(l.Data); if (l.Data?.Contains("rank 1: hanging inside step 3") == true) hanging.TrySetResult(); };
        p.ErrorDataReceived += (_, l) => { lock (text) text.AppendLine(l.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        await Task.WhenAny(hanging.Task, p.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(120)));
        lock (text) hanging.Task.IsCompleted.Should().BeTrue($"rank 1 reached the fault and hangs:\n{text}");
        var ranks = MpiJob.Children(p.Id);
        var clock = Stopwatch.StartNew();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
        var took = clock.Elapsed;
        while (ranks.Any(MpiJob.Alive) && clock.Elapsed < TimeSpan.FromSeconds(100)) await Task.Delay(100);
        string all;
        lock (text) all = text.ToString();
        output.WriteLine($"job ended {took.TotalSeconds:F1} s after rank 1 began to hang (mpirun exit {p.ExitCode})\n{all}");
        ranks.Where(MpiJob.Alive).Should().BeEmpty("no rank outlives the job (the stuck one included)");
        p.ExitCode.Should().NotBe(0);
        took.Should().BeLessThan(TimeSpan.FromSeconds(60), "a 3 s step timeout ends the job within seconds, not never");
        all.Should().Contain("rank 1 of 2 did not reach the gradient all-reduce of step 3 of the pretrain phase within 3 s (ect.distributed.step-timeout-s = 3)");

        // Rank 0 journaled it before the job ended: the run's interruption, naming the rank and the step.
        var journal = RunJournal.Read(run);
        var interrupted = RunJournal.Events<RunInterrupted>(journal).Should().ContainSingle().Subject;
        interrupted.Step.Should().Be(3);
        interrupted.Reason.Should().Contain("run step 3").And.Contain("rank 1 of 2 did not reach").And.Contain("step-timeout-s");
        RunJournal.Events<RunFinished>(journal).Should().BeEmpty();
        // Nothing half-written: only whole checkpoints (step 2), no scratch captures or temporary files.
        Directory.GetFiles(Path.Combine(run, "checkpoints")).Select(Path.GetFileName)
            .Should().OnlyContain(f => !f!.StartsWith('.') && !f.EndsWith(".tmp"), "a hang is not followed by a capture");
        RunJournal.Events<CheckpointCommitted>(journal).Select(c => c.Step).Should().Equal(2);
    }

    /// <summary>
    /// ect.network.type = edm2 on 2 ranks (Edm2TrainStep's all-reduce path): the tiny class-conditional EDM2 of
    /// Edm2EngineTests, pretrained 1 step and tuned 3, digests compared after every step; both ranks end with the same
    /// weights and EMA, and only rank 0 writes the power-function EMA snapshots.
    /// </summary>
    [Fact]
    public async Task Two_ranks_of_an_edm2_network_agree_bit_for_bit()
    {
        var (dir, config) = DataParallelRunTests.Setup("edm2");
        var run = Path.Combine(dir, "run");
        var sets = RunTests.Edm2EngineTests.TinyEdm2.Concat(["evaluation.evaluators=[]", "distributed.digest-every=1", "display.mode=plain"])
            .SelectMany(kv => new[] { "--set", "ect." + kv }).ToArray();
        var (code, o, e) = await MpiJob.RunToEnd(output, 2, EctProcess.TrainArgs(run, [config], sets));
        code.Should().Be(0, o + e);
        o.Should().Contain("EDM2 (magnitude-preserving U-Net)").And.Contain("data-parallel over 2 ranks");
        var rank0 = DaemonHarness.Finished(run);
        var rank1 = MpiJob.Digests(o, "rank 1:");
        rank1.Weights.Should().Be(rank0.WeightsSha256, "rank 1 ends with rank 0's EDM2 weights");
        rank1.Ema.Should().Be(rank0.EmaSha256, "and its EMA");
        RunJournal.Events<RanksDiverged>(RunJournal.Read(run)).Should().BeEmpty("the digests agreed after every step");
        Directory.GetFiles(Path.Combine(run, "phema")).Should().HaveCount(3, "rank 0 wrote a snapshot after each of the 3 tuning steps");
    }

    [Fact]
    public async Task Ctl_status_of_a_live_two_rank_run_shows_two_ranks_and_ctl_stop_ends_the_job_cleanly()
    {
        var (dir, config) = DataParallelRunTests.Setup("ctl");
        var run = Path.Combine(dir, "run");
        using var p = MpiJob.Start(2, EctProcess.TrainArgs(run, [config],
            "--set", "ect.control.enabled=on", "--set", "ect.tuning.steps=400", "--set", "ect.tuning.double-ticks=100"));
        var text = await DataParallelRunTests.TrainingPastStep3(p, 404);
        lock (text) p.HasExited.Should().BeFalse($"the run was still training:\n{text}");
        var status = await EctProcess.RunAsync(TimeSpan.FromSeconds(60), "ctl", "status", "--run-dir", run);
        output.WriteLine(status.Out + status.Err);
        status.Code.Should().Be(0, status.Out + status.Err);
        status.Out.Should().MatchRegex(@"ranks\s+│?\s*2 \(data-parallel, mpirun -np 2\)");
        var stop = await EctProcess.RunAsync(TimeSpan.FromSeconds(60), "ctl", "stop", "--run-dir", run);
        stop.Code.Should().Be(0, stop.Out + stop.Err);
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
        lock (text) output.WriteLine(text.ToString());
        p.ExitCode.Should().Be(0, "a stop finishes the step, checkpoints and stops the workers");
        lock (text) text.ToString().Should().MatchRegex(@"rank 1: weights sha256 [0-9a-f]{64}", "rank 1 finished cleanly");
        RunJournal.Events<RunFinished>(RunJournal.Read(run)).Should().BeEmpty("stopped, not finished");
    }
}
