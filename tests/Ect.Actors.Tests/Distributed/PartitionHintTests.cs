using Ect.Actors.Distributed;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Distributed;

public class PartitionHintTests
{
    private static Func<string, string?> Env(params (string Key, string Value)[] vars) =>
        k => vars.FirstOrDefault(v => v.Key == k).Value;

    [Fact]
    public void A_job_on_several_hosts_without_a_keepalive_gets_the_hint_with_the_mpirun_options()
    {
        var hint = PartitionHint.For(Env(("OMPI_COMM_WORLD_SIZE", "4"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "2")));
        hint.Should().Contain("2 of its 4 ranks on this one").And.Contain(PartitionHint.Recommended).And.Contain("8 minutes");
    }

    [Theory]
    [InlineData("2", "2", null)]        // one host
    [InlineData("4", "2", "10")]        // several hosts, keepalive chosen
    [InlineData(null, null, null)]      // not under mpirun
    [InlineData("4", "x", null)]        // malformed: no guess
    public void No_hint_on_one_host_with_a_keepalive_or_outside_mpirun(string? size, string? local, string? keepalive)
    {
        var vars = new List<(string, string)>();
        if (size is not null) vars.Add(("OMPI_COMM_WORLD_SIZE", size));
        if (local is not null) vars.Add(("OMPI_COMM_WORLD_LOCAL_SIZE", local));
        if (keepalive is not null) vars.Add(("OMPI_MCA_oob_tcp_keepalive_time", keepalive));
        PartitionHint.For(Env([.. vars])).Should().BeNull();
    }
}
