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
/// NNPACK does not support (the AMD EPYC host of 2026-12-01 among them; on the Zen 3 VM of sessions 18-19
/// nnp_initialize succeeds, see `Ect.Bench winograd`) libtorch 2.10 then logs
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
    /// Switches NNPACK off once per process (later calls return at once), and oneDNN too when ECT_LIBTORCH_ONEDNN=off. Call before the first convolution; every
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
            // oneDNN stays on (ECT_LIBTORCH_ONEDNN=off switches it off, an escape for a host where it misbehaves in a
            // way ChannelPaddedConvolution does not cover). With it off (2026-12-01, first fix for wrong oneDNN
            // kernels) training ran ~5x slower (bench trainstep, 2 threads: 4.6/5.5 img/s off, 29.1/24.9 on). What was
            // wrong were 3x3 convolutions summing over a channel count that is not a multiple of 16 (forward: C_in > 16;
            // backward-data: C_out); the networks pad those (Networks.ChannelPaddedConvolution), and with that padding
            // the cross-process resume test passed 20 of 20 in a row with oneDNN on (scripts/repeat-resume-test.sh; the
            // tiny network it trains had 3x3 convolutions with C_in = 24 and with C_out = 8 and 1 unpadded: the wrong
            // kernels read memory they should not, so their results differ between processes, and at 2 threads between
            // two calls: that was the resume failure, not a cold primitive cache). Padded, oneDNN on vs off measured
            // 8.3 / 15.0 against 2.6 / 2.4 img/s (bench trainstep, ECT, 2 threads, loaded machine).
            if (Environment.GetEnvironmentVariable("ECT_LIBTORCH_ONEDNN") == "off")
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
    /// own kernels (<see cref="Configure"/> switches it off only when ECT_LIBTORCH_ONEDNN=off). Process-wide: for tests.</summary>
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
