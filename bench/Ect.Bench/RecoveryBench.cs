using System.Diagnostics;
using Akka.Actor;
using Akka.Persistence;
using Ect.Actors.Configuration;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;

namespace Ect.Bench;

/// <summary>
/// `recovery [EVENTS] [--rounds R]`: how long `ect train` takes to come back on a run whose journal holds EVENTS
/// events after the last snapshot (default 10,000: the issue's figure; the worst case, snapshots off). Each round
/// starts the daemon on the finished-capped run (fake engine, SQLite journal), replays the journal and stops at
/// once (the step cap is already reached): the time from RunAsync to its outcome is start-up + recovery + stop.
/// </summary>
public sealed class RecoveryBench : IBenchmarkVerb
{
    public string Name => "recovery";
    public string Description => "ect train start-up + journal recovery of N events (no snapshot) + stop, SQLite";

    public int Run(string[] args)
    {
        int events = args.Length > 0 && int.TryParse(args[0], out var n) ? n : 10_000;
        int rounds = args.Contains("--rounds") ? int.Parse(args[Array.IndexOf(args, "--rounds") + 1]) : 5;
        var s = RunSettings.From(EctConfiguration.Load(null,
        [
            "run.engine=fake", "run.max-steps=1", "persistence.snapshot-every-events=1000000", "display.mode=off",
            "control.enabled=off", "evaluation.evaluators=[]", "pretrain.steps=10", "tuning.steps=0",
        ]), checkData: false);
        var dir = Directory.CreateTempSubdirectory("ect-bench-recovery-").FullName;
        if (RunDaemon.RunAsync(s, dir, Engines.Fake, CancellationToken.None, TextWriter.Null).GetAwaiter().GetResult().ExitCode != 0)
            return 1;
        Fill(s, dir, events);
        var total = RunJournal.Read(dir).Count;
        Console.WriteLine($"journal: {total} events, no snapshot; SQLite {new FileInfo(Path.Combine(dir, "journal.db")).Length / 1024} KiB; machine: {Environment.ProcessorCount} cores");

        var times = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            var sw = Stopwatch.StartNew();
            var outcome = RunDaemon.RunAsync(s, dir, Engines.Fake, CancellationToken.None, TextWriter.Null).GetAwaiter().GetResult();
            sw.Stop();
            if (outcome.ExitCode != 0) { Console.WriteLine(outcome.Message); return 1; }
            times.Add(sw.Elapsed.TotalSeconds);
            Console.WriteLine($"round {r + 1}: {sw.Elapsed.TotalSeconds:F2} s (start-up, recovery of {total} events, stop)");
        }
        var sorted = times.Order().ToList();
        Console.WriteLine($"median {sorted[sorted.Count / 2]:F2} s, max {sorted[^1]:F2} s over {rounds} rounds (goal: recovery < 5 s)");
        return 0;
    }

    /// <summary>Appends <paramref name="count"/> remembered-command events to the run's journal (as ctl commands would).</summary>
    private static void Fill(RunSettings s, string dir, int count)
    {
        using var sys = ActorSystem.Create("fill", RunDaemon.SystemConfig(s.Config, dir));
        var done = new TaskCompletionSource();
        var pid = Ect.Actors.Run.RunIdentity.PersistenceIdOf(dir); // the run's own stream (run.json)
        sys.ActorOf(Props.Create(() => new JournalFiller(pid, count, done)));
        done.Task.Wait(TimeSpan.FromMinutes(5));
        sys.Terminate().Wait();
    }

    private sealed class JournalFiller : ReceivePersistentActor
    {
        private readonly string _pid;
        public override string PersistenceId => _pid;

        public JournalFiller(string pid, int count, TaskCompletionSource done)
        {
            _pid = pid;
            Recover<object>(_ => { });
            Command<int>(_ =>
                PersistAll(Enumerable.Range(0, count).Select(i => new CommandApplied { IdempotencyKey = $"bench-{i}", Accepted = true, Message = "filled" }),
                    e => { if (e.IdempotencyKey == $"bench-{count - 1}") done.TrySetResult(); }));
        }

        protected override void PreStart() { base.PreStart(); Self.Tell(0); }
    }
}
