using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using Ect.Actors.Run;
using Ect.Compute.IO;

namespace Ect.Actors.Checkpoints;

/// <summary>
/// Writes checkpoints off the trainer thread, atomically: temporary file, fsync, SHA-256, rename, fsync of
/// the folder. Only then does it tell the coordinator, which journals the hash: a journaled checkpoint is
/// always a complete, durable file. Deletes the files the coordinator no longer keeps.
/// </summary>
public sealed class Checkpointer : ReceiveActor
{
    public const string Folder = "checkpoints";
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public static Props Props(string runDir, CheckpointWritePolicy? policy = null) =>
        Akka.Actor.Props.Create(() => new Checkpointer(runDir, policy ?? CheckpointWritePolicy.Default)).WithDispatcher("ect.io-dispatcher");

    public Checkpointer(string runDir, CheckpointWritePolicy policy)
    {
        var dir = Path.Combine(runDir, Folder);
        // Never throw here: a checkpointer that fails to start is stopped by its supervisor, and the coordinator
        // would wait for the reply to every later write. A folder that cannot be made fails each write instead,
        // which is retried, reported with its errno and ends the run.
        try
        {
            Directory.CreateDirectory(dir);
            // Leftovers of a write that a kill interrupted: never journaled, never read.
            foreach (var tmp in Directory.EnumerateFiles(dir, "*.tmp").Concat(Directory.EnumerateFiles(dir, ".capture-*"))) File.Delete(tmp);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("The checkpoint folder {0} cannot be prepared: {1}", dir, IoError.Describe(e, Path.Combine(dir, ".startup")));
        }

        Receive<WriteCheckpoint>(m =>
        {
            var name = $"ckpt-{m.Step:D9}.ckpt";
            var final = Path.Combine(dir, name);
            var tmp = final + ".tmp";
            var replyTo = Sender;
            using (m.Image)
            {
                // A failed write (full disk, a folder turned read-only or immutable, an I/O error) is tried again a
                // bounded number of times; then the coordinator ends the run with the file and the errno. Blocking
                // here is this actor's job (its own thread): the trainer and the coordinator go on meanwhile.
                for (int attempt = 1; ; attempt++)
                {
                    try
                    {
                        m.Image.WriteTo(tmp);
                        var sha = Sha256File(tmp);
                        AtomicFile.Commit(tmp, final);
                        replyTo.Tell(new CheckpointWritten(m.Generation, Path.Combine(Folder, name), m.Step, m.Kimg, sha, m.Phase, m.Stage));
                        return;
                    }
                    catch (Exception e)
                    {
                        var cause = IoError.Describe(e, tmp);
                        try { File.Delete(tmp); } catch { /* best effort: the folder may refuse this too */ }
                        if (attempt < policy.Attempts)
                        {
                            _log.Warning("Checkpoint {0} not written (attempt {1} of {2}): {3}; trying again in {4:F1} s",
                                tmp, attempt, policy.Attempts, cause, policy.RetryDelay.TotalSeconds);
                            Thread.Sleep(policy.RetryDelay);
                            continue;
                        }
                        _log.Error("Checkpoint {0} not written after {1} attempt(s): {2}", tmp, attempt, cause);
                        replyTo.Tell(new CheckpointWriteFailed(m.Generation, m.Step,
                            $"checkpoint {tmp} could not be written ({attempt} attempt(s)): {cause}"));
                        return;
                    }
                }
            }
        });
        Receive<DeleteCheckpoints>(m =>
        {
            foreach (var rel in m.RelativePaths)
            {
                if (CheckpointFileIn(runDir, rel) is not { } path)
                {
                    _log.Error("Refused to delete '{0}': not a checkpoint file (checkpoints/ckpt-NNNNNNNNN.ckpt) of {1}", rel, runDir);
                    continue;
                }
                try { File.Delete(path); }
                catch (Exception e) { _log.Warning("Could not delete {0}: {1}", rel, e.Message); }
            }
        });
    }

    /// <summary>
    /// The full path of <paramref name="relativePath"/> when it names a checkpoint file this actor writes
    /// (checkpoints/ckpt-NNNNNNNNN.ckpt, directly inside RUN_DIR/checkpoints); null for anything else (an absolute
    /// path, "..", another folder or file name), so that no message can make the checkpointer delete outside it.
    /// </summary>
    public static string? CheckpointFileIn(string runDir, string relativePath)
    {
        if (string.IsNullOrEmpty(relativePath) || Path.IsPathRooted(relativePath)) return null;
        var folder = Path.GetFullPath(Path.Combine(runDir, Folder));
        var full = Path.GetFullPath(Path.Combine(runDir, relativePath));
        if (!string.Equals(Path.GetDirectoryName(full), folder, StringComparison.Ordinal)) return null;
        var name = Path.GetFileName(full);
        return CheckpointName.IsMatch(name) ? full : null;
    }

    private static readonly System.Text.RegularExpressions.Regex CheckpointName =
        new(@"^ckpt-[0-9]{9,19}\.ckpt$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    public static string Sha256File(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }
}
