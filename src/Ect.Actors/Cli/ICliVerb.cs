using System.CommandLine;

namespace Ect.Actors.Cli;

/// <summary>A top-level `ect` verb (train, config, ctl, inspect, runs, data, eval). Discovered by reflection.</summary>
public interface ICliVerb
{
    /// <summary>Position in `ect --help`.</summary>
    int Order { get; }
    Command Build();

    /// <summary>
    /// Exit code when the command line itself is wrong (an unknown option, a value that is not a number or
    /// overflows): the code the verb's help gives for bad arguments. System.CommandLine's own default is 1.
    /// </summary>
    int UsageErrorExitCode => 1;
}
