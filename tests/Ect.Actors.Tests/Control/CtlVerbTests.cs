using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Ect.Actors.Cli;
using Ect.Actors.Control;
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

    public CtlVerbTests() : base(ControlEndpoint.Configure(ConfigurationFactory.Empty, Path.GetTempPath()), "ect")
    {
        _coordinator = CreateTestProbe();
        ControlEndpoint.Start(Sys, _coordinator.Ref, ConfigurationFactory.Empty, _runDir);
    }

    void IDisposable.Dispose()
    {
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

        var dead = Path.Combine(_runDir, "dead");
        ControlAddressFile.Write(dead, new ControlAddress("akka.tcp", "ect", "127.0.0.1", ControlRemotingTests.FreePort(), ControlActor.Path));
        File.Copy(Path.Combine(_runDir, "control.token"), Path.Combine(dead, "control.token"));
        (code, _, err) = RunEct("ctl", "status", "--run-dir", dead, "--timeout", "1", "--attempts", "1");
        code.Should().Be(CtlVerb.ExitUnreachable);
        err.Should().Contain("No answer from");
    }
}
