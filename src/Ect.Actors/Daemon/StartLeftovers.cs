namespace Ect.Actors.Daemon;

/// <summary>
/// Temporary files an earlier start or run left in the run directory when it was killed or met a full disk
/// (control.json.tmp, control.token.PID.tmp, stats.jsonl.tmp): each is written whole and renamed, so a leftover
/// was never used and is removed before the daemon starts. (checkpoints/*.tmp are the checkpointer's to clear.)
/// </summary>
public static class StartLeftovers
{
    public static void Remove(string runDir, TextWriter log)
    {
        IEnumerable<string> files;
        try { files = Directory.EnumerateFiles(runDir, "*.tmp", SearchOption.TopDirectoryOnly).ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return; }
        foreach (var f in files)
        {
            try { File.Delete(f); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                log.WriteLine($"warning: leftover {f} not removed: {Run.IoError.Describe(e, f)}");
            }
        }
    }
}
