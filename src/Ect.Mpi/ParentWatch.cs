using System.Runtime.InteropServices;

namespace Ect.Mpi;

/// <summary>
/// Ends this rank when the process that launched it (mpirun on this machine, or Open MPI's orted on another) is gone:
/// a SIGKILL of mpirun does not reach the ranks, and a rank that lived on would hold the run lock and wait in a
/// collective forever. Polls getppid() (a dead parent re-parents us to init or a subreaper); on a change it prints
/// why and kills this process with SIGKILL, which is what a crash-proof run is built for (no half-written files).
/// </summary>
public static class ParentWatch
{
    [DllImport("libc.so.6")] private static extern int getppid();
    [DllImport("libc.so.6")] private static extern int getpid();
    [DllImport("libc.so.6")] private static extern int kill(int pid, int sig);

    private static int _started;

    public static void Start(int rank, TimeSpan interval)
    {
        if (Interlocked.Exchange(ref _started, 1) == 1) return;
        int parent = getppid();
        var thread = new Thread(() =>
        {
            while (true)
            {
                Thread.Sleep(interval);
                if (getppid() == parent) continue;
                Console.Error.WriteLine($"rank {rank}: the process that launched it (mpirun or orted, pid {parent}) is gone; ending rank {rank} (SIGKILL).");
                Console.Error.Flush();
                kill(getpid(), 9);
            }
        }) { IsBackground = true, Name = "mpi-parent-watch" };
        thread.Start();
    }

    /// <summary>
    /// Ends this process (SIGKILL) once its parent is no longer <paramref name="expectedParent"/>: compared with a pid
    /// the parent passed down, not the parent seen at start, so a parent that died before this call is caught too.
    /// </summary>
    public static void StartFor(int expectedParent, string parentDescription, TimeSpan interval)
    {
        if (Interlocked.Exchange(ref _started, 1) == 1) return;
        var thread = new Thread(() =>
        {
            while (true)
            {
                if (getppid() != expectedParent)
                {
                    Console.Error.WriteLine($"ect: {parentDescription} is gone; ending this process (SIGKILL) so no orphan keeps training.");
                    Console.Error.Flush();
                    kill(getpid(), 9);
                }
                Thread.Sleep(interval);
            }
        }) { IsBackground = true, Name = "parent-watch" };
        thread.Start();
    }
}
