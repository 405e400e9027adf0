using Ect.Actors.Checkpoints;
namespace Ect.Actors.Run;

/// <summary>
/// Whether a run directory and the journal stream it is about to continue belong together. Run by the
/// coordinator after recovery, before anything is journaled or trained: a refusal ends `ect train` with exit 2
/// and a message that names both sides (never a silent replay of another run, never a silent restart).
/// A corrupt or missing newest checkpoint is not a disagreement: the resume point falls back to an older one.
/// </summary>
public static class RunAgreement
{
    /// <summary>Null when they agree; else why not, naming the run directory, the journal and the way out.</summary>
    public static string? Refusal(RunState state, RunIdentity identity, string runDir, string journal)
    {
        var dir = RunIdentity.FullPath(runDir);
        var files = CheckpointMetadata.FilesIn(dir);
        var fix = $"Point ect.persistence at the journal that holds this run, or restore the run directory; to start a new run use " +
                  $"another --run-dir (or `ect train --new-run` in a directory without {RunIdentity.FileName}).";

        // Checkpoints written by another run (copied in, or a run directory reused by hand).
        foreach (var f in files)
            if (CheckpointMetadata.Read(f) is { } m && RunIdentity.FromMetadata(m) is { } other && other.Id != identity.Id)
                return $"Run directory {dir} is run {identity} ({RunIdentity.FileName}), but its checkpoint {f} was written by run {other}. " +
                       $"A run directory holds one run: move the foreign checkpoints out, or start that run from its own directory.";

        if (!state.Started)
        {
            if (files.Count == 0) return null; // a new run (or one killed before its first event)
            return $"{journal} holds no events of run {identity} (persistence id {identity.PersistenceId}), but run directory {dir} holds " +
                   $"{files.Count} checkpoint(s) (newest {Path.GetFileName(files[^1])}): this directory's run was journaled elsewhere. {fix}";
        }

        var journaled = $"{journal} says run {(state.RunId.Length > 0 ? state.RunId : "?")}" +
                        $"{(state.RunUuid.Length > 0 ? $" ({state.RunUuid})" : "")} " +
                        (state.Finished ? $"finished at step {state.Step}" : $"is at step {state.Step} ({state.Phase})");

        if (state.RunUuid.Length > 0 && state.RunUuid != identity.Id)
            return $"Run directory {dir} is run {identity}, but {journaled} under the same persistence id {identity.PersistenceId}. {fix}";

        if (state.Checkpoints.Count > 0 && !state.Checkpoints.Any(c => File.Exists(Path.Combine(dir, c.Path))))
        {
            var expected = string.Join(", ", state.Checkpoints.TakeLast(3).Select(c => c.Path));
            return $"{journaled}, but run directory {dir} holds none of its checkpoints (expected {expected}; it holds " +
                   $"{(files.Count == 0 ? "none" : string.Join(", ", files.Select(Path.GetFileName)))}). " +
                   $"Restore the run directory's checkpoints to continue it. {fix}";
        }

        // A copy of the run directory: the recorded one still holds the same run.
        if (state.RunDirectory.Length > 0 && state.RunDirectory != dir && Directory.Exists(state.RunDirectory)
            && SafeRead(state.RunDirectory) is { } there && there.Id == identity.Id)
            return $"Run directory {dir} holds run {identity}, which {journal} records in {state.RunDirectory}, and that directory still holds it: " +
                   $"{dir} is a copy. Continue the run from {state.RunDirectory}, or move (not copy) the run directory.";
        return null;
    }

    private static RunIdentity? SafeRead(string dir)
    {
        try { return RunIdentity.Read(dir); }
        catch (Configuration.ConfigurationException) { return null; }
    }
}
