using Xunit;

namespace Ect.Compute.Tests;

/// <summary>Tests that set torch's global thread count run in this collection, one at a time.</summary>
[CollectionDefinition("TorchThreads", DisableParallelization = true)]
public class TorchThreadsCollection { }
