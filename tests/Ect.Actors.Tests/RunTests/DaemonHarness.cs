using Akka.Actor;
using Ect.Actors.Configuration;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;

namespace Ect.Actors.Tests.RunTests;

/// <summary>Runs the daemon in-process on the fake engine, in a fresh temporary run directory.</summary>
internal static class DaemonHarness
{
    public static readonly string[] Tiny =
    [
        "run.engine=fake", "pretrain.steps=30", "tuning.steps=30", "checkpoint.every-steps=10", "evaluation.every-steps=20",
        "tuning.kimg-per-tick=0.1", "tuning.double-ticks=1", "display.mode=off", "control.enabled=off", "fake.parameters=1024",
        // Pinned so the schedule (stage every 0.1 kimg) does not change with the default batch size.
        "data.batch-size=32",
    ];

    public static RunSettings Settings(params string[] sets) =>
        RunSettings.From(EctConfiguration.Load(null, Tiny.Concat(sets)), checkData: false);

    public static string NewRunDir() => Directory.CreateTempSubdirectory("ect-run-").FullName;

    public static async Task<RunOutcome> RunDaemonAsync(string runDir, RunSettings s, EngineFactory? factory = null,
        CancellationToken stop = default, Action<ActorSystem, IActorRef>? onStarted = null, bool newRun = false)
    {
        var task = RunDaemon.RunAsync(s, runDir, factory ?? Engines.Fake, stop, TextWriter.Null, onStarted, newRun);
        return await task.WaitAsync(TimeSpan.FromMinutes(10));
    }

    public static RunFinished Finished(string runDir) =>
        RunJournal.Events<RunFinished>(RunJournal.Read(runDir)).Should().ContainSingle().Subject;

    /// <summary>Every committed checkpoint appears once in the journal; returns their steps.</summary>
    public static List<long> CheckpointStepsOnce(string runDir)
    {
        var steps = RunJournal.Events<CheckpointCommitted>(RunJournal.Read(runDir)).Select(c => c.Step).ToList();
        steps.Should().OnlyHaveUniqueItems("every committed checkpoint is journaled once");
        return steps;
    }
}
