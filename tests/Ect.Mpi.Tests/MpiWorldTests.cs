using System.Globalization;
using System.Text.RegularExpressions;
using FluentAssertions;
using Xunit;

namespace Ect.Mpi.Tests;

/// <summary>The binding against the real Open MPI: two ranks of a probe program under mpirun on loopback.</summary>
public class MpiWorldTests
{
    private static string ProbeDll
    {
        get
        {
            // Built beside this project: tests/Ect.Mpi.Probe/bin/<cfg>/<tfm>/<rid>/.
            var dll = Path.Combine(AppContext.BaseDirectory.Replace(
                $"{Path.DirectorySeparatorChar}Ect.Mpi.Tests{Path.DirectorySeparatorChar}",
                $"{Path.DirectorySeparatorChar}Ect.Mpi.Probe{Path.DirectorySeparatorChar}"), "Ect.Mpi.Probe.dll");
            File.Exists(dll).Should().BeTrue($"the probe is built ({dll})");
            return dll;
        }
    }

    [Fact]
    public async Task Two_ranks_sum_floats_doubles_and_longs_in_place_and_broadcast_bytes()
    {
        var (code, o, e, _) = await MpiRun.RunAsync(2, ProbeDll, ["collectives"], TimeSpan.FromSeconds(90));
        code.Should().Be(0, o + e);
        o.Should().Contain("rank 0/2 collectives ok").And.Contain("rank 1/2 collectives ok");
    }

    [Fact]
    public async Task A_rank_waiting_for_a_broadcast_does_not_spin_a_core()
    {
        var (code, o, e, _) = await MpiRun.RunAsync(2, ProbeDll, ["idle-wait"], TimeSpan.FromSeconds(90));
        code.Should().Be(0, o + e);
        var m = Regex.Match(o, @"rank 1/2 idle-wait ok wall ([\d.]+) cpu ([\d.]+)");
        m.Success.Should().BeTrue(o + e);
        double wall = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), cpu = double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        wall.Should().BeGreaterThan(1.0, "rank 0 broadcast only after 1.5 s, so rank 1 really waited");
        // A blocking MPI_Bcast would burn ~100% of a core for the whole wait (plus Open MPI's own progress thread).
        cpu.Should().BeLessThan(0.35 * wall, "the wait sleeps between MPI_Test calls");
    }

    [Fact]
    public async Task A_rank_that_aborts_ends_the_whole_job_with_its_code()
    {
        var (code, o, e, took) = await MpiRun.RunAsync(2, ProbeDll, ["abort"], TimeSpan.FromSeconds(90));
        o.Should().Contain("rank 1/2 aborting");
        code.Should().NotBe(0, "MPI_Abort(3) ends the job with an error");
        (o + e).Should().NotContain("the barrier returned");
        took.Should().BeLessThan(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Rank_0_names_the_rank_it_did_not_hear_from_within_the_timeout_and_hears_all_of_them_later()
    {
        var (code, o, e, _) = await MpiRun.RunAsync(3, ProbeDll, ["late-rank"], TimeSpan.FromSeconds(90));
        code.Should().Be(0, o + e);
        o.Should().Contain("rank 0/3 round 1 missing [2]", "rank 1 sent, rank 2 did not");
        o.Should().Contain("rank 0/3 round 2 values [101,102]", "the cancelled receives took nothing from the next round");
        o.Should().Contain("rank 2/3 late-rank ok");
    }

    [Fact]
    public void Without_mpirun_nothing_is_detected_and_malformed_variables_are_refused()
    {
        MpiLaunch.Detect(_ => null).Should().BeNull();
        MpiLaunch.Detect(v => v == MpiLaunch.SizeVariable ? "4" : "3").Should().Be((3, 4));
        var bad = () => MpiLaunch.Detect(v => v == MpiLaunch.SizeVariable ? "2" : "2");
        bad.Should().Throw<MpiException>().WithMessage("*OMPI_COMM_WORLD_SIZE='2'*OMPI_COMM_WORLD_RANK='2'*");
        var junk = () => MpiLaunch.Detect(v => v == MpiLaunch.SizeVariable ? "two" : null);
        junk.Should().Throw<MpiException>();
    }
}
