using System.Globalization;

namespace Ect.Mpi;

/// <summary>
/// Whether this process was started by Open MPI's mpirun (or orted): it sets OMPI_COMM_WORLD_SIZE and
/// OMPI_COMM_WORLD_RANK in every rank's environment. Read from the environment only: a plain `ect train` never loads
/// libmpi, so it runs where Open MPI is not installed.
/// </summary>
public static class MpiLaunch
{
    public const string SizeVariable = "OMPI_COMM_WORLD_SIZE";
    public const string RankVariable = "OMPI_COMM_WORLD_RANK";

    /// <summary>(rank, size) when launched by mpirun, null otherwise. Malformed values are refused (never guessed).</summary>
    public static (int Rank, int Size)? Detect() => Detect(Environment.GetEnvironmentVariable);

    public static (int Rank, int Size)? Detect(Func<string, string?> env)
    {
        var size = env(SizeVariable);
        var rank = env(RankVariable);
        if (string.IsNullOrEmpty(size) && string.IsNullOrEmpty(rank)) return null;
        if (!int.TryParse(size, NumberStyles.None, CultureInfo.InvariantCulture, out var s) || s < 1
            || !int.TryParse(rank, NumberStyles.None, CultureInfo.InvariantCulture, out var r) || r < 0 || r >= s)
            throw new MpiException($"{SizeVariable}='{size}' and {RankVariable}='{rank}' do not describe a rank of an mpirun job " +
                                   $"(expected 0 <= rank < size). Start ect through mpirun, or unset both variables for a single-process run.");
        return (r, s);
    }
}

/// <summary>An MPI failure or misuse, with the call and Open MPI's own error text.</summary>
public sealed class MpiException(string message) : Exception(message);
