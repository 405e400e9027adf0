using Akka.Actor;
using Akka.Hosting;
using Ect.Actors.Configuration;
using Ect.Actors.Control;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>The daemon's Akka.Hosting wiring, its run lock, and the refusal of `ect ctl stage` outside tuning.</summary>
public class DaemonHostingTests
{
    [Fact]
    public async Task The_actor_system_comes_from_Akka_Hosting_with_the_run_configuration_and_the_registered_coordinator()
    {
        var dir = NewRunDir();
        var seen = new TaskCompletionSource<(string Name, string LogLevel, string Journal, string Dispatcher, bool Registered, string Path)>();
        var outcome = await RunDaemonAsync(dir, Settings("run.max-steps=3"), onStarted: (sys, coord) =>
        {
            var registry = ActorRegistry.For(sys);
            var c = sys.Settings.Config;
            seen.TrySetResult((sys.Name, c.GetString("akka.loglevel"), c.GetString("akka.persistence.journal.plugin"),
                c.GetString("ect.trainer-dispatcher.type"),
                registry.TryGet<RunCoordinator>(out var r) && r.Equals(coord), coord.Path.ToStringWithoutAddress()));
        });
        outcome.ExitCode.Should().Be(0);
        var s = await seen.Task;
        s.Name.Should().Be(DaemonHost.SystemName);
        s.LogLevel.Should().Be("WARNING", "the system HOCON (AddHocon) is not overridden by Akka.Hosting's logging defaults");
        s.Journal.Should().Be("akka.persistence.journal.sql");
        s.Dispatcher.Should().Be("PinnedDispatcher");
        s.Registered.Should().BeTrue("the coordinator is in the ActorRegistry");
        s.Path.Should().Be("/user/run");
    }

    [Fact]
    public void The_host_has_no_console_lifetime_that_would_stop_the_actor_system_on_a_signal()
    {
        var dir = NewRunDir();
        using var host = new DaemonHost(Settings().Config, dir, Props.Empty);
        var lifetime = host.Services.GetRequiredService<IHostLifetime>();
        lifetime.Should().BeOfType<DaemonHost.DaemonLifetime>();
        // Everything registered as a lifetime: HostBuilder's ConsoleLifetime is there but shadowed.
        host.Services.GetServices<IHostLifetime>().Last().Should().BeSameAs(lifetime);
    }

    [Fact]
    public async Task With_control_enabled_the_control_actor_is_registered_and_control_json_names_the_bound_port()
    {
        var dir = NewRunDir();
        var seen = new TaskCompletionSource<(bool Registered, int Port, string ControlSystem, bool RunIsLocal, string RunProvider)>();
        var outcome = await RunDaemonAsync(dir, Settings("control.enabled=on", "run.max-steps=3"), onStarted: (sys, _) =>
        {
            var registered = ActorRegistry.For(sys).TryGet<ControlActor>(out var control) && control.Path.Name == ControlActor.Name;
            // The control actor lives in its own, network-facing system; the run's system has no remoting at all.
            var controlSystem = ((ActorRefWithCell)control).Underlying.System;
            var runProvider = ((ExtendedActorSystem)sys).Provider;
            seen.TrySetResult((registered, ControlEndpoint.AddressOf(controlSystem).Port, controlSystem.Name,
                runProvider.DefaultAddress.HasLocalScope, runProvider.GetType().Name));
        });
        outcome.ExitCode.Should().Be(0);
        var (ok, port, controlName, runIsLocal, runProviderName) = await seen.Task;
        ok.Should().BeTrue();
        port.Should().BeGreaterThan(0);
        ControlAddressFile.Read(dir).Port.Should().Be(port);
        controlName.Should().Be(ControlEndpoint.SystemName);
        runIsLocal.Should().BeTrue("the run's ActorSystem has no network address");
        runProviderName.Should().Be(nameof(LocalActorRefProvider));
    }

