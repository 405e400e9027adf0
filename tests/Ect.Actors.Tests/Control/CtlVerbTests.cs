using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Ect.Actors.Cli;
using Ect.Actors.Control;
using Ect.Actors.Daemon;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Control;

[CollectionDefinition("Console", DisableParallelization = true)]
public sealed class ConsoleCollection;

/// <summary>`ect ctl ...` end to end through Program.Main against a daemon started with ControlEndpoint.Start.</summary>
[Collection("Console")]
public sealed class CtlVerbTests : TestKit, IDisposable
{
    private readonly string _runDir = Directory.CreateTempSubdirectory("ect-run-").FullName;
    private readonly Akka.TestKit.TestProbe _coordinator;
    private readonly RunLock _lock; // a daemon holds its run directory's lock while it lives

    public CtlVerbTests() : base(ControlEndpoint.Configure(ConfigurationFactory.Empty, Path.GetTempPath()), "ect")
    {
        _lock = RunLock.Acquire(_runDir);
        _coordinator = CreateTestProbe();
        ControlEndpoint.Start(Sys, _coordinator.Ref, ConfigurationFactory.Empty, _runDir);
    }

    void IDisposable.Dispose()
    {
        _lock.Dispose();
        Directory.Delete(_runDir, true);
        base.Dispose();
    }

    private static (int Code, string Out, string Err) RunEct(params string[] args) => CliHarness.Run(args);

    [Fact]
    public async Task Status_prints_a_table_and_exits_0()
    {
        var run = Task.Run(() => RunEct("ctl", "status", "--run-dir", _runDir));
        var cmd = _coordinator.ExpectMsg<GetStatus>(TimeSpan.FromSeconds(20));
        Guid.TryParseExact(cmd.IdempotencyKey, "N", out _).Should().BeTrue("each invocation makes a new Guid key");
        _coordinator.Reply(new RunCommandReply(cmd.IdempotencyKey, true, "",
            new RunStatus("run-7", "training", 4321, 12.25, 3, true, 0.0625, 28.5, "ckpt.safetensors")));

        var (code, output, err) = await run;
        code.Should().Be(0, err);
        output.Should().Contain("run-7").And.Contain("4321").And.Contain("12.25").And.Contain("ckpt.safetensors");
    }

    [Fact]
    public async Task Set_sends_key_and_value_and_a_refusal_exits_1()
    {
        var run = Task.Run(() => RunEct("ctl", "set", "ect.training.lr = 2e-4", "--run-dir", _runDir));
        var cmd = _coordinator.ExpectMsg<SetConfigValue>(TimeSpan.FromSeconds(20));
        (cmd.Key, cmd.Value).Should().Be(("ect.training.lr", "2e-4"));
        _coordinator.Reply(new RunCommandReply(cmd.IdempotencyKey, false, "ect.training.lr cannot change during a run", null));

        var (code, _, err) = await run;
        code.Should().Be(CtlVerb.ExitRefused);
        err.Should().Contain("cannot change during a run");
    }

    [Fact]
    public async Task An_accepted_set_prints_its_command_id_for_a_revert()
    {
        var run = Task.Run(() => RunEct("ctl", "set", "tuning.lr=2e-4", "--run-dir", _runDir));
        var cmd = _coordinator.ExpectMsg<SetConfigValue>(TimeSpan.FromSeconds(20));
        _coordinator.Reply(new RunCommandReply(cmd.IdempotencyKey, true, "ect.tuning.lr = 2e-4 from step 12", null));

        var (code, output, err) = await run;
        code.Should().Be(0, err);
        output.Should().Contain($"command id {cmd.IdempotencyKey}").And.Contain($"--revert-command {cmd.IdempotencyKey}");
    }

    [Fact]
    public void Wrong_token_file_is_refused_with_exit_1()
    {
        var bad = Path.Combine(_runDir, "bad.token");
        File.WriteAllText(bad, new string('a', 64));
        var port = ControlAddressFile.Read(_runDir).Port;
        var (code, _, err) = RunEct("ctl", "pause", "--address", $"127.0.0.1:{port}", "--token-file", bad);
        code.Should().Be(CtlVerb.ExitRefused);
        err.Should().Contain("refused");
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void Missing_run_dir_and_unreachable_daemon_exit_2_with_a_message()
    {
        var (code, _, err) = RunEct("ctl", "stop", "--run-dir", Path.Combine(_runDir, "nope"));
        code.Should().Be(CtlVerb.ExitUnreachable);
        err.Should().Contain("control.json").And.Contain("does not exist");

        // A daemon that lives (it holds run.lock) but does not answer: the client waits, then says so.
        var hung = Path.Combine(_runDir, "hung");
        ControlAddressFile.Write(hung, new ControlAddress("akka.tcp", "ect", "127.0.0.1", ControlRemotingTests.FreePort(), ControlActor.Path));
        File.Copy(Path.Combine(_runDir, "control.token"), Path.Combine(hung, "control.token"));
        using (RunLock.Acquire(hung))
        {
            (code, _, err) = RunEct("ctl", "status", "--run-dir", hung, "--timeout", "1", "--attempts", "1");
            code.Should().Be(CtlVerb.ExitUnreachable);
            err.Should().Contain("No answer from");
        }
    }

    [Theory]
    [InlineData(false)] // exited cleanly: run.lock deleted
    [InlineData(true)]  // killed: run.lock left behind, but nobody holds it
    public void A_run_whose_daemon_has_exited_is_reported_at_once_with_how_to_continue_it(bool staleLockFile)
    {
        var dead = Path.Combine(_runDir, "dead");
        ControlAddressFile.Write(dead, new ControlAddress("akka.tcp", "ect", "127.0.0.1", ControlRemotingTests.FreePort(), ControlActor.Path));
        File.Copy(Path.Combine(_runDir, "control.token"), Path.Combine(dead, "control.token"));
        if (staleLockFile) File.WriteAllText(Path.Combine(dead, RunLock.FileName), "");
        RunLock.IsHeld(dead).Should().BeFalse();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (code, output, err) = RunEct("ctl", "status", "--run-dir", dead, "--timeout", "30", "--attempts", "3");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10), "no attempt is made to reach an exited daemon (3 x 30 s otherwise)");
        code.Should().Be(CtlVerb.ExitUnreachable);
        err.Should().Contain("is not running").And.Contain($"ect train --run-dir {dead}").And.NotContain("No answer");
        output.Should().BeEmpty();
    }

    [Fact]
    public void The_lock_probe_tells_a_held_lock_from_a_released_one()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_runDir, "probe")).FullName;
        RunLock.IsHeld(dir).Should().BeFalse("no lock file");
        var held = RunLock.Acquire(dir);
        RunLock.IsHeld(dir).Should().BeTrue();
        RunLock.IsHeld(dir).Should().BeTrue("the probe itself leaves the lock alone");
        held.Dispose();
        RunLock.IsHeld(dir).Should().BeFalse();
        using var again = RunLock.Acquire(dir); // the probe left nothing behind that blocks a new daemon
    }
}
