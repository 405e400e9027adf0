using System.Diagnostics;
using System.Text.RegularExpressions;
using Ect.Actors.Distributed;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Distributed;

/// <summary>
/// One run on two "machines" (<see cref="TwoHosts"/>: network namespaces joined by a veth pair, Open MPI's daemons
/// started in each through an rsh agent, ranks talking TCP over the veth): it ends with the bits of the same 2-rank run
/// over shared memory, and a network partition mid-run ends every rank in bounded time, journaled on rank 0, after
/// which the run resumes to the bits of an uninterrupted run. The tiny config of <see cref="DataParallelRunTests"/>.
/// </summary>
public class MultiHostTests(ITestOutputHelper output)
{
    [NetnsFact]
    public async Task Two_hosts_over_tcp_end_with_the_bits_of_the_shared_memory_run_and_rank_1_really_ran_on_the_other_host()
    {
        var (dir, config) = DataParallelRunTests.Setup("hosts");
        var reference = Path.Combine(dir, "reference");
        var (code, o, e) = await MpiJob.RunToEnd(output, 2, EctProcess.TrainArgs(reference, [config]));
        code.Should().Be(0, o + e);
        var expected = DaemonHarness.Finished(reference);

        using var hosts = new TwoHosts(dir);
        var sentBefore = hosts.BytesSentByB();
        var run = Path.Combine(dir, "two-hosts");
        using var p = hosts.StartMpirun(EctProcess.TrainArgs(run, [config]));
        var (so, se) = (p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
        try { await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(180)); }
        catch (TimeoutException) { p.Kill(entireProcessTree: true); }
        var text = await so + await se;
        output.WriteLine(text);
        p.ExitCode.Should().Be(0, text);

        var got = DaemonHarness.Finished(run);
        got.WeightsSha256.Should().Be(expected.WeightsSha256, "TCP between hosts sums the same gradients as shared memory");
        got.EmaSha256.Should().Be(expected.EmaSha256);
        MpiJob.Digests(text, "rank 1:").Weights.Should().Be(expected.WeightsSha256, "rank 1, on host B, agrees");
        // Rank 1 ran in B: the agent entered both namespaces, and B sent at least rank 1's share of every all-reduce
        // over the veth (any 2-rank all-reduce of N floats needs N floats from each side).
        File.ReadAllLines(hosts.AgentLog).Should().BeEquivalentTo([hosts.HostA, hosts.HostB]);
        var m = Regex.Match(text, @"data-parallel: (\d+) all-reduce\(s\) of ([\d,]+) floats over 2 ranks");
        m.Success.Should().BeTrue($"rank 0 reports its all-reduces:\n{text}");
        var floats = long.Parse(m.Groups[1].Value) * long.Parse(m.Groups[2].Value.Replace(",", ""));
        (hosts.BytesSentByB() - sentBefore).Should().BeGreaterThanOrEqualTo(4 * floats, "rank 1's gradients crossed the wire");
        // No keepalive was given to mpirun: rank 0 says how long a partition would leave the far ranks alive.
        text.Should().Contain("this job spans several hosts (1 of its 2 ranks on this one)").And.Contain(PartitionHint.Recommended);
    }