    [Fact]
    public async Task A_second_daemon_on_the_same_run_directory_is_refused_while_the_first_runs_and_the_clean_exit_deletes_the_lock()
    {
        var dir = NewRunDir();
        var lockFile = Path.Combine(dir, RunLock.FileName);
        using var cts = new CancellationTokenSource();
        var started = new TaskCompletionSource();
        var first = RunDaemonAsync(dir, Settings("fake.step-ms=20", "pretrain.steps=100000"), stop: cts.Token,
            onStarted: (_, _) => started.TrySetResult());
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        File.Exists(lockFile).Should().BeTrue();

        var second = () => RunDaemon.RunAsync(Settings(), dir, Engines.Fake, CancellationToken.None, TextWriter.Null);
        (await second.Should().ThrowAsync<ConfigurationException>()).Which.Message
            .Should().Contain("another `ect train` is running").And.Contain(lockFile);
        File.Exists(lockFile).Should().BeTrue("the refused daemon does not delete the holder's file");

        cts.Cancel();
        (await first).ExitCode.Should().Be(0);
        File.Exists(lockFile).Should().BeFalse("a clean exit deletes run.lock");
    }

    [Fact]
    public async Task A_stale_lock_file_left_by_a_killed_daemon_does_not_block_a_restart()
    {
        // What a SIGKILLed daemon leaves: the file, without the lock (the kernel drops it with the process).
        // KillResumeTests does the same with a real SIGKILL of the `ect` process.
        var dir = NewRunDir();
        var lockFile = Path.Combine(dir, RunLock.FileName);
        File.WriteAllText(lockFile, "");
        (await RunDaemonAsync(dir, Settings("run.max-steps=3"))).Step.Should().Be(3);
        File.Exists(lockFile).Should().BeFalse();
    }

    [Fact]
    public void The_lock_is_exclusive_while_held_and_free_again_once_released()
    {
        var dir = NewRunDir();
        var held = RunLock.Acquire(dir);
        var again = () => RunLock.Acquire(dir);
        again.Should().Throw<ConfigurationException>().WithMessage($"*{dir}*another `ect train`*");
        held.Dispose();
        File.Exists(held.Path).Should().BeFalse();
        // Free again, allowing a moment: a process another test forks in this instant shares the closed descriptors
        // (flock belongs to the open file description) until its exec closes them (O_CLOEXEC); that failed once in
        // the full parallel suite. A lock that is never released still fails here after 5 s.
        RunLock? next = null;
        for (var deadline = DateTime.UtcNow.AddSeconds(5); next is null; Thread.Sleep(20))
        {
            try { next = RunLock.Acquire(dir); }
            catch (ConfigurationException) when (DateTime.UtcNow < deadline) { }
        }
        using (next) File.Exists(next.Path).Should().BeTrue();
    }

    [Fact]
    public async Task Stage_is_refused_during_pretraining_with_the_reason()
    {
        var dir = NewRunDir();
        var reply = new TaskCompletionSource<RunCommandReply>();
        var s = Settings("fake.step-ms=10", "pretrain.steps=100000");
        var outcome = await RunDaemonAsync(dir, s, onStarted: (sys, coord) =>
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    // Wait until the run trains (before that every command is refused as "starting up").
                    for (int i = 0; i < 500; i++)
                    {
                        var st = await coord.Ask<RunCommandReply>(new GetStatus("s"), TimeSpan.FromSeconds(10));
                        if (st.Status!.Step > 0) break;
                        await Task.Delay(20);
                    }
                    reply.TrySetResult(await coord.Ask<RunCommandReply>(new SetStage("stage-pre", 3), TimeSpan.FromSeconds(10)));
                }
                catch (Exception e) { reply.TrySetException(e); }
                finally { coord.Tell(new StopRun("stop-1")); }
            });
        });
        outcome.ExitCode.Should().Be(0);
        var r = await reply.Task;
        r.Accepted.Should().BeFalse();
        r.Message.Should().Be("stage applies to ECT tuning; the run is in pretraining");
        r.Status!.Phase.Should().Be(Phases.Pretrain);
        var journal = RunJournal.Read(dir);
        RunJournal.Events<CommandApplied>(journal).Should().ContainSingle(c => c.IdempotencyKey == "stage-pre")
            .Which.Accepted.Should().BeFalse();
        RunJournal.Events<StageAdvanced>(journal).Should().NotContain(e => e.ByUser);
    }

    [Theory]
    [InlineData(Phases.Pretrain, "stage applies to ECT tuning; the run is in pretraining")]
    [InlineData(Phases.FinalEvaluation, "stage applies to ECT tuning; the run is in its final evaluation")]
    [InlineData(Phases.Finished, "stage applies to ECT tuning; the run has finished")]
    public void The_stage_refusal_names_the_phase_in_words(string phase, string message) =>
        RunCoordinator.StageRefusedOutsideTuning(phase).Should().Be(message);
}
