using Akka.Configuration;
using Ect.Actors.Configuration;

namespace Ect.Actors.Checkpoints;

/// <summary>
/// How often a failed checkpoint write is tried (ect.checkpoint.write-attempts, in all) and how long the checkpointer
/// waits between tries (ect.checkpoint.write-retry-delay-ms). After the last failure the run ends with exit code 1.
/// </summary>
public sealed record CheckpointWritePolicy(int Attempts, TimeSpan RetryDelay)
{
    public static CheckpointWritePolicy Default { get; } = new(3, TimeSpan.FromSeconds(2));

    /// <summary>Reads the policy; problems are added to <paramref name="errors"/> (null: thrown as a ConfigurationException).</summary>
    public static CheckpointWritePolicy From(Config c, List<string>? errors = null)
    {
        var problems = errors ?? new List<string>();
        int attempts = Default.Attempts;
        long delayMs = (long)Default.RetryDelay.TotalMilliseconds;
        try
        {
            attempts = c.GetInt("ect.checkpoint.write-attempts", Default.Attempts);
            if (attempts is < 1 or > 100) problems.Add($"ect.checkpoint.write-attempts = {attempts}: must be in 1..100");
        }
        catch (Exception) { problems.Add("ect.checkpoint.write-attempts: not an integer (1..100)"); }
        try
        {
            delayMs = c.GetLong("ect.checkpoint.write-retry-delay-ms", delayMs);
            if (delayMs is < 0 or > 600_000) problems.Add($"ect.checkpoint.write-retry-delay-ms = {delayMs}: must be in 0..600000");
        }
        catch (Exception) { problems.Add("ect.checkpoint.write-retry-delay-ms: not an integer (0..600000)"); }
        if (errors is null && problems.Count > 0) throw new Ect.Actors.Configuration.ConfigurationException(string.Join("; ", problems));
        return new CheckpointWritePolicy(Math.Clamp(attempts, 1, 100), TimeSpan.FromMilliseconds(Math.Clamp(delayMs, 0, 600_000)));
    }
}
