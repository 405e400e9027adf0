using System.Globalization;
using Akka.Actor;
using Akka.Persistence;
using Ect.Actors.Configuration;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using Google.Protobuf;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Persistence;

/// <summary>
/// `ect train --rebuild-journal`: a new journal from the run's checkpoint files, for a journal.db that is damaged
/// or gone. Each finished checkpoint file (checkpoints/ckpt-STEP.ckpt is only ever a complete, fsynced file: the
/// checkpointer renames it into place) carries its step, kimg, phase and stage in its metadata; they are journaled
/// as the run's committed checkpoints, after a RunStarted holding the configuration given now (the old one was in
/// the damaged journal: pass the run's own --config/--set), and a RunInterrupted that says what happened. The
/// coordinator then recovers that journal as any other and resumes from the last checkpoint, bit for bit as a
/// resume after a kill. The damaged file is kept beside it (journal.db.damaged-TIME). What only the old journal knew
/// (evaluations recorded, command replies) is not in the rebuilt one; the live changes in effect (`ect ctl set`, `stage`)
/// are, from the last checkpoint's metadata.
/// </summary>
public static class JournalRebuilder
{
    private sealed record Found(string RelativePath, long Step, double Kimg, string Phase, int Stage, string Sha256);

    /// <summary>Null when the journal was rebuilt (the run may start); else the outcome to end `ect train` with.</summary>
    public static async Task<RunOutcome?> RebuildAsync(RunSettings settings, string runDir, string journalPath,
        IReadOnlyList<(string Path, long Step)> files, string problem, TextWriter log)
    {
        var found = new List<Found>();
        var skipped = new List<string>();
        foreach (var (file, step) in files)
        {
            try
            {
                var m = CheckpointMetadata.ReadOrThrow(file);
                long metaStep = long.Parse(m[CheckpointFormat.Step], CultureInfo.InvariantCulture);
                double kimg = double.Parse(m[CheckpointFormat.Kimg], CultureInfo.InvariantCulture);
                int stage = int.Parse(m[CheckpointFormat.Stage], CultureInfo.InvariantCulture);
                var phase = m[CheckpointFormat.Phase];
                if (metaStep != step) { skipped.Add($"{file}: its metadata says step {metaStep}"); continue; }
                // The one setting the file itself records: a checkpoint of another batch size is another run.
                double expected = step * (double)settings.BatchSize / 1000.0;
                if (Math.Abs(kimg - expected) > 1e-9 * Math.Max(1, expected))
                    return new RunOutcome(2,
                        $"--rebuild-journal: {file} was written with {kimg} kimg at step {step}, which is not ect.data.batch-size = {settings.BatchSize} " +
                        $"({expected} kimg): pass the run's own --config and --set. Nothing was changed.", 0);
                found.Add(new Found(Path.Combine(Checkpointer.Folder, Path.GetFileName(file)), step, kimg, phase, stage, Checkpointer.Sha256File(file)));
            }
            catch (Exception e) when (e is IOException or InvalidDataException or KeyNotFoundException or FormatException
                                          or OverflowException or System.Text.Json.JsonException or UnauthorizedAccessException)
            {
                skipped.Add($"{file}: {e.Message}");
            }
        }
        foreach (var s in skipped) log.WriteLine($"warning: --rebuild-journal skips {s}");
        if (found.Count == 0)
            return new RunOutcome(1, $"--rebuild-journal: none of the {files.Count} checkpoint file(s) can be read ({string.Join("; ", skipped)}); " +
                                     $"{journalPath} was left as it is. Start a new run with another --run-dir.", 0);

        // The damaged journal (and SQLite's side files) moved aside, never deleted.
        var stamp = DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var kept = $"{journalPath}.damaged-{stamp}";
        foreach (var suffix in new[] { "", "-wal", "-shm", "-journal" })
            if (File.Exists(journalPath + suffix)) File.Move(journalPath + suffix, kept + suffix);

        var last = found[^1];
        // The run's identity (issue 16): run.json, else the newest checkpoint's metadata, else a pre-identity run. The
        // rebuilt events go to the run's own stream, so that the coordinator recovers them and its agreement check holds.
        var identity = Run.RunIdentity.Read(runDir)
                       ?? Run.RunIdentity.FromMetadata(CheckpointMetadata.ReadOrThrow(Path.Combine(runDir, last.RelativePath)))
                       ?? Run.RunIdentity.Legacy(runDir);
        var events = new List<IMessage>
        {
            new RunStarted
            {
                RunId = identity.Name,
                RunUuid = identity.IsLegacy ? "" : identity.Id,
                RunDir = Run.RunIdentity.FullPath(runDir),
                Host = Environment.MachineName,
                ConfigHocon = EctConfiguration.Render(settings.Config),
                StartedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                ProgramVersion = typeof(JournalRebuilder).Assembly.GetName().Version?.ToString() ?? "",
            },
            new PhaseChanged { Phase = Phases.Pretrain, Step = 0 },
        };
        // Live changes (`ect ctl set`, `ect ctl stage`) in effect at the last checkpoint, as its metadata records them;
        // the step cap is left to the command line (it decides when to stop, not what is computed).
        try
        {
            var lastMeta = CheckpointMetadata.ReadOrThrow(files.First(f => f.Step == last.Step).Path);
            if (lastMeta.TryGetValue(CheckpointFormat.ConfigChanges, out var changesJson))
            {
                int i = 0;
                foreach (var c in System.Text.Json.JsonSerializer.Deserialize<string[][]>(changesJson) ?? [])
                    if (c is [var step, var key, var value] && key != "ect.run.max-steps")
                        events.Add(new ConfigChanged { Step = long.Parse(step, CultureInfo.InvariantCulture), Key = key, Value = value, IdempotencyKey = $"rebuilt-config-{i++}" });
            }
            if (lastMeta.TryGetValue(CheckpointFormat.UserStages, out var stagesJson))
            {
                int i = 0;
                foreach (var u in System.Text.Json.JsonSerializer.Deserialize<long[][]>(stagesJson) ?? [])
                    if (u is [var step, var stage])
                        events.Add(new StageAdvanced { Step = step, Stage = checked((int)stage), ByUser = true, IdempotencyKey = $"rebuilt-stage-{i++}" });
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or OverflowException)
        {
            log.WriteLine($"warning: --rebuild-journal: the live changes recorded in the last checkpoint cannot be read ({e.Message}); the run resumes without them");
        }
        bool tuning = false;
        foreach (var f in found)
        {
            if (f.Phase == Phases.Tuning && !tuning)
            {
                tuning = true;
                events.Add(new PhaseChanged { Phase = Phases.Tuning, Step = Math.Min(settings.PretrainSteps, f.Step) });
            }
            events.Add(new CheckpointCommitted
            {
                Path = f.RelativePath, Step = f.Step, Kimg = f.Kimg, Sha256 = f.Sha256, Phase = f.Phase, Stage = f.Stage,
                Milestone = settings.MilestoneEvery > 0 && f.Step % settings.MilestoneEvery == 0,
            });
        }
        if (last.Stage > 0) events.Add(new StageAdvanced { Stage = last.Stage, Step = last.Step });
        events.Add(new RunInterrupted
        {
            Step = last.Step,
            Reason = $"journal rebuilt from {found.Count} checkpoint file(s) by `ect train --rebuild-journal` ({problem}; the damaged journal is kept as {Path.GetFileName(kept)})",
        });
        try { await WriteAsync(settings, runDir, identity.PersistenceId, events); }
        catch (Exception e)
        {
            foreach (var suffix in new[] { "", "-wal", "-shm", "-journal" })
                try { File.Delete(journalPath + suffix); } catch { /* best effort */ }
            return new RunOutcome(1, $"--rebuild-journal: the new journal {journalPath} could not be written ({e.GetBaseException().Message}); " +
                                     $"the damaged one is kept as {kept}. Fix the cause (disk space, permissions) and run it again.", 0);
        }
        log.WriteLine($"Journal {journalPath} rebuilt from {found.Count} checkpoint file(s): the run resumes at step {last.Step} " +
                      $"({last.Phase}, stage {last.Stage}) with the configuration given now; the damaged journal is kept as {kept}.");
        return null;
    }

    /// <summary>Persists <paramref name="events"/> as the run's journal stream (<paramref name="persistenceId"/>) through Akka, as the coordinator would.</summary>
    private static async Task WriteAsync(RunSettings settings, string runDir, string persistenceId, IReadOnlyList<IMessage> events)
    {
        var system = ActorSystem.Create("ect-rebuild", RunDaemon.SystemConfig(settings.Config, runDir));
        try
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var writer = system.ActorOf(Props.Create(() => new Writer(persistenceId, events, done)), "journal-writer");
            writer.Tell(Writer.Go.Instance);
            await done.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            await system.Terminate().WaitAsync(TimeSpan.FromSeconds(20)).ContinueWith(_ => { });
        }
    }

    private sealed class Writer : ReceivePersistentActor
    {
        public sealed class Go { public static readonly Go Instance = new(); }

        private readonly TaskCompletionSource _done;
        public override string PersistenceId { get; }

        public Writer(string persistenceId, IReadOnlyList<IMessage> events, TaskCompletionSource done)
        {
            PersistenceId = persistenceId;
            _done = done;
            Recover<object>(_ => { });
            Command<Go>(_ =>
            {
                if (LastSequenceNr != 0)
                {
                    _done.TrySetException(new InvalidOperationException($"the new journal already holds {LastSequenceNr} events"));
                    return;
                }
                int written = 0;
                PersistAll(events, _ => { if (++written == events.Count) _done.TrySetResult(); });
            });
        }

        protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
        {
            _done.TrySetException(cause);
            base.OnPersistFailure(cause, @event, sequenceNr);
        }

        protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
        {
            _done.TrySetException(cause);
            base.OnPersistRejected(cause, @event, sequenceNr);
        }

        protected override void OnRecoveryFailure(Exception reason, object? message = null)
        {
            _done.TrySetException(reason);
            base.OnRecoveryFailure(reason, message);
        }
    }
}
