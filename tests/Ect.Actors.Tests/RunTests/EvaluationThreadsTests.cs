using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// An evaluator samples the EMA on its own thread beside training. OpenMP's thread count is a per-thread setting
/// that a new thread takes from the last torch.set_num_threads anywhere (the trainer's), so without care the
/// evaluator's thread opened a second full-size OpenMP pool; libgomp then manages more threads than there are
/// cores and stops spinning between parallel regions for the rest of the run, which slows every training step.
/// ect.evaluation.threads sets the evaluator thread's own count.
/// </summary>
public class EvaluationThreadsTests
{
    private static int OpenMpThreadsAfterSampling(int evaluationThreads, string threadName)
    {
        const string data = "/usr/share/datasets/fashion-mnist";
        Directory.Exists(data).Should().BeTrue($"Fashion-MNIST is installed at {data} (apt-get install dataset-fashion-mnist)");
        var s = RunSettings.From(EctConfiguration.Load(null,
        [
            "run.engine=torch", "run.threads=2", $"evaluation.threads={evaluationThreads}", "data.batch-size=4", "data.max-images=64",
            "network.model-channels=4", "network.channel-mult=[1,2]", "network.num-blocks=1", "network.init=\"\"",
        ]));
        var (engine, source) = Engines.Torch(s, Directory.CreateTempSubdirectory("ect-evalthreads-").FullName);
        using var _ = engine;
        using var __ = source;
        using var model = engine.CaptureEma();
        int threads = 0;
        Exception? failure = null;
        var t = new Thread(() =>
        {
            // An exception escaping a thread of our own kills the test host (and with it every later test's result):
            // it is carried out and rethrown on the test's thread.
            try
            {
                model.Generate(64, 2, 0, 80, 0.821); // 64 x 4 x 32 x 32 elements: above ATen's grain size, so parallel
                // OpenMP workers are created by this thread and inherit its name; they live as long as it does.
                threads = Directory.GetDirectories("/proc/self/task").Count(d => ThreadName(d) == threadName);
            }
            catch (Exception e) { failure = e; }
        }) { Name = threadName };
        t.Start();
        t.Join();
        if (failure is not null) throw new InvalidOperationException("the sampling thread failed", failure);
        return threads;
    }

    /// <summary>A thread's name from /proc/self/task/TID/comm, or null when the thread ended after the directory was
    /// listed (other tests' threads come and go: CI once crashed on exactly that, DirectoryNotFoundException).</summary>
    internal static string? ThreadName(string taskDirectory)
    {
        try { return File.ReadAllText(Path.Combine(taskDirectory, "comm")).Trim(); }
        catch (IOException) { return null; }
    }

    [Fact]
    public void The_evaluators_thread_samples_with_its_own_thread_count_and_opens_no_second_pool()
    {
        OpenMpThreadsAfterSampling(1, "ect-evalprobe1").Should().Be(1, "ect.evaluation.threads = 1: no OpenMP worker beside the trainer's pool");
        // The probe sees a pool when there is one (two threads with the evaluator thread's name).
        OpenMpThreadsAfterSampling(2, "ect-evalprobe2").Should().Be(2);
    }

    [Fact]
    public void A_thread_that_ended_after_the_listing_is_skipped_not_a_crash()
    {
        var dir = Directory.CreateTempSubdirectory("ect-task-").FullName;
        try
        {
            ThreadName(Path.Combine(dir, "4242")).Should().BeNull("the task's directory is gone, as an ended thread's is");
            Directory.CreateDirectory(Path.Combine(dir, "4243"));
            File.WriteAllText(Path.Combine(dir, "4243", "comm"), "ect-probe\n");
            ThreadName(Path.Combine(dir, "4243")).Should().Be("ect-probe");
        }
        finally { Directory.Delete(dir, true); }
    }
}
