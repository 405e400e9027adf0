using System.Globalization;
using Ect.Mpi;

namespace Ect.Actors.Distributed;

/// <summary>
/// What ends a job split by a network partition is Open MPI's runtime, not ect: rank 0 names the rank it no longer hears
/// from (ect.distributed.step-timeout-s), journals it and calls MPI_Abort, but the ranks on the far side of the cut are
/// ended only when their Open MPI daemon (orted) notices that it lost mpirun, through the TCP keepalive of its control
/// connection. Open MPI's default keepalive (oob_tcp_keepalive_time 300 s, then 9 probes 20 s apart) leaves them alive
/// for about 8 minutes; with <see cref="Recommended"/> it is about 10 s (measured in two network namespaces: see
/// tests/Ect.Actors.Tests/Distributed/MultiHostTests.cs). Those far ranks hold no run lock and write nothing, but they
/// hold their machine's cores. So rank 0 of a job that spans several hosts without a keepalive setting says so at start.
/// </summary>
public static class PartitionHint
{
    public const string Recommended = "--mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 5 --mca oob_tcp_keepalive_probes 3";

    /// <summary>The hint for this job (from its environment), or null: one host, or a keepalive time already chosen.</summary>
    public static string? For(Func<string, string?> env)
    {
        if (!int.TryParse(env(MpiLaunch.SizeVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var size)
            || !int.TryParse(env("OMPI_COMM_WORLD_LOCAL_SIZE"), NumberStyles.None, CultureInfo.InvariantCulture, out var local)
            || local >= size)
            return null;
        if (!string.IsNullOrEmpty(env("OMPI_MCA_oob_tcp_keepalive_time"))) return null;
        return $"note: this job spans several hosts ({local} of its {size} ranks on this one) and mpirun was not given a TCP keepalive: " +
               "after a network partition Open MPI leaves the ranks on the far side running for about 8 minutes (its default " +
               $"oob_tcp_keepalive_time 300 s + 9 x 20 s). Start mpirun with {Recommended} to end them within ~10 s (README \"Several processes and machines\").";
    }
}
