using System.Runtime.InteropServices;
using TorchSharp;

namespace Ect.Compute.Runtime;

/// <summary>
/// libtorch's global backend switches that TorchSharp 0.107 does not expose (PyTorch's
/// <c>torch.backends.nnpack.set_flags</c> / <c>torch._C._set_mkldnn_enabled</c>), reached through the C++ symbols
/// <c>at::globalContext()</c> and <c>at::Context::setUserEnabledNNPACK(bool)</c> that libtorch_cpu.so exports.
/// <para>
/// Why NNPACK is switched off: for a convolution without autograd (a no_grad pass: ECT's target pass, sampling) that
/// oneDNN does not take (1x1 kernels at one thread and batch below 16), ATen asks whether NNPACK is available. On CPUs
/// NNPACK does not support (this machine type's AMD EPYC among them) libtorch 2.10 then logs
/// "Could not initialize NNPACK! Reason: Unsupported hardware." to stderr on every such convolution (thousands of
/// lines a minute in a one-thread run) and falls back to its native kernel. With the switch off ATen does not ask:
/// the same native kernel runs, silently. Where NNPACK does work, it is no longer used, so every machine runs the same
/// kernels. Other libtorch messages and errors are untouched (nothing filters stderr).
/// </para>
/// </summary>
public static unsafe class LibTorchBackends
{
    private const string GlobalContext = "_ZN2at13globalContextEv";
    private const string SetNnpack = "_ZN2at7Context20setUserEnabledNNPACKEb";
    private const string GetNnpack = "_ZNK2at7Context17userEnabledNNPACKEv";
    private const string SetMkldnn = "_ZN2at7Context20setUserEnabledMkldnnEb";

    private static readonly object Gate = new();
    private static nint _lib;
    private static bool _configured;

    /// <summary>
    /// Switches NNPACK off once per process (later calls return at once). Call before the first convolution; every
    /// entry point that builds a network does (the training engine, checkpoint loading, `ect eval`). Returns false when
    /// this libtorch lacks the symbols (then nothing changes and the messages may appear).
    /// </summary>
    public static bool Configure()
    {
        lock (Gate)
        {
            if (_configured) return _lib != 0;
            _configured = true;
            if (!TryContext(out var ctx)) return false;
            ((delegate* unmanaged<nint, byte, void>)NativeLibrary.GetExport(_lib, SetNnpack))(ctx, 0);
            // oneDNN off as well, unless ECT_LIBTORCH_ONEDNN=on: on this project's AMD EPYC hosts (2026-12-01) its
            // float32 convolution backward-data is wrong for 3x3 kernels with 1-3, 8 or 24 output channels at one
            // thread too (max error ~2 against float64; Conv2d pads the < 16 cases), and a tiny DDPM++ trained 3 + 3
            // steps across two processes ended with other bits than 6 steps in one in about half the tries
            // (TrainStateResumeTests); with oneDNN off, 6 of 6 matched. Exact resume is the daemon's promise, so
            // ATen's own convolution kernels are used. Speed with it off is not measured yet (issue 21).
            if (Environment.GetEnvironmentVariable("ECT_LIBTORCH_ONEDNN") != "on")
                ((delegate* unmanaged<nint, byte, void>)NativeLibrary.GetExport(_lib, SetMkldnn))(ctx, 0);
            return true;
        }
    }

    /// <summary>libtorch's NNPACK switch (at::globalContext().userEnabledNNPACK()); null when it cannot be read.</summary>
    public static bool? NnpackEnabled
    {
        get
        {
            lock (Gate)
                return TryContext(out var ctx) ? ((delegate* unmanaged<nint, byte>)NativeLibrary.GetExport(_lib, GetNnpack))(ctx) != 0 : null;
        }
    }

    /// <summary>libtorch's oneDNN (mkldnn) switch, at::globalContext().setUserEnabledMkldnn: off, convolutions take ATen's
    /// own kernels (<see cref="Configure"/> switches it off).</summary>
    public static void SetMkldnnEnabled(bool enabled)
    {
        lock (Gate)
        {
            if (!TryContext(out var ctx)) throw new InvalidOperationException("libtorch_cpu's at::Context symbols were not found.");
            ((delegate* unmanaged<nint, byte, void>)NativeLibrary.GetExport(_lib, SetMkldnn))(ctx, enabled ? (byte)1 : (byte)0);
        }
    }

    /// <summary>Sets the NNPACK switch directly (tests show the message with it on).</summary>
    public static void SetNnpackEnabled(bool enabled)
    {
        lock (Gate)
        {
            if (!TryContext(out var ctx)) throw new InvalidOperationException("libtorch_cpu's at::Context symbols were not found.");
            ((delegate* unmanaged<nint, byte, void>)NativeLibrary.GetExport(_lib, SetNnpack))(ctx, enabled ? (byte)1 : (byte)0);
        }
    }

    private static bool TryContext(out nint context)
    {
        context = 0;
        if (_lib == 0)
        {
            torch.get_num_threads(); // makes TorchSharp load libtorch (and so libtorch_cpu) first
            var lib = Load();
            if (lib == 0 || !NativeLibrary.TryGetExport(lib, GlobalContext, out _) ||
                !NativeLibrary.TryGetExport(lib, SetNnpack, out _) || !NativeLibrary.TryGetExport(lib, GetNnpack, out _)
                || !NativeLibrary.TryGetExport(lib, SetMkldnn, out _))
                return false;
            _lib = lib;
        }
        context = ((delegate* unmanaged<nint>)NativeLibrary.GetExport(_lib, GlobalContext))();
        return context != 0;
    }

    private static nint Load()
    {
        // The copy TorchSharp loaded: the build output (a RuntimeIdentifier build), else the runtimes/ folder.
        foreach (var dir in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? "" })
            foreach (var path in new[] { Path.Combine(dir, "libtorch_cpu.so"), Path.Combine(dir, "runtimes", "linux-x64", "native", "libtorch_cpu.so") })
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out var h)) return h;
        return NativeLibrary.TryLoad("libtorch_cpu.so", out var byName) ? byName : 0;
    }
}
