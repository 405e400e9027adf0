using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect inspect CHECKPOINT|RUN_DIR`: phase, step, kimg, stage, config digest of a checkpoint (the daemon writes the
/// SHA-256 of the configuration its run started with, as journaled in RunStarted: equal digests = the same run
/// configuration), and SHA-256 digests of its weights and EMA over tensor names and bytes (see <see cref="CheckpointDigest"/>).
/// For a run directory, the latest checkpoint in it.
/// </summary>
public sealed class InspectVerb : ICliVerb
{
    public int Order => 40;

    public Command Build()
    {
        var target = new Argument<string>("CHECKPOINT|RUN_DIR") { Description = "A checkpoint (RUN_DIR/checkpoints/ckpt-*.ckpt, a safetensors file), an `ect export` weights file, or a run directory (its latest checkpoint)." };
        var showMeta = new Option<bool>("--metadata") { Description = "Also list every __metadata__ entry." };
        var cmd = new Command("inspect", "Show a checkpoint's counters and weight/EMA digests.");
        cmd.Arguments.Add(target);
        cmd.Options.Add(showMeta);
        cmd.SetAction(r => Run(r.GetValue(target)!, r.GetValue(showMeta)));
        return cmd;
    }

    public static int Run(string target, bool showMetadata)
    {
        CheckpointSummary s;
        Ect.Actors.Run.RunIdentity? runDirIdentity = null;
        try
        {
            var path = Directory.Exists(target) ? CheckpointSummary.LatestIn(target) : target;
            s = CheckpointSummary.Of(path);
            if (Directory.Exists(target)) runDirIdentity = Ect.Actors.Run.RunIdentity.Read(target);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or Configuration.ConfigurationException)
        {
            Console.Error.WriteLine($"ect inspect: {e.Message}");
            return 1;
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        // Redirected output has no width; digests and paths should not wrap mid-token.
        if (Console.IsOutputRedirected) console.Profile.Width = 240;
        var table = new Table().AddColumn("field").AddColumn("value");
        void Row(string k, string? v) => table.AddRow(Markup.Escape(k), Markup.Escape(v ?? "-"));
        Row("checkpoint", s.Path);
        // The run that wrote it (checkpoint metadata), and for a run directory the run its run.json names.
        var ckptRun = s.Metadata.TryGetValue("user." + Ect.Actors.Run.RunIdentity.IdKey, out var runId)
            ? $"{s.Metadata.GetValueOrDefault("user." + Ect.Actors.Run.RunIdentity.NameKey, "?")} ({runId})" : null;
        Row("run", ckptRun);
        if (runDirIdentity != null) Row("run directory's run", $"{runDirIdentity} (journal stream {runDirIdentity.PersistenceId})");
        Row("phase", s.Phase);
        Row("step", s.Step?.ToString(CultureInfo.InvariantCulture));
        Row("kimg", s.Kimg?.ToString("0.###", CultureInfo.InvariantCulture));
        Row("stage", s.Stage?.ToString(CultureInfo.InvariantCulture));
        Row("config digest", s.ConfigDigest);
        // Data-parallel runs (mpirun -np K) write their number of ranks; a checkpoint without it came from one process.
        Row("ranks", s.Metadata.GetValueOrDefault("user.world-size", "1"));
        if (Directory.Exists(target) && WorldSizeChanges(target) is { } changes) Row("rank changes (journal)", changes);
        Row("tensors", s.TensorCount.ToString(CultureInfo.InvariantCulture));
        Row("weights sha256", s.WeightsDigest);
        Row("ema sha256", s.EmaDigest);
        foreach (var (group, digest) in s.GroupDigests.Where(g => g.Key is not ("net" or "ema" or "")))
            Row($"{group}/ sha256", digest);
        console.Write(table);

        if (showMetadata && s.Metadata.Count > 0)
        {
            var meta = new Table().AddColumn("metadata key").AddColumn("value").AddColumn("meaning");
            foreach (var (k, v) in s.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                meta.AddRow(Markup.Escape(k), Markup.Escape(v.Length > 200 ? v[..200] + "..." : v), Markup.Escape(MetadataMeaning(k)));
            console.Write(meta);
        }
        return 0;
    }

    /// <summary>The run's journaled changes of its number of ranks ("step 40: 2 -> 1; ..."), null when none or no readable journal.</summary>
    private static string? WorldSizeChanges(string runDir)
    {
        try
        {
            var changes = Ect.Actors.Persistence.RunJournal.Events<Ect.Actors.Persistence.Events.WorldSizeChanged>(Ect.Actors.Persistence.RunJournal.Read(runDir)).ToList();
            return changes.Count == 0 ? null
                : string.Join("; ", changes.Select(c => string.Create(CultureInfo.InvariantCulture, $"step {c.Step}: {c.FromSize} -> {c.ToSize} ranks")));
        }
        catch (Exception) { return null; } // inspect reads checkpoints; a journal it cannot read is `ect history`'s to report
    }

    /// <summary>
    /// What a checkpoint metadata key means. TrainState writes its TrainStep's own counters as ect.* (they restart at 0
    /// when tuning begins: a fresh TrainStep), the daemon writes the run's as user.* (counted over pretraining and tuning).
    /// </summary>
    private const string U = CheckpointFormat.UserPrefix;

    public static string MetadataMeaning(string key) => key switch
    {
        "ect.format" => "file format",
        "ect.step" => "steps of the current phase's optimizer (restarts at 0 when tuning begins)",
        "ect.images" => "images seen in the current phase",
        "ect.stage" => "ECT stage of the loss",
        "ect.lr" => "learning rate",
        U + CheckpointFormat.Step => "the run's step (pretraining + tuning; what --steps and the journal count)",
        U + CheckpointFormat.Kimg => "the run's thousands of images (pretraining + tuning)",
        U + CheckpointFormat.Phase => "phase of the run",
        U + CheckpointFormat.Stage => "the run's ECT stage",
        U + CheckpointFormat.Sampler => "data sampler position (exact resume)",
        U + CheckpointFormat.NetworkConfig => "the network's architecture",
        U + CheckpointFormat.NetworkKind or U + CheckpointFormat.Edm2Config => "the network's architecture (EDM2)",
        U + CheckpointFormat.Precond => "preconditioning the network was trained with",
        U + CheckpointFormat.DataPath => "the dataset it was trained on",
        U + CheckpointFormat.InitWeights or U + CheckpointFormat.InitSha256 => "the weights the run started from",
        U + CheckpointFormat.SourceSha256 => "SHA-256 of the checkpoint this was exported from",
        "user.world-size" => "ranks of the data-parallel run that wrote it (mpirun -np K)",
        _ when key.StartsWith("user.sigma", StringComparison.Ordinal) => "noise level of the preconditioning",
        _ when key.StartsWith("user.", StringComparison.Ordinal) => "the run's (written by the daemon)",
        _ when key.StartsWith("ect.", StringComparison.Ordinal) => "the current phase's TrainStep (written by TrainState)",
        _ => "",
    };
}
