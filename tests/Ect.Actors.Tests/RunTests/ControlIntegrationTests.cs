using Ect.Actors.Control;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>`ect ctl`'s client against a running daemon: remoting, token, control actor, coordinator.</summary>
public class ControlIntegrationTests
{
    [Fact]
    public async Task The_control_endpoint_reaches_the_run_coordinator()
    {
        var dir = NewRunDir();
        // The run ends by `stop` (a bounded run could finish first on a loaded machine and refuse the commands);
        // the token is the guard should the client never get there.
        var s = Settings("control.enabled=on", "fake.step-ms=20", "pretrain.steps=10", "tuning.steps=1000000");
        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var run = RunDaemonAsync(dir, s, stop: guard.Token);
        for (int i = 0; i < 200 && !File.Exists(ControlAddressFile.PathIn(dir)); i++) await Task.Delay(50);
        var address = ControlAddressFile.Read(dir);
        var token = ControlEndpoint.ReadToken(Path.Combine(dir, "control.token"));
        if (!OperatingSystem.IsWindows())
            File.GetUnixFileMode(Path.Combine(dir, "control.token")).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await using (var client = ControlClient.Create(address, token, TimeSpan.FromSeconds(10)))
        {
            var status = await client.SendAsync(new GetStatus("st-1"));
            for (int i = 0; i < 200 && status.Status!.Step == 0; i++) { await Task.Delay(50); status = await client.SendAsync(new GetStatus("st-1")); }
            status.Accepted.Should().BeTrue();
            status.Status!.RunId.Should().Be(Path.GetFileName(dir));
            var set = await client.SendAsync(new SetConfigValue("set-1", "ect.checkpoint.every-steps", "7"));
            set.Accepted.Should().BeTrue(set.Message);
            var bad = await client.SendAsync(new SetConfigValue("set-2", "ect.checkpoint.every-steps", "0"));
            bad.Accepted.Should().BeFalse();
            bad.Message.Should().Contain("ect.checkpoint.every-steps");
            await Task.Delay(400); // ~20 steps with the new interval
            (await client.SendAsync(new StopRun("stop-1"))).Accepted.Should().BeTrue();
        }
        var outcome = await run;
        outcome.ExitCode.Should().Be(0);
        outcome.Message.Should().Contain("stop");
        var journal = RunJournal.Read(dir);
        RunJournal.Events<ConfigChanged>(journal).Should().ContainSingle(c => c.Key == "ect.checkpoint.every-steps" && c.Value == "7");
        var after = RunJournal.Events<ConfigChanged>(journal).Single().Step;
        RunJournal.Events<CheckpointCommitted>(journal).Select(c => c.Step).Where(x => x > after && x % 7 == 0 && x % 10 != 0)
            .Should().NotBeEmpty("checkpoints now come every 7 steps");
    }
}
