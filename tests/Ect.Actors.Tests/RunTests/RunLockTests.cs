using Ect.Actors.Configuration;
using Ect.Actors.Control;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>One daemon per run directory, held by a kernel lock, not by the lock file's existence (issue 12, point 6).</summary>
public class RunLockTests
{
    [Fact]
    public void Deleting_run_lock_does_not_release_the_lock()
    {
        var dir = NewRunDir();
        using var held = RunLock.Acquire(dir);
        File.Delete(held.Path);
        var again = () => RunLock.Acquire(dir);
        again.Should().Throw<ConfigurationException>().WithMessage("*another `ect train` is running*");
    }

    [Fact]
    public async Task Deleting_run_lock_under_a_live_daemon_does_not_let_a_second_one_start_or_touch_control_json()
    {
        var dir = NewRunDir();
        using var cts = new CancellationTokenSource();
        var started = new TaskCompletionSource();
        var first = RunDaemonAsync(dir, Settings("control.enabled=on", "fake.step-ms=20", "pretrain.steps=100000"), stop: cts.Token,
            onStarted: (_, _) => started.TrySetResult());
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var controlJson = File.ReadAllText(ControlAddressFile.PathIn(dir));
        var lockFile = Path.Combine(dir, RunLock.FileName);
        File.Delete(lockFile);

        var second = () => RunDaemon.RunAsync(Settings("control.enabled=on"), dir, Engines.Fake, CancellationToken.None, TextWriter.Null);
        (await second.Should().ThrowAsync<ConfigurationException>()).Which.Message.Should().Contain("another `ect train` is running");
        File.ReadAllText(ControlAddressFile.PathIn(dir)).Should().Be(controlJson, "the refused daemon did not overwrite the live one's address");

        cts.Cancel();
        (await first).ExitCode.Should().Be(0);
        // Free again once the first daemon is gone.
        using var next = RunLock.Acquire(dir);
    }
}