    [NetnsFact]
    public async Task A_network_partition_ends_every_rank_in_bounded_time_journaled_and_the_run_resumes_to_the_same_bits()
    {
        var (dir, config) = DataParallelRunTests.Setup("cut");
        // 4 + 36 steps, the stage held (see DataParallelRunTests). A 15 s step timeout on the cut run only (it does not
        // change the bits): 5 s let a loaded machine's slow rank 1 end an uncut run.
        string[] longer = ["--set", "ect.tuning.steps=36", "--set", "ect.tuning.double-ticks=100"];
        string[] timeout = ["--set", "ect.distributed.step-timeout-s=15"];
        var reference = Path.Combine(dir, "reference");
        var (code, o, e) = await MpiJob.RunToEnd(output, 2, EctProcess.TrainArgs(reference, [config], longer), TimeSpan.FromSeconds(300));
        code.Should().Be(0, o + e);
        var expected = DaemonHarness.Finished(reference);

        using var hosts = new TwoHosts(dir);
        var run = Path.Combine(dir, "cut");
        using var p = hosts.StartMpirun(EctProcess.TrainArgs(run, [config], [.. longer, .. timeout]), PartitionHint.Recommended.Split(' '));
        var text = await DataParallelRunTests.TrainingPastStep3(p, 40);
        lock (text) p.HasExited.Should().BeFalse($"the run was still training at step 3 or later of 40:\n{text}");
        var ranks = EctRanksOf(run);
        ranks.Should().HaveCount(2, "one rank in each namespace");
        var daemonsOfB = Pids(c => c.StartsWith("orted ")).Where(pid => hosts.NamespaceOf(pid) == hosts.HostB).ToList();
        daemonsOfB.Should().NotBeEmpty("Open MPI runs a daemon in B");

        hosts.Cut();
        var clock = Stopwatch.StartNew();
        while ((ranks.Concat(daemonsOfB).Any(MpiJob.Alive)) && clock.Elapsed < TimeSpan.FromSeconds(90)) await Task.Delay(200);
        var took = clock.Elapsed;
        // Open MPI 4.1.4's mpirun stays in "abort is already in progress" after a partition (README): ended here.
        if (!p.HasExited) p.Kill(entireProcessTree: true);
        await p.WaitForExitAsync();
        string all;
        lock (text) all = text.ToString();
        output.WriteLine($"every rank and B's daemon gone {took.TotalSeconds:F1} s after the cut\n{all}");
        ranks.Concat(daemonsOfB).Where(MpiJob.Alive).Should().BeEmpty("no rank or daemon outlives a partition for long (step timeout 15 s; keepalive ~10 s)");
        took.Should().BeLessThan(TimeSpan.FromSeconds(60));
        all.Should().NotContain("this job spans several hosts", "the keepalive was given");

        // Who ends the job depends on where the cut lands. Between collectives, rank 0 waits for rank 1's note, names it
        // after the step timeout, journals it and aborts. Inside the gradient all-reduce (blocking MPI_Allreduce: rank 1's
        // note arrived, its data did not), rank 0 cannot leave the call: Open MPI's daemon keepalive (~25 s here) ends the
        // job and names B's node; nothing is journaled, and the restart below resumes from the last checkpoint all the same.
        var journal = RunJournal.Read(run);
        var interrupted = RunJournal.Events<RunInterrupted>(journal).ToList();
        if (interrupted.Count > 0)
            interrupted.Should().ContainSingle().Which.Reason.Should().Contain("rank 1 of 2 did not reach").And.Contain("step-timeout-s = 15");
        else
            all.Should().Contain("ORTE has lost communication with a remote daemon").And.Contain($"on node {hosts.HostB}",
                "without rank 0's journal entry, Open MPI's runtime ended the job and named the lost host");
        RunJournal.Events<RunFinished>(journal).Should().BeEmpty();
        Directory.GetFiles(Path.Combine(run, "checkpoints")).Select(Path.GetFileName)
            .Should().OnlyContain(f => !f!.StartsWith('.') && !f.EndsWith(".tmp"));

        // The link is not needed to go on: the same run, 2 ranks on this machine, resumes to the uninterrupted bits.
        (code, o, e) = await MpiJob.RunToEnd(output, 2, EctProcess.TrainArgs(run, [config], [.. longer, .. timeout]));
        code.Should().Be(0, o + e);
        var got = DaemonHarness.Finished(run);
        got.WeightsSha256.Should().Be(expected.WeightsSha256, "resumed after the partition, bit-identical to the uninterrupted run");
        got.EmaSha256.Should().Be(expected.EmaSha256);
    }

    /// <summary>The ranks of the run in <paramref name="runDir"/>: `dotnet ect.dll train ... --run-dir DIR` processes.</summary>
    private static List<int> EctRanksOf(string runDir) => Pids(c => c.Contains("ect.dll") && c.Contains(runDir) && !c.Contains("mpirun"));

    private static List<int> Pids(Func<string, bool> commandLine)
    {
        var pids = new List<int>();
        foreach (var d in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out var pid)) continue;
            try
            {
                var c = File.ReadAllText(Path.Combine(d, "cmdline")).Replace('\0', ' ');
                if (commandLine(c)) pids.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return pids;
    }
}
