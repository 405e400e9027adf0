using System.Runtime.InteropServices;

namespace Ect.Compute.Runtime;

/// <summary>
/// libtorch's global at::Context switches that TorchSharp 0.107 does not bind (its torch.use_deterministic_algorithms
/// is marked obsolete "not implemented"; it binds no cudnn.deterministic or cudnn.benchmark). Called by their exported
/// C++ symbols in libtorch_cpu.so (present in the CPU and the CUDA builds alike; x86-64 SysV: a member function takes
/// `this` as its first argument, a C++ bool is one byte). The getters exist so tests can see a setter land.
/// </summary>
public static class LibTorchContext
{
    private const string Lib = "libtorch_cpu";

    /// <summary>Deterministic algorithms (warn-only off), cuDNN deterministic, cuDNN benchmark off; or all back to libtorch's defaults.</summary>
    public static void SetDeterministic(bool on)
    {
        var ctx = GlobalContext();
        SetDeterministicAlgorithms(ctx, on, false);
        SetDeterministicCuDnn(ctx, on);
        SetBenchmarkCuDnn(ctx, false);
    }

    public static bool DeterministicAlgorithms => DeterministicAlgorithmsOf(GlobalContext());
    public static bool DeterministicCuDnn => DeterministicCuDnnOf(GlobalContext());

    [DllImport(Lib, EntryPoint = "_ZN2at13globalContextEv")]
    private static extern nint GlobalContext();

    [DllImport(Lib, EntryPoint = "_ZN2at7Context26setDeterministicAlgorithmsEbb")]
    private static extern void SetDeterministicAlgorithms(nint ctx, [MarshalAs(UnmanagedType.U1)] bool on, [MarshalAs(UnmanagedType.U1)] bool warnOnly);

    [DllImport(Lib, EntryPoint = "_ZN2at7Context21setDeterministicCuDNNEb")]
    private static extern void SetDeterministicCuDnn(nint ctx, [MarshalAs(UnmanagedType.U1)] bool on);

    [DllImport(Lib, EntryPoint = "_ZN2at7Context17setBenchmarkCuDNNEb")]
    private static extern void SetBenchmarkCuDnn(nint ctx, [MarshalAs(UnmanagedType.U1)] bool on);

    [DllImport(Lib, EntryPoint = "_ZNK2at7Context23deterministicAlgorithmsEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool DeterministicAlgorithmsOf(nint ctx);

    [DllImport(Lib, EntryPoint = "_ZNK2at7Context18deterministicCuDNNEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool DeterministicCuDnnOf(nint ctx);
}
