using Ect.Compute.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Runtime;

/// <summary>
/// Run-time check of device placement: every parameter, buffer, gradient and optimizer state tensor of a training
/// set-up, and any outputs, on the configured device. The source-level rule (TensorDeviceRules in the tests) sees
/// every factory call; this sees what actually ran, including tensors made by .to(), copies and libtorch itself.
/// libtorch's meta device cannot run a convolution from C++, so on a CPU-only machine the tests call this with the
/// CPU as the expected device and every code path; on a CUDA machine (scripts/gpu-check.sh) with cuda:N.
/// </summary>
public static class DeviceCheck
{
    /// <summary>"what: device" for every tensor not on <paramref name="expected"/> (empty when all are).</summary>
    public static List<string> Misplaced(Device expected, nn.Module? module = null, TorchOptimizer? optimizer = null,
        IEnumerable<(string Name, Tensor? Tensor)>? outputs = null)
    {
        var wrong = new List<string>();
        void See(string what, Tensor? t)
        {
            if (t is null) return;
            if (!SameDevice(t, expected)) wrong.Add($"{what}: {t.device} (expected {expected})");
        }
        if (module is not null)
        {
            foreach (var (name, p) in module.named_parameters())
            {
                See($"parameter {name}", p);
                See($"gradient of {name}", p.grad);
            }
            foreach (var (name, b) in module.named_buffers()) See($"buffer {name}", b);
        }
        if (optimizer is not null)
            foreach (var (name, t) in optimizer.StateTensors())
            {
                if (name == "step") { t.Dispose(); continue; } // a fresh host counter made for the checkpoint file
                See($"optimizer state {name}", t);
            }
        if (outputs is not null)
            foreach (var (name, t) in outputs) See(name, t);
        return wrong;
    }

    /// <summary>Throws InvalidOperationException listing every misplaced tensor of <see cref="Misplaced"/>.</summary>
    public static void Require(Device expected, string context, nn.Module? module = null, TorchOptimizer? optimizer = null,
        IEnumerable<(string Name, Tensor? Tensor)>? outputs = null)
    {
        var wrong = Misplaced(expected, module, optimizer, outputs);
        if (wrong.Count > 0)
            throw new InvalidOperationException($"{context}: {wrong.Count} tensor(s) not on {expected}:\n  " + string.Join("\n  ", wrong.Take(20)));
    }

    public static bool SameDevice(Tensor t, Device d) =>
        t.device_type == d.type && (d.type == DeviceType.CPU || t.device_index == Math.Max(d.index, 0));
}
