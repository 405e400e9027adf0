using System.CommandLine;

namespace Ect.Actors.Cli;

/// <summary>A top-level `ect` verb (train, config, ctl, inspect, runs, data, eval). Discovered by reflection.</summary>
public interface ICliVerb
{
    /// <summary>Position in `ect --help`.</summary>
    int Order { get; }
    Command Build();
}
