namespace Ect.Actors.Evaluation;

/// <summary>
/// Where `ect eval` writes its result when no --out is given: beside the run, never inside its checkpoints/ folder
/// (which the checkpointer prunes and `ect inspect` scans), and never over an earlier result.
/// </summary>
public static class EvalResultPath
{
    /// <summary>The folder of a run directory that holds `ect eval` results.</summary>
    public const string Folder = "eval";

    /// <summary>
    /// RUN_DIR/eval/&lt;checkpoint name&gt;.&lt;what&gt;.json for a checkpoint in RUN_DIR/checkpoints/, otherwise
    /// &lt;checkpoint without extension&gt;.&lt;what&gt;.json beside the file; when that name is taken, the first free one of
    /// ...-2.json, ...-3.json, ...
    /// </summary>
    public static string Default(string checkpointPath, string what)
    {
        var full = Path.GetFullPath(checkpointPath);
        var dir = Path.GetDirectoryName(full)!;
        if (Path.GetFileName(dir) == Checkpoints.Checkpointer.Folder && Path.GetDirectoryName(dir) is { } runDir)
            dir = Path.Combine(runDir, Folder);
        var stem = Path.Combine(dir, $"{Path.GetFileNameWithoutExtension(full)}.{what}");
        var path = stem + ".json";
        for (var i = 2; File.Exists(path); i++) path = $"{stem}-{i}.json";
        return path;
    }
}
