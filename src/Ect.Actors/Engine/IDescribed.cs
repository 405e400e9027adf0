namespace Ect.Actors.Engine;

/// <summary>
/// An engine or batch source that can say, in one line for a person, what it is (network and parameter count, data
/// set and size). `ect train` prints it once in its first screen (<see cref="Output.RunBanner"/>).
/// </summary>
public interface IDescribed
{
    string Description { get; }
}
