using System.Runtime.InteropServices;

namespace Ect.Compute.Runtime;

/// <summary>
/// Makes libtorch's OpenMP threads sleep, not spin, when they wait: call <see cref="Apply"/> first thing in Main,
/// before any TorchSharp type is touched.
/// <para>
/// Why: libtorch in TorchSharp-cpu 0.107 (libtorch 2.10) is linked against GNU OpenMP (its own copy,
/// libgomp-98b21ff3.so.1 next to libtorch_cpu.so; no Intel libiomp). libgomp's threads spin-wait at every barrier and
/// at the end of every parallel region (300,000 spins by default) before they sleep. A training step runs thousands
/// of small parallel regions; when another process holds one of the cores, the spinning thread of a 2-thread team
/// burns its time slice while the thread it waits for is descheduled: beside a one-core `yes` hog the bench step
/// fell to 25% of its quiet speed, beside a build to 8% (issue 21). With OMP_WAIT_POLICY=PASSIVE a waiting thread
/// yields its core at once.
/// </para>
/// <para>
/// How: libgomp reads its environment once, in its library constructor, when libtorch is loaded (TorchSharp loads it
/// on first use of <c>torch</c>). .NET's Environment.SetEnvironmentVariable does not change the native environment on
/// Linux, so the variables are set with libc's setenv. A value the user set is kept (setenv without overwrite), so
/// `OMP_WAIT_POLICY=ACTIVE ect ...` restores spinning. Later calls, and calls after libtorch was loaded, change
/// nothing that libgomp sees (<see cref="LoadedTooLate"/> says so).
/// </para>
/// </summary>
public static class OpenMpWaitPolicy
{
    /// <summary>What is set when the user has not set it.</summary>
    public const string WaitPolicy = "PASSIVE";

    private static readonly object Gate = new();
    private static bool _applied;

    /// <summary>True when libgomp was already mapped into the process when <see cref="Apply"/> first ran (then its
    /// setting came too late for this process).</summary>
    public static bool LoadedTooLate { get; private set; }

    /// <summary>Sets OMP_WAIT_POLICY=PASSIVE in the native environment unless already set (Linux; elsewhere nothing).</summary>
    public static void Apply()
    {
        lock (Gate)
        {
            if (_applied) return;
            _applied = true;
            if (!OperatingSystem.IsLinux()) return;
            LoadedTooLate = GompIsLoaded();
            SetEnv("OMP_WAIT_POLICY", WaitPolicy, 0);
        }
    }

    /// <summary>The value of <paramref name="name"/> in the native (libc) environment; null when unset.</summary>
    public static string? NativeValue(string name)
    {
        var p = GetEnv(name);
        return p == 0 ? null : Marshal.PtrToStringUTF8(p);
    }

    private static bool GompIsLoaded()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
                if (line.Contains("libgomp", StringComparison.Ordinal)) return true;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return false;
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    [DllImport("libc", EntryPoint = "getenv")]
    private static extern nint GetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);
}
