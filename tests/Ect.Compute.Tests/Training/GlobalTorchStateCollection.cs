using Xunit;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// Tests that depend on torch's process-wide state (the global RNG behind dropout and randn, the thread count)
/// join this collection: xunit runs it alone, with no other test running in parallel that could draw from the
/// global generator between a captured RNG state and its use.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalTorchStateCollection
{
    public const string Name = "global torch state";
}
