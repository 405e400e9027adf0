using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Runtime;

/// <summary>
/// The device a run computes on, resolved once from <c>ect.run.device</c> (auto | cpu | cuda | cuda:N) and handed to
/// everything that makes tensors: the network and its EMA (moved with <see cref="ModulePlacement"/>), the optimizer
/// state (made from the parameters, so on their device), the batches, the samplers' and losses' draws and the
/// checkpoint loads. <c>auto</c> is the first CUDA device when libtorch sees one, else the CPU. Asking for CUDA from a
/// build whose libtorch has none (the default TorchSharp-cpu build) is refused with the build switch that gives one.
/// </summary>
public sealed record ComputeDevice
{
    public const string Key = "ect.run.device";

    /// <summary>"cpu" or "cuda": the libtorch this program was built with (<c>-p:TorchBackend=cuda</c> defines ECT_TORCH_CUDA).</summary>
    public static string BuildBackend =>
#if ECT_TORCH_CUDA
        "cuda";
#else
        "cpu";
#endif

    /// <summary>What libtorch sees: whether CUDA is usable and how many devices (a seam for tests).</summary>
    public sealed record CudaProbe(bool Available, int DeviceCount)
    {
        public static CudaProbe Real() => torch.cuda.is_available() ? new(true, torch.cuda.device_count()) : new(false, 0);
    }

    public static readonly ComputeDevice Cpu = new("cpu", DeviceType.CPU, -1);

    private ComputeDevice(string setting, DeviceType type, int index) { Setting = setting; Type = type; Index = index; }

    /// <summary>The value of ect.run.device this was resolved from (auto, cpu, cuda, cuda:N).</summary>
    public string Setting { get; }
    public DeviceType Type { get; }
    /// <summary>The CUDA device index; -1 for the CPU.</summary>
    public int Index { get; }
    public bool IsCpu => Type == DeviceType.CPU;

    private Device? _device;
    /// <summary>The TorchSharp device (made once; Device is immutable).</summary>
    public Device Device => _device ??= IsCpu ? new Device(DeviceType.CPU) : new Device(DeviceType.CUDA, Index);

    /// <summary>"cpu" or "cuda:N", as libtorch spells it.</summary>
    public override string ToString() => IsCpu ? "cpu" : $"cuda:{Index}";

    /// <summary>One line for the banner and `ect ctl status`: the device, what was asked and the libtorch build.</summary>
    public string Describe() =>
        (Setting == ToString() || (Setting == "cuda" && Index == 0) ? ToString() : $"{this} (ect.run.device = {Setting})")
        + $", libtorch {BuildBackend} build";

    /// <summary>True when <paramref name="value"/> is a valid ect.run.device spelling (whatever this machine has).</summary>
    public static bool IsValidSetting(string value) => TryParse(value, out _, out _);

    private static bool TryParse(string value, out DeviceType type, out int index)
    {
        type = DeviceType.CPU; index = -1;
        switch (value)
        {
            case "auto": return true;
            case "cpu": return true;
            case "cuda": type = DeviceType.CUDA; index = 0; return true;
        }
        if (value.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(value.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n))
        {
            type = DeviceType.CUDA; index = n; return true;
        }
        return false;
    }

    /// <summary>Resolves ect.run.device against the libtorch this process loaded.</summary>
    public static ComputeDevice Resolve(string value) => Resolve(value, CudaProbe.Real());

    /// <summary>
    /// Resolves <paramref name="value"/> against <paramref name="probe"/>; throws ArgumentException naming the key, the
    /// value and the fix for a bad spelling, a CUDA device this build or machine does not have, or an index past the last.
    /// </summary>
    public static ComputeDevice Resolve(string value, CudaProbe probe)
    {
        value = value.Trim();
        if (!TryParse(value, out var type, out var index))
            throw new ArgumentException($"{Key} = \"{value}\": must be auto, cpu, cuda or cuda:N (N a CUDA device index, e.g. cuda:0).");
        if (value == "auto") return probe.Available && probe.DeviceCount > 0 ? new ComputeDevice(value, DeviceType.CUDA, 0) : new ComputeDevice(value, DeviceType.CPU, -1);
        if (type == DeviceType.CPU) return Cpu;
        if (!probe.Available || probe.DeviceCount == 0)
            throw new ArgumentException(BuildBackend == "cpu"
                ? $"{Key} = {value}: this ect is built with the CPU libtorch (package TorchSharp-cpu), which has no CUDA. " +
                  "Build with `dotnet build -p:TorchBackend=cuda` (packages TorchSharp-cuda-linux and libtorch-cuda-12.8-linux-x64) on a machine with an NVIDIA driver, or set ect.run.device = cpu (or auto)."
                : $"{Key} = {value}: this ect is built with the CUDA libtorch, but libtorch sees no CUDA device (no NVIDIA driver, CUDA_VISIBLE_DEVICES empty, or a driver older than CUDA 12.8 needs). " +
                  "Check `nvidia-smi`, or set ect.run.device = cpu (or auto).");
        if (index >= probe.DeviceCount)
            throw new ArgumentException($"{Key} = {value}: libtorch sees {probe.DeviceCount} CUDA device(s) (cuda:0 to cuda:{probe.DeviceCount - 1}); pick one of them or set ect.run.device = cuda.");
        return new ComputeDevice(value, DeviceType.CUDA, index);
    }

    /// <summary>
    /// Deterministic kernels (ect.run.deterministic): on CUDA, cuDNN's and cuBLAS's fastest kernels are not bit-stable
    /// from run to run (atomics in convolution backward, split-K GEMM, cuDNN's benchmark choosing by timing), so a resumed
    /// run would not reproduce its bits. On: libtorch's deterministic-algorithms flag (an op without a deterministic CUDA
    /// kernel then raises), cuDNN deterministic with benchmarking off, and CUBLAS_WORKSPACE_CONFIG=:4096:8 as cuBLAS
    /// requires (set before the first cuBLAS call: this runs before any tensor is made on the device). TorchSharp 0.107's
    /// torch.use_deterministic_algorithms throws "not implemented", so <see cref="LibTorchContext"/> calls libtorch's
    /// at::Context directly. On the CPU nothing is changed: our CPU kernels are deterministic per thread count already
    /// (the KillResume and digest tests), and the golden tests pin today's CPU bits.
    /// </summary>
    public void ApplyDeterminism(bool deterministic)
    {
        if (IsCpu) return;
        // libc's setenv, not Environment.SetEnvironmentVariable (which .NET keeps to itself on Linux); a user's value is kept.
        if (deterministic) SetEnv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
        LibTorchContext.SetDeterministic(deterministic);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string name,
        [System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string value, int overwrite);
}
