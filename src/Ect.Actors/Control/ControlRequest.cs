namespace Ect.Actors.Control;

/// <summary>
/// What `ect ctl` sends over the wire to /user/control: the shared secret from the run's token file and the
/// command. The control actor checks the token (constant time) before the command reaches the coordinator.
/// </summary>
public sealed record ControlRequest(string Token, RunCommand Command)
{
    // The token is a secret: keep it out of logs (records print every property by default).
    public override string ToString() => $"ControlRequest {{ Token = <redacted>, Command = {Command} }}";
}
